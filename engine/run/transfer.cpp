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

    Image finished(Image current, int side) const {
        const Image content = keeps_content_chroma(r_) ? resize_longest_side(r_.content, side) : Image{};
        return finished_image(r_, std::move(current), content);
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
    static const TransferRequest defaults;
    for (const std::string& flag : video_only_options())
        if (run_option_text(r, flag) != run_option_text(defaults, flag))
            throw UsageError("--" + flag + " applies to a video --content (a video file or a frame pattern), not a still image");
    r.validate_images();
    return TransferRun(weights, r, callbacks).run();
}

}  // namespace nst
