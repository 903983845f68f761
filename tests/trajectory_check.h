// Cross-backend checks of the objective and of an L-BFGS trajectory, designed
// around the problem's conditioning; shared by the CPU test (tests/test_trajectory.cpp)
// and the CUDA test (tests/cuda/test_cuda_objective.cpp).
//
// Why not a fixed tolerance on the whole trajectory: the problem is chaotic. A
// backend that sums in another order (cuDNN, cuBLAS) changes conv outputs and Gram
// matrices by about one rounding unit; L-BFGS amplifies that along the run, so
// after 20 iterations two correct runs differ by up to 3e-2 in the loss, far more
// than any fixed "1e-4" would allow. The policy therefore has two parts:
//
//   1. One evaluation (loss terms and gradient) and the first iterations are
//      compared tightly: there the noise has not been amplified yet.
//   2. Later iterations: the candidate may differ from the CPU reference by no
//      more than `factor` × the spread that one-ulp noise produces between CPU
//      runs, measured in the test itself (NoisyCpuBackend, 16 seeds), and
//      the final loss must lie in a fixed band around the reference's.
//
// The numbers behind every constant are in tests/reference/README.md, section
// "Trajectory checks under one-ulp noise", with the command that printed them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/objective/objective.h"
#include "engine/io/weights.h"

namespace nst::test {

// ---- the problem --------------------------------------------------------------------
// narrow_vgg19 (test_support.h), a 37×29 output (odd sizes: pooling floors at every
// level), random content and two random style images of other sizes, α = 1,
// β = 1e3, γ = 1e-2, L-BFGS with history 10 and 20 iterations from a random image.
constexpr int kCheckWidth = 37, kCheckHeight = 29;
constexpr int kCheckIterations = 20;
// The check's CPU backends run on one thread. The CPU conv's output depends on the
// thread count (its tiles come in multiples of it, engine/backends/cpu/cpu_conv.cpp): the
// loss at x₀ is 14.939134730 with 1 thread and 14.939134743 with 2, so the
// reference is pinned to one count. One thread is also the fast choice at ≤ 5
// channels and 37×29 pixels: on 2 cores that other jobs kept busy (load 6-7) the
// CPU test took 1.3 s with 1 thread and 51 s with 2 (OpenMP threads spinning).
constexpr int kCheckThreads = 1;

VggWeights check_weights();
// The objective of the check on `backend` (targets set).
// `tile`: tiled evaluation (engine/objective/tiles.h); the default is untiled.
std::unique_ptr<StyleTransferObjective> make_check_objective(Backend& backend,
                                                             const VggWeights& weights,
                                                             PoolMode pool,
                                                             const TileSpec& tile = {});
// The starting image x₀ (3, H, W), uniform in [0, 1).
std::vector<float> check_start_point();

// One evaluation at x₀.
struct Evaluation {
    LossTerms terms;
    std::vector<float> gradient;  // (3, H, W)
};
Evaluation evaluate_once(Backend& backend, PoolMode pool);

// Losses and iterates of an L-BFGS run from x₀ (average pooling).
struct Trajectory {
    std::vector<double> losses;              // iterations 0 … N
    std::vector<std::vector<float>> images;  // x after iterations 0 … N (0: x₀)
};
Trajectory run_trajectory(Backend& backend, int iterations = kCheckIterations,
                          const TileSpec& tile = {});

// ---- one-ulp noise ----------------------------------------------------------------------
// The CPU backend with every output element of conv3x3_forward,
// conv3x3_backward_data and gram moved by −1, 0 or +1 ulp (nextafter), chosen by a
// hash of (seed, call number, element index): deterministic per seed. It stands in
// for a backend that rounds each output differently (another summation order).
class NoisyCpuBackend : public CpuBackend {
public:
    explicit NoisyCpuBackend(std::uint64_t seed, int threads = kCheckThreads);
    void conv3x3_forward(const ConvShape& shape, const float* x, const float* weight,
                         float* y) override;
    void conv3x3_backward_data(const ConvShape& shape, const float* dy, const float* weight,
                               float* dx) override;
    void gram(int n, std::size_t m, const float* features, float* gram_out) override;

private:
    void perturb(std::size_t count, float* values);
    std::uint64_t seed_;
    std::uint64_t calls_ = 0;
};

// The CPU backend with conv3x3_forward, conv3x3_backward_data and gram summed in
// double (naive loops) and rounded once: a correct backend with another summation
// order, whose outputs differ from the CPU's by the CPU's own rounding error, as
// cuDNN's and cuBLAS's do. Unlike NoisyCpuBackend it has no parameter to tune: it
// checks that one-ulp noise is a fair model (it deviates 1.0-1.1× as much).
class DoubleSumCpuBackend : public CpuBackend {
public:
    explicit DoubleSumCpuBackend(int threads = kCheckThreads) : CpuBackend(threads) {}
    void conv3x3_forward(const ConvShape& shape, const float* x, const float* weight,
                         float* y) override;
    void conv3x3_backward_data(const ConvShape& shape, const float* dy, const float* weight,
                               float* dx) override;
    void gram(int n, std::size_t m, const float* features, float* gram_out) override;
};

// ---- the policy ----------------------------------------------------------------------
// Seeds of the noisy runs that measure the spread: 1-16. After iteration 6 the
// noisy runs split into two groups (final loss ~1e-3 and ~1.5e-2 from the
// reference's, about 5 runs in 16 in the second); 16 seeds represent both (with 8,
// the chance of missing the second is about 5 %), at ~15 ms a run. Tests that need
// a noisy run as a candidate use seeds from 17 on.
const std::vector<std::uint64_t>& spread_seeds();

// The constants, each from `build/tests/test_trajectory "[.measure]"` (table in
// tests/reference/README.md): spread from seeds 1-16, held-out seeds 17-80 and the
// double-sum backend compared against it.
//
// One evaluation: the held-out seeds deviate by at most 2.03× the spread (style
// loss of conv2_1, average pooling; 1.67× with max pooling), the double-sum backend
// by at most 1.12×. 5× leaves 2.5× over the worst noisy seed, and 3× over a backend
// whose own rounding adds √2 to the double-sum backend's (both CPU and GPU are
// off the exact sums). The floor, one float32 rounding unit (6e-8 relative), only
// applies where a spread comes out smaller than that.
constexpr double kEvaluationFactor = 5.0;
constexpr double kEvaluationFloor = 6e-8;
// Iterations 0-5 stay tight: over 80 noisy seeds their largest relative loss
// deviations are 3.3e-7, 2.9e-7, 9.0e-6, 1.8e-6, 1.6e-5, 4.8e-5; at iteration 6 it
// jumps to 4.4e-4 (the iterate's by 12×, to 1.6e-4), and reaches 3.3e-2 by iteration
// 19. In the tight iterations the loss must, besides the spread rule, stay within
// 1e-4 (2× the worst of the 80 seeds there) whatever the measured spread says.
constexpr int kTightIterations = 6;
constexpr double kTightLossBound = 1e-4;
// Trajectory: the held-out seeds reach at most 1.67× the envelope of the spread
// (1.19× from iteration 6 on), the double-sum backend 1.10×. The ratio depends on
// how well the spread's own seeds sample the noise: measured with 8 seeds instead
// of 16, the worst held-out seed reached 3.49×. 8× covers that case with 2.3×
// margin (4.8× over the 16-seed worst).
constexpr double kSpreadFactor = 8.0;
// Final loss (iteration 20): the 80 noisy runs land within 1.9e-2 of the
// reference's. 5e-2 is 2.6× that; it caps the spread rule, which at iteration 20
// would allow 8 × 3.2e-2.
constexpr double kFinalLossBand = 5e-2;

// How far one-ulp noise moves each measure of one evaluation: the largest
// deviation from the reference among the noisy evaluations.
struct EvaluationSpread {
    double loss = 0, content = 0, style = 0;  // |Δ| / |reference|
    std::vector<double> style_per_layer;      // |ΔE_l| / |E_l|
    double gradient_l2 = 0;                   // ‖Δg‖ / ‖g‖
    double gradient_max = 0;                  // max |Δg_i| / max |g_i|
};
EvaluationSpread measure_spread(const Evaluation& reference, const std::vector<Evaluation>& noisy);

// Per iteration k, the largest deviation among the noisy runs.
struct TrajectorySpread {
    std::vector<double> loss;   // |L_k − L_k^ref| / |L_k^ref|
    std::vector<double> image;  // ‖x_k − x_k^ref‖ / ‖x_k^ref‖
};
TrajectorySpread measure_spread(const Trajectory& reference, const std::vector<Trajectory>& noisy);

// The CPU reference (CpuBackend) and the spread of the NoisyCpuBackend runs with
// spread_seeds() around it: what a candidate is compared against.
struct EvaluationReference {
    Evaluation reference;
    EvaluationSpread spread;
};
EvaluationReference measure_cpu_evaluation(PoolMode pool);
struct TrajectoryReference {
    Trajectory reference;
    TrajectorySpread spread;
};
TrajectoryReference measure_cpu_trajectory();

// Result of a check: `stage` names the part that failed first ("evaluation",
// "tight iterations", "spread iterations", "final image", "final loss band");
// `iteration` is the iteration of that failure (−1 where none applies); `report`
// lists every measure with its bound, the first failure first.
struct CheckResult {
    bool ok = true;
    std::string stage;
    int iteration = -1;
    std::string report;
};

// One evaluation: each measure within kEvaluationFactor × its spread.
CheckResult check_evaluation(const Evaluation& candidate, const Evaluation& reference,
                             const EvaluationSpread& spread);

// A trajectory: every iteration k within kSpreadFactor × max_{j≤k} spread_j (the
// envelope: a noisy run crossing the reference at k does not make the bound vanish
// there), iterations 0 … kTightIterations − 1 also within kTightLossBound;
// the final image within kSpreadFactor × its envelope; the final loss within
// kFinalLossBand of the reference's.
CheckResult check_trajectory(const Trajectory& candidate, const Trajectory& reference,
                             const TrajectorySpread& spread);

}  // namespace nst::test
