#include "tests/test_support.h"

#include "engine/base/error.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace nst::test {

std::string assets_dir() { return NST_ASSETS_DIR; }
std::string shared_weights_path() { return assets_dir() + "/vgg19/vgg19-conv-hybrid.h5"; }
std::string shared_image_path(const std::string& name) { return assets_dir() + "/images/" + name; }
std::string source_dir() { return NST_SOURCE_DIR; }
std::string cli_path() { return NST_CLI_PATH; }

TempDir::TempDir(const std::string& label) {
    namespace fs = std::filesystem;
    const fs::path root = fs::path(NST_BINARY_DIR) / "test-tmp";
    fs::create_directories(root);
    std::string pattern = (root / (label + "-XXXXXX")).string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
}

TempDir::~TempDir() {
    std::error_code ignored;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ignored);
    std::filesystem::remove_all(path_, ignored);
}

namespace {

template <typename A, typename R>
Comparison compare_impl(const std::vector<A>& actual, const std::vector<R>& reference,
                        double atol, double rtol) {
    Comparison result;
    std::ostringstream report;
    if (actual.size() != reference.size()) {
        result.ok = false;
        report << "size mismatch: actual " << actual.size() << ", reference " << reference.size();
        result.report = report.str();
        return result;
    }
    double diff2 = 0.0, ref2 = 0.0, worst_excess = -1.0;
    std::size_t worst = 0;
    for (std::size_t i = 0; i < actual.size(); ++i) {
        const double a = actual[i], r = reference[i];
        const double err = std::fabs(a - r);
        diff2 += (a - r) * (a - r);
        ref2 += r * r;
        const double bound = atol + rtol * std::fabs(r);
        if (!(err <= bound)) {  // also catches NaN
            if (result.mismatches < 5)
                report << "  [" << i << "] actual " << a << ", reference " << r << ", |diff| "
                       << err << " > " << bound << "\n";
            const double excess = std::isnan(err) ? 1e300 : err / bound;
            if (excess > worst_excess) { worst_excess = excess; worst = i; }
            ++result.mismatches;
        }
    }
    result.relative_l2 = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
    result.ok = result.mismatches == 0;
    if (!result.ok)
        report << "  " << result.mismatches << " of " << actual.size()
               << " outside tolerance; worst at [" << worst << "]: actual " << actual[worst]
               << ", reference " << reference[worst] << "\n";
    report << "  relative L2 error " << result.relative_l2;
    result.report = report.str();
    return result;
}

}  // namespace

Comparison compare(const std::vector<double>& a, const std::vector<double>& r, double atol, double rtol) {
    return compare_impl(a, r, atol, rtol);
}
Comparison compare(const std::vector<float>& a, const std::vector<double>& r, double atol, double rtol) {
    return compare_impl(a, r, atol, rtol);
}
Comparison compare(const std::vector<float>& a, const std::vector<float>& r, double atol, double rtol) {
    return compare_impl(a, r, atol, rtol);
}

std::vector<float> random_vector(std::size_t count, unsigned seed, float lo, float hi) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(count);
    for (auto& x : v) x = dist(rng);
    return v;
}

VggWeights narrow_vgg19(const NarrowVgg& spec) {
    VggWeights w;
    w.preprocessing.bgr = true;
    w.preprocessing.pixel_scale = 255.0f;
    w.preprocessing.mean[0] = 103.9f; w.preprocessing.mean[1] = 116.8f; w.preprocessing.mean[2] = 123.7f;
    for (int c = 0; c < 3; ++c) w.preprocessing.std[c] = spec.std[c];
    w.source = "narrow random VGG-19 for tests, seed " + std::to_string(spec.seed);
    NST_ASSERT(!spec.widths.empty() && spec.widths.size() <= vgg19_layer_names().size());
    std::mt19937 rng(spec.seed);
    int in = 3;
    for (std::size_t l = 0; l < spec.widths.size(); ++l) {
        ConvWeights c;
        c.name = vgg19_layer_names()[l];
        c.in_channels = in;
        c.out_channels = spec.widths[l];
        std::normal_distribution<float> normal(0.0f, std::sqrt(2.0f / (9.0f * float(in))));
        std::uniform_real_distribution<float> bias(-spec.bias_range, spec.bias_range);
        c.weight.resize(std::size_t(c.out_channels) * in * 9);
        for (auto& v : c.weight) v = normal(rng);
        c.bias.resize(c.out_channels);
        for (auto& v : c.bias) v = bias(rng);
        w.layers.push_back(c);
        in = spec.widths[l];
    }
    return w;
}

VggWeights narrow_vgg19(unsigned seed) {
    NarrowVgg spec;
    spec.seed = seed;
    return narrow_vgg19(spec);
}

Tensor reference_conv3x3_relu(const ConvWeights& cw, const Tensor& in) {
    Tensor out{cw.out_channels, in.h, in.w, std::vector<double>(std::size_t(cw.out_channels) * in.h * in.w)};
    for (int o = 0; o < out.c; ++o)
        for (int i = 0; i < in.h; ++i)
            for (int j = 0; j < in.w; ++j) {
                double s = cw.bias[o];
                for (int c = 0; c < in.c; ++c)
                    for (int u = 0; u < 3; ++u)
                        for (int v = 0; v < 3; ++v) {
                            const int y = i + u - 1, xx = j + v - 1;
                            if (y < 0 || y >= in.h || xx < 0 || xx >= in.w) continue;
                            s += double(cw.weight[((std::size_t(o) * in.c + c) * 3 + u) * 3 + v]) * in.at(c, y, xx);
                        }
                out.at(o, i, j) = s > 0 ? s : 0;
            }
    return out;
}

Image random_image(int width, int height, unsigned seed) {
    Image image;
    image.width = width;
    image.height = height;
    image.pixels = random_vector(3 * std::size_t(width) * height, seed, 0.0f, 1.0f);
    return image;
}

CommandResult run_command(const std::string& command) {
    TempDir tmp("cmd");
    const std::string out_path = tmp.file("stdout"), err_path = tmp.file("stderr");
    const std::string full = command + " >" + out_path + " 2>" + err_path + " </dev/null";
    const int status = std::system(full.c_str());
    CommandResult result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.out = read_file(out_path);
    result.err = read_file(err_path);
    return result;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

bool file_exists(const std::string& path) { return std::filesystem::exists(path); }

}  // namespace nst::test
