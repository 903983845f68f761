// Adam over the backend's vector operations (see engine/optim/optimizer.h).
//
// Standard bias-corrected Adam (Kingma & Ba 2015, torch.optim.Adam without
// weight decay): the update itself is Backend::adam_update. Each iteration
// takes one step with the gradient of the current iterate and evaluates the
// new one, so iteration k reports f after k steps and a run of N iterations
// costs N + 1 evaluations.
//
// Blow-ups. When the new loss or gradient is not finite, the step is rejected:
// x, its gradient and loss are restored from copies of the previous iterate,
// the moments and the bias-correction step count are reset, and the learning
// rate is halved for the rest of the run (a step of about lr per coordinate
// reached the non-finite region, so the same lr would likely get there
// again). A rejection counts its evaluation but not as an iteration; its event
// goes with the next report. After kMaxRejections in a row (lr cut by 2¹⁰) the
// run ends with StopReason::failed and x at the last finite iterate. Unlike
// fixed-step L-BFGS no loss-growth test is needed: an Adam step moves each
// coordinate by at most about lr.
//
// Memory: all vectors are allocated once, before the first evaluation.
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>

#include "engine/base/error.h"
#include "engine/base/memory_use.h"
#include "engine/optim/optimizer.h"
#include "engine/optim/optimizer_run.h"
#include "engine/base/nvtx.h"

namespace nst {

namespace {

constexpr int kMaxRejections = 10;  // in a row, then StopReason::failed
constexpr double kLearningRateCut = 0.5;

void check_options(const AdamOptions& options, std::size_t n, int iterations) {
    if (n == 0) throw UsageError("Adam: the function has no variables");
    if (iterations < 0)
        throw UsageError("Adam: negative iteration count " + std::to_string(iterations));
    if (!(options.learning_rate > 0.0) || !std::isfinite(options.learning_rate))
        throw UsageError("Adam: learning rate must be positive, got " +
                         format_number(options.learning_rate));
    if (!(options.beta1 >= 0.0 && options.beta1 < 1.0) ||
        !(options.beta2 >= 0.0 && options.beta2 < 1.0))
        throw UsageError("Adam: beta1 and beta2 must lie in [0, 1)");
    if (!(options.epsilon >= 0.0)) throw UsageError("Adam: epsilon must not be negative");
}

}  // namespace

OptimizationResult minimize_adam(Backend& backend, DifferentiableFunction& f, float* x,
                                 int iterations, const AdamOptions& options,
                                 const IterationCallback& callback) {
    const std::size_t n = f.size();
    check_options(options, n, iterations);

    std::optional<MemoryUseScope> use(std::in_place, MemoryUse::optimiser);
    Buffer grad(backend, n);       // (n) ∇f(x)
    Buffer prev_grad(backend, n);  // (n) ∇f at the previous iterate (rollback)
    Buffer prev_x(backend, n);     // (n) the previous iterate (rollback)
    Buffer moment1(backend, n);    // (n) m
    Buffer moment2(backend, n);    // (n) v
    use.reset();
    backend.fill(n, 0.0f, moment1.data());
    backend.fill(n, 0.0f, moment2.data());

    RunRecord record(callback);

    // One host wait per evaluation: the loss and the gradient's finiteness
    // (DifferentiableFunction::queue_evaluation); the update itself never waits.
    const auto evaluate = [&] {
        ++record.evaluations;
        f.queue_evaluation(backend, x, grad.data());
        backend.synchronize();
        return f.queued_result();  // +∞ when the loss or the gradient is not finite
    };
    double loss = evaluate();
    if (!std::isfinite(loss))
        return record.finish(StopReason::failed, 0, loss,
                      "Adam: the loss or its gradient is not finite at the starting point");
    if (!record.report(0, loss))
        return record.finish(StopReason::stopped_by_callback, 0, loss, "stopped by callback");

    double learning_rate = options.learning_rate;
    int step = 0;  // bias-correction step, restarted with the moments
    int rejections = 0;
    int done = 0;
    while (done < iterations) {
        NVTX_RANGE("adam_iteration");
        backend.copy(n, x, prev_x.data());
        backend.copy(n, grad.data(), prev_grad.data());
        ++step;
        backend.adam_update(n, static_cast<float>(learning_rate), static_cast<float>(options.beta1),
                            static_cast<float>(options.beta2), static_cast<float>(options.epsilon),
                            step, grad.data(), moment1.data(), moment2.data(), x);
        const double new_loss = evaluate();
        if (!std::isfinite(new_loss)) {
            backend.copy(n, prev_x.data(), x);
            backend.copy(n, prev_grad.data(), grad.data());
            if (++rejections >= kMaxRejections)
                return record.finish(StopReason::failed, done, loss,
                              "Adam failed: " + std::to_string(rejections) +
                                  " steps in a row gave a non-finite loss or gradient; x is the "
                                  "last finite iterate");
            backend.fill(n, 0.0f, moment1.data());
            backend.fill(n, 0.0f, moment2.data());
            step = 0;
            learning_rate *= kLearningRateCut;
            record.add_event(
                "non-finite loss or gradient: step rejected, moments reset, learning rate "
                "halved to " +
                format_number(learning_rate));
            continue;
        }
        rejections = 0;
        loss = new_loss;
        record.iterate_evaluation = record.evaluations;
        ++done;
        if (!record.report(done, loss))
            return record.finish(StopReason::stopped_by_callback, done, loss, "stopped by callback");
    }
    return record.finish(StopReason::iterations, done, loss,
                  "completed " + std::to_string(done) + " iterations");
}

}  // namespace nst
