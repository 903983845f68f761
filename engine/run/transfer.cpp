// run_transfer (engine/run/transfer.h): validation, colour control, the scales, the
// optimiser and the per-iteration loss terms.
#include "engine/run/transfer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <memory>
#include <sstream>

#include "engine/backends/backend.h"
#include "engine/base/error.h"
#include "engine/run/memory_plan.h"
#include "engine/run/run_steps.h"
#include "engine/io/vgg19_layers.h"
#include "engine/objective/style_term.h"

namespace nst {

double default_style_weight(const TransferRequest& request, const VggWeights& weights) {
    if (request.style_weight) return *request.style_weight;
    if (!weights.extra_attributes.count("normalized")) return TransferDefaults::style_weight;
    const double side = request.size / 256.0;
    return TransferDefaults::normalized_style_weight_256 * side * side;
}

namespace {

using Clock = std::chrono::steady_clock;

// One run_transfer: the backend, the objective's configuration and the inputs,
// set up once; then each scale in turn.
class TransferRun {
public:
    // On `backend`, or (null) on one of its own for the request's device.
    TransferRun(Backend* backend, const VggWeights& weights, const TransferRequest& r,
                const TransferCallbacks& callbacks, StyleTargetCache* style_targets)
        : weights_(weights), r_(r), callbacks_(callbacks), inputs_(transfer_inputs(r)), style_targets_(style_targets) {
        if (!backend) {
            owned_backend_ = make_backend(parse_device(r.device), r.threads, r.precision != Precision::fp32);
            backend = owned_backend_.get();
        }
        backend_ = backend;
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

    Image finished(Image current, int side) const {
        const Image content = keeps_content_chroma(r_) ? resize_longest_side(r_.content, side) : Image{};
        return finished_image(r_, std::move(current), content);
    }

    // Scale k: its objective, its starting image (the request's, or the previous
    // scale's result upsampled), the optimiser; returns the image reached.
    Image run_scale(int k, int scale_count, int side, int iterations, const Image& previous) {
        std::unique_ptr<StyleTransferObjective> objective = objective_at(side);
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

    // make_objective_at, with the style targets from the cache when it has them.
    std::unique_ptr<StyleTransferObjective> objective_at(int side) {
        if (!style_targets_) return make_objective_at(*backend_, weights_, config_, inputs_, side);
        const ObjectiveInputs at = objective_inputs_at(inputs_, side);
        auto objective = std::make_unique<StyleTransferObjective>(*backend_, weights_, config_, at.content.width,
                                                                  at.content.height);
        StyleTerm* style = nullptr;
        for (const auto& term : objective->loss_terms())
            if (auto* found = dynamic_cast<StyleTerm*>(term.get())) style = found;
        if (!style || style->layers().empty()) {
            objective->set_inputs(at);
            return objective;
        }
        const std::string key = style->targets_key(at);
        const StyleTargets* cached = style_targets_->find(key);
        if (cached) {
            style->import_targets(*cached, at);
            style_targets_->count_reuse();
        }
        objective->set_inputs(at);  // the style term's targets, when imported, are not made again
        if (!cached) style_targets_->store(key, style->export_targets());
        return objective;
    }

    const VggWeights& weights_;
    const TransferRequest& r_;
    const TransferCallbacks& callbacks_;
    const Clock::time_point start_ = Clock::now();
    const TransferInputs inputs_;
    StyleTargetCache* style_targets_;
    std::unique_ptr<Backend> owned_backend_;
    Backend* backend_ = nullptr;
    ObjectiveConfig config_;
    TransferResult result_;
};

}  // namespace

namespace {

void check_still_request(const TransferRequest& r) {
    r.validate();
    static const TransferRequest defaults;
    for (const std::string& flag : video_only_options())
        if (run_option_text(r, flag) != run_option_text(defaults, flag))
            throw UsageError("--" + flag + " applies to a video --content (a video file or a frame pattern), not a still image");
    r.validate_images();
}

}  // namespace

TransferResult run_transfer(const VggWeights& weights, const TransferRequest& r,
                            const TransferCallbacks& callbacks) {
    check_still_request(r);
    return TransferRun(nullptr, weights, r, callbacks, nullptr).run();
}

TransferResult run_transfer(Backend& backend, const VggWeights& weights, const TransferRequest& r,
                            const TransferCallbacks& callbacks, StyleTargetCache* style_targets) {
    check_still_request(r);
    return TransferRun(&backend, weights, r, callbacks, style_targets).run();
}

}  // namespace nst
