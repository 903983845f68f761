// L-BFGS over the backend's vector operations (see engine/optim/optimizer.h).
//
// The algorithm is torch.optim.LBFGS (torch 1.13, torch/optim/lbfgs.py), itself
// a port of Lua optim.lbfgs / minFunc:
//
//   first iteration (and after a reset):  d = −g,  t = min(1, 1/‖g‖₁)·lr
//   later:  s = t·d,  y = g − g_prev;  when yᵀs > 1e-10 the pair is kept
//           (oldest dropped when m are held), ρ = 1/yᵀs, H₀ = yᵀs / yᵀy;
//           d = −H·g by the two-loop recursion, t = lr
//                                         (LbfgsRun::direction, LbfgsHistory, step_length)
//   stop:   gᵀd > −tolerance_change (before the step: slope_converged), and
//           after it max|g| ≤ tolerance_grad, max|t·d| ≤ tolerance_change,
//           |f − f_prev| < tolerance_change  (converged_after_step; all
//           StopReason::converged)
//
// Fixed mode takes x += t·d and evaluates once (take_fixed_step). Wolfe mode
// runs torch's `_strong_wolfe` (c1 = 1e-4, c2 = 0.9, cubic interpolation,
// bracketing then zoom) from the same initial t (take_wolfe_step, StrongWolfe).
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
// Blow-ups (roll_back). An evaluation whose loss or gradient is not finite never becomes
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
// loop only copies between them (a test asserts the byte count is flat). The
// history pairs may be stored in bf16 or fp16 (LbfgsOptions::history_precision;
// LbfgsHistory says how ρ and γ stay consistent with the rounded pairs).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/base/error.h"
#include "engine/base/memory_use.h"
#include "engine/optim/optimizer.h"
#include "engine/optim/optimizer_run.h"
#include "engine/base/nvtx.h"
#include "kernels/half.h"

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
constexpr int kMaxRejections = 10;       // in a row, then StopReason::failed
constexpr double kUnscaledGrowth = 2.0;  // step growth while descending without curvature pairs

// Queues evaluations and counts them in the run's record. queue() queues f(x)
// and ∇f(x) without waiting (the caller queues its own scalars behind it and
// waits once); result() is then f(x), +∞ when the loss or any gradient element
// is not finite.
class CountedObjective {
public:
    CountedObjective(Backend& backend, DifferentiableFunction& f, RunRecord& record)
        : backend_(backend), f_(f), record_(record) {}

    void queue(const float* x, float* grad) {
        ++record_.evaluations;
        f_.queue_evaluation(backend_, x, grad);
    }
    double result() { return f_.queued_result(); }

private:
    Backend& backend_;
    DifferentiableFunction& f_;
    RunRecord& record_;
};

// n 16-bit values in backend memory, allocated as ⌈n/2⌉ floats (backend memory
// is allocated in floats; ScalarBuffer holds its doubles the same way).
class HalfVector {
public:
    HalfVector() = default;
    HalfVector(Backend& backend, std::size_t n) : floats_(backend, (n + 1) / 2) {}
    std::uint16_t* data() { return reinterpret_cast<std::uint16_t*>(floats_.data()); }

private:
    Buffer floats_;
};

// The curvature pairs: a ring of m (s, y) vectors plus one candidate pair that
// is swapped into the ring when accepted, so a rejected candidate never
// overwrites the oldest pair.
//
// 16-bit storage (HistoryPrecision bf16, fp16). The candidate is formed in fp32
// (s = t·d, y = g − g_prev, in one fp32 scratch vector) and packed at once
// (pack_half, kernels/half.h); the ring then holds ŝ = h_s / c_s and ŷ = h_y / c_y,
// the rounded vectors (c = 1 for bf16; for fp16 a power of two per vector, from
// its max |·| read on the device, so max |h| < 2^15 and nothing overflows 65504).
// The two-loop recursion reads ŝ, ŷ and computes in float/double as with fp32.
//
// ρ and γ come from the stored vectors, not the fp32 ones: ŷᵀŝ and ŷᵀŷ are dot
// products of the packed pair (dot_half_pair_into, exact products summed in
// double), queued behind the evaluation like the fp32 yᵀs, yᵀy, so storage costs
// no host wait. Why: the recursion computes d = −H g with H the BFGS matrix
// built from the pairs it reads, H⁺ = (I − ρ ŝŷᵀ) H (I − ρ ŷŝᵀ) + ρ ŝŝᵀ. The
// secant equation H⁺ŷ = ŝ, which is what makes H a model of the curvature, holds
// only when ρ = 1/(ŷᵀŝ) for the same ŝ, ŷ; with ρ from the fp32 pair H⁺ŷ =
// (1 − ρŷᵀŝ)(…) + ρ(ŷᵀŝ)ŝ instead, wrong along ŝ by the relative rounding error
// of ŷᵀŝ, which is large exactly when yᵀs is small against |y||s| (late in a run,
// y = g − g_prev cancels). And H⁺ is positive definite (d a descent direction)
// when ρ > 0 and H is; with a consistent ρ that needs ŷᵀŝ > 0, which rounding can
// break even when yᵀs > 0. So the acceptance test (ŷᵀŝ > 1e-10, finite) is made
// on the stored curvature, and a pair whose stored curvature is not positive is
// skipped; γ = ŝᵀŷ / ŷᵀŷ > 0 then follows, and every H is positive definite.
class LbfgsHistory {
public:
    LbfgsHistory(Backend& backend, std::size_t n, int m, HistoryPrecision precision)
        : backend_(backend), n_(n), capacity_(m), half_(precision != HistoryPrecision::fp32),
          format_(precision == HistoryPrecision::fp16 ? HalfFormat::fp16 : HalfFormat::bf16),
          rho_(m), s_unscale_(m, 1.0), y_unscale_(m, 1.0), alpha_(backend, m), beta_(backend, 1) {
        if (half_) {
            packed_s_.reserve(m);
            packed_y_.reserve(m);
            for (int i = 0; i < m; ++i) {
                packed_s_.emplace_back(backend, n);
                packed_y_.emplace_back(backend, n);
            }
            candidate_packed_s_ = HalfVector(backend, n);
            candidate_packed_y_ = HalfVector(backend, n);
            candidate_s_ = Buffer(backend, n);  // the fp32 scratch for s, then y
            return;
        }
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
    bool half() const { return half_; }

    // Queues the candidate pair s = t·d, y = g − g_prev (d, g, g_prev: (n)) and
    // its curvature: *ys = yᵀs, *yy = yᵀy and, with 16-bit storage, *s_max =
    // max |s_i|, *y_max = max |y_i| (of the fp32 vectors, from which the packing
    // scales follow); the dot products are then those of the packed vectors,
    // unscaled (offer_candidate scales them).
    void queue_candidate(const float* d, double t, const float* g, const float* g_prev,
                         double* ys, double* yy, double* s_max, double* y_max) {
        if (!half_) {
            backend_.copy(n_, d, candidate_s_.data());
            backend_.scale(n_, static_cast<float>(t), candidate_s_.data());
            backend_.copy(n_, g, candidate_y_.data());
            backend_.axpy(n_, -1.0f, g_prev, candidate_y_.data());
            backend_.dot_into(n_, candidate_y_.data(), candidate_s_.data(), 1.0, ys);
            backend_.dot_into(n_, candidate_y_.data(), candidate_y_.data(), 1.0, yy);
            return;
        }
        float* scratch = candidate_s_.data();
        backend_.copy(n_, d, scratch);
        backend_.scale(n_, static_cast<float>(t), scratch);
        backend_.amax_into(n_, scratch, s_max);
        backend_.pack_half(n_, format_, scratch, s_max, candidate_packed_s_.data());
        backend_.copy(n_, g, scratch);
        backend_.axpy(n_, -1.0f, g_prev, scratch);
        backend_.amax_into(n_, scratch, y_max);
        backend_.pack_half(n_, format_, scratch, y_max, candidate_packed_y_.data());
        backend_.dot_half_pair_into(n_, format_, candidate_packed_y_.data(),
                                    candidate_packed_s_.data(), 1.0, ys);
        backend_.dot_half_pair_into(n_, format_, candidate_packed_y_.data(),
                                    candidate_packed_y_.data(), 1.0, yy);
    }

    // Keeps the candidate when its (stored) curvature yᵀs > 1e-10; ys, yy, s_max,
    // y_max: the host copies of what queue_candidate queued. Returns whether it
    // was kept.
    bool offer_candidate(double ys, double yy, double s_max, double y_max) {
        double s_unscale = 1.0, y_unscale = 1.0;
        if (half_) {
            // x̂ = h / c: the packed dot products scale by 1/(c_s c_y) and 1/c_y²
            // (powers of two: exact).
            s_unscale = 1.0 / kernels::history_half_scale(format_, s_max);
            y_unscale = 1.0 / kernels::history_half_scale(format_, y_max);
            ys *= s_unscale * y_unscale;
            yy *= y_unscale * y_unscale;
            if (!std::isfinite(ys) || !std::isfinite(yy)) return false;
        }
        if (!(ys > kCurvatureThreshold)) return false;
        int slot;
        if (count_ == capacity_) {
            slot = start_;
            start_ = (start_ + 1) % capacity_;
        } else {
            slot = (start_ + count_) % capacity_;
            ++count_;
        }
        if (half_) {
            std::swap(packed_s_[slot], candidate_packed_s_);
            std::swap(packed_y_[slot], candidate_packed_y_);
        } else {
            std::swap(s_[slot], candidate_s_);
            std::swap(y_[slot], candidate_y_);
        }
        rho_[slot] = 1.0 / ys;
        s_unscale_[slot] = s_unscale;
        y_unscale_[slot] = y_unscale;
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
            if (half_) {  // as below with ŝ = h_s/c_s, ŷ = h_y/c_y: 1/c folded into the scalars
                backend_.dot_half_into(n_, format_, packed_s_[i].data(), d,
                                       rho_[i] * s_unscale_[i], alpha_.slot(i));
                backend_.axpy_from_half(n_, alpha_.slot(i), nullptr, -y_unscale_[i], format_,
                                        packed_y_[i].data(), d);
                continue;
            }
            backend_.dot_into(n_, s_[i].data(), d, rho_[i], alpha_.slot(i));  // α_i = ρ_i sᵢᵀq
            backend_.axpy_from(n_, alpha_.slot(i), nullptr, -1.0, y_[i].data(), d);  // q −= α_i yᵢ
        }
        backend_.scale(n_, static_cast<float>(h_diag_), d);
        for (int k = 0; k < count_; ++k) {
            const int i = slot(k);
            if (half_) {
                backend_.dot_half_into(n_, format_, packed_y_[i].data(), d,
                                       rho_[i] * y_unscale_[i], beta_.slot(0));
                backend_.axpy_from_half(n_, alpha_.slot(i), beta_.slot(0), s_unscale_[i], format_,
                                        packed_s_[i].data(), d);
                continue;
            }
            backend_.dot_into(n_, y_[i].data(), d, rho_[i], beta_.slot(0));  // β = ρ_i yᵢᵀr
            backend_.axpy_from(n_, alpha_.slot(i), beta_.slot(0), 1.0, s_[i].data(), d);  // r += (α_i − β) sᵢ
        }
    }

private:
    int slot(int k) const { return (start_ + k) % capacity_; }  // k = 0: oldest

    Backend& backend_;
    std::size_t n_;
    int capacity_;
    bool half_;          // 16-bit storage
    HalfFormat format_;  // with half_
    std::vector<Buffer> s_, y_;  // m × (n), fp32 storage
    Buffer candidate_s_, candidate_y_;  // fp32 storage; 16-bit: candidate_s_ is the scratch
    std::vector<HalfVector> packed_s_, packed_y_;  // m × (n), 16-bit storage
    HalfVector candidate_packed_s_, candidate_packed_y_;
    std::vector<double> rho_;    // 1 / ŷᵢᵀŝᵢ, known on the host when the pair is kept
    std::vector<double> s_unscale_, y_unscale_;  // 1/c of each stored vector (1 for fp32, bf16)
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
    StrongWolfe(Backend& backend, CountedObjective& objective, std::size_t n,
                const RunRecord& record)
        : backend_(backend), objective_(objective), n_(n), record_(record), gtd_(backend, 1) {
        for (Buffer& slot : slots_) slot = Buffer(backend, n);
    }

    // x0, g0 (n): start and its gradient (f0, gtd0 = g0ᵀd); d (n): direction,
    // d_norm = max |d_i|; x (n): scratch for the trial points. Leaves x unspecified.
    // start_evaluation: the evaluation that gave f0 and g0.
    LineSearchResult run(const float* x0, double f0, const float* g0, int start_evaluation,
                         double gtd0, const float* d, double d_norm, double t, float* x,
                         int max_evaluations, double tolerance_change) {
        saw_non_finite_ = false;
        Search search;
        search.x0 = x0, search.f0 = f0, search.gtd0 = gtd0, search.d = d, search.d_norm = d_norm, search.x = x;
        search.max_ls = max_evaluations - 1;  // torch's max_ls: evaluations after the first
        search.tolerance_change = tolerance_change;
        const LinePoint start{0.0, f0, gtd0, g0, start_evaluation};
        bracket(search, start, t);
        zoom(search);
        return {search.bracket[search.low], saw_non_finite_};
    }

private:
    // The state of one search: its fixed inputs, then the bracket [0], [1]
    // with its lower (low) and higher end, and the evaluations so far.
    struct Search {
        const float* x0 = nullptr;
        double f0 = 0, gtd0 = 0;
        const float* d = nullptr;
        double d_norm = 0;
        float* x = nullptr;
        int max_ls = 0;
        double tolerance_change = 0;
        LinePoint bracket[2];
        int low = 0, high = 1;
        int ls_iter = 0;
        bool done = false;
    };

    // Extrapolates from t until a step brackets a point of the strong Wolfe
    // conditions, meets them (done), or max_ls runs out.
    void bracket(Search& s, const LinePoint& start, double t) {
        LinePoint prev = start;
        LinePoint next = evaluate(s.x0, s.d, t, s.x, {prev.g, nullptr});
        bool bracketed = false;
        while (s.ls_iter < s.max_ls) {
            if (next.f > s.f0 + kWolfeC1 * next.t * s.gtd0 || (s.ls_iter > 1 && next.f >= prev.f)) {
                s.bracket[0] = prev;
                s.bracket[1] = next;
                bracketed = true;
                break;
            }
            if (std::fabs(next.gtd) <= -kWolfeC2 * s.gtd0) {
                s.bracket[0] = s.bracket[1] = next;
                s.done = true;
                break;
            }
            if (next.gtd >= 0.0) {
                s.bracket[0] = prev;
                s.bracket[1] = next;
                bracketed = true;
                break;
            }
            // Extrapolate: at least 1% beyond t, at most 10·t.
            const double min_step = next.t + 0.01 * (next.t - prev.t);
            const double max_step = next.t * 10.0;
            const double t_new = cubic_interpolate(prev.t, prev.f, prev.gtd, next.t, next.f,
                                                   next.gtd, min_step, max_step);
            prev = next;
            next = evaluate(s.x0, s.d, t_new, s.x, {prev.g, nullptr});
            ++s.ls_iter;
        }
        if (!bracketed && !s.done) {  // reached max_ls
            s.bracket[0] = start;
            s.bracket[1] = next;
        }
        s.low = s.bracket[0].f <= s.bracket[1].f ? 0 : 1;
        s.high = 1 - s.low;
    }

    // Shrinks the bracket until a point meets the strong Wolfe conditions.
    void zoom(Search& s) {
        bool insufficient_progress = false;
        LinePoint* b = s.bracket;
        while (!s.done && s.ls_iter < s.max_ls) {
            if (std::fabs(b[1].t - b[0].t) * s.d_norm < s.tolerance_change) break;
            const double b_min = std::min(b[0].t, b[1].t);
            const double b_max = std::max(b[0].t, b[1].t);
            // A non-finite end carries no slope to interpolate with: bisect.
            double t_new = std::isfinite(b[s.high].f)
                               ? cubic_interpolate(b[0].t, b[0].f, b[0].gtd, b[1].t, b[1].f, b[1].gtd, b_min, b_max)
                               : 0.5 * (b_min + b_max);
            // Too close to an end twice in a row (or at an end): move 10% of the
            // bracket inside.
            const double eps = 0.1 * (b_max - b_min);
            if (std::min(b_max - t_new, t_new - b_min) < eps) {
                if (insufficient_progress || t_new >= b_max || t_new <= b_min) {
                    t_new = std::fabs(t_new - b_max) < std::fabs(t_new - b_min) ? b_max - eps : b_min + eps;
                    insufficient_progress = false;
                } else {
                    insufficient_progress = true;
                }
            } else {
                insufficient_progress = false;
            }

            const LinePoint trial = evaluate(s.x0, s.d, t_new, s.x, {b[0].g, b[1].g});
            ++s.ls_iter;
            if (trial.f > s.f0 + kWolfeC1 * trial.t * s.gtd0 || trial.f >= b[s.low].f) {
                b[s.high] = trial;
                s.low = b[0].f <= b[1].f ? 0 : 1;
                s.high = 1 - s.low;
            } else {
                if (std::fabs(trial.gtd) <= -kWolfeC2 * s.gtd0) {
                    s.done = true;
                } else if (trial.gtd * (b[s.high].t - b[s.low].t) >= 0.0) {
                    b[s.high] = b[s.low];
                }
                b[s.low] = trial;
            }
        }
    }

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
        point.evaluation = record_.evaluations;
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
    const RunRecord& record_;
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

// The host copies of one batch of the optimiser's scalars (see "Host waits").
enum ScalarSlot {
    kGradMaxAbs,    // max |g_i| of the newest gradient
    kGradSumAbs,    // ‖g‖₁ of the newest gradient
    kCandidateYS,   // yᵀs of the candidate pair (s = t·d, y = g − g_prev)
    kCandidateYY,   // yᵀy
    kCandidateSMax,  // max |s_i| (16-bit history: the packing scale)
    kCandidateYMax,  // max |y_i|
    kSlope,         // gᵀd before the step
    kDirectionSq,   // dᵀd
    kDirectionMax,  // max |d_i|
    kSlotCount
};

// One run of minimize_lbfgs. Each part of the header comment is one method:
// start (the first evaluation), direction (two-loop recursion), step_length
// (torch's rule plus the unscaled growth and the step cap), take_fixed_step /
// take_wolfe_step, roll_back (blow-ups), accept, and the stopping tests
// (slope_converged before the step, converged_after_step after it).
class LbfgsRun {
public:
    LbfgsRun(Backend& backend, DifferentiableFunction& f, float* x, const LbfgsOptions& options,
             const IterationCallback& callback)
        : backend_(backend), options_(options), n_(f.size()), x_(x), record_(callback),
          objective_(backend, f, record_), grad_(backend, n_), prev_grad_(backend, n_),
          prev_x_(backend, n_), best_x_(backend, n_), direction_(backend, n_),
          history_(backend, n_, options.history, options.history_precision), scalars_(backend, kSlotCount) {
        if (options.line_search == LineSearch::wolfe)
            line_search_ = std::make_unique<StrongWolfe>(backend, objective_, n_, record_);
    }

    OptimizationResult run(int iterations) {
        if (auto stop = start()) return *stop;
        while (done_ < iterations) {
            NVTX_RANGE("lbfgs_iteration");
            direction();
            if (auto stop = slope_converged()) return *stop;
            step_length();
            const std::string rejection =
                line_search_ ? take_wolfe_step() : take_fixed_step();
            if (!rejection.empty()) {
                if (auto stop = roll_back(rejection)) return *stop;
                continue;
            }
            accept();
            if (!record_.report(done_, loss_))
                return record_.finish(StopReason::stopped_by_callback, done_, loss_,
                                      "stopped by callback");
            if (auto stop = converged_after_step()) return *stop;
        }
        return record_.finish(StopReason::iterations, done_, loss_,
                              "completed " + std::to_string(done_) + " iterations");
    }

private:
    // Queued behind an evaluation, read in the same wait: the new gradient's
    // max |g| and ‖g‖₁ and, with `candidate`, the pair s = t·d, y = g − g_prev
    // that the next iteration offers to the history, with yᵀs and yᵀy.
    void queue_gradient_scalars(bool candidate) {
        backend_.amax_into(n_, grad_.data(), scalars_.slot(kGradMaxAbs));
        backend_.asum_into(n_, grad_.data(), scalars_.slot(kGradSumAbs));
        if (!candidate) {
            scalars_.queue_read(kGradMaxAbs, 2);
            return;
        }
        history_.queue_candidate(direction_.data(), t_, grad_.data(), prev_grad_.data(),
                                 scalars_.slot(kCandidateYS), scalars_.slot(kCandidateYY),
                                 scalars_.slot(kCandidateSMax), scalars_.slot(kCandidateYMax));
        scalars_.queue_read(kGradMaxAbs, history_.half() ? 6 : 4);
    }

    // The first evaluation (one wait), report 0, and the gradient test at the start.
    std::optional<OptimizationResult> start() {
        objective_.queue(x_, grad_.data());
        queue_gradient_scalars(false);
        backend_.synchronize();
        loss_ = objective_.result();
        if (!std::isfinite(loss_))
            return record_.finish(StopReason::failed, 0, loss_,
                                  "L-BFGS: the loss or its gradient is not finite at the starting point");
        grad_max_ = scalars_.host(kGradMaxAbs);
        grad_sum_ = scalars_.host(kGradSumAbs);
        initial_loss_ = best_loss_ = loss_;
        backend_.copy(n_, x_, best_x_.data());
        if (!record_.report(0, loss_))
            return record_.finish(StopReason::stopped_by_callback, 0, loss_, "stopped by callback");
        if (grad_max_ <= options_.tolerance_grad)
            return record_.finish(StopReason::converged, 0, loss_,
                                  "converged: gradient below tolerance_grad at the start");
        return std::nullopt;
    }

    // d = −g after a reset, else the last pair is offered to the history and
    // d = −H·g; then x, g and f are kept for a rollback, and host wait 1 of 2
    // reads gᵀd, dᵀd and max|d|.
    void direction() {
        float* d = direction_.data();
        if (fresh_) {
            history_.clear();
            backend_.copy(n_, grad_.data(), d);
            backend_.scale(n_, -1.0f, d);
        } else {
            NVTX_RANGE("lbfgs_direction");
            history_.offer_candidate(candidate_ys_, candidate_yy_, candidate_s_max_, candidate_y_max_);
            history_.direction(grad_.data(), d);
        }
        backend_.copy(n_, grad_.data(), prev_grad_.data());
        backend_.copy(n_, x_, prev_x_.data());
        prev_loss_ = loss_;
        prev_grad_max_ = grad_max_;
        prev_grad_sum_ = grad_sum_;
        prev_loss_of_last_step_ = last_step_start_loss_;
        last_step_start_loss_ = loss_;

        backend_.dot_into(n_, grad_.data(), d, 1.0, scalars_.slot(kSlope));
        backend_.dot_into(n_, d, d, 1.0, scalars_.slot(kDirectionSq));
        backend_.amax_into(n_, d, scalars_.slot(kDirectionMax));
        scalars_.queue_read(kSlope, 3);
        backend_.synchronize();
        slope_ = scalars_.host(kSlope);
        d_length_ = std::sqrt(scalars_.host(kDirectionSq));
        d_max_ = scalars_.host(kDirectionMax);
    }

    std::optional<OptimizationResult> slope_converged() {
        if (slope_ > -options_.tolerance_change)
            return record_.finish(StopReason::converged, done_, loss_,
                                  "converged: directional derivative " + format_number(slope_) +
                                      " above -tolerance_change");
        return std::nullopt;
    }

    // With no curvature pair (the first iteration, after a reset, or while
    // every pair so far had yᵀs ≤ 1e-10) d = −g carries no scale, and torch's
    // t = lr steps by ‖g‖. On style transfer from a photo the style term is
    // concave along −g at first (yᵀs < 0: the photo's Gram matrices are smaller
    // than the painting's, and E = Σ(G − A)² is concave there), no pair is ever
    // kept, and that step is how torch.optim.LBFGS diverges. Such steps use the
    // first-iteration length instead, grown ×2 after each one that lowered the
    // loss and halved after one that did not (plain gradient descent with an
    // adaptive step) until a pair is kept; with a pair in the history t = lr,
    // as in torch. After a blow-up the step is capped (roll_back).
    void step_length() {
        const bool unscaled = fresh_ || history_.empty();
        if (fresh_) {
            unscaled_factor_ = 1.0;
        } else if (unscaled) {
            unscaled_factor_ *= loss_ < prev_loss_of_last_step_ ? kUnscaledGrowth : 0.5;
        }
        t_ = unscaled ? std::min(1.0, 1.0 / grad_sum_) * unscaled_factor_ * options_.learning_rate
                      : options_.learning_rate;
        if (std::isfinite(step_cap_) && t_ * d_length_ > step_cap_) t_ = step_cap_ / d_length_;
        trial_t_ = t_;
    }

    // x += t·d and host wait 2 of 2: the evaluation with the next iteration's
    // scalars. Returns why the step is rejected, or "".
    std::string take_fixed_step() {
        backend_.axpy(n_, static_cast<float>(t_), direction_.data(), x_);
        objective_.queue(x_, grad_.data());
        queue_gradient_scalars(true);
        backend_.synchronize();
        loss_ = objective_.result();
        if (!std::isfinite(loss_)) return "non-finite loss or gradient";
        if (loss_ - prev_loss_ > kBlowUpGrowth * (std::fabs(prev_loss_) + std::fabs(initial_loss_)))
            return "loss jumped from " + format_number(prev_loss_) + " to " + format_number(loss_);
        record_.iterate_evaluation = record_.evaluations;
        return "";
    }

    // torch's strong-Wolfe search from x along d, then x = x_prev + t·d with the
    // point's gradient and one wait for its scalars. Returns why the step is
    // rejected, or "".
    std::string take_wolfe_step() {
        NVTX_RANGE("lbfgs_line_search");
        const LineSearchResult searched = line_search_->run(
            prev_x_.data(), prev_loss_, prev_grad_.data(), record_.iterate_evaluation, slope_,
            direction_.data(), d_max_, t_, x_, options_.max_wolfe_evaluations,
            options_.tolerance_change);
        t_ = searched.point.t;
        loss_ = searched.point.f;
        if (searched.saw_non_finite) {
            if (t_ == 0.0 || !std::isfinite(loss_))
                return "non-finite loss or gradient in the line search, no finite step found";
            record_.add_event("non-finite loss or gradient in the line search: bracket bisected");
        }
        record_.iterate_evaluation = searched.point.evaluation;
        backend_.copy(n_, prev_x_.data(), x_);
        backend_.axpy(n_, static_cast<float>(t_), direction_.data(), x_);
        backend_.copy(n_, searched.point.g, grad_.data());
        queue_gradient_scalars(true);
        backend_.synchronize();
        return "";
    }

    // Restores the previous iterate, resets the history and caps the next step
    // at kRetryShrink × the failed one; after kMaxRejections in a row the run
    // fails with the best iterate seen in x.
    std::optional<OptimizationResult> roll_back(const std::string& rejection) {
        const double failed_length = trial_t_ * d_length_;
        backend_.copy(n_, prev_x_.data(), x_);
        backend_.copy(n_, prev_grad_.data(), grad_.data());
        loss_ = prev_loss_;
        grad_max_ = prev_grad_max_;
        grad_sum_ = prev_grad_sum_;
        fresh_ = true;
        if (++rejections_ >= kMaxRejections) {
            backend_.copy(n_, best_x_.data(), x_);
            return record_.finish(StopReason::failed, done_, best_loss_,
                                  "L-BFGS failed: " + std::to_string(rejections_) +
                                      " steps rejected in a row (last: " + rejection +
                                      "); x is the best iterate seen");
        }
        step_cap_ = kRetryShrink * failed_length;
        record_.add_event(rejection + ": step of length " + format_number(failed_length) +
                          " rejected, history reset, retrying with at most " +
                          format_number(step_cap_));
        return std::nullopt;
    }

    void accept() {
        grad_max_ = scalars_.host(kGradMaxAbs);
        grad_sum_ = scalars_.host(kGradSumAbs);
        candidate_ys_ = scalars_.host(kCandidateYS);
        candidate_yy_ = scalars_.host(kCandidateYY);
        if (history_.half()) {
            candidate_s_max_ = scalars_.host(kCandidateSMax);
            candidate_y_max_ = scalars_.host(kCandidateYMax);
        }
        rejections_ = 0;
        fresh_ = false;
        step_cap_ *= kCapGrowth;
        ++done_;
        if (loss_ < best_loss_) {
            best_loss_ = loss_;
            backend_.copy(n_, x_, best_x_.data());
        }
    }

    std::optional<OptimizationResult> converged_after_step() {
        if (grad_max_ <= options_.tolerance_grad)
            return record_.finish(StopReason::converged, done_, loss_,
                                  "converged: max |gradient| " + format_number(grad_max_) +
                                      " <= tolerance_grad");
        const double max_step = d_max_ * std::fabs(t_);
        if (max_step <= options_.tolerance_change)
            return record_.finish(StopReason::converged, done_, loss_,
                                  "converged: max |step| " + format_number(max_step) +
                                      " <= tolerance_change");
        if (std::fabs(loss_ - prev_loss_) < options_.tolerance_change)
            return record_.finish(StopReason::converged, done_, loss_,
                                  "converged: loss change " +
                                      format_number(std::fabs(loss_ - prev_loss_)) +
                                      " below tolerance_change");
        return std::nullopt;
    }

    Backend& backend_;
    const LbfgsOptions& options_;
    std::size_t n_;
    float* x_;  // (n) the iterate, updated in place
    RunRecord record_;
    CountedObjective objective_;
    // All vectors of the run, allocated before the first evaluation.
    Buffer grad_;       // (n) ∇f(x)
    Buffer prev_grad_;  // (n) ∇f at the previous iterate
    Buffer prev_x_;     // (n) the previous iterate (rollback, line-search origin)
    Buffer best_x_;     // (n) lowest-loss iterate, returned when the run fails
    Buffer direction_;  // (n) d
    LbfgsHistory history_;
    ScalarBuffer scalars_;
    std::unique_ptr<StrongWolfe> line_search_;

    double loss_ = 0.0, initial_loss_ = 0.0, best_loss_ = 0.0;
    double grad_max_ = 0.0, grad_sum_ = 0.0;            // max|g|, ‖g‖₁ at the iterate
    double prev_loss_ = 0.0, prev_grad_max_ = 0.0, prev_grad_sum_ = 0.0;
    double slope_ = 0.0, d_length_ = 0.0, d_max_ = 0.0;  // gᵀd, ‖d‖₂, max|d|
    double t_ = 0.0, trial_t_ = 0.0;                    // the step, and its first try
    bool fresh_ = true;                 // next direction is −g with the first-iteration step
    double unscaled_factor_ = 1.0;      // step growth while no curvature pair is held
    double last_step_start_loss_ = 0.0, prev_loss_of_last_step_ = 0.0;
    double step_cap_ = std::numeric_limits<double>::infinity();  // on ‖t·d‖₂, after a blow-up
    double candidate_ys_ = 0.0, candidate_yy_ = 0.0;  // of the last accepted step's pair
    double candidate_s_max_ = 0.0, candidate_y_max_ = 0.0;  // its max |s_i|, |y_i| (16-bit history)
    int rejections_ = 0;
    int done_ = 0;
};

}  // namespace

OptimizationResult minimize_lbfgs(Backend& backend, DifferentiableFunction& f, float* x,
                                  int iterations, const LbfgsOptions& options,
                                  const IterationCallback& callback) {
    check_options(options, f.size(), iterations);
    std::unique_ptr<LbfgsRun> run;
    {
        MemoryUseScope use(MemoryUse::optimiser);  // every vector of the run, made here
        run = std::make_unique<LbfgsRun>(backend, f, x, options, callback);
    }
    return run->run(iterations);
}

}  // namespace nst
