// A style transfer's request: the images and every option of the run
// (engine/run/run_options.h), with the checks a front end runs before any work.
// run_transfer (engine/run/transfer.h) takes it; the memory plan
// (engine/run/memory_plan.h) reads it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "engine/io/image.h"
#include "engine/run/run_options.h"

namespace nst {

// The defaults that depend on other options (the values of the others are in
// engine/run/run_options.h); docs/DEFAULTS.md explains them.
struct TransferDefaults {
    static constexpr double style_weight = LossTermDefaults::style_weight;  // for un-normalised (Caffe) weights
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

    // The options of engine/run/run_options.h, with their defaults: size,
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

}  // namespace nst
