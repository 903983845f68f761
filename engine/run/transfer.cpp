// run_transfer (engine/run/transfer.h): validation, colour control, the scales, the
// optimiser and the per-iteration loss terms.
#include "engine/run/transfer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <memory>
#include <random>
#include <sstream>

#include "engine/backends/backend.h"
#include "engine/io/color.h"
#include "engine/base/error.h"
#include "engine/run/memory_plan.h"
#include "engine/run/run_steps.h"
#include "engine/io/vgg19_layers.h"

namespace nst {

namespace {

using Clock = std::chrono::steady_clock;

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
    TransferInputs inputs = request_inputs(r);
    if (r.preserve_colors == PreserveColors::luminance) {
        const std::vector<float> content_y = luminance(r.content);
        inputs.content = grey_image(content_y, r.content.width, r.content.height);
        for (Image& style : inputs.styles)
            style = grey_image(match_mean_std(luminance(style), content_y), style.width, style.height);
    } else if (r.preserve_colors == PreserveColors::histogram) {
        for (Image& style : inputs.styles) style = match_color_statistics(style, r.content, r.color_transfer);
    }
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

}  // namespace

double default_style_weight(const TransferRequest& request, const VggWeights& weights) {
    if (request.style_weight) return *request.style_weight;
    if (!weights.extra_attributes.count("normalized")) return TransferDefaults::style_weight;
    const double side = request.size / 256.0;
    return TransferDefaults::normalized_style_weight_256 * side * side;
}

namespace {

// One run_transfer: the backend, the objective's configuration and the inputs,
// set up once; then each scale in turn.
class TransferRun {
public:
    TransferRun(const VggWeights& weights, const TransferRequest& r, const TransferCallbacks& callbacks)
        : weights_(weights), r_(r), callbacks_(callbacks), inputs_(transfer_inputs(r)) {
        const bool tf32 = r.precision != Precision::fp32;
        backend_ = make_backend(parse_device(r.device), r.threads, tf32);
        if (r.precision == Precision::tf32 && backend_->name() == "cpu")
            throw UsageError("--precision tf32 needs the CUDA backend (the CPU computes in fp32)");
        // --tile auto becomes a core size (or untiled) for this backend's memory.
        TransferRequest resolved = r;
        if (r.tile == TransferRequest::tile_auto) resolved.tile = auto_tile(*backend_, weights, r);
        check_memory_budget(*backend_, weights, resolved);
        result_.backend = backend_->name();
        result_.style_weight = default_style_weight(r, weights);
        config_ = objective_config(resolved, result_.style_weight);
    }

    TransferResult run() {
        const std::vector<int> sizes = r_.sizes(), iterations = r_.iterations_per_scale();
        const int scale_count = int(sizes.size());
        Image image;       // the current image, on the host between scales
        int ran_side = 0;  // longest side of the last scale that ran
        for (int k = 0; k < scale_count && !result_.stopped_early && !cancelled(); ++k) {
            const int side = sizes[std::size_t(k)];
            image = run_scale(k, scale_count, side, iterations[std::size_t(k)], image);
            ran_side = side;
            if (result_.optimization.reason == StopReason::failed) break;
        }
        if (ran_side > 0) result_.image = finished(image, ran_side);
        result_.peak_bytes = backend_->peak_bytes();
        result_.seconds = elapsed();
        return result_;
    }

private:
    double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
    bool cancelled() const { return callbacks_.cancel && callbacks_.cancel->load(); }

    // The image as the caller sees it: with the content's chroma in luminance and post modes,
    // and clamped to [0, 1]. The optimiser leaves pixels unclamped (DESIGN.md, "The
    // objective") and the chroma recombination can leave the range too; every front end
    // promises [0, 1], and 8-bit output, which clamps anyway, is unchanged by it.
    Image finished(Image current, int side) const {
        if (r_.preserve_colors == PreserveColors::luminance || r_.preserve_colors == PreserveColors::post)
            current = combine_luminance_chroma(current, resize_longest_side(r_.content, side));
        for (float& v : current.pixels) v = std::clamp(v, 0.0f, 1.0f);
        return current;
    }

    // Scale k: its objective, its starting image (the request's, or the previous
    // scale's result upsampled), the optimiser; returns the image reached.
    Image run_scale(int k, int scale_count, int side, int iterations, const Image& previous) {
        std::unique_ptr<StyleTransferObjective> objective =
            make_objective_at(*backend_, weights_, config_, inputs_, side);
        const int width = objective->width(), height = objective->height();
        Image image;
        if (k == 0) {
            const int style_side = std::max(16, int(std::lround(r_.style_scale * side)));
            image = initial_image(r_, resize_longest_side(inputs_.content, side),
                                  resize_longest_side(inputs_.styles.front(), style_side));
        } else {
            image = resize_image(previous, width, height);  // coarse to fine: upsample the result
        }
        Buffer x = image_buffer(*backend_, image.pixels.size());
        backend_->upload(x.data(), image.pixels.data(), image.pixels.size());
        if (callbacks_.on_scale)
            callbacks_.on_scale({k, scale_count, width, height, iterations, backend_->name(),
                                 result_.style_weight, inputs_.styles.size()});
        const auto download = [&] {
            Image current;
            current.width = width;
            current.height = height;
            current.pixels.resize(x.size());
            backend_->download(current.pixels.data(), x.data(), x.size());
            return current;
        };
        TermsByEvaluation recorder(*objective);
        const auto on_iteration = [&](const IterationReport& report) {
            if (callbacks_.on_iteration) {
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
                progress.peak_bytes = backend_->peak_bytes();
                progress.current_image = [&] { return finished(download(), side); };
                if (!callbacks_.on_iteration(progress)) result_.stopped_early = true;
            }
            if (cancelled()) result_.stopped_early = true;
            return !result_.stopped_early;
        };
        result_.optimization = optimize(*backend_, recorder, x.data(), iterations, r_, on_iteration);
        if (!backend_->all_finite(x.size(), x.data()))
            throw RuntimeFailure("the optimisation produced a non-finite image; nothing was written");
        return download();
    }

    const VggWeights& weights_;
    const TransferRequest& r_;
    const TransferCallbacks& callbacks_;
    const Clock::time_point start_ = Clock::now();
    const TransferInputs inputs_;
    std::unique_ptr<Backend> backend_;
    ObjectiveConfig config_;
    TransferResult result_;
};

}  // namespace

TransferResult run_transfer(const VggWeights& weights, const TransferRequest& r,
                            const TransferCallbacks& callbacks) {
    r.validate();
    r.validate_images();
    return TransferRun(weights, r, callbacks).run();
}

}  // namespace nst
