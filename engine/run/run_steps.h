// The steps of one scale of a run that run_transfer (engine/run/transfer.cpp)
// takes and the memory plan (engine/run/memory_plan.cpp) takes again on a
// counting backend: one sequence, so that the plan counts the run's own
// allocations. Per scale: make_objective_at (engine/objective/objective.h) from
// scale_inputs(), the image buffer, then optimize().
#pragma once

#include <cstddef>
#include <deque>

#include "engine/backends/backend.h"
#include "engine/io/image.h"
#include "engine/objective/objective.h"
#include "engine/optim/optimizer.h"
#include "engine/run/request.h"

namespace nst {

// The objective's layers, weights (style_weight: β as resolved for the run),
// pooling, mask erosion and tile core of `request` (its tile already resolved
// from tile_auto).
ObjectiveConfig objective_config(const TransferRequest& request, double style_weight);

// The request's images as given (the colour control, which changes pixel values
// only, is applied on top by run_transfer).
TransferInputs request_inputs(const TransferRequest& request);

// The colour control (README, "Running `neural-style`", --preserve-colors) on
// what the objective is built from:
//   luminance: content → (Y, Y, Y); each style → (Y', Y', Y') with Y' its luminance
//              matched to the content's mean and standard deviation;
//   histogram: each style's colours mapped to the content's mean and covariance.
// transfer_inputs: the request's inputs so controlled; controlled_content: one
// content image (a video's frame) as the objective sees it (grey in luminance mode).
TransferInputs transfer_inputs(const TransferRequest& request);
Image controlled_content(const TransferRequest& request, const Image& content);

// The starting image of the first scale, at the size of `content` (that scale's
// content, grey in luminance mode): the request's --init.
Image initial_image(const TransferRequest& request, const Image& content, const Image& first_style);

// The image as the caller sees it: with the content's chroma in luminance and post
// modes (keeps_content_chroma; `content` is then the colour content at the image's
// size, else unused), and clamped to [0, 1]. The optimiser leaves pixels unclamped
// (DESIGN.md, "The objective") and the chroma recombination can leave the range too;
// every front end promises [0, 1], and 8-bit output, which clamps anyway, is
// unchanged by it.
bool keeps_content_chroma(const TransferRequest& request);
Image finished_image(const TransferRequest& request, Image current, const Image& content);

// The image x of a scale: 3·H·W floats of backend memory, the optimiser's.
Buffer image_buffer(Backend& backend, std::size_t floats);

// The optimiser the request names (L-BFGS or Adam, with its settings), over
// `objective` from x.
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

OptimizationResult optimize(Backend& backend, DifferentiableFunction& objective, float* x, int iterations,
                            const TransferRequest& request, const IterationCallback& on_iteration);

}  // namespace nst
