// Optimisers over the backend's vector operations: L-BFGS (engine/optim/lbfgs.cpp)
// and Adam (engine/optim/adam.cpp). Both are written once; on the CUDA backend the
// iterate, the gradient and the L-BFGS history live in device memory.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "engine/backends/backend.h"

namespace nst {

// A differentiable function of a vector in backend memory.
class DifferentiableFunction {
public:
    virtual ~DifferentiableFunction() = default;
    virtual std::size_t size() const = 0;
    // Returns f(x) and writes ∇f(x) into grad (overwritten). x, grad: (size()).
    virtual double evaluate(const float* x, float* grad) = 0;

    // The optimisers' form, which lets them fold their own scalars into the same
    // host wait: queue_evaluation() queues ∇f(x) into grad, f(x), a check that
    // every gradient element is finite, and the reads of both (ScalarBuffer::
    // queue_read), without waiting; after the backend's next synchronize(),
    // queued_result() is f(x), or +∞ when f(x) or any gradient element is not
    // finite. The defaults wrap evaluate() and Backend::all_finite (they wait,
    // which a host-side test function does anyway); StyleTransferObjective
    // queues everything, so an iteration waits once for the device.
    virtual void queue_evaluation(Backend& backend, const float* x, float* grad);
    virtual double queued_result() { return queued_loss_; }

private:
    double queued_loss_ = 0.0;
};

// What the optimiser reports after the initial evaluation (iteration 0) and
// after each iteration. `loss` is f at the current iterate.
struct IterationReport {
    int iteration = 0;     // 0 = the starting point
    int evaluations = 0;   // objective evaluations so far, all included
    int evaluation = 0;    // which of them (1-based) was at the reported iterate
    double loss = 0.0;
    std::string event;     // empty, or a note such as "non-finite loss: step rejected, history reset"
};

// Called after each report; return false to stop early.
using IterationCallback = std::function<bool(const IterationReport&)>;

enum class LineSearch { fixed, wolfe };

// How the L-BFGS history pairs (s_i, y_i) are stored: fp32, or 16-bit (half the
// memory; the largest part of a high-resolution run's memory). The arithmetic
// is fp32/double in every case (engine/optim/lbfgs.cpp, LbfgsHistory).
enum class HistoryPrecision { fp32, bf16, fp16 };

struct LbfgsOptions {
    int history = 100;               // m, curvature pairs kept
    HistoryPrecision history_precision = HistoryPrecision::fp32;  // storage of the pairs
    LineSearch line_search = LineSearch::fixed;
    double learning_rate = 1.0;      // lr of torch.optim.LBFGS (fixed mode: t = lr after the first step)
    double tolerance_grad = 1e-7;    // stop when max |g_i| ≤ this (torch default)
    double tolerance_change = 1e-9;  // stop when the step or the loss change is below this (torch default)
    int max_wolfe_evaluations = 25;  // bound on evaluations in one strong-Wolfe line search
};

struct AdamOptions {
    double learning_rate = 1e-2;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double epsilon = 1e-8;
};

// Why a run ended.
enum class StopReason { iterations, converged, stopped_by_callback, failed };

struct OptimizationResult {
    StopReason reason = StopReason::iterations;
    int iterations = 0;
    int evaluations = 0;
    double loss = 0.0;   // f at the returned x
    std::string message; // what made it stop, for the log
};

// Runs up to `iterations` L-BFGS iterations from x (updated in place).
// Fixed mode follows torch.optim.LBFGS (lr, no line search): first step
// t = min(1, 1/‖g‖₁)·lr, then t = lr; one evaluation per iteration. A pair
// (s, y) is stored only when yᵀs > 1e-10; H₀ = sᵀy / yᵀy. A step whose loss or
// gradient is not finite is rejected (x restored), the history reset and the
// step shrunk, so a non-finite value never reaches x.
OptimizationResult minimize_lbfgs(Backend& backend, DifferentiableFunction& f, float* x,
                                  int iterations, const LbfgsOptions& options,
                                  const IterationCallback& callback = {});

// Runs `iterations` Adam steps from x (updated in place), one evaluation each.
// Non-finite loss or gradient: the step is rejected (x restored), the moments
// reset and the learning rate halved for the rest of the run.
OptimizationResult minimize_adam(Backend& backend, DifferentiableFunction& f, float* x,
                                 int iterations, const AdamOptions& options,
                                 const IterationCallback& callback = {});

}  // namespace nst
