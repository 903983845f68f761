// One style transfer, end to end: the API that the CLI (apps/neural_style.cpp),
// the Python module (python/) and programs that link libnst call.
//
//   TransferRequest request;            // every option of the CLI, same defaults
//   request.content = load_image("photo.jpg");
//   request.styles = {load_image("painting.jpg")};
//   const VggWeights weights = read_weights("vgg19.h5");
//   TransferResult result = run_transfer(weights, request);
//   save_image("out.png", result.image);
//
// run_transfer validates the request (UsageError with the CLI's messages), picks
// the backend, applies the colour control, runs each scale of a coarse-to-fine
// run (or the one scale) with L-BFGS or Adam, and returns the finished image.
// Progress goes to the callbacks; nothing is printed or written.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/image.h"
#include "engine/objective.h"
#include "engine/optimizer.h"
#include "engine/run_options.h"
#include "engine/weights.h"

namespace nst {

// The defaults that depend on other options (the values of the others are in
// engine/run_options.h); docs/DEFAULTS.md explains them.
struct TransferDefaults {
    static constexpr double style_weight = 1e3;  // for un-normalised (Caffe) weights
    // For weights made by `nst-weights normalize` (attribute `normalized`): β at a
    // 256 px output, scaled by the pixel count (L_c sums over positions, E_l does not).
    static constexpr double normalized_style_weight_256 = 1e7;
    static constexpr double lbfgs_learning_rate = 1.0;
    static constexpr double adam_learning_rate = 0.02;
};

// Every option of `neural-style`, with its defaults. Images are given decoded
// (load_image); the names follow the CLI's options.
struct TransferRequest {
    Image content;
    std::vector<Image> styles;                // one or more
    std::vector<Image> style_masks;           // empty, or the output region of each style
    std::vector<Image> style_image_masks;     // empty, or ≤ one per style (width 0: whole image)
    Image content_mask;                       // width 0: none

    // The options of engine/run_options.h, with their defaults: size,
    // style_scale, the loss weights and layers, iterations, optimizer and its
    // settings, init (with init_image), seed, pool, device, threads, precision,
    // colour control, max_memory, tile (tile_auto: the largest core whose plan
    // fits, auto_tile in memory_plan.h), style_blend_weights (empty: equal),
    // scale_sizes (coarse to fine, ending at `size`; empty: {size}),
    // scale_iterations (per scale; empty: `iterations` each), mask_erosion.
#define NST_REQUEST_FIELD(kind, type, field, option_flag, default_value, shown, check, help) \
    type field = default_value;
    NST_RUN_OPTIONS(NST_REQUEST_FIELD)
#undef NST_REQUEST_FIELD
    Choice<InitKind> init = InitKind::content;  // noise | content | style | image (init_image)
    Image init_image;                         // with init == image
    static constexpr int tile_auto = -1;
    // Optional names of the images (file names, in the CLI), only for messages:
    // empty names read "the content image" and "style image K".
    std::string content_name;
    std::vector<std::string> style_names;

    // "a,b,c" -> {"a", "b", "c"} (empty entries dropped); any comma-separated list.
    static std::vector<std::string> split_layer_list(const std::string& text);

    // The largest content, style, TV or blend weight accepted, and the largest
    // learning rate (docs/RELIABILITY.md). Weights: the gradient is fp32 (at most
    // 3.4e38) and the largest unweighted term measured with the shipped weights is
    // the content loss of a noise start, 5.7e10 at --size 512, so about 6e13 at
    // --size 16384 (it sums over positions); 1e24 · 6e13 = 6e37 stays finite,
    // and 1e24 is 2e13 times the largest default (β = 4.1e10 for normalised
    // weights at 16384). Learning rate: a step moves pixels whose whole range is 1
    // (an Adam step moves each by about lr), so 1e6 is already meaningless; above
    // it lr · g overflows fp32 for gradients as small as 3.4e32.
    static constexpr double max_weight = 1e24;
    static constexpr double max_learning_rate = 1e6;

    // Throws UsageError (the CLI's one-line messages) for any invalid option.
    // Looks at the number of images, not at their pixels, so a front end can
    // validate before decoding anything (one placeholder Image per file).
    void validate() const;
    // Throws UsageError when an image is missing or inconsistent, and InputError
    // naming the image when one is too small, at some scale, for the deepest layer
    // in use (run_transfer calls both).
    void validate_images() const;
    // The sizes and iterations of each scale, coarsest first (validated).
    std::vector<int> sizes() const;
    std::vector<int> iterations_per_scale() const;
};

// Reported once per iteration of each scale (iteration 0: the starting image).
struct TransferProgress {
    int scale = 0;          // 0-based
    int scales = 1;
    int size = 0;           // this scale's longest side
    int iteration = 0;      // within this scale
    int iterations = 0;     // of this scale
    int evaluations = 0;    // within this scale
    LossTerms terms;        // of the reported iterate: loss = L, content, style, tv
    std::string event;      // e.g. a rejected step
    double seconds = 0.0;   // since run_transfer started
    std::size_t peak_bytes = 0;
    // The current image as it would be returned (colour control applied);
    // downloads from the device, so call it only when needed (snapshots).
    std::function<Image()> current_image;
};

// Said once at the start of each scale.
struct ScaleStart {
    int scale = 0, scales = 1;
    int width = 0, height = 0, iterations = 0;
    std::string backend;  // "cpu", "cuda:0"
    double style_weight = 0.0;
    std::size_t style_count = 0;
};

struct TransferCallbacks {
    std::function<void(const ScaleStart&)> on_scale;
    // Return false to stop after this iteration (the image so far is returned).
    std::function<bool(const TransferProgress&)> on_iteration;
    // Checked between iterations; when set, the run stops as if on_iteration
    // had returned false.
    const std::atomic<bool>* cancel = nullptr;
};

struct TransferResult {
    Image image;                      // the finished image (colour control applied)
    OptimizationResult optimization;  // of the last scale that ran
    bool stopped_early = false;       // by a callback or the cancel flag
    std::string backend;
    double style_weight = 0.0;        // β used
    std::size_t peak_bytes = 0;
    double seconds = 0.0;
};

// Runs the transfer. Throws UsageError (bad request), InputError (masks or
// images the objective refuses), RuntimeFailure/DeviceError (out of memory, a
// device error, or a non-finite image: nothing is returned then). An
// optimisation that fails (StopReason::failed) still returns the best image it
// found, with optimization.reason saying so.
TransferResult run_transfer(const VggWeights& weights, const TransferRequest& request,
                            const TransferCallbacks& callbacks = {});

// Throws RuntimeFailure, before any work, when the memory plan of `request`
// (engine/memory_plan.h) exceeds what `backend` has free or request.max_memory:
// the message gives both numbers and the cheapest fix (a smaller L-BFGS history
// when that suffices, else the largest --size that fits); and when a tensor of
// the network would exceed the backend's limit (Backend::max_tensor_elements,
// cuDNN's int indexing), naming the tile size that fits. run_transfer calls it.
void check_memory_budget(const Backend& backend, const VggWeights& weights,
                         const TransferRequest& request);

// β for a request: as given, else the default for the kind of weights
// (docs/DEFAULTS.md): normalised weights need a far larger style weight.
double default_style_weight(const TransferRequest& request, const VggWeights& weights);

}  // namespace nst
