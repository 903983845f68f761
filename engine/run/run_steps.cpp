// The steps that run_transfer and the memory plan share (engine/run/run_steps.h).
#include "engine/run/run_steps.h"

#include <algorithm>
#include <random>

#include "engine/base/memory_use.h"
#include "engine/io/color.h"

namespace nst {

namespace {

std::vector<LayerWeight> equal_weights(const std::vector<std::string>& layers) {
    std::vector<LayerWeight> out;
    for (const auto& name : layers) out.push_back({name, 1.0 / double(layers.size())});
    return out;
}

// A term's weight option: as given, or (optional: style_weight) as resolved.
double option_weight(double value, double) { return value; }
double option_weight(const std::optional<double>&, double resolved) { return resolved; }

}  // namespace

ObjectiveConfig objective_config(const TransferRequest& r, double style_weight) {
    ObjectiveConfig config;
    config.content_layers = equal_weights(r.content_layers);
    for (auto& l : config.content_layers) l.weight = 1.0;  // c_l = 1 (DESIGN.md)
    config.style_layers = equal_weights(r.style_layers);   // w_l = 1/|S|
    // Each term's weight is the run option of its name; β's default depends on
    // the weights file, so it comes resolved (default_style_weight).
#define NST_TERM_WEIGHT_OPTION(name, weight, default_weight, help) \
    config.weight = option_weight(r.weight, style_weight);
    NST_LOSS_TERMS(NST_TERM_WEIGHT_OPTION)
#undef NST_TERM_WEIGHT_OPTION
    config.pool = r.pool;
    config.erode_style_masks = r.mask_erosion;
    config.tile.core = r.tile;
    return config;
}

TransferInputs request_inputs(const TransferRequest& r) {
    TransferInputs inputs;
    inputs.content = r.content;
    inputs.styles = r.styles;
    inputs.style_scale = r.style_scale;
    inputs.blend_weights = r.style_blend_weights;
    inputs.style_masks = r.style_masks;
    inputs.style_image_masks = r.style_image_masks;
    inputs.content_mask = r.content_mask;
    return inputs;
}

Image controlled_content(const TransferRequest& r, const Image& content) {
    if (r.preserve_colors != PreserveColors::luminance) return content;
    return grey_image(luminance(content), content.width, content.height);
}

TransferInputs transfer_inputs(const TransferRequest& r) {
    TransferInputs inputs = request_inputs(r);
    if (r.preserve_colors == PreserveColors::luminance) {
        const std::vector<float> content_y = luminance(r.content);
        inputs.content = controlled_content(r, r.content);
        for (Image& style : inputs.styles)
            style = grey_image(match_mean_std(luminance(style), content_y), style.width, style.height);
    } else if (r.preserve_colors == PreserveColors::histogram) {
        for (Image& style : inputs.styles) style = match_color_statistics(style, r.content, r.color_transfer);
    }
    return inputs;
}

Image initial_image(const TransferRequest& r, const Image& content, const Image& first_style) {
    if (r.init == InitKind::content) return content;
    if (r.init == InitKind::noise) {
        Image init;
        init.width = content.width;
        init.height = content.height;
        init.pixels.resize(content.pixels.size());
        std::mt19937_64 rng(r.seed);
        std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
        for (auto& v : init.pixels) v = uniform(rng);
        return init;
    }
    Image init = r.init == InitKind::style ? first_style : r.init_image;
    if (r.init == InitKind::image && r.preserve_colors == PreserveColors::luminance)
        init = grey_image(luminance(init), init.width, init.height);
    return resize_image(init, content.width, content.height);
}

bool keeps_content_chroma(const TransferRequest& r) {
    return r.preserve_colors == PreserveColors::luminance || r.preserve_colors == PreserveColors::post;
}

Image finished_image(const TransferRequest& r, Image current, const Image& content) {
    if (keeps_content_chroma(r)) current = combine_luminance_chroma(current, content);
    for (float& v : current.pixels) v = std::clamp(v, 0.0f, 1.0f);
    return current;
}

Buffer image_buffer(Backend& backend, std::size_t floats) {
    MemoryUseScope use(MemoryUse::optimiser);
    return Buffer(backend, floats);
}

OptimizationResult optimize(Backend& backend, DifferentiableFunction& objective, float* x, int iterations,
                            const TransferRequest& r, const IterationCallback& on_iteration) {
    if (r.optimizer == Optimizer::adam) {
        AdamOptions adam;
        adam.learning_rate = r.learning_rate.value_or(TransferDefaults::adam_learning_rate);
        return minimize_adam(backend, objective, x, iterations, adam, on_iteration);
    }
    LbfgsOptions lbfgs;
    lbfgs.history = r.lbfgs_history;
    lbfgs.history_precision = r.lbfgs_history_precision;
    lbfgs.line_search = r.line_search;
    lbfgs.learning_rate = r.learning_rate.value_or(TransferDefaults::lbfgs_learning_rate);
    return minimize_lbfgs(backend, objective, x, iterations, lbfgs, on_iteration);
}

}  // namespace nst
