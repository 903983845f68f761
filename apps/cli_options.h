// Options of the neural-style command line (DESIGN.md, "CLI contract").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/transfer.h"

namespace nst::cli {

struct Options {
    std::string content;
    std::vector<std::string> styles;
    std::vector<double> style_blend_weights;  // empty: equal
    std::string output;
    std::string weights;  // empty: $NST_WEIGHTS, then ~/.cache/nst/vgg19.h5
    int size = 512;
    double style_scale = 1.0;
    double content_weight = 0.0;  // filled with the defaults below unless given
    double style_weight = 0.0;
    double tv_weight = 0.0;
    std::vector<std::string> content_layers;
    std::vector<std::string> style_layers;
    int iterations = 0;
    std::string optimizer = "lbfgs";
    int lbfgs_history = 100;
    std::string lbfgs_history_precision = "fp32";
    std::string line_search = "fixed";
    std::optional<double> learning_rate;
    std::string init;
    std::uint64_t seed = 0;
    std::string pool = "avg";
    std::string device = "auto";
    int threads = 0;
    std::string precision;  // empty: tf32 on CUDA, fp32 on the CPU
    int save_every = 0;
    std::string log_json;
    bool quiet = false;
    bool plan = false;             // --plan: print the memory plan and exit
    std::size_t max_memory = 0;    // --max-memory, bytes (0: what the device has)
    int tile = 0;                  // --tile N|auto (TransferRequest::tile; tile_auto for auto)
    bool style_weight_given = false;  // --style-weight on the command line

    // Perceptual controls (Gatys et al. 2017; README, "Controls").
    std::string preserve_colors = "none";    // none | luminance | histogram | post
    std::string color_transfer = "symmetric";  // cholesky | pca | symmetric (histogram)
    std::vector<int> scale_sizes;            // coarse to fine, the last = size; one entry: single scale
    std::vector<int> scale_iterations;       // per scale (same length as scale_sizes)
    std::vector<std::string> style_masks;        // one output region per style image
    std::vector<std::string> style_image_masks;  // one region of each style image ("" = whole)
    std::string content_mask;
    bool mask_erosion = false;                   // "inside" guidance (masks.h)
};

// The defaults live with the API (engine/transfer.h); README.md explains them.
using Defaults = TransferDefaults;

// The request these options describe, with one placeholder (empty) Image per
// image file: TransferRequest::validate() checks counts, not pixels, and the
// files are decoded only when the run starts (apps/neural_style.cpp).
TransferRequest request_without_images(const Options& options);

enum class ParseOutcome { run, exit_success };

// Parses argv. Prints --help / --version itself (returns exit_success).
// Throws nst::UsageError with a one-line message for anything invalid.
ParseOutcome parse(int argc, const char* const* argv, Options& options);


}  // namespace nst::cli
