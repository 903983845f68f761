// Shared helpers for the tests: paths, temporary folders, and comparisons that
// print the first mismatches (index, value, reference) when they fail.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "engine/io/image.h"
#include "engine/io/weights.h"

namespace nst::test {

// ../shared/assets beside the checkout (CI has it there too).
std::string assets_dir();
std::string shared_weights_path();               // assets/vgg19/vgg19-conv-hybrid.h5
std::string shared_image_path(const std::string& name);  // assets/images/<name>
std::string source_dir();                        // the project's root
std::string cli_path();                          // the built neural-style

// A fresh empty folder under the build tree, removed on destruction.
class TempDir {
public:
    explicit TempDir(const std::string& label);
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// Result of comparing `actual` with `reference` elementwise under
// |a − r| ≤ atol + rtol·|r|. `report` lists the first few mismatches and the
// worst one; relative_l2 = ‖a − r‖₂ / ‖r‖₂.
struct Comparison {
    bool ok = true;
    std::size_t mismatches = 0;
    double relative_l2 = 0.0;
    std::string report;
};
Comparison compare(const std::vector<double>& actual, const std::vector<double>& reference,
                   double atol, double rtol);
Comparison compare(const std::vector<float>& actual, const std::vector<double>& reference,
                   double atol, double rtol);
Comparison compare(const std::vector<float>& actual, const std::vector<float>& reference,
                   double atol, double rtol);

// Deterministic pseudo-random values in [lo, hi) (a fixed-seed generator).
std::vector<float> random_vector(std::size_t count, unsigned seed, float lo = -1.0f,
                                 float hi = 1.0f);

// A narrow network of VGG-19's topology, the one test network every test file
// builds from: He-scaled normal weights, biases uniform in ±bias_range (both
// signs, so ReLU masks are not trivial), BGR Caffe preprocessing. Convolutions
// this narrow (< 16 channels) take the CPU backend's direct path, not Winograd.
struct NarrowVgg {
    unsigned seed = 1;
    // C_out of each layer from conv1_1 on; the file stops after the last.
    std::vector<int> widths{3, 4, 4, 5, 5, 5, 5, 5, 4, 4, 4, 4, 3, 3, 3, 3};
    float bias_range = 0.1f;
    float std[3] = {57.0f, 58.0f, 59.0f};  // preprocessing std (Caffe's is 1, 1, 1)
};
VggWeights narrow_vgg19(const NarrowVgg& spec);
// The default widths (3..5) with this seed.
VggWeights narrow_vgg19(unsigned seed);

// A (C, H, W) tensor in double precision, for the reference implementations.
struct Tensor {
    int c = 0, h = 0, w = 0;
    std::vector<double> v;
    double& at(int ci, int y, int x) { return v[(std::size_t(ci) * h + y) * w + x]; }
    double at(int ci, int y, int x) const { return v[(std::size_t(ci) * h + y) * w + x]; }
};

// ReLU(conv3x3(in, W) + b) with zero padding 1, naive loops in double: the
// oracle's layer (DESIGN.md).
Tensor reference_conv3x3_relu(const ConvWeights& layer, const Tensor& in);

// width × height RGB pixels uniform in [0, 1).
Image random_image(int width, int height, unsigned seed);

// Runs a command through /bin/sh, capturing stdout and stderr separately.
struct CommandResult {
    int exit_code = -1;
    std::string out;
    std::string err;
};
CommandResult run_command(const std::string& command);

std::string read_file(const std::string& path);
bool file_exists(const std::string& path);

}  // namespace nst::test
