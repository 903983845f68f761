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
// control applied (README, "Running `neural-style`", --preserve-colors):
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
