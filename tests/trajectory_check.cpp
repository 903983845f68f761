#include "tests/trajectory_check.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "engine/optim/optimizer.h"
#include "tests/test_support.h"

namespace nst::test {

// ---- the problem --------------------------------------------------------------------

VggWeights check_weights() { return narrow_vgg19(7); }

std::unique_ptr<StyleTransferObjective> make_check_objective(Backend& backend,
                                                             const VggWeights& weights,
                                                             PoolMode pool,
                                                             const TileSpec& tile) {
    ObjectiveConfig config;  // content conv4_2, style conv1_1 … conv5_1
    config.content_weight = 1.0;
    config.style_weight = 1e3;
    config.tv_weight = 1e-2;
    config.pool = pool;
    config.tile = tile;
    auto objective = std::make_unique<StyleTransferObjective>(backend, weights, config,
                                                              kCheckWidth, kCheckHeight);
    objective->set_content(random_image(kCheckWidth, kCheckHeight, 301));
    objective->set_styles({random_image(23, 31, 302), random_image(41, 19, 303)}, {0.7, 0.3});
    return objective;
}

std::vector<float> check_start_point() {
    return random_vector(3 * std::size_t(kCheckWidth) * kCheckHeight, 306, 0.0f, 1.0f);
}

namespace {

Buffer upload(Backend& backend, const std::vector<float>& host) {
    Buffer buffer(backend, host.size());
    backend.upload(buffer.data(), host.data(), host.size());
    return buffer;
}

std::vector<float> download(Backend& backend, const float* data, std::size_t count) {
    std::vector<float> host(count);
    backend.download(host.data(), data, count);
    return host;
}

}  // namespace

Evaluation evaluate_once(Backend& backend, PoolMode pool) {
    const auto objective = make_check_objective(backend, check_weights(), pool);
    const std::vector<float> x0 = check_start_point();
    Buffer x = upload(backend, x0), g(backend, x0.size());
    objective->evaluate(x.data(), g.data());
    return Evaluation{objective->last_terms(), download(backend, g.data(), g.size())};
}

Trajectory run_trajectory(Backend& backend, int iterations, const TileSpec& tile) {
    const auto objective = make_check_objective(backend, check_weights(), PoolMode::average, tile);
    const std::vector<float> x0 = check_start_point();
    Buffer x = upload(backend, x0);
    LbfgsOptions options;
    options.history = 10;
    Trajectory t;
    minimize_lbfgs(backend, *objective, x.data(), iterations, options,
                   [&](const IterationReport& report) {
                       t.losses.push_back(report.loss);
                       t.images.push_back(download(backend, x.data(), x.size()));
                       return true;
                   });
    return t;
}

// ---- one-ulp noise ----------------------------------------------------------------------

namespace {

std::uint64_t splitmix64(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

}  // namespace

NoisyCpuBackend::NoisyCpuBackend(std::uint64_t seed, int threads)
    : CpuBackend(threads), seed_(seed) {}

void NoisyCpuBackend::perturb(std::size_t count, float* values) {
    const std::uint64_t call = splitmix64(splitmix64(seed_) ^ calls_++);
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint64_t h = splitmix64(call ^ i) % 3;
        if (h == 0) values[i] = std::nextafter(values[i], -INFINITY);
        else if (h == 1) values[i] = std::nextafter(values[i], INFINITY);
    }
}

void NoisyCpuBackend::conv3x3_forward(const ConvShape& shape, const float* x, const float* weight,
                                      float* y) {
    CpuBackend::conv3x3_forward(shape, x, weight, y);
    perturb(std::size_t(shape.out_channels) * shape.height * shape.width, y);
}

void NoisyCpuBackend::conv3x3_backward_data(const ConvShape& shape, const float* dy,
                                            const float* weight, float* dx) {
    CpuBackend::conv3x3_backward_data(shape, dy, weight, dx);
    perturb(std::size_t(shape.in_channels) * shape.height * shape.width, dx);
}

void NoisyCpuBackend::gram(int n, std::size_t m, const float* features, float* gram_out) {
    CpuBackend::gram(n, m, features, gram_out);
    perturb(std::size_t(n) * n, gram_out);
}

// y[o,i,j] = Σ_c Σ_uv w[o,c,u,v] · x[c, i+u−1, j+v−1], in double.
void DoubleSumCpuBackend::conv3x3_forward(const ConvShape& s, const float* x, const float* w,
                                          float* y) {
    const int H = s.height, W = s.width;
    for (int o = 0; o < s.out_channels; ++o)
        for (int i = 0; i < H; ++i)
            for (int j = 0; j < W; ++j) {
                double sum = 0.0;
                for (int c = 0; c < s.in_channels; ++c)
                    for (int u = 0; u < 3; ++u)
                        for (int v = 0; v < 3; ++v) {
                            const int yy = i + u - 1, xx = j + v - 1;
                            if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                            sum += double(w[((std::size_t(o) * s.in_channels + c) * 3 + u) * 3 + v]) *
                                   x[(std::size_t(c) * H + yy) * W + xx];
                        }
                y[(std::size_t(o) * H + i) * W + j] = static_cast<float>(sum);
            }
}

// dx[c,p,q] = Σ_o Σ_uv w[o,c,u,v] · dy[o, p−u+1, q−v+1], in double.
void DoubleSumCpuBackend::conv3x3_backward_data(const ConvShape& s, const float* dy,
                                                const float* w, float* dx) {
    const int H = s.height, W = s.width;
    for (int c = 0; c < s.in_channels; ++c)
        for (int p = 0; p < H; ++p)
            for (int q = 0; q < W; ++q) {
                double sum = 0.0;
                for (int o = 0; o < s.out_channels; ++o)
                    for (int u = 0; u < 3; ++u)
                        for (int v = 0; v < 3; ++v) {
                            const int i = p - u + 1, j = q - v + 1;
                            if (i < 0 || i >= H || j < 0 || j >= W) continue;
                            sum += double(w[((std::size_t(o) * s.in_channels + c) * 3 + u) * 3 + v]) *
                                   dy[(std::size_t(o) * H + i) * W + j];
                        }
                dx[(std::size_t(c) * H + p) * W + q] = static_cast<float>(sum);
            }
}

void DoubleSumCpuBackend::gram(int n, std::size_t m, const float* f, float* g) {
    for (int a = 0; a < n; ++a)
        for (int b = 0; b < n; ++b) {
            double sum = 0.0;
            for (std::size_t k = 0; k < m; ++k)
                sum += double(f[std::size_t(a) * m + k]) * f[std::size_t(b) * m + k];
            g[std::size_t(a) * n + b] = static_cast<float>(sum);
        }
}

// ---- the policy ----------------------------------------------------------------------

const std::vector<std::uint64_t>& spread_seeds() {
    static const std::vector<std::uint64_t> seeds = {1, 2, 3, 4, 5, 6, 7, 8,
                                                      9, 10, 11, 12, 13, 14, 15, 16};
    return seeds;
}

namespace {

double relative(double a, double r) {
    const double d = std::fabs(a - r);
    return r != 0.0 ? d / std::fabs(r) : d;
}

double relative_l2(const std::vector<float>& a, const std::vector<float>& r) {
    if (a.size() != r.size()) return INFINITY;
    double d2 = 0, r2 = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = double(a[i]) - r[i];
        d2 += d * d;
        r2 += double(r[i]) * r[i];
    }
    return r2 > 0 ? std::sqrt(d2 / r2) : std::sqrt(d2);
}

double relative_max(const std::vector<float>& a, const std::vector<float>& r) {
    if (a.size() != r.size()) return INFINITY;
    double d = 0, m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double e = std::fabs(double(a[i]) - r[i]);
        d = std::isnan(e) ? INFINITY : std::max(d, e);
        m = std::max(m, std::fabs(double(r[i])));
    }
    return m > 0 ? d / m : d;
}

// The measures of one evaluation, in the order of EvaluationSpread's fields.
struct EvaluationMeasures {
    std::vector<std::string> names;
    std::vector<double> values;
};

EvaluationMeasures evaluation_measures(const Evaluation& a, const Evaluation& r) {
    EvaluationMeasures m;
    const auto add = [&](const std::string& name, double v) {
        m.names.push_back(name);
        m.values.push_back(std::isnan(v) ? INFINITY : v);
    };
    add("loss", relative(a.terms.loss, r.terms.loss));
    add("content loss", relative(a.terms.content, r.terms.content));
    add("style loss", relative(a.terms.style, r.terms.style));
    for (std::size_t l = 0; l < r.terms.style_per_layer.size(); ++l)
        add("style loss of layer " + std::to_string(l),
            l < a.terms.style_per_layer.size()
                ? relative(a.terms.style_per_layer[l], r.terms.style_per_layer[l])
                : INFINITY);
    add("gradient, relative L2", relative_l2(a.gradient, r.gradient));
    add("gradient, max |Δ| / max |g|", relative_max(a.gradient, r.gradient));
    return m;
}

std::vector<double> spread_values(const EvaluationSpread& s) {
    std::vector<double> v = {s.loss, s.content, s.style};
    v.insert(v.end(), s.style_per_layer.begin(), s.style_per_layer.end());
    v.push_back(s.gradient_l2);
    v.push_back(s.gradient_max);
    return v;
}

std::string sci(double v) {
    std::ostringstream s;
    s << std::scientific << std::setprecision(2) << v;
    return s.str();
}

}  // namespace

EvaluationSpread measure_spread(const Evaluation& reference, const std::vector<Evaluation>& noisy) {
    EvaluationSpread s;
    s.style_per_layer.assign(reference.terms.style_per_layer.size(), 0.0);
    for (const Evaluation& e : noisy) {
        const std::vector<double> v = evaluation_measures(e, reference).values;
        std::size_t k = 0;
        s.loss = std::max(s.loss, v[k++]);
        s.content = std::max(s.content, v[k++]);
        s.style = std::max(s.style, v[k++]);
        for (double& l : s.style_per_layer) l = std::max(l, v[k++]);
        s.gradient_l2 = std::max(s.gradient_l2, v[k++]);
        s.gradient_max = std::max(s.gradient_max, v[k++]);
    }
    return s;
}

TrajectorySpread measure_spread(const Trajectory& reference, const std::vector<Trajectory>& noisy) {
    TrajectorySpread s;
    const std::size_t n = reference.losses.size();
    s.loss.assign(n, 0.0);
    s.image.assign(n, 0.0);
    for (const Trajectory& t : noisy)
        for (std::size_t k = 0; k < n; ++k) {
            const bool has = k < t.losses.size() && k < t.images.size();
            s.loss[k] = std::max(s.loss[k], has ? relative(t.losses[k], reference.losses[k]) : INFINITY);
            s.image[k] = std::max(s.image[k], has ? relative_l2(t.images[k], reference.images[k]) : INFINITY);
        }
    return s;
}

EvaluationReference measure_cpu_evaluation(PoolMode pool) {
    EvaluationReference r;
    CpuBackend cpu(kCheckThreads);
    r.reference = evaluate_once(cpu, pool);
    std::vector<Evaluation> noisy;
    for (std::uint64_t seed : spread_seeds()) {
        NoisyCpuBackend backend(seed);
        noisy.push_back(evaluate_once(backend, pool));
    }
    r.spread = measure_spread(r.reference, noisy);
    return r;
}

TrajectoryReference measure_cpu_trajectory() {
    TrajectoryReference r;
    CpuBackend cpu(kCheckThreads);
    r.reference = run_trajectory(cpu);
    std::vector<Trajectory> noisy;
    for (std::uint64_t seed : spread_seeds()) {
        NoisyCpuBackend backend(seed);
        noisy.push_back(run_trajectory(backend));
    }
    r.spread = measure_spread(r.reference, noisy);
    return r;
}

CheckResult check_evaluation(const Evaluation& candidate, const Evaluation& reference,
                             const EvaluationSpread& spread) {
    const EvaluationMeasures m = evaluation_measures(candidate, reference);
    const std::vector<double> s = spread_values(spread);
    CheckResult result;
    std::ostringstream first, table;
    table << "  measure: candidate's deviation | one-ulp spread | bound (" << kEvaluationFactor
          << " x spread, at least " << kEvaluationFloor << ")\n";
    for (std::size_t i = 0; i < m.values.size(); ++i) {
        const double bound = std::max(kEvaluationFactor * s[i], kEvaluationFloor);
        const bool ok = m.values[i] <= bound;
        table << "  " << (ok ? "  " : "X ") << m.names[i] << ": " << sci(m.values[i]) << " | "
              << sci(s[i]) << " | " << sci(bound) << "\n";
        if (!ok && result.ok) {
            result.ok = false;
            result.stage = "evaluation";
            first << "FAILED at one evaluation: " << m.names[i] << " deviates by "
                  << sci(m.values[i]) << " > bound " << sci(bound) << "\n";
        }
    }
    result.report = first.str() + table.str();
    return result;
}

CheckResult check_trajectory(const Trajectory& candidate, const Trajectory& reference,
                             const TrajectorySpread& spread) {
    CheckResult result;
    std::ostringstream first, table;
    const auto fail = [&](const std::string& stage, int iteration, const std::string& what) {
        if (!result.ok) return;
        result.ok = false;
        result.stage = stage;
        result.iteration = iteration;
        first << "FAILED (" << stage << ")"
              << (iteration >= 0 ? " at iteration " + std::to_string(iteration) : "") << ": "
              << what << "\n";
    };
    const std::size_t n = reference.losses.size();
    if (candidate.losses.size() != n || candidate.images.size() != n) {
        fail("length", -1, std::to_string(candidate.losses.size()) + " iterations, reference " +
                               std::to_string(n));
        result.report = first.str();
        return result;
    }
    table << "  k: loss (reference) | candidate | rel. deviation | one-ulp spread | bound\n";
    double envelope = 0.0;
    for (std::size_t k = 0; k < n; ++k) {
        envelope = std::max(envelope, spread.loss[k]);
        const bool tight = int(k) < kTightIterations;
        const double spread_bound = std::max(kSpreadFactor * envelope, kEvaluationFloor);
        const double bound = tight ? std::min(kTightLossBound, spread_bound) : spread_bound;
        const double d = relative(candidate.losses[k], reference.losses[k]);
        const bool ok = d <= bound;
        table << "  " << (ok ? "  " : "X ") << k << ": " << std::setprecision(9)
              << reference.losses[k] << " | " << candidate.losses[k] << " | " << sci(d) << " | "
              << sci(spread.loss[k]) << " | " << sci(bound) << (tight ? " (tight)" : "") << "\n";
        if (!ok)
            fail(tight ? "tight iterations" : "spread iterations", int(k),
                 "loss " + std::to_string(candidate.losses[k]) + ", reference " +
                     std::to_string(reference.losses[k]) + ", relative deviation " + sci(d) +
                     " > bound " + sci(bound));
    }
    double image_envelope = 0.0;
    for (double v : spread.image) image_envelope = std::max(image_envelope, v);
    const double image_bound = kSpreadFactor * image_envelope;
    const double image_d = relative_l2(candidate.images.back(), reference.images.back());
    table << "  final image: relative L2 deviation " << sci(image_d) << ", one-ulp spread "
          << sci(image_envelope) << ", bound " << sci(image_bound) << "\n";
    if (!(image_d <= image_bound))
        fail("final image", int(n) - 1,
             "relative L2 deviation " + sci(image_d) + " > bound " + sci(image_bound));
    const double final_d = relative(candidate.losses.back(), reference.losses.back());
    table << "  final loss: relative deviation " << sci(final_d) << ", band " << sci(kFinalLossBand)
          << "\n";
    if (!(final_d <= kFinalLossBand))
        fail("final loss band", int(n) - 1,
             "relative deviation " + sci(final_d) + " > band " + sci(kFinalLossBand));
    result.report = first.str() + table.str();
    return result;
}

}  // namespace nst::test
