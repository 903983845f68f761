// Tier 2: every backward op and loss gradient of the CPU backend against central
// finite differences, taken on naive double-precision forward formulas written
// here (so the oracle carries no float32 error: with h = 1e-6 its error is about
// 2⁻⁵³·|L|/h ≈ 1e-10·|L| from rounding, plus h²·|L'''| truncation, ≈ 1e-12).
// The backend's gradient is float32; each tolerance bounds its rounding error.
//
// For an op y = op(x) the scalar is L = Σ r ⊙ op(x) with a fixed random r, so
// ∂L/∂x is the backward op applied to dy = r.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cpu/cpu_winograd.h"
#include "tests/test_support.h"

using nst::ConvShape;
using nst::CpuBackend;
using nst::PoolMode;
using nst::test::compare;
using nst::test::random_vector;

namespace {

constexpr double kUnit = 1.0 / (1 << 24);  // u = 2⁻²⁴, float32 unit roundoff
constexpr double kStep = 1e-6;             // FD step on O(1) inputs (see the header)

using Scalar = std::function<double(const std::vector<double>&)>;

// Central differences of f at x, one coordinate at a time.
std::vector<double> finite_difference(const Scalar& f, std::vector<double> x, double step = kStep) {
    std::vector<double> gradient(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double saved = x[i];
        x[i] = saved + step;
        const double plus = f(x);
        x[i] = saved - step;
        const double minus = f(x);
        x[i] = saved;
        gradient[i] = (plus - minus) / (2.0 * step);
    }
    return gradient;
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

double weighted_sum(const std::vector<double>& r, const std::vector<double>& y) {
    return std::inner_product(r.begin(), r.end(), y.begin(), 0.0);
}

std::vector<double> conv_double(const ConvShape& s, const std::vector<double>& x,
                                const std::vector<double>& w) {
    std::vector<double> y(std::size_t(s.out_channels) * s.height * s.width, 0.0);
    for (int o = 0; o < s.out_channels; ++o)
        for (int c = 0; c < s.in_channels; ++c)
            for (int u = 0; u < 3; ++u)
                for (int v = 0; v < 3; ++v) {
                    const double weight = w[((std::size_t(o) * s.in_channels + c) * 3 + u) * 3 + v];
                    for (int i = 0; i < s.height; ++i)
                        for (int j = 0; j < s.width; ++j) {
                            const int ii = i + u - 1, jj = j + v - 1;
                            if (ii < 0 || ii >= s.height || jj < 0 || jj >= s.width) continue;
                            y[(std::size_t(o) * s.height + i) * s.width + j] +=
                                weight * x[(std::size_t(c) * s.height + ii) * s.width + jj];
                        }
                }
    return y;
}

std::vector<double> pool_double(PoolMode mode, int channels, int height, int width,
                                const std::vector<double>& x) {
    const int oh = height / 2, ow = width / 2;
    std::vector<double> y(std::size_t(channels) * oh * ow);
    for (int c = 0; c < channels; ++c)
        for (int i = 0; i < oh; ++i)
            for (int j = 0; j < ow; ++j) {
                const std::size_t at = (std::size_t(c) * height + 2 * i) * width + 2 * j;
                const double window[4] = {x[at], x[at + 1], x[at + width], x[at + width + 1]};
                y[(std::size_t(c) * oh + i) * ow + j] =
                    mode == PoolMode::average
                        ? (window[0] + window[1] + window[2] + window[3]) / 4.0
                        : *std::max_element(window, window + 4);
            }
    return y;
}

// Distinct values in [-1, 1) at least 2/count apart, in random order, so no max
// pooling window has a tie and a step h ≪ 2/count never changes its argmax.
std::vector<float> separated_values(std::size_t count, unsigned seed) {
    std::vector<float> v(count);
    for (std::size_t i = 0; i < count; ++i) v[i] = -1.0f + 2.0f * float(i) / float(count);
    std::shuffle(v.begin(), v.end(), std::mt19937(seed));
    return v;
}

}  // namespace

TEST_CASE("conv3x3 backward-data equals finite differences of the forward", "[cpu][conv][grad]") {
    CpuBackend backend;
    for (const ConvShape& s : {ConvShape{3, 5, 7, 9}, ConvShape{4, 2, 1, 5}}) {
        CAPTURE(s.in_channels, s.out_channels, s.height, s.width);
        const std::size_t plane = std::size_t(s.height) * s.width;
        const auto x = random_vector(s.in_channels * plane, 1);
        const auto w = random_vector(std::size_t(s.out_channels) * s.in_channels * 9, 2);
        const auto r = random_vector(s.out_channels * plane, 3);
        const auto wd = to_double(w), rd = to_double(r);
        const auto oracle = finite_difference(
            [&](const std::vector<double>& xd) { return weighted_sum(rd, conv_double(s, xd, wd)); },
            to_double(x));
        // NaN-filled dx: the op overwrites.
        std::vector<float> dx(x.size(), std::numeric_limits<float>::quiet_NaN());
        backend.conv3x3_backward_data(s, r.data(), w.data(), dx.data());
        // Each dx is a float sum of ≤ C_out·9 products below 1 in magnitude:
        // |error| ≤ γ_K·K; the oracle's own error (~1e-9) is far below that.
        const double k = s.out_channels * 9;
        const auto c = compare(dx, oracle, k * kUnit * k * 1.01 + 1e-8, 0.0);
        INFO(c.report);
        CHECK(c.ok);
    }
}

TEST_CASE("conv3x3 backward-data by Winograd equals finite differences of the forward",
          "[cpu][conv][grad]") {
    CpuBackend backend;
    nst::cpu::set_conv3x3_algorithm(nst::cpu::Conv3x3Algorithm::winograd);
    // Odd sizes (cut tiles), a single row, and a sum over 20 output channels.
    for (const ConvShape& s : {ConvShape{3, 5, 7, 9}, ConvShape{4, 2, 1, 5}, ConvShape{3, 20, 6, 5}}) {
        CAPTURE(s.in_channels, s.out_channels, s.height, s.width);
        const std::size_t plane = std::size_t(s.height) * s.width;
        const auto x = random_vector(s.in_channels * plane, 1);
        const auto w = random_vector(std::size_t(s.out_channels) * s.in_channels * 9, 2);
        const auto r = random_vector(s.out_channels * plane, 3);
        const auto wd = to_double(w), rd = to_double(r);
        const auto oracle = finite_difference(
            [&](const std::vector<double>& xd) { return weighted_sum(rd, conv_double(s, xd, wd)); },
            to_double(x));
        std::vector<float> dx(x.size(), std::numeric_limits<float>::quiet_NaN());
        backend.conv3x3_backward_data(s, r.data(), w.data(), dx.data());
        // Winograd's bound (engine/backends/cpu/cpu_winograd.h) is γ_{K+8} times, per
        // output, Σ_o |Aᵀ|(|G||g||Gᵀ| ⊙ |Bᵀ||d||B|)|A| with K = C_out. With all
        // |values| < 1: |G||g||Gᵀ| ≤ (3/2)² (rows of |G| sum to ≤ 3/2),
        // |Bᵀ||d||B| ≤ 2² (two ones per row of Bᵀ), and |Aᵀ|·|A| adds 3·3
        // entries: the bracket is ≤ 81·K, so |error| ≤ γ_{K+8}·81·K (the direct
        // method's γ_{9K}·9K is the same for large K); the oracle's own error
        // (~1e-9) is far below.
        const double k = s.out_channels;
        const auto c = compare(dx, oracle, (k + 8) * kUnit * 81 * k * 1.01 + 1e-8, 0.0);
        INFO(c.report);
        CHECK(c.ok);
    }
    nst::cpu::set_conv3x3_algorithm(nst::cpu::Conv3x3Algorithm::automatic);
}

TEST_CASE("pooling backward equals finite differences of the forward", "[cpu][pool][grad]") {
    CpuBackend backend;
    const int channels = 2, height = 7, width = 9;  // odd: last row and column are dropped
    const auto x = separated_values(std::size_t(channels) * height * width, 11);
    const auto r = random_vector(std::size_t(channels) * (height / 2) * (width / 2), 12);
    const auto rd = to_double(r);
    for (PoolMode mode : {PoolMode::average, PoolMode::max}) {
        CAPTURE(mode == PoolMode::max);
        const auto oracle = finite_difference(
            [&](const std::vector<double>& xd) {
                return weighted_sum(rd, pool_double(mode, channels, height, width, xd));
            },
            to_double(x));
        std::vector<float> dx(x.size(), std::numeric_limits<float>::quiet_NaN());
        backend.pool_backward(mode, channels, height, width, x.data(), r.data(), dx.data());
        // dx is ¼·r (exact in float) or r itself; the oracle's error is ~1e-10.
        const auto c = compare(dx, oracle, 1e-8, 0.0);
        INFO(c.report);
        CHECK(c.ok);
    }
}

TEST_CASE("max pooling sends the gradient of a tie to the first maximum", "[cpu][pool][grad]") {
    CpuBackend backend;
    // One channel, 2×6: three windows with ties in different places.
    //   window 0: all equal           -> (0,0)
    //   window 1: tie of (0,1),(1,0)  -> (0,1)
    //   window 2: tie of (1,0),(1,1)  -> (1,0)
    const std::vector<float> x = {1, 1, 0, 5, 2, 2,
                                  1, 1, 5, 3, 7, 7};
    const std::vector<float> dy = {10, 20, 30};
    std::vector<float> y(3), dx(x.size(), std::numeric_limits<float>::quiet_NaN());
    backend.pool_forward(PoolMode::max, 1, 2, 6, x.data(), y.data());
    CHECK(y == std::vector<float>{1, 5, 7});
    backend.pool_backward(PoolMode::max, 1, 2, 6, x.data(), dy.data(), dx.data());
    // Expected from the rule in engine/backends/backend.h (row-major window order).
    CHECK(dx == std::vector<float>{10, 0, 0, 20, 0, 0,
                                   0, 0, 0, 0, 30, 0});
}

TEST_CASE("relu_backward equals finite differences of bias + ReLU", "[cpu][relu][grad]") {
    CpuBackend backend;
    const int channels = 3;
    const std::size_t plane = 29;
    // Pre-activations at least 0.05 from zero after the bias, so ReLU is
    // differentiable within ±h.
    auto z = random_vector(channels * plane, 21);
    const auto bias = random_vector(channels, 22, -0.3f, 0.3f);
    for (int c = 0; c < channels; ++c)
        for (std::size_t p = 0; p < plane; ++p) {
            float& value = z[c * plane + p];
            if (std::fabs(value + bias[c]) < 0.05f) value += 0.1f;
        }
    const auto r = random_vector(z.size(), 23);
    const auto rd = to_double(r);
    const auto oracle = finite_difference(
        [&](const std::vector<double>& zd) {
            double sum = 0.0;
            for (int c = 0; c < channels; ++c)
                for (std::size_t p = 0; p < plane; ++p)
                    sum += rd[c * plane + p] * std::max(0.0, zd[c * plane + p] + bias[c]);
            return sum;
        },
        to_double(z));
    std::vector<float> y = z, dy = r;
    backend.bias_relu_forward(channels, plane, bias.data(), y.data());
    backend.relu_backward(y.size(), y.data(), dy.data());
    const auto c = compare(dy, oracle, 1e-8, 0.0);  // a mask of r: only the oracle's error
    INFO(c.report);
    CHECK(c.ok);
}

TEST_CASE("preprocess_backward accumulates finite differences of preprocess", "[cpu][preprocess][grad]") {
    CpuBackend backend;
    const std::size_t plane = 21;
    const auto x = random_vector(3 * plane, 31, 0.0f, 1.0f);
    const auto r = random_vector(3 * plane, 32);
    const auto rd = to_double(r);
    for (bool bgr : {false, true}) {
        CAPTURE(bgr);
        nst::Preprocessing pre;
        pre.bgr = bgr;
        pre.pixel_scale = 255.0f;
        const float mean[3] = {123.68f, 116.779f, 103.939f}, std_dev[3] = {58.4f, 57.1f, 57.4f};
        std::copy(mean, mean + 3, pre.mean);
        std::copy(std_dev, std_dev + 3, pre.std);
        const auto oracle = finite_difference(
            [&](const std::vector<double>& xd) {
                double sum = 0.0;
                for (int c = 0; c < 3; ++c)
                    for (std::size_t p = 0; p < plane; ++p)
                        sum += rd[c * plane + p] *
                               (pre.pixel_scale * xd[(bgr ? 2 - c : c) * plane + p] - pre.mean[c]) /
                               pre.std[c];
                return sum;
            },
            to_double(x));
        const auto prefill = random_vector(x.size(), 33);
        std::vector<float> dx = prefill;
        backend.preprocess_backward(pre, plane, r.data(), dx.data());
        std::vector<double> expected(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) expected[i] = prefill[i] + oracle[i];
        // s/std ≈ 4.4 and |r| < 1: the float product and sum carry ≤ 3 roundings of
        // values below 6; the oracle's error (|L| ~ 1e2) is ~1e-8.
        const auto c = compare(dx, expected, 3.0 * kUnit * 6.0 + 1e-7, 0.0);
        INFO(c.report);
        CHECK(c.ok);
    }
}

TEST_CASE("content loss gradient accumulates weight times finite differences", "[cpu][loss][grad]") {
    CpuBackend backend;
    const std::size_t count = 37;
    const auto f = random_vector(count, 41), p = random_vector(count, 42);
    const float weight = 0.7f;
    const auto pd = to_double(p);
    const Scalar loss = [&](const std::vector<double>& fd) {
        double sum = 0.0;
        for (std::size_t i = 0; i < count; ++i) sum += 0.5 * (fd[i] - pd[i]) * (fd[i] - pd[i]);
        return sum;
    };
    const auto oracle = finite_difference(loss, to_double(f));
    const auto prefill = random_vector(count, 43);
    std::vector<float> grad = prefill;
    const double value = backend.content_loss(count, f.data(), p.data(), weight, grad.data());
    CHECK(value == Approx(loss(to_double(f))).epsilon(1e-12));  // unweighted, double sums
    std::vector<double> expected(count);
    for (std::size_t i = 0; i < count; ++i) expected[i] = prefill[i] + double(weight) * oracle[i];
    // grad + w·(F − P): three roundings of values below 2.
    const auto c = compare(grad, expected, 3.0 * kUnit * 2.0 + 1e-8, 0.0);
    INFO(c.report);
    CHECK(c.ok);
}

TEST_CASE("style loss gradient accumulates weight times finite differences", "[cpu][loss][grad]") {
    CpuBackend backend;
    // N = 5, M = 37, and M = 4100 which spans three of the gradient's column slices.
    // Plain variables, not structured bindings: the lambdas below capture n and m,
    // and C++17 does not allow capturing a structured binding.
    for (const auto& shape : {std::pair<int, std::size_t>{5, 37}, {4, 4100}}) {
        const int n = shape.first;
        const std::size_t m = shape.second;
        CAPTURE(n, m);
        const auto f = random_vector(n * m, 51);
        // A symmetric target, as style targets are Gram matrices.
        const auto style = random_vector(n * m, 52);
        std::vector<float> a(std::size_t(n) * n);
        backend.gram(n, m, style.data(), a.data());
        const auto ad = to_double(a);
        const double nm = double(n) * double(m);
        const Scalar loss = [&](const std::vector<double>& fd) {
            double sum = 0.0;
            for (int i = 0; i < n; ++i)
                for (int j = 0; j < n; ++j) {
                    double g = 0.0;
                    for (std::size_t k = 0; k < m; ++k) g += fd[i * m + k] * fd[j * m + k];
                    sum += (g - ad[std::size_t(i) * n + j]) * (g - ad[std::size_t(i) * n + j]);
                }
            return sum / (4.0 * nm * nm);
        };
        std::vector<float> g(std::size_t(n) * n);
        backend.gram(n, m, f.data(), g.data());
        const float weight = 1e3f;
        const auto prefill = random_vector(f.size(), 53, -1e-3f, 1e-3f);
        std::vector<float> grad = prefill;
        const double value = backend.style_loss(n, m, f.data(), g.data(), a.data(), weight, grad.data());
        // The value is E of the G it is given, summed in double.
        double from_g = 0.0;
        for (std::size_t i = 0; i < g.size(); ++i)
            from_g += (double(g[i]) - ad[i]) * (double(g[i]) - ad[i]);
        CHECK(value == Approx(from_g / (4.0 * nm * nm)).epsilon(1e-12));

        // Rounding bound of the backend's gradient against the exact one, from the
        // data: G carries γ_M·Σ_l|F_il F_kl| (float gram), G − A one more rounding,
        // the GEMM γ_N·Σ_k|D_ik F_kj|, and α and the accumulation a few roundings.
        const double alpha = double(weight) / (nm * nm);
        const double gamma_m = double(m) * kUnit / (1.0 - double(m) * kUnit), gamma_n = (n + 3) * kUnit;
        std::vector<double> g_error(std::size_t(n) * n), d_abs(std::size_t(n) * n);
        for (int i = 0; i < n; ++i)
            for (int k = 0; k < n; ++k) {
                double abs_sum = 0.0;
                for (std::size_t l = 0; l < m; ++l) abs_sum += std::fabs(double(f[i * m + l]) * f[k * m + l]);
                d_abs[std::size_t(i) * n + k] = std::fabs(double(g[std::size_t(i) * n + k]) - ad[std::size_t(i) * n + k]);
                g_error[std::size_t(i) * n + k] = gamma_m * abs_sum + kUnit * d_abs[std::size_t(i) * n + k];
            }

        // FD over a sample of coordinates (the double loss costs N²M per call).
        std::vector<double> fd_point = to_double(f);
        std::vector<float> got;
        std::vector<double> expected;
        double tolerance = 0.0;
        for (std::size_t at = 0; at < f.size(); at += std::max<std::size_t>(1, f.size() / 60)) {
            const double saved = fd_point[at];
            // E is a quartic in F: h = 1e-4 keeps truncation (~h²) and rounding
            // (~2⁻⁵³/h) below 1e-8 of the derivative.
            const double h = 1e-4;
            fd_point[at] = saved + h;
            const double plus = loss(fd_point);
            fd_point[at] = saved - h;
            const double minus = loss(fd_point);
            fd_point[at] = saved;
            const double derivative = double(weight) * (plus - minus) / (2.0 * h);
            expected.push_back(prefill[at] + derivative);
            got.push_back(grad[at]);
            const std::size_t i = at / m, j = at % m;
            double bound = 0.0;
            for (int k = 0; k < n; ++k) {
                const double fk = std::fabs(double(f[k * m + j]));
                bound += (g_error[i * n + k] + gamma_n * d_abs[i * n + k]) * fk;
            }
            bound = alpha * bound + 2.0 * kUnit * (std::fabs(prefill[at]) + std::fabs(derivative)) +
                    1e-8 * std::fabs(derivative);
            tolerance = std::max(tolerance, bound);
        }
        const auto c = compare(got, expected, tolerance, 0.0);
        INFO(c.report);
        CHECK(c.ok);
    }
}

TEST_CASE("tv loss gradient accumulates weight times finite differences", "[cpu][loss][grad]") {
    CpuBackend backend;
    const int channels = 3, height = 7, width = 9;
    const auto x = random_vector(std::size_t(channels) * height * width, 61);
    const Scalar loss = [&](const std::vector<double>& xd) {
        double sum = 0.0;
        for (int c = 0; c < channels; ++c)
            for (int i = 0; i < height; ++i)
                for (int j = 0; j < width; ++j) {
                    const std::size_t at = (std::size_t(c) * height + i) * width + j;
                    if (j + 1 < width) sum += (xd[at + 1] - xd[at]) * (xd[at + 1] - xd[at]);
                    if (i + 1 < height) sum += (xd[at + width] - xd[at]) * (xd[at + width] - xd[at]);
                }
        return sum;
    };
    const auto oracle = finite_difference(loss, to_double(x));
    const float weight = 0.3f;
    const auto prefill = random_vector(x.size(), 62);
    std::vector<float> grad = prefill;
    const double value = backend.tv_loss(channels, height, width, x.data(), weight, grad.data());
    CHECK(value == Approx(loss(to_double(x))).epsilon(1e-12));  // unweighted, double sums
    std::vector<double> expected(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) expected[i] = prefill[i] + double(weight) * oracle[i];
    // Four differences of values < 1, their sum (< 8), ×2w and + prefill: ≤ 8
    // roundings of values below 8.
    const auto c = compare(grad, expected, 8.0 * kUnit * 8.0 + 1e-8, 0.0);
    INFO(c.report);
    CHECK(c.ok);
}

TEST_CASE("temporal loss gradient accumulates weight times finite differences", "[cpu][loss][grad][temporal]") {
    CpuBackend backend;
    const int channels = 3;
    const std::size_t plane = 7 * 5;
    const std::size_t count = channels * plane;
    const auto x = random_vector(count, 81), target = random_vector(count, 82);
    auto pixel_weights = random_vector(plane, 83, 0.0f, 1.0f);
    pixel_weights[0] = 0.0f, pixel_weights[1] = 1.0f;  // an occluded and a fully trusted pixel
    const auto td = to_double(target);
    const double d = double(count);
    const Scalar loss = [&](const std::vector<double>& xd) {
        double sum = 0.0;
        for (std::size_t i = 0; i < count; ++i)
            sum += double(pixel_weights[i % plane]) * (xd[i] - td[i]) * (xd[i] - td[i]);
        return sum / d;
    };
    const auto oracle = finite_difference(loss, to_double(x));
    const float weight = 0.7f;
    const auto prefill = random_vector(count, 84);
    std::vector<float> grad = prefill;
    const double value = backend.temporal_loss(channels, plane, x.data(), target.data(), pixel_weights.data(),
                                               weight, grad.data());
    CHECK(value == Approx(loss(to_double(x))).epsilon(1e-12));  // unweighted, double sums of 105 terms
    std::vector<double> expected(count);
    for (std::size_t i = 0; i < count; ++i) expected[i] = prefill[i] + double(weight) * oracle[i];
    // 2w/D, x − t, c·(x − t), the product with 2w/D and + prefill: five roundings
    // of values below 2; the oracle's own error (header) is ~1e-10 · |L| < 1e-10.
    const auto c = compare(grad, expected, 5.0 * kUnit * 2.0 + 1e-8, 0.0);
    double worst = 0.0;
    for (std::size_t i = 0; i < count; ++i) worst = std::max(worst, std::fabs(grad[i] - expected[i]));
    std::printf("temporal loss gradient: max |error| %.3g against finite differences (bound %.3g)\n", worst,
                5.0 * kUnit * 2.0 + 1e-8);
    INFO(c.report);
    CHECK(c.ok);
    for (std::size_t i = 0; i < count; i += plane)  // c = 0: no gradient at the occluded pixel
        CHECK(grad[i] == prefill[i]);
}
