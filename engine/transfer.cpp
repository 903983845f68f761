// run_transfer (engine/transfer.h): validation, colour control, the scales, the
// optimiser and the per-iteration loss terms.
#include "engine/transfer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <memory>
#include <random>
#include <sstream>

#include "engine/backend.h"
#include "engine/color.h"
#include "engine/base/error.h"
#include "engine/memory_plan.h"
#include "engine/vgg19_layers.h"

namespace nst {

namespace {

using Clock = std::chrono::steady_clock;

// The size resize_longest_side(image, longest) gives, without resampling.
std::pair<int, int> longest_side_size(const Image& image, int longest) {
    const int current = std::max(image.width, image.height);
    const auto side = [&](int length) {
        if (length == current) return longest;
        return std::max(1, static_cast<int>(std::lround(length * (static_cast<double>(longest) / current))));
    };
    return {side(image.width), side(image.height)};
}

std::vector<LayerWeight> equal_weights(const std::vector<std::string>& layers) {
    std::vector<LayerWeight> out;
    for (const auto& name : layers) out.push_back({name, 1.0 / double(layers.size())});
    return out;
}

// Keeps the loss terms of recent evaluations by evaluation number, so that a
// report (whose iterate may come from an earlier evaluation, in a line search)
// gets the terms of its own iterate.
class TermsByEvaluation final : public DifferentiableFunction {
public:
    explicit TermsByEvaluation(StyleTransferObjective& objective) : objective_(objective) {}
    std::size_t size() const override { return objective_.size(); }
    double evaluate(const float* x, float* grad) override {
        const double loss = objective_.evaluate(x, grad);
        record();
        return loss;
    }
    void queue_evaluation(Backend& backend, const float* x, float* grad) override {
        objective_.queue_evaluation(backend, x, grad);
    }
    double queued_result() override {
        const double result = objective_.queued_result();
        record();
        return result;
    }
    // The terms of evaluation `number` (1-based), if still kept.
    const LossTerms* terms_of(int number) const {
        const int index = number - first_;
        return index >= 0 && index < int(recent_.size()) ? &recent_[std::size_t(index)] : nullptr;
    }

private:
    void record() {
        recent_.push_back(objective_.last_terms());
        if (recent_.size() > kKept) {
            recent_.pop_front();
            ++first_;
        }
    }
    // A strong-Wolfe search evaluates at most max_wolfe_evaluations (25) points.
    static constexpr std::size_t kKept = 64;
    StyleTransferObjective& objective_;
    std::deque<LossTerms> recent_;
    int first_ = 1;  // evaluation number of recent_.front()
};

// Everything the objective of each scale is built from, with the colour
// control applied (README, "Controls"):
//   luminance: content → (Y, Y, Y); each style → (Y', Y', Y') with Y' its luminance
//              matched to the content's mean and standard deviation;
//   histogram: each style's colours mapped to the content's mean and covariance.
TransferInputs transfer_inputs(const TransferRequest& r) {
    TransferInputs inputs;
    inputs.style_scale = r.style_scale;
    inputs.blend_weights = r.style_blend_weights;
    inputs.styles = r.styles;
    if (r.preserve_colors == PreserveColors::luminance) {
        const std::vector<float> content_y = luminance(r.content);
        inputs.content = grey_image(content_y, r.content.width, r.content.height);
        for (Image& style : inputs.styles)
            style = grey_image(match_mean_std(luminance(style), content_y), style.width, style.height);
    } else {
        inputs.content = r.content;
        if (r.preserve_colors == PreserveColors::histogram) {
            for (Image& style : inputs.styles) style = match_color_statistics(style, r.content, r.color_transfer);
        }
    }
    inputs.style_masks = r.style_masks;
    inputs.style_image_masks = r.style_image_masks;
    inputs.content_mask = r.content_mask;
    return inputs;
}

// The starting image of the first scale, at the size of `content` (that scale's
// content, grey in luminance mode).
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

ObjectiveConfig objective_config(const TransferRequest& r, double style_weight) {
    ObjectiveConfig config;
    config.content_layers = equal_weights(r.content_layers);
    for (auto& l : config.content_layers) l.weight = 1.0;  // c_l = 1 (DESIGN.md)
    config.style_layers = equal_weights(r.style_layers);   // w_l = 1/|S|
    config.content_weight = r.content_weight;
    config.style_weight = style_weight;
    config.tv_weight = r.tv_weight;
    config.pool = r.pool;
    config.erode_style_masks = r.mask_erosion;
    config.tile.core = r.tile;
    return config;
}

}  // namespace

std::vector<std::string> TransferRequest::split_layer_list(const std::string& text) {
    std::vector<std::string> parts;
    std::stringstream stream(text);
    std::string part;
    while (std::getline(stream, part, ','))
        if (!part.empty()) parts.push_back(part);
    return parts;
}

std::vector<int> TransferRequest::sizes() const {
    return scale_sizes.empty() ? std::vector<int>{size} : scale_sizes;
}

std::vector<int> TransferRequest::iterations_per_scale() const {
    return scale_iterations.empty() ? std::vector<int>(sizes().size(), iterations)
                                    : scale_iterations;
}

void TransferRequest::validate_images() const {
    if (content.width <= 0 || content.height <= 0) throw UsageError("no content image given");
    if (styles.empty()) throw UsageError("no style image given");
    for (const Image* image : {&content, &init_image, &content_mask})
        if (image->pixels.size() != 3 * image->plane())
            throw UsageError("an image's pixel count does not match its width and height");
    for (const auto* list : {&styles, &style_masks, &style_image_masks})
        for (const Image& image : *list)
            if (image.pixels.size() != 3 * image.plane())
                throw UsageError("an image's pixel count does not match its width and height");
    for (const Image& style : styles)
        if (style.width <= 0 || style.height <= 0) throw UsageError("a style image is empty");
    for (const Image& mask : style_masks)
        if (mask.width <= 0 || mask.height <= 0) throw UsageError("a style mask is empty");
    if (init == InitKind::image && init_image.width <= 0)
        throw UsageError("--init image needs an initial image");

    // Each pool halves a side (rounding down) and a layer needs one pixel, so the
    // deepest layer in use, after p pools, needs sides of at least 2^p at every
    // scale: checked here, where the image can be named, rather than in the network.
    int deepest = -1;
    for (const auto* layers : {&content_layers, &style_layers})
        for (const std::string& layer : *layers) deepest = std::max(deepest, vgg19_layer_index(layer));
    int pools = 0;
    for (int l = 0; l < deepest; ++l) pools += vgg19_pool_after(l) ? 1 : 0;
    const int needed = 1 << pools;
    const auto check = [&](const Image& image, const std::string& what, int longest, const std::string& how) {
        const auto [w, h] = longest_side_size(image, longest);
        if (w >= needed && h >= needed) return;
        throw InputError(what + " (" + std::to_string(image.width) + "x" + std::to_string(image.height) +
                         ") becomes " + std::to_string(w) + "x" + std::to_string(h) + " at " + how +
                         ", too small for layer " + vgg19_layer_names()[std::size_t(deepest)] +
                         ", which needs at least " + std::to_string(needed) + " pixels on each side");
    };
    for (const int side : sizes()) {
        check(content, content_name.empty() ? "the content image" : "content image '" + content_name + "'", side,
              "size " + std::to_string(side));
        const int style_side = std::max(16, int(std::lround(style_scale * side)));
        for (std::size_t k = 0; k < styles.size(); ++k)
            check(styles[k],
                  k < style_names.size() && !style_names[k].empty() ? "style image '" + style_names[k] + "'"
                                                                    : "style image " + std::to_string(k + 1),
                  style_side, "a longest side of " + std::to_string(style_side));
    }
}

void TransferRequest::validate() const {
    // Each option on its own (ranges, choices: engine/run_options.h), then how
    // they go together.
    check_run_options(*this);
    if (!init.valid())
        throw UsageError("--init: '" + init.text() + "' is not one of noise, content, style, image");

    if (!style_blend_weights.empty() && style_blend_weights.size() != styles.size())
        throw UsageError("--style-blend-weights has " + std::to_string(style_blend_weights.size()) +
                         " values for " + std::to_string(styles.size()) + " --style images");
    double blend_total = 0;
    for (double b : style_blend_weights) blend_total += b;  // each checked: at most 1e24, finite
    if (!style_blend_weights.empty() && !(blend_total > 0))
        throw UsageError("--style-blend-weights must not all be zero");
    if (content_layers.empty() && style_layers.empty())
        throw UsageError("--content-layers and --style-layers are both empty");
    for (const auto* layers : {&content_layers, &style_layers})
        for (const std::string& layer : *layers) vgg19_layer_index(layer);  // UsageError if unknown
    if (styles.empty()) throw UsageError("no style image given");
    if (!style_masks.empty() && style_masks.size() != styles.size())
        throw UsageError("--style-masks has " + std::to_string(style_masks.size()) + " masks for " +
                         std::to_string(styles.size()) + " --style images");
    if (!style_masks.empty() && !style_blend_weights.empty())
        throw UsageError("--style-blend-weights does not apply with --style-masks (each style has its region)");
    if (!style_image_masks.empty() && style_masks.empty())
        throw UsageError("--style-image-masks needs --style-masks");
    if (mask_erosion && style_masks.empty()) throw UsageError("--mask-erosion needs --style-masks");
    if (style_image_masks.size() > styles.size())
        throw UsageError("--style-image-masks has " + std::to_string(style_image_masks.size()) +
                         " masks for " + std::to_string(styles.size()) + " --style images");

    const std::vector<int> scale_list = sizes();
    for (std::size_t k = 0; k < scale_list.size(); ++k) {
        if (k > 0 && scale_list[k] <= scale_list[k - 1])
            throw UsageError("--scale-sizes must increase, coarsest first");
    }
    if (scale_list.back() != size)
        throw UsageError("--scale-sizes ends at " + std::to_string(scale_list.back()) +
                         " but --size is " + std::to_string(size));
    if (!scale_iterations.empty()) {
        if (scale_iterations.size() != scale_list.size())
            throw UsageError("--scale-iterations has " + std::to_string(scale_iterations.size()) +
                             " values for " + std::to_string(scale_list.size()) + " scales");
    }
}

void check_memory_budget(const Backend& backend, const VggWeights& weights,
                         const TransferRequest& request) {
    const std::size_t available = backend.available_bytes();
    const bool capped = request.max_memory > 0 && request.max_memory < available;
    const std::size_t budget = memory_budget(backend, request);
    const MemoryPlan plan = plan_memory(backend, weights, request);
    const auto fits = [&](const TransferRequest& candidate) {
        return plan_memory(backend, weights, candidate).fits(backend, budget);
    };
    if (plan.largest_tensor_elements > backend.max_tensor_elements()) {
        // Tiles are the one fix that keeps the output as asked: the largest core
        // whose tensors (and memory) fit, if any.
        TransferRequest tiled = request;
        tiled.tile = auto_tile(backend, weights, request);
        std::string largest_layer;
        for (const ScalePlan& scale : plan.scales)
            if (scale.largest_tensor_elements == plan.largest_tensor_elements) largest_layer = scale.largest_tensor_layer;
        throw RuntimeFailure(
            "this run's largest tensor (" + largest_layer + ": " + std::to_string(plan.largest_tensor_elements) +
            " elements) is more than " + backend.name() + " can index (" +
            std::to_string(backend.max_tensor_elements()) + "); " +
            (fits(tiled) ? "try --tile " + std::to_string(tiled.tile) + " (or --tile auto)"
                         : std::string("try a smaller --size")) +
            " (the table: neural-style --plan)");
    }
    const std::size_t needed = plan.peak_bytes;
    if (needed <= budget) return;

    const auto mib = [](std::size_t bytes) {
        char text[32];
        std::snprintf(text, sizeof text, "%.1f MiB", double(bytes) / (1 << 20));
        return std::string(text);
    };
    std::string fix;
    TransferRequest smaller = request;
    if (request.tile == 0) {
        // Tiles keep the output and the optimiser as asked, at the cost of the halos'
        // extra computation: the largest core that fits, if any.
        smaller.tile = auto_tile(backend, weights, request);
        if (smaller.tile > 0 && fits(smaller))
            fix = "--tile " + std::to_string(smaller.tile) + " (or --tile auto)";
        smaller.tile = request.tile;
    }
    if (request.optimizer == Optimizer::lbfgs && fix.empty()) {
        // The history is 2m image-sized vectors: first the same m stored in bf16
        // (half the bytes), then the largest m that fits, if any.
        if (request.lbfgs_history_precision == HistoryPrecision::fp32) {
            smaller.lbfgs_history_precision = HistoryPrecision::bf16;
            if (fits(smaller)) fix = "--lbfgs-history-precision bf16";
            smaller.lbfgs_history_precision = request.lbfgs_history_precision;
        }
        for (int m = request.lbfgs_history - 1; m >= 1 && fix.empty(); m = m * 9 / 10) {
            smaller.lbfgs_history = m;
            if (fits(smaller)) fix = "--lbfgs-history " + std::to_string(m);
        }
    }
    // Memory grows with the pixel count: shrink the output (and every scale) in
    // 5 % steps of the side until it fits, or the network no longer admits it.
    std::size_t smallest_bytes = 0;
    int smallest_size = 0;
    for (double f = 0.95; f > 0.0 && fix.empty(); f -= 0.05) {
        smaller = request;
        smaller.size = std::max(16, int(request.size * f));
        smaller.scale_sizes.clear();
        if (request.sizes().size() > 1)
            for (int side : request.sizes()) smaller.scale_sizes.push_back(std::max(16, int(side * f)));
        try {
            const std::size_t bytes = plan_memory(backend, weights, smaller).peak_bytes;
            if (bytes <= budget) fix = "--size " + std::to_string(smaller.size);
            smaller.lbfgs_history = 1;
            smallest_bytes = plan_memory(backend, weights, smaller).peak_bytes;
            smallest_size = smaller.size;
        } catch (const Error&) {
            break;  // too small for the deepest layer, or scales that collapsed onto each other
        }
        if (smaller.size == 16) break;
    }
    if (fix.empty() && smallest_size == 0) {
        fix = "more memory (the output cannot be smaller for these layers)";
    } else if (fix.empty()) {
        fix = "more memory: even --size " + std::to_string(smallest_size) +
              " with --lbfgs-history 1 needs " + mib(smallest_bytes) + " (the weights and their cache)";
    } else {
        fix = "try " + fix;
    }
    throw OutOfMemory("out of memory before starting: this run needs " + mib(needed) + " of " +
                      backend.name() + " memory but " + mib(budget) +
                      (capped ? " are allowed (--max-memory)" : " are free") + "; " + fix +
                      " (the table: neural-style --plan)");
}

double default_style_weight(const TransferRequest& request, const VggWeights& weights) {
    if (request.style_weight) return *request.style_weight;
    if (!weights.extra_attributes.count("normalized")) return TransferDefaults::style_weight;
    const double side = request.size / 256.0;
    return TransferDefaults::normalized_style_weight_256 * side * side;
}

TransferResult run_transfer(const VggWeights& weights, const TransferRequest& r,
                            const TransferCallbacks& callbacks) {
    r.validate();
    r.validate_images();
    const auto start = Clock::now();
    const auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };

    const TransferInputs inputs = transfer_inputs(r);
    const bool keep_content_chroma =
        r.preserve_colors == PreserveColors::luminance || r.preserve_colors == PreserveColors::post;
    // The image as the caller sees it: with the content's chroma in luminance and post modes.
    const auto finished = [&](Image current, int side) {
        if (!keep_content_chroma) return current;
        return combine_luminance_chroma(current, resize_longest_side(r.content, side));
    };

    const bool tf32 = r.precision != Precision::fp32;
    std::unique_ptr<Backend> backend = make_backend(parse_device(r.device), r.threads, tf32);
    if (r.precision == Precision::tf32 && backend->name() == "cpu")
        throw UsageError("--precision tf32 needs the CUDA backend (the CPU computes in fp32)");

    // --tile auto becomes a core size (or untiled) for this backend's memory.
    TransferRequest resolved = r;
    if (r.tile == TransferRequest::tile_auto) resolved.tile = auto_tile(*backend, weights, r);
    check_memory_budget(*backend, weights, resolved);

    TransferResult result;
    result.backend = backend->name();
    result.style_weight = default_style_weight(r, weights);
    const ObjectiveConfig config = objective_config(resolved, result.style_weight);

    const std::vector<int> sizes = r.sizes(), iterations_per_scale = r.iterations_per_scale();
    const int scale_count = int(sizes.size());
    const auto cancelled = [&] { return callbacks.cancel && callbacks.cancel->load(); };
    Image image;       // the current image, on the host between scales
    int ran_side = 0;  // longest side of the last scale that ran
    for (int k = 0; k < scale_count && !result.stopped_early && !cancelled(); ++k) {
        const int side = sizes[std::size_t(k)], iterations = iterations_per_scale[std::size_t(k)];
        std::unique_ptr<StyleTransferObjective> objective =
            make_objective_at(*backend, weights, config, inputs, side);
        const int width = objective->width(), height = objective->height();
        if (k == 0) {
            const Image scale_content = resize_longest_side(inputs.content, side);
            const int style_side = std::max(16, int(std::lround(r.style_scale * side)));
            image = initial_image(r, scale_content,
                                  resize_longest_side(inputs.styles.front(), style_side));
        } else {
            image = resize_image(image, width, height);  // coarse to fine: upsample the result
        }
        Buffer x(*backend, image.pixels.size());
        backend->upload(x.data(), image.pixels.data(), image.pixels.size());
        if (callbacks.on_scale)
            callbacks.on_scale({k, scale_count, width, height, iterations, backend->name(),
                                result.style_weight, inputs.styles.size()});

        const auto download = [&] {
            Image current;
            current.width = width;
            current.height = height;
            current.pixels.resize(x.size());
            backend->download(current.pixels.data(), x.data(), x.size());
            return current;
        };
        TermsByEvaluation recorder(*objective);
        const auto on_iteration = [&](const IterationReport& report) {
            if (callbacks.on_iteration) {
                TransferProgress progress;
                progress.scale = k;
                progress.scales = scale_count;
                progress.size = side;
                progress.iteration = report.iteration;
                progress.iterations = iterations;
                progress.evaluations = report.evaluations;
                if (const LossTerms* terms = recorder.terms_of(report.evaluation)) progress.terms = *terms;
                progress.terms.loss = report.loss;
                progress.event = report.event;
                progress.seconds = elapsed();
                progress.peak_bytes = backend->peak_bytes();
                progress.current_image = [&] { return finished(download(), side); };
                if (!callbacks.on_iteration(progress)) result.stopped_early = true;
            }
            if (cancelled()) result.stopped_early = true;
            return !result.stopped_early;
        };

        if (r.optimizer == Optimizer::adam) {
            AdamOptions adam;
            adam.learning_rate = r.learning_rate.value_or(TransferDefaults::adam_learning_rate);
            result.optimization = minimize_adam(*backend, recorder, x.data(), iterations, adam, on_iteration);
        } else {
            LbfgsOptions lbfgs;
            lbfgs.history = r.lbfgs_history;
            lbfgs.history_precision = r.lbfgs_history_precision;
            lbfgs.line_search = r.line_search;
            lbfgs.learning_rate = r.learning_rate.value_or(TransferDefaults::lbfgs_learning_rate);
            result.optimization =
                minimize_lbfgs(*backend, recorder, x.data(), iterations, lbfgs, on_iteration);
        }
        if (!backend->all_finite(x.size(), x.data()))
            throw RuntimeFailure("the optimisation produced a non-finite image; nothing was written");
        image = download();
        ran_side = side;
        if (result.optimization.reason == StopReason::failed) break;
    }
    if (ran_side > 0) result.image = finished(image, ran_side);
    result.peak_bytes = backend->peak_bytes();
    result.seconds = elapsed();
    return result;
}

}  // namespace nst
