// L-BFGS over the backend's vector operations (see engine/optimizer.h).
//
// The algorithm is torch.optim.LBFGS (torch 1.13, torch/optim/lbfgs.py), itself
// a port of Lua optim.lbfgs / minFunc:
//
//   first iteration (and after a reset):  d = −g,  t = min(1, 1/‖g‖₁)·lr
//   later:  s = t·d,  y = g − g_prev;  when yᵀs > 1e-10 the pair is kept
//           (oldest dropped when m are held), ρ = 1/yᵀs, H₀ = yᵀs / yᵀy;
//           d = −H·g by the two-loop recursion, t = lr
//   stop:   gᵀd > −tolerance_change (before the step), and after it
//           max|g| ≤ tolerance_grad, max|t·d| ≤ tolerance_change,
//           |f − f_prev| < tolerance_change  (all StopReason::converged)
//
// Fixed mode takes x += t·d and evaluates once. Wolfe mode runs torch's
// `_strong_wolfe` (c1 = 1e-4, c2 = 0.9, cubic interpolation, bracketing then
// zoom) from the same initial t.
//
// Where this differs from torch, on purpose:
//   * The last iteration is evaluated too (torch skips it), so the reported
//     loss is f at the returned x and every iteration report has a loss.
//   * torch's per-call budget max_eval does not exist: a run is bounded by its
//     iteration count, and one line search by max_wolfe_evaluations
//     evaluations (torch's max_ls = 25 allows 26; ours is the evaluation count).
//   * The line search's bracket-width test uses options.tolerance_change
//     (torch passes nothing and gets 1e-9, the default of both).
//   * The convergence tests come before the iteration-count test, so a run
//     that converges on its last iteration says so.
//   * While the history holds no pair (every yᵀs so far ≤ 1e-10, as on a
//     concave stretch), torch steps t = lr along −g, a step of length ‖g‖;
//     here such steps keep the first-iteration length, grown ×2 after each
//     one that lowered the loss and halved after one that did not. With at
//     least one pair the iteration is torch's.
//   * Recovery from blow-ups (below), which torch does not have: with the real
//     weights, a noise start and the fixed step, torch.optim.LBFGS reaches NaN
//     within three evaluations.
//
// Blow-ups. An evaluation whose loss or gradient is not finite never becomes
// the iterate. In fixed mode the step is also rejected when the loss grew by
// more than kBlowUpGrowth·(|f_prev| + |f_0|) (a divergence that has not
// overflowed yet). A rejected step restores x, g and f of the previous iterate
// (kept in backend memory), clears the history and retries from there along
// −g with the first-iteration step, cut so that the step is at most
// kRetryShrink × the length of the step that failed. That cut stays as a cap
// on the step length, doubled after every accepted step, so a run that blew up
// does not jump straight back into the same region, and ordinary steps soon
// run uncapped again. A rejection counts its evaluation but is not an
// iteration; its event is attached to the next iteration report. After
// kMaxRejections rejections in a row the run ends with StopReason::failed and
// the best iterate seen (lowest finite loss) in x.
//
// In Wolfe mode a non-finite evaluation inside the line search is treated as
// an Armijo failure (f = +∞): it becomes the upper end of the bracket and the
// zoom bisects towards the finite end instead of interpolating. The point the
// line search returns is always finite, so the history is kept; only when the
// line search cannot move from x (t = 0) after seeing non-finite values is the
// step rejected as above.
//
// Host waits. Every scalar lives in backend memory until the host needs it for
// a decision, and the scalars needed together are read in one wait
// (Backend::synchronize; ScalarSlot lists them). A fixed-step iteration waits
// twice: (1) gᵀd, dᵀd and max|d| once the direction is known (the convergence
// test on gᵀd and the step cap need them before the step); (2) after the step,
// the evaluation's loss terms and gradient check (DifferentiableFunction::
// queue_evaluation) together with the new gradient's max|g| and ‖g‖₁ and the
// candidate pair's yᵀs and yᵀy, which decide whether the next iteration keeps
// the pair. The two-loop recursion's 2m coefficients never leave the device
// (dot_into / axpy_from). A test counts the waits. Wolfe mode waits once per
// line-search evaluation, plus once for the accepted point's scalars.
//
// Memory: every vector is allocated once, before the first evaluation; the
// loop only copies between them (a test asserts the byte count is flat).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "engine/optimizer.h"
#include "kernels/nvtx.h"

namespace nst {

namespace {

constexpr double kCurvatureThreshold = 1e-10;  // torch: pair kept only if yᵀs > 1e-10
constexpr double kWolfeC1 = 1e-4;              // sufficient decrease (torch, lswolfe.lua)
constexpr double kWolfeC2 = 0.9;               // curvature condition
// Loss growth that counts as a blow-up, relative to |f_prev| + |f_0|. Ordinary
// fixed-step L-BFGS jumps a lot: on the 2-D Rosenbrock function from (−1.2, 1)
// with m = 100, torch's own run climbs from 0.6 to 1.8e7 in one step (7e5× that
// scale; ours, rounding differently, to 2.9e8, 1.2e7×) and still converges.
// 1e10 stays clear of such excursions and still stops a run whose loss is on
// its way to overflow before it produces a non-finite value.
constexpr double kBlowUpGrowth = 1e10;
constexpr double kRetryShrink = 0.1;  // retry step length / failed step length
constexpr double kCapGrowth = 2.0;    // step cap growth per accepted step
constexpr int kMaxRejections = 10;
constexpr double kUnscaledGrowth = 2.0;  // step growth while descending without curvature pairs    // in a row, then StopReason::failed

std::string format_number(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.6g", value);
    return text;
}

void append_event(std::string& events, const std::string& event) {
    if (!events.empty()) events += "; ";
    events += event;
}

// Counts evaluations. queue() queues f(x) and ∇f(x) without waiting (the
// caller queues its own scalars behind it and waits once); result() is then
// f(x), +∞ when the loss or any gradient element is not finite.
class CountedObjective {
public:
    CountedObjective(Backend& backend, DifferentiableFunction& f) : backend_(backend), f_(f) {}

    void queue(const float* x, float* grad) {
        ++evaluations;
        f_.queue_evaluation(backend_, x, grad);
    }
    double result() { return f_.queued_result(); }

    int evaluations = 0;

private:
    Backend& backend_;
    DifferentiableFunction& f_;
};

// The curvature pairs: a ring of m (s, y) vectors plus one candidate pair that
// is swapped into the ring when accepted, so a rejected candidate never
// overwrites the oldest pair.
class LbfgsHistory {
public:
    LbfgsHistory(Backend& backend, std::size_t n, int m)
        : backend_(backend), n_(n), capacity_(m), rho_(m), alpha_(backend, m), beta_(backend, 1) {
        s_.reserve(m);
        y_.reserve(m);
        for (int i = 0; i < m; ++i) {
            s_.emplace_back(backend, n);
            y_.emplace_back(backend, n);
        }
        candidate_s_ = Buffer(backend, n);
        candidate_y_ = Buffer(backend, n);
    }

    void clear() {
        start_ = 0;
        count_ = 0;
        h_diag_ = 1.0;
    }

    bool empty() const { return count_ == 0; }
    float* candidate_s() { return candidate_s_.data(); }  // (n)
    float* candidate_y() { return candidate_y_.data(); }  // (n)

    // Keeps the candidate when yᵀs > 1e-10 (ys = yᵀs, yy = yᵀy of the candidate,
    // read by the caller in its batch of scalars); returns whether it was kept.
    bool offer_candidate(double ys, double yy) {
        if (!(ys > kCurvatureThreshold)) return false;
        int slot;
        if (count_ == capacity_) {
            slot = start_;
            start_ = (start_ + 1) % capacity_;
        } else {
            slot = (start_ + count_) % capacity_;
            ++count_;
        }
        std::swap(s_[slot], candidate_s_);
        std::swap(y_[slot], candidate_y_);
        rho_[slot] = 1.0 / ys;
        h_diag_ = ys / yy;
        return true;
    }

    // d = −H·g by the two-loop recursion (torch's order and formulas). The
    // coefficients α_i and β stay in backend memory (dot_into / axpy_from), so
    // on a GPU the 2m dot products and updates are queued without a wait.
    void direction(const float* g, float* d) {
        backend_.copy(n_, g, d);
        backend_.scale(n_, -1.0f, d);
        for (int k = count_ - 1; k >= 0; --k) {
            const int i = slot(k);
            backend_.dot_into(n_, s_[i].data(), d, rho_[i], alpha_.slot(i));  // α_i = ρ_i sᵢᵀq
            backend_.axpy_from(n_, alpha_.slot(i), nullptr, -1.0, y_[i].data(), d);  // q −= α_i yᵢ
        }
        backend_.scale(n_, static_cast<float>(h_diag_), d);
        for (int k = 0; k < count_; ++k) {
            const int i = slot(k);
            backend_.dot_into(n_, y_[i].data(), d, rho_[i], beta_.slot(0));  // β = ρ_i yᵢᵀr
            backend_.axpy_from(n_, alpha_.slot(i), beta_.slot(0), 1.0, s_[i].data(), d);  // r += (α_i − β) sᵢ
        }
    }

private:
    int slot(int k) const { return (start_ + k) % capacity_; }  // k = 0: oldest

    Backend& backend_;
    std::size_t n_;
    int capacity_;
    std::vector<Buffer> s_, y_;  // m × (n)
    Buffer candidate_s_, candidate_y_;
    std::vector<double> rho_;    // 1 / yᵢᵀsᵢ, known on the host when the pair is kept
    ScalarBuffer alpha_, beta_;  // (m), (1) in backend memory
    int start_ = 0, count_ = 0;
    double h_diag_ = 1.0;
};

// torch's _cubic_interpolate: the minimiser of the cubic through (x1, f1, g1)
// and (x2, f2, g2), clamped to [lo, hi]; the midpoint when the cubic has none.
double cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2,
                         double lo, double hi) {
    const double d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    const double d2_square = d1 * d1 - g1 * g2;
    if (d2_square >= 0.0) {
        const double d2 = std::sqrt(d2_square);
        const double min_pos = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
                                        : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2));
        return std::min(std::max(min_pos, lo), hi);
    }
    return (lo + hi) / 2.0;
}

// One point on the line x0 + t·d: loss (+∞ when not finite), gradient, gᵀd.
struct LinePoint {
    double t = 0.0;
    double f = 0.0;
    double gtd = 0.0;
    const float* g = nullptr;  // (n), x0's gradient or one of the search slots
    int evaluation = 0;        // the objective evaluation (1-based) that gave f and g
};

struct LineSearchResult {
    LinePoint point;
    bool saw_non_finite = false;
};

// torch's _strong_wolfe over backend vectors. Three gradient slots suffice:
// at most two points are held (the bracket, or previous and current) while a
// third is evaluated.
class StrongWolfe {
public:
    StrongWolfe(Backend& backend, CountedObjective& objective, std::size_t n)
        : backend_(backend), objective_(objective), n_(n), gtd_(backend, 1) {
        for (Buffer& slot : slots_) slot = Buffer(backend, n);
    }

    // x0, g0 (n): start and its gradient (f0, gtd0 = g0ᵀd); d (n): direction,
    // d_norm = max |d_i|; x (n): scratch for the trial points. Leaves x unspecified.
    // start_evaluation: the evaluation that gave f0 and g0.
    LineSearchResult run(const float* x0, double f0, const float* g0, int start_evaluation,
                         double gtd0, const float* d, double d_norm, double t, float* x,
                         int max_evaluations, double tolerance_change) {
        saw_non_finite_ = false;
        const int max_ls = max_evaluations - 1;  // torch's max_ls: evaluations after the first
        const LinePoint start{0.0, f0, gtd0, g0, start_evaluation};

        LinePoint prev = start;
        LinePoint next = evaluate(x0, d, t, x, {prev.g, nullptr});
        LinePoint bracket[2];
        bool done = false;
        bool bracketed = false;
        int ls_iter = 0;
        while (ls_iter < max_ls) {
            if (next.f > f0 + kWolfeC1 * next.t * gtd0 || (ls_iter > 1 && next.f >= prev.f)) {
                bracket[0] = prev;
                bracket[1] = next;
                bracketed = true;
                break;
            }
            if (std::fabs(next.gtd) <= -kWolfeC2 * gtd0) {
                bracket[0] = bracket[1] = next;
                done = true;
                break;
            }
            if (next.gtd >= 0.0) {
                bracket[0] = prev;
                bracket[1] = next;
                bracketed = true;
                break;
            }
            // Extrapolate: at least 1% beyond t, at most 10·t.
            const double min_step = next.t + 0.01 * (next.t - prev.t);
            const double max_step = next.t * 10.0;
            const double t_new = cubic_interpolate(prev.t, prev.f, prev.gtd, next.t, next.f,
                                                   next.gtd, min_step, max_step);
            prev = next;
            next = evaluate(x0, d, t_new, x, {prev.g, nullptr});
            ++ls_iter;
        }
        if (!bracketed && !done) {  // reached max_ls
            bracket[0] = start;
            bracket[1] = next;
        }

        // Zoom: shrink the bracket until a point meets the strong Wolfe conditions.
        bool insufficient_progress = false;
        int low = bracket[0].f <= bracket[1].f ? 0 : 1;
        int high = 1 - low;
        while (!done && ls_iter < max_ls) {
            if (std::fabs(bracket[1].t - bracket[0].t) * d_norm < tolerance_change) break;
            const double b_min = std::min(bracket[0].t, bracket[1].t);
            const double b_max = std::max(bracket[0].t, bracket[1].t);
            // A non-finite end carries no slope to interpolate with: bisect.
            double t_new =
                std::isfinite(bracket[high].f)
                    ? cubic_interpolate(bracket[0].t, bracket[0].f, bracket[0].gtd, bracket[1].t,
                                        bracket[1].f, bracket[1].gtd, b_min, b_max)
                    : 0.5 * (b_min + b_max);
            // Too close to an end twice in a row (or at an end): move 10% of the
            // bracket inside.
            const double eps = 0.1 * (b_max - b_min);
            if (std::min(b_max - t_new, t_new - b_min) < eps) {
                if (insufficient_progress || t_new >= b_max || t_new <= b_min) {
                    t_new = std::fabs(t_new - b_max) < std::fabs(t_new - b_min) ? b_max - eps
                                                                                : b_min + eps;
                    insufficient_progress = false;
                } else {
                    insufficient_progress = true;
                }
            } else {
                insufficient_progress = false;
            }

            const LinePoint trial = evaluate(x0, d, t_new, x, {bracket[0].g, bracket[1].g});
            ++ls_iter;
            if (trial.f > f0 + kWolfeC1 * trial.t * gtd0 || trial.f >= bracket[low].f) {
                bracket[high] = trial;
                low = bracket[0].f <= bracket[1].f ? 0 : 1;
                high = 1 - low;
            } else {
                if (std::fabs(trial.gtd) <= -kWolfeC2 * gtd0) {
                    done = true;
                } else if (trial.gtd * (bracket[high].t - bracket[low].t) >= 0.0) {
                    bracket[high] = bracket[low];
                }
                bracket[low] = trial;
            }
        }
        return {bracket[low], saw_non_finite_};
    }

private:
    // Evaluates at x0 + t·d into a slot that `in_use` does not name.
    LinePoint evaluate(const float* x0, const float* d, double t, float* x,
                       std::pair<const float*, const float*> in_use) {
        float* g = nullptr;
        for (Buffer& slot : slots_)
            if (slot.data() != in_use.first && slot.data() != in_use.second) g = slot.data();
        NST_ASSERT(g != nullptr);
        backend_.copy(n_, x0, x);
        backend_.axpy(n_, static_cast<float>(t), d, x);
        LinePoint point;
        point.t = t;
        point.g = g;
        // One wait for the loss, the finiteness check and gᵀd.
        objective_.queue(x, g);
        point.evaluation = objective_.evaluations;
        backend_.dot_into(n_, g, d, 1.0, gtd_.slot(0));
        gtd_.queue_read();
        backend_.synchronize();
        point.f = objective_.result();
        if (std::isfinite(point.f)) {
            point.gtd = gtd_.host(0);
        } else {
            saw_non_finite_ = true;
            point.gtd = std::numeric_limits<double>::quiet_NaN();
        }
        return point;
    }

    Backend& backend_;
    CountedObjective& objective_;
    std::size_t n_;
    ScalarBuffer gtd_;  // (1) gᵀd of the trial point
    Buffer slots_[3];
    bool saw_non_finite_ = false;
};

void check_options(const LbfgsOptions& options, std::size_t n, int iterations) {
    if (n == 0) throw UsageError("L-BFGS: the function has no variables");
    if (iterations < 0)
        throw UsageError("L-BFGS: negative iteration count " + std::to_string(iterations));
    if (options.history < 1)
        throw UsageError("L-BFGS: history must be at least 1, got " +
                         std::to_string(options.history));
    if (!(options.learning_rate > 0.0) || !std::isfinite(options.learning_rate))
        throw UsageError("L-BFGS: learning rate must be positive, got " +
                         format_number(options.learning_rate));
    if (!(options.tolerance_grad >= 0.0) || !(options.tolerance_change >= 0.0))
        throw UsageError("L-BFGS: tolerances must not be negative");
    if (options.line_search == LineSearch::wolfe && options.max_wolfe_evaluations < 1)
        throw UsageError("L-BFGS: max_wolfe_evaluations must be at least 1, got " +
                         std::to_string(options.max_wolfe_evaluations));
}

}  // namespace

// The host copies of one batch of the optimiser's scalars (see "Host waits").
enum ScalarSlot {
    kGradMaxAbs,    // max |g_i| of the newest gradient
    kGradSumAbs,    // ‖g‖₁ of the newest gradient
    kCandidateYS,   // yᵀs of the candidate pair (s = t·d, y = g − g_prev)
    kCandidateYY,   // yᵀy
    kSlope,         // gᵀd before the step
    kDirectionSq,   // dᵀd
    kDirectionMax,  // max |d_i|
    kSlotCount
};

OptimizationResult minimize_lbfgs(Backend& backend, DifferentiableFunction& f, float* x,
                                  int iterations, const LbfgsOptions& options,
                                  const IterationCallback& callback) {
    const std::size_t n = f.size();
    check_options(options, n, iterations);
    const bool wolfe = options.line_search == LineSearch::wolfe;

    // All vectors of the run, allocated before the first evaluation.
    Buffer grad(backend, n);       // (n) ∇f(x)
    Buffer prev_grad(backend, n);  // (n) ∇f at the previous iterate
    Buffer prev_x(backend, n);     // (n) the previous iterate (rollback, line-search origin)
    Buffer best_x(backend, n);     // (n) lowest-loss iterate, returned when the run fails
    Buffer direction(backend, n);  // (n) d
    LbfgsHistory history(backend, n, options.history);
    ScalarBuffer scalars(backend, kSlotCount);
    CountedObjective objective(backend, f);
    std::unique_ptr<StrongWolfe> line_search;
    if (wolfe) line_search = std::make_unique<StrongWolfe>(backend, objective, n);

    OptimizationResult result;
    std::string events;
    int iterate_evaluation = 1;  // the evaluation at the current iterate
    const auto report = [&](int iteration, double loss) {
        IterationReport r;
        r.iteration = iteration;
        r.evaluations = objective.evaluations;
        r.evaluation = iterate_evaluation;
        r.loss = loss;
        r.event = std::move(events);
        events.clear();
        return !callback || callback(r);
    };
    const auto finish = [&](StopReason reason, int done, double loss, std::string message) {
        result.reason = reason;
        result.iterations = done;
        result.evaluations = objective.evaluations;
        result.loss = loss;
        result.message = std::move(message);
        return result;
    };
    // Queued behind an evaluation, read in the same wait: the new gradient's
    // max |g| and ‖g‖₁ and, with `candidate`, the pair s = t·d, y = g − g_prev
    // that the next iteration offers to the history, with yᵀs and yᵀy.
    const auto queue_gradient_scalars = [&](bool candidate, double t) {
        backend.amax_into(n, grad.data(), scalars.slot(kGradMaxAbs));
        backend.asum_into(n, grad.data(), scalars.slot(kGradSumAbs));
        if (!candidate) {
            scalars.queue_read(kGradMaxAbs, 2);
            return;
        }
        backend.copy(n, direction.data(), history.candidate_s());
        backend.scale(n, static_cast<float>(t), history.candidate_s());
        backend.copy(n, grad.data(), history.candidate_y());
        backend.axpy(n, -1.0f, prev_grad.data(), history.candidate_y());
        backend.dot_into(n, history.candidate_y(), history.candidate_s(), 1.0,
                         scalars.slot(kCandidateYS));
        backend.dot_into(n, history.candidate_y(), history.candidate_y(), 1.0,
                         scalars.slot(kCandidateYY));
        scalars.queue_read(kGradMaxAbs, 4);
    };

    objective.queue(x, grad.data());
    queue_gradient_scalars(false, 0.0);
    backend.synchronize();
    double loss = objective.result();
    if (!std::isfinite(loss))
        return finish(StopReason::failed, 0, loss,
                      "L-BFGS: the loss or its gradient is not finite at the starting point");
    double grad_max = scalars.host(kGradMaxAbs), grad_sum = scalars.host(kGradSumAbs);
    const double initial_loss = loss;
    double best_loss = loss;
    backend.copy(n, x, best_x.data());
    if (!report(0, loss))
        return finish(StopReason::stopped_by_callback, 0, loss, "stopped by callback");
    if (grad_max <= options.tolerance_grad)
        return finish(StopReason::converged, 0, loss,
                      "converged: gradient below tolerance_grad at the start");

    bool fresh = true;  // next direction is −g with the first-iteration step
    double unscaled_factor = 1.0;  // growth of the step while no curvature pair is held
    double last_step_start_loss = 0.0, prev_loss_of_last_step = 0.0;
    double t = 0.0;
    double step_cap = std::numeric_limits<double>::infinity();  // on ‖t·d‖₂, after a blow-up
    double candidate_ys = 0.0, candidate_yy = 0.0;  // of the pair of the last accepted step
    int rejections = 0;
    int done = 0;
    while (done < iterations) {
        float* d = direction.data();
        NVTX_RANGE("lbfgs_iteration");
        if (fresh) {
            history.clear();
            backend.copy(n, grad.data(), d);
            backend.scale(n, -1.0f, d);
        } else {
            NVTX_RANGE("lbfgs_direction");
            history.offer_candidate(candidate_ys, candidate_yy);
            history.direction(grad.data(), d);
        }
        backend.copy(n, grad.data(), prev_grad.data());
        backend.copy(n, x, prev_x.data());
        const double prev_loss = loss, prev_grad_max = grad_max, prev_grad_sum = grad_sum;
        prev_loss_of_last_step = last_step_start_loss;
        last_step_start_loss = loss;

        // Host wait 1 of 2: the slope, length and largest element of d.
        backend.dot_into(n, grad.data(), d, 1.0, scalars.slot(kSlope));
        backend.dot_into(n, d, d, 1.0, scalars.slot(kDirectionSq));
        backend.amax_into(n, d, scalars.slot(kDirectionMax));
        scalars.queue_read(kSlope, 3);
        backend.synchronize();
        const double gtd = scalars.host(kSlope);
        const double d_length = std::sqrt(scalars.host(kDirectionSq));
        const double d_max = scalars.host(kDirectionMax);

        // With no curvature pair (the first iteration, after a reset, or while
        // every pair so far had yᵀs ≤ 1e-10) d = −g carries no scale, and
        // torch's t = lr steps by ‖g‖. On style transfer from a photo the style
        // term is concave along −g at first (yᵀs < 0: the photo's Gram matrices
        // are smaller than the painting's, and E = Σ(G − A)² is concave there),
        // no pair is ever kept, and that step is how torch.optim.LBFGS diverges.
        // Such steps use the first-iteration length instead, grown ×2 after
        // each one that lowered the loss and halved after one that did not
        // (plain gradient descent with an adaptive step) until a pair is kept;
        // with a pair in the history t = lr, as in torch.
        const bool unscaled = fresh || history.empty();
        if (fresh) {
            unscaled_factor = 1.0;
        } else if (unscaled) {
            unscaled_factor *= loss < prev_loss_of_last_step ? kUnscaledGrowth : 0.5;
        }
        t = unscaled ? std::min(1.0, 1.0 / grad_sum) * unscaled_factor * options.learning_rate
                     : options.learning_rate;
        if (std::isfinite(step_cap) && t * d_length > step_cap) t = step_cap / d_length;

        if (gtd > -options.tolerance_change)
            return finish(StopReason::converged, done, loss,
                          "converged: directional derivative " + format_number(gtd) +
                              " above -tolerance_change");

        const double trial_t = t;  // the length to shrink from if this step is rejected
        std::string rejection;
        if (!wolfe) {
            // Host wait 2 of 2: the evaluation, with the next iteration's scalars.
            backend.axpy(n, static_cast<float>(t), d, x);
            objective.queue(x, grad.data());
            queue_gradient_scalars(true, t);
            backend.synchronize();
            loss = objective.result();
            if (!std::isfinite(loss)) {
                rejection = "non-finite loss or gradient";
            } else if (loss - prev_loss >
                       kBlowUpGrowth * (std::fabs(prev_loss) + std::fabs(initial_loss))) {
                rejection =
                    "loss jumped from " + format_number(prev_loss) + " to " + format_number(loss);
            }
        } else {
            NVTX_RANGE("lbfgs_line_search");
            const LineSearchResult searched =
                line_search->run(prev_x.data(), prev_loss, prev_grad.data(), iterate_evaluation,
                                 gtd, d, d_max, t, x, options.max_wolfe_evaluations,
                                 options.tolerance_change);
            t = searched.point.t;
            loss = searched.point.f;
            if (searched.saw_non_finite) {
                if (t == 0.0 || !std::isfinite(loss))
                    rejection =
                        "non-finite loss or gradient in the line search, no finite step found";
                else
                    append_event(
                        events, "non-finite loss or gradient in the line search: bracket bisected");
            }
            if (rejection.empty()) {
                iterate_evaluation = searched.point.evaluation;
                backend.copy(n, prev_x.data(), x);
                backend.axpy(n, static_cast<float>(t), d, x);
                backend.copy(n, searched.point.g, grad.data());
                queue_gradient_scalars(true, t);
                backend.synchronize();
            }
        }

        if (!rejection.empty()) {
            const double failed_length = trial_t * d_length;
            backend.copy(n, prev_x.data(), x);
            backend.copy(n, prev_grad.data(), grad.data());
            loss = prev_loss;
            grad_max = prev_grad_max;
            grad_sum = prev_grad_sum;
            fresh = true;
            if (++rejections >= kMaxRejections) {
                backend.copy(n, best_x.data(), x);
                return finish(StopReason::failed, done, best_loss,
                              "L-BFGS failed: " + std::to_string(rejections) +
                                  " steps rejected in a row (last: " + rejection +
                                  "); x is the best iterate seen");
            }
            step_cap = kRetryShrink * failed_length;
            append_event(events, rejection + ": step of length " + format_number(failed_length) +
                                     " rejected, history reset, retrying with at most " +
                                     format_number(step_cap));
            continue;
        }

        if (!wolfe) iterate_evaluation = objective.evaluations;
        grad_max = scalars.host(kGradMaxAbs);
        grad_sum = scalars.host(kGradSumAbs);
        candidate_ys = scalars.host(kCandidateYS);
        candidate_yy = scalars.host(kCandidateYY);
        rejections = 0;
        fresh = false;
        step_cap *= kCapGrowth;
        ++done;
        if (loss < best_loss) {
            best_loss = loss;
            backend.copy(n, x, best_x.data());
        }
        if (!report(done, loss))
            return finish(StopReason::stopped_by_callback, done, loss, "stopped by callback");

        if (grad_max <= options.tolerance_grad)
            return finish(
                StopReason::converged, done, loss,
                "converged: max |gradient| " + format_number(grad_max) + " <= tolerance_grad");
        const double max_step = d_max * std::fabs(t);
        if (max_step <= options.tolerance_change)
            return finish(
                StopReason::converged, done, loss,
                "converged: max |step| " + format_number(max_step) + " <= tolerance_change");
        if (std::fabs(loss - prev_loss) < options.tolerance_change)
            return finish(StopReason::converged, done, loss,
                          "converged: loss change " + format_number(std::fabs(loss - prev_loss)) +
                              " below tolerance_change");
    }
    return finish(StopReason::iterations, done, loss,
                  "completed " + std::to_string(done) + " iterations");
}

}  // namespace nst
