// Tier 1: every forward op of the CPU backend against naive double-precision
// loops written here, on odd shapes, plus the optimisers' vector ops.
//
// Tolerances: a float32 sum of K products has |error| ≤ γ_K · Σ|terms| with
// γ_K ≈ K·u, u = 2⁻²⁴ (the worst case; typical errors are ~√K·u·Σ|terms|). The
// tests compute Σ|terms| from the data and use that rigorous bound, so a pass
// means the op is as exact as float32 allows and a wrong index or sign fails.
#include <omp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <limits>
#include <vector>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/base/error.h"
#include "engine/backends/cpu/cpu_isa.h"
#include "engine/io/image.h"
#include "engine/network/vgg19.h"
#include "engine/io/vgg19_layers.h"
#include "engine/io/weights.h"
#include "engine/backends/cpu/cpu_winograd.h"
#include "tests/test_support.h"

using nst::ConvShape;
using nst::CpuBackend;
using nst::cpu::Conv3x3Algorithm;
using nst::ScalarBuffer;
using nst::PoolMode;
using nst::test::compare;
using nst::test::random_vector;

namespace {

constexpr double kUnit = 1.0 / (1 << 24);  // u = 2⁻²⁴, float32 unit roundoff

struct Reference {
    std::vector<double> value;
    double max_abs_terms = 0.0;  // max over outputs of Σ|terms|
};

// y[o,i,j] = Σ_c Σ_{u,v} w[o,c,u,v] · x[c, i+u−1, j+v−1], zero padding.
Reference naive_conv(const ConvShape& s, const std::vector<float>& x, const std::vector<float>& w) {
    Reference r;
    r.value.assign(std::size_t(s.out_channels) * s.height * s.width, 0.0);
    for (int o = 0; o < s.out_channels; ++o)
        for (int i = 0; i < s.height; ++i)
            for (int j = 0; j < s.width; ++j) {
                double sum = 0.0, abs_sum = 0.0;
                for (int c = 0; c < s.in_channels; ++c)
                    for (int u = 0; u < 3; ++u)
                        for (int v = 0; v < 3; ++v) {
                            const int ii = i + u - 1, jj = j + v - 1;
                            if (ii < 0 || ii >= s.height || jj < 0 || jj >= s.width) continue;
                            const double t = double(w[((std::size_t(o) * s.in_channels + c) * 3 + u) * 3 + v]) *
                                             double(x[(std::size_t(c) * s.height + ii) * s.width + jj]);
                            sum += t;
                            abs_sum += std::fabs(t);
                        }
                r.value[(std::size_t(o) * s.height + i) * s.width + j] = sum;
                r.max_abs_terms = std::max(r.max_abs_terms, abs_sum);
            }
    return r;
}

// dx = ∂(Σ dy·y)/∂x written as the scatter of the forward loop (the adjoint).
Reference naive_conv_backward(const ConvShape& s, const std::vector<float>& dy,
                              const std::vector<float>& w) {
    Reference r;
    r.value.assign(std::size_t(s.in_channels) * s.height * s.width, 0.0);
    std::vector<double> abs_sum(r.value.size(), 0.0);
    for (int o = 0; o < s.out_channels; ++o)
        for (int i = 0; i < s.height; ++i)
            for (int j = 0; j < s.width; ++j)
                for (int c = 0; c < s.in_channels; ++c)
                    for (int u = 0; u < 3; ++u)
                        for (int v = 0; v < 3; ++v) {
                            const int ii = i + u - 1, jj = j + v - 1;
                            if (ii < 0 || ii >= s.height || jj < 0 || jj >= s.width) continue;
                            const std::size_t at = (std::size_t(c) * s.height + ii) * s.width + jj;
                            const double t = double(w[((std::size_t(o) * s.in_channels + c) * 3 + u) * 3 + v]) *
                                             double(dy[(std::size_t(o) * s.height + i) * s.width + j]);
                            r.value[at] += t;
                            abs_sum[at] += std::fabs(t);
                        }
    r.max_abs_terms = *std::max_element(abs_sum.begin(), abs_sum.end());
    return r;
}

// γ_K · Σ|terms|, with γ_K = K·u / (1 − K·u).
double accumulation_bound(int terms, double max_abs_terms) {
    const double ku = terms * kUnit;
    return ku / (1.0 - ku) * max_abs_terms;
}

// Selects the backend's convolution algorithm for one scope.
struct ConvAlgorithmScope {
    explicit ConvAlgorithmScope(Conv3x3Algorithm algorithm) {
        nst::cpu::set_conv3x3_algorithm(algorithm);
    }
    ~ConvAlgorithmScope() { nst::cpu::set_conv3x3_algorithm(Conv3x3Algorithm::automatic); }
};

// The Winograd error bound of engine/backends/cpu/cpu_winograd.h, for tile m = 2 or 4:
//   |ŷ − y| ≤ γ_{C_in+k} · max over outputs of Σ_c |Aᵀ|(|G||g_c||Gᵀ| ⊙ |Bᵀ||d_c||B|)|A|.
// The rounding depth of each product is C_in + 7 for F(2×2) (U rounded once
// from double, two additions in Bᵀ d B, the product, C_in − 1 in the channel
// sum, four in Aᵀ M A) and C_in + 13 for F(4×4) (three roundings per side of
// Bᵀ d B — a difference, a product by 5/2, 3/2 or 7/2, an addition, as in
// (d4 − d0) + 5/2·(d1 − d3) — and three per side of Aᵀ M A, whose products by
// 2^±k are exact); one more covers the double-precision filter transform
// (≤ 2⁻⁵⁰ relative). Returns the bracket's maximum, computed here in double
// from x and w with the matrices written out independently of the backend.
double winograd_abs_terms(const ConvShape& s, const std::vector<float>& x,
                          const std::vector<float>& w, int tile = 2) {
    const int patch = tile + 2;
    const double g2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, 0.5, 0.5}, {0, 0, 1}};
    const double bt2[4][6] = {{1, 0, 1, 0}, {0, 1, 1, 0}, {0, 1, 1, 0}, {0, 1, 0, 1}};
    const double at2[4][6] = {{1, 1, 1, 0}, {0, 1, 1, 1}};
    // F(4×4, 3×3) with points 0, 1, −1, 2, ½, ∞, absolute values.
    const double g4[6][3] = {{1, 0, 0},         {1, 1, 1},         {1. / 9, 1. / 9, 1. / 9},
                             {1. / 9, 2. / 9, 4. / 9}, {16. / 9, 8. / 9, 4. / 9}, {0, 0, 1}};
    const double bt4[6][6] = {{1, 2.5, 0, 2.5, 1, 0}, {0, 1, 1.5, 1.5, 1, 0},
                              {0, 1, 3.5, 3.5, 1, 0}, {0, 0.5, 1, 0.5, 1, 0},
                              {0, 2, 1, 2, 1, 0},     {0, 1, 2.5, 0, 2.5, 1}};
    const double at4[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, 1, 2, 0.5, 0},
                              {0, 1, 1, 4, 0.25, 0}, {0, 1, 1, 8, 0.125, 1}};
    auto G = [&](int a, int r) { return tile == 2 ? g2[a][r] : g4[a][r]; };
    auto BT = [&](int a, int r) { return tile == 2 ? bt2[a][r] : bt4[a][r]; };
    auto AT = [&](int a, int r) { return tile == 2 ? at2[a][r] : at4[a][r]; };
    const int tile_rows = (s.height + tile - 1) / tile, tile_cols = (s.width + tile - 1) / tile;
    const int positions = patch * patch;
    // |Bᵀ||d||B| for every channel and tile: (C_in, tiles, patch, patch).
    std::vector<double> abs_v(std::size_t(s.in_channels) * tile_rows * tile_cols * positions, 0.0);
    for (int c = 0; c < s.in_channels; ++c)
        for (int ti = 0; ti < tile_rows; ++ti)
            for (int tj = 0; tj < tile_cols; ++tj) {
                double d[6][6];
                for (int r = 0; r < patch; ++r)
                    for (int q = 0; q < patch; ++q) {
                        const int i = tile * ti - 1 + r, j = tile * tj - 1 + q;
                        const bool inside = i >= 0 && i < s.height && j >= 0 && j < s.width;
                        d[r][q] = inside ? std::fabs(x[(std::size_t(c) * s.height + i) * s.width + j])
                                         : 0.0;
                    }
                double* v = &abs_v[((std::size_t(c) * tile_rows + ti) * tile_cols + tj) * positions];
                for (int a = 0; a < patch; ++a)
                    for (int b = 0; b < patch; ++b)
                        for (int r = 0; r < patch; ++r)
                            for (int q = 0; q < patch; ++q)
                                v[a * patch + b] += BT(a, r) * d[r][q] * BT(b, q);
            }
    double max_terms = 0.0;
    std::vector<double> abs_u(std::size_t(s.in_channels) * positions);
    for (int o = 0; o < s.out_channels; ++o) {
        for (int c = 0; c < s.in_channels; ++c)  // |G||g||Gᵀ|
            for (int a = 0; a < patch; ++a)
                for (int b = 0; b < patch; ++b) {
                    double sum = 0.0;
                    for (int r = 0; r < 3; ++r)
                        for (int q = 0; q < 3; ++q)
                            sum += G(a, r) *
                                   std::fabs(w[((std::size_t(o) * s.in_channels + c) * 3 + r) * 3 + q]) *
                                   G(b, q);
                    abs_u[std::size_t(c) * positions + a * patch + b] = sum;
                }
        for (int ti = 0; ti < tile_rows; ++ti)
            for (int tj = 0; tj < tile_cols; ++tj) {
                double p[36] = {};
                for (int c = 0; c < s.in_channels; ++c) {
                    const double* v = &abs_v[((std::size_t(c) * tile_rows + ti) * tile_cols + tj) * positions];
                    for (int e = 0; e < positions; ++e) p[e] += abs_u[std::size_t(c) * positions + e] * v[e];
                }
                for (int r = 0; r < tile; ++r)
                    for (int q = 0; q < tile; ++q) {
                        if (tile * ti + r >= s.height || tile * tj + q >= s.width) continue;  // cut tile
                        double y = 0.0;
                        for (int a = 0; a < patch; ++a)
                            for (int b = 0; b < patch; ++b) y += AT(r, a) * p[a * patch + b] * AT(q, b);
                        max_terms = std::max(max_terms, y);
                    }
            }
    }
    return max_terms;
}

// The depth of the bound above: C + 8 for F(2×2), C + 14 for F(4×4).
int winograd_depth(int channels, int tile) { return channels + (tile == 2 ? 8 : 14); }

// The backward pass is the forward convolution of dy with w'[c,o] = flip(w[o,c])
// (engine/backends/cpu/cpu_conv.cpp); its Winograd bound is the forward's for that convolution.
double winograd_backward_abs_terms(const ConvShape& s, const std::vector<float>& dy,
                                   const std::vector<float>& w, int tile = 2) {
    std::vector<float> flipped(w.size());
    for (int o = 0; o < s.out_channels; ++o)
        for (int c = 0; c < s.in_channels; ++c)
            for (int t = 0; t < 9; ++t)
                flipped[(std::size_t(c) * s.out_channels + o) * 9 + t] =
                    w[(std::size_t(o) * s.in_channels + c) * 9 + (8 - t)];
    const ConvShape transposed{s.out_channels, s.in_channels, s.height, s.width};
    return winograd_abs_terms(transposed, dy, flipped, tile);
}


}  // namespace

TEST_CASE("conv3x3 forward and backward-data match naive loops", "[cpu][conv]") {
    CpuBackend backend;
    // The direct (im2col) path, whose error the accumulation bound describes.
    const ConvAlgorithmScope direct(Conv3x3Algorithm::direct);
    // Odd sizes, a 1×1 image (only the centre tap), a single column, and one
    // large enough that each thread's column tile covers only part of the
    // height (64·9·300 floats per row against a 2M-float tile).
    const ConvShape shapes[] = {{3, 5, 7, 9}, {2, 3, 1, 1}, {4, 2, 5, 1}, {1, 1, 2, 3},
                                {64, 8, 33, 300}};
    unsigned seed = 1;
    for (const ConvShape& s : shapes) {
        CAPTURE(s.in_channels, s.out_channels, s.height, s.width);
        const std::size_t plane = std::size_t(s.height) * s.width;
        const auto x = random_vector(s.in_channels * plane, seed++);
        const auto w = random_vector(std::size_t(s.out_channels) * s.in_channels * 9, seed++);
        const auto dy = random_vector(s.out_channels * plane, seed++);

        std::vector<float> y(s.out_channels * plane, std::numeric_limits<float>::quiet_NaN());
        backend.conv3x3_forward(s, x.data(), w.data(), y.data());
        const Reference forward = naive_conv(s, x, w);
        // K = C_in·9 products per output, |w|,|x| < 1.
        const double forward_tol = accumulation_bound(s.in_channels * 9, forward.max_abs_terms);
        const auto fc = compare(y, forward.value, forward_tol, 0.0);
        INFO("forward\n" << fc.report);
        CHECK(fc.ok);

        // dx starts as NaN: the op must overwrite every element.
        std::vector<float> dx(s.in_channels * plane, std::numeric_limits<float>::quiet_NaN());
        backend.conv3x3_backward_data(s, dy.data(), w.data(), dx.data());
        const Reference backward = naive_conv_backward(s, dy, w);
        const double backward_tol = accumulation_bound(s.out_channels * 9, backward.max_abs_terms);
        const auto bc = compare(dx, backward.value, backward_tol, 0.0);
        INFO("backward-data\n" << bc.report);
        CHECK(bc.ok);
    }
}

TEST_CASE("conv3x3 (direct) gives the same bits with one and two threads", "[cpu][conv]") {
    CpuBackend backend;
    const ConvAlgorithmScope direct(Conv3x3Algorithm::direct);
    const ConvShape s{16, 6, 21, 17};
    const std::size_t plane = std::size_t(s.height) * s.width;
    const auto x = random_vector(s.in_channels * plane, 11);
    const auto w = random_vector(std::size_t(s.out_channels) * s.in_channels * 9, 12);
    const int threads = omp_get_max_threads();
    std::vector<float> one(s.out_channels * plane), two(s.out_channels * plane);
    omp_set_num_threads(1);
    backend.conv3x3_forward(s, x.data(), w.data(), one.data());
    omp_set_num_threads(2);
    backend.conv3x3_forward(s, x.data(), w.data(), two.data());
    omp_set_num_threads(threads);
    // The tiles do not follow the thread count (kWorkSplit): the same bits.
    CHECK(compare(two, one, 0.0, 0.0).ok);
    const Reference reference = naive_conv(s, x, w);
    const double tol = accumulation_bound(s.in_channels * 9, reference.max_abs_terms);
    CHECK(compare(one, reference.value, tol, 0.0).ok);
}

TEST_CASE("conv3x3 by Winograd F(2x2,3x3) and F(4x4,3x3) match naive loops within their bound",
          "[cpu][conv]") {
    for (const int tile : {2, 4}) {
        CAPTURE(tile);
        CpuBackend backend;
        const ConvAlgorithmScope winograd(tile == 2 ? Conv3x3Algorithm::winograd
                                                    : Conv3x3Algorithm::winograd4x4);
        // Odd heights and widths (cut tiles at the bottom and right), a 1×1 image,
        // single rows and columns, few channels; {64, 8, 33, 300} has 150 tile
        // columns (two runs of at most 128 in the transforms) and several blocks per
        // thread; {40, 24, 6, 2} is reduced over 24 channels in the backward pass.
        const ConvShape shapes[] = {{3, 5, 7, 9}, {2, 3, 1, 1}, {4, 2, 5, 1}, {1, 1, 2, 3},
                                    {5, 4, 1, 8},  {16, 6, 21, 17}, {40, 24, 6, 2},
                                    {64, 8, 33, 300}};
        unsigned seed = 101;
        for (const ConvShape& s : shapes) {
            CAPTURE(s.in_channels, s.out_channels, s.height, s.width);
            const std::size_t plane = std::size_t(s.height) * s.width;
            const auto x = random_vector(s.in_channels * plane, seed++);
            const auto w = random_vector(std::size_t(s.out_channels) * s.in_channels * 9, seed++);
            const auto dy = random_vector(s.out_channels * plane, seed++);

            // NaN-filled outputs: the op must overwrite every element, cut tiles included.
            std::vector<float> y(s.out_channels * plane, std::numeric_limits<float>::quiet_NaN());
            backend.conv3x3_forward(s, x.data(), w.data(), y.data());
            // The Winograd bound (above).
            const double forward_tol = accumulation_bound(winograd_depth(s.in_channels, tile),
                                                          winograd_abs_terms(s, x, w, tile));
            const auto fc = compare(y, naive_conv(s, x, w).value, forward_tol, 0.0);
            INFO("forward\n" << fc.report);
            CHECK(fc.ok);

            std::vector<float> dx(s.in_channels * plane, std::numeric_limits<float>::quiet_NaN());
            backend.conv3x3_backward_data(s, dy.data(), w.data(), dx.data());
            // The same bound for the convolution with the flipped, transposed filters,
            // summed over C_out.
            const double backward_tol =
                accumulation_bound(winograd_depth(s.out_channels, tile),
                                   winograd_backward_abs_terms(s, dy, w, tile));
            const auto bc = compare(dx, naive_conv_backward(s, dy, w).value, backward_tol, 0.0);
            INFO("backward-data\n" << bc.report);
            CHECK(bc.ok);
        }
    }
}

TEST_CASE("conv3x3 by Winograd is exact for small integers and thread-count independent",
          "[cpu][conv]") {
    // Integers in [−4, 4] with 16 channels: every intermediate (halves of
    // filter sums included) is a multiple of ¼ below 2¹⁵, exact in float, so
    // the result must equal the naive sum bit for bit. A wrong tile offset, a
    // mirrored index or a cut tile written short cannot hide inside a tolerance.
    CpuBackend backend;
    const ConvAlgorithmScope winograd(Conv3x3Algorithm::winograd);
    const ConvShape s{16, 7, 23, 19};
    const std::size_t plane = std::size_t(s.height) * s.width;
    auto integers = [](std::size_t count, unsigned seed) {
        std::vector<float> v = random_vector(count, seed);
        for (float& value : v) value = std::round(4.0f * value);
        return v;
    };
    const auto x = integers(s.in_channels * plane, 201);
    const auto w = integers(std::size_t(s.out_channels) * s.in_channels * 9, 202);
    const auto dy = integers(s.out_channels * plane, 203);
    const int threads = omp_get_max_threads();
    for (int t : {1, 2}) {
        CAPTURE(t);
        omp_set_num_threads(t);
        std::vector<float> y(s.out_channels * plane), dx(s.in_channels * plane);
        backend.conv3x3_forward(s, x.data(), w.data(), y.data());
        backend.conv3x3_backward_data(s, dy.data(), w.data(), dx.data());
        const auto fc = compare(y, naive_conv(s, x, w).value, 0.0, 0.0);  // exact: see above
        INFO("forward\n" << fc.report);
        CHECK(fc.ok);
        const auto bc = compare(dx, naive_conv_backward(s, dy, w).value, 0.0, 0.0);
        INFO("backward-data\n" << bc.report);
        CHECK(bc.ok);
    }
    omp_set_num_threads(threads);
}

TEST_CASE("conv3x3 by Winograd on VGG-19's real weights and activations: within the bound",
          "[cpu][conv][weights]") {
    // The inputs a real run convolves: the shared VGG-19 weights, and each layer's
    // input computed by the network itself (direct convolutions) from the
    // Tübingen photograph at 64×64 (conv5_1 then sees 4×4, 4 tiles of F(4×4)). Each
    // layer's forward and backward-data (dy: the layer's own output) by F(2×2) and
    // F(4×4) must stay within the rigorous bound against the double-precision
    // oracle; the measured errors are printed beside the direct method's
    // (docs/BENCHMARKS.md quotes them).
    const std::string weights_path = nst::test::shared_weights_path();
    if (!nst::test::file_exists(weights_path)) {
        WARN("skipped: " << weights_path << " not found (the shared assets)");
        return;
    }
    const nst::VggWeights weights = nst::read_weights(weights_path);
    const int deepest = nst::vgg19_layer_index("conv5_1");
    REQUIRE(int(weights.layers.size()) > deepest);
    CpuBackend backend;
    const nst::Image photo = nst::resize_image(
        nst::load_image(nst::test::shared_image_path("tubingen.jpg")), 64, 64);
    std::vector<std::vector<float>> outputs;  // post-ReLU output of each layer, (C, h, w)
    std::vector<int> sides;
    {
        const ConvAlgorithmScope direct(Conv3x3Algorithm::direct);
        nst::Vgg19 net(backend, weights, deepest, PoolMode::average);
        auto acts = net.plan(64, 64);
        net.forward(photo.pixels.data(), acts);
        for (int l = 0; l <= deepest; ++l) {
            const std::size_t count = std::size_t(net.channels(l)) * acts.plane(l);
            outputs.emplace_back(acts.output(l), acts.output(l) + count);
            sides.push_back(acts.height(l));
        }
    }
    std::printf("relative L2 error against the double-precision oracle (forward / backward-data):\n");
    for (const char* name : {"conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv4_1",
                             "conv4_2", "conv5_1"}) {
        CAPTURE(name);
        const int l = nst::vgg19_layer_index(name);
        const nst::ConvWeights& layer = weights.layers[l];
        const int side = sides[l];
        // The layer's input: the previous layer's output, average-pooled when the
        // side halves.
        std::vector<float> x = outputs[l - 1];
        if (sides[l - 1] != side) {
            std::vector<float> pooled(std::size_t(layer.in_channels) * side * side);
            backend.pool_forward(PoolMode::average, layer.in_channels, sides[l - 1], sides[l - 1],
                                 x.data(), pooled.data());
            x = pooled;
        }
        const ConvShape s{layer.in_channels, layer.out_channels, side, side};
        const std::vector<float>& w = layer.weight;
        const std::vector<float>& dy = outputs[l];
        const Reference forward = naive_conv(s, x, w);
        const Reference backward = naive_conv_backward(s, dy, w);
        double errors[3][2] = {};
        const Conv3x3Algorithm algorithms[3] = {Conv3x3Algorithm::direct, Conv3x3Algorithm::winograd,
                                                Conv3x3Algorithm::winograd4x4};
        for (int a = 0; a < 3; ++a) {
            const ConvAlgorithmScope scope(algorithms[a]);
            const int tile = a == 1 ? 2 : 4;
            CAPTURE(a == 0 ? "direct" : a == 1 ? "F(2x2,3x3)" : "F(4x4,3x3)");
            std::vector<float> y(forward.value.size()), dx(backward.value.size());
            backend.conv3x3_forward(s, x.data(), w.data(), y.data());
            backend.conv3x3_backward_data(s, dy.data(), w.data(), dx.data());
            // The direct path's bound (K = 9·C products), or Winograd's (above).
            const double forward_tol =
                a == 0 ? accumulation_bound(9 * s.in_channels, forward.max_abs_terms)
                       : accumulation_bound(winograd_depth(s.in_channels, tile),
                                            winograd_abs_terms(s, x, w, tile));
            const double backward_tol =
                a == 0 ? accumulation_bound(9 * s.out_channels, backward.max_abs_terms)
                       : accumulation_bound(winograd_depth(s.out_channels, tile),
                                            winograd_backward_abs_terms(s, dy, w, tile));
            const auto fc = compare(y, forward.value, forward_tol, 0.0);
            INFO("forward\n" << fc.report);
            CHECK(fc.ok);
            const auto bc = compare(dx, backward.value, backward_tol, 0.0);
            INFO("backward-data\n" << bc.report);
            CHECK(bc.ok);
            errors[a][0] = fc.relative_l2;
            errors[a][1] = bc.relative_l2;
        }
        std::printf("  %-8s direct %.2e / %.2e   F(2x2) %.2e / %.2e   F(4x4) %.2e / %.2e\n", name,
                    errors[0][0], errors[0][1], errors[1][0], errors[1][1], errors[2][0],
                    errors[2][1]);
    }
}

TEST_CASE("conv3x3 by Winograd: every instruction-set variant within the bound, AVX2 bit-exact",
          "[cpu][conv][isa]") {
    // The tile transforms are compiled per instruction set (engine/backends/cpu/cpu_isa.h)
    // with the same operations in the same order and no FMA contraction; the
    // products are OpenBLAS's in the generic and AVX2 variants, so those two must
    // agree bit for bit. The AVX-512 variant multiplies with its own kernel
    // (engine/backends/cpu/cpu_gemm.h), other roundings: it must meet the Winograd bound
    // against the naive loops, like the others. Odd shapes with cut tiles, runs
    // longer than one segment, column counts that are not multiples of the
    // kernel's 32 and row counts not multiples of its 8.
    using nst::cpu::CpuIsa;
    struct IsaScope {
        ~IsaScope() { nst::cpu::reset_cpu_isa(); }
    } restore;
    // {256, 240, 9, 10}: filters large enough for the shared blocks (all threads
    // on one block; engine/backends/cpu/cpu_winograd.cpp), 9 or 15 tiles.
    const ConvShape shapes[] = {{16, 24, 23, 19}, {24, 13, 9, 530}, {3, 5, 7, 9}, {40, 70, 4, 4},
                                {256, 240, 9, 10}};
    unsigned seed = 301;
    for (const ConvShape& s : shapes) {
        CAPTURE(s.in_channels, s.out_channels, s.height, s.width);
        const std::size_t plane = std::size_t(s.height) * s.width;
        const auto x = random_vector(s.in_channels * plane, seed++);
        const auto w = random_vector(std::size_t(s.out_channels) * s.in_channels * 9, seed++);
        const auto dy = random_vector(s.out_channels * plane, seed++);
        const Reference forward = naive_conv(s, x, w);
        const Reference backward = naive_conv_backward(s, dy, w);
        for (const int tile : {2, 4}) {
            CAPTURE(tile);
            const ConvAlgorithmScope scope(tile == 2 ? Conv3x3Algorithm::winograd
                                                     : Conv3x3Algorithm::winograd4x4);
            const double forward_tol = accumulation_bound(winograd_depth(s.in_channels, tile),
                                                          winograd_abs_terms(s, x, w, tile));
            const double backward_tol =
                accumulation_bound(winograd_depth(s.out_channels, tile),
                                   winograd_backward_abs_terms(s, dy, w, tile));
            std::vector<float> y_generic, dx_generic;
            for (const CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
                CAPTURE(nst::cpu::cpu_isa_name(isa));
                if (!nst::cpu::cpu_isa_supported(isa)) {
                    WARN("skipped: this CPU lacks the " << nst::cpu::cpu_isa_name(isa)
                                                        << " variant, which is not checked here");
                    continue;
                }
                nst::cpu::set_cpu_isa(isa);
                CpuBackend backend;
                std::vector<float> y(s.out_channels * plane), dx(s.in_channels * plane);
                backend.conv3x3_forward(s, x.data(), w.data(), y.data());
                backend.conv3x3_backward_data(s, dy.data(), w.data(), dx.data());
                const auto fc = compare(y, forward.value, forward_tol, 0.0);
                INFO("forward\n" << fc.report);
                CHECK(fc.ok);
                const auto bc = compare(dx, backward.value, backward_tol, 0.0);
                INFO("backward-data\n" << bc.report);
                CHECK(bc.ok);
                if (isa == CpuIsa::generic) {
                    y_generic = y;
                    dx_generic = dx;
                } else if (isa == CpuIsa::avx2) {
                    // Exact: the same operations in the same order as the generic loops.
                    const auto fe = compare(y, y_generic, 0.0, 0.0);
                    INFO("forward, AVX2 against generic\n" << fe.report);
                    CHECK(fe.ok);
                    const auto be = compare(dx, dx_generic, 0.0, 0.0);
                    INFO("backward-data, AVX2 against generic\n" << be.report);
                    CHECK(be.ok);
                }
            }
        }
    }
}

TEST_CASE("conv3x3 by Winograd gives the same bits with one, two and three threads",
          "[cpu][conv]") {
    // The work is split the same way for any thread count (kWorkSplit blocks,
    // or shared blocks of kSharedBudgets budgets: cpu_winograd.h), so every
    // output value is computed by the same operations. Shared blocks (the two
    // large shapes, in F(4×4)) and per-thread blocks ({64, 8, 33, 300}: several
    // per thread; {64, 64, 16, 12}: conv5-sized, where a split that followed the
    // thread count changed OpenBLAS's summation with 2 threads), both tile sizes.
    const ConvShape shapes[] = {{256, 240, 9, 10}, {200, 320, 12, 12}, {64, 8, 33, 300}, {64, 64, 12, 16}};
    unsigned seed = 401;
    for (const ConvShape& s : shapes) {
        CAPTURE(s.in_channels, s.out_channels, s.height, s.width);
        const std::size_t plane = std::size_t(s.height) * s.width;
        const auto x = random_vector(s.in_channels * plane, seed++);
        const auto w = random_vector(std::size_t(s.out_channels) * s.in_channels * 9, seed++);
        const auto dy = random_vector(s.out_channels * plane, seed++);
        for (const Conv3x3Algorithm algorithm :
             {Conv3x3Algorithm::winograd, Conv3x3Algorithm::winograd4x4}) {
            const ConvAlgorithmScope scope(algorithm);
            std::vector<float> y[3], dx[3];
            for (int t : {1, 2, 3}) {
                CpuBackend backend(t);
                y[t - 1].resize(s.out_channels * plane);
                dx[t - 1].resize(s.in_channels * plane);
                backend.conv3x3_forward(s, x.data(), w.data(), y[t - 1].data());
                backend.conv3x3_backward_data(s, dy.data(), w.data(), dx[t - 1].data());
            }
            for (int t : {2, 3}) {
                CAPTURE(t);
                const auto fc = compare(y[t - 1], y[0], 0.0, 0.0);  // exact: see above
                INFO("forward, t threads against 1\n" << fc.report);
                CHECK(fc.ok);
                const auto bc = compare(dx[t - 1], dx[0], 0.0, 0.0);
                INFO("backward-data, t threads against 1\n" << bc.report);
                CHECK(bc.ok);
            }
        }
    }
}

TEST_CASE("CPU instruction-set variants: names, support and forcing", "[cpu][isa]") {
    using nst::cpu::CpuIsa;
    CHECK(nst::cpu::cpu_isa_supported(CpuIsa::generic));
    CHECK(nst::cpu::cpu_isa_supported(nst::cpu::cpu_isa()));
    for (const CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512}) {
        CAPTURE(nst::cpu::cpu_isa_name(isa));
        if (nst::cpu::cpu_isa_supported(isa)) {
            nst::cpu::set_cpu_isa(isa);
            CHECK(nst::cpu::cpu_isa() == isa);
        } else {
            CHECK_THROWS_AS(nst::cpu::set_cpu_isa(isa), nst::Error);
        }
    }
    nst::cpu::reset_cpu_isa();
}

TEST_CASE("conv3x3 automatic choice: direct for few channels, Winograd for many", "[cpu][conv]") {
    // conv1_1 (3 input channels) keeps im2col; the sums over ≥ 16 channels take
    // Winograd: F(4×4, 3×3) on planes of 32×32 and more, else F(2×2, 3×3).
    CHECK_FALSE(nst::cpu::use_winograd(3, 256, 256));
    CHECK(nst::cpu::use_winograd(64, 256, 256));
    CHECK(nst::cpu::winograd_tile(256, 256) == 4);
    CHECK(nst::cpu::winograd_tile(32, 32) == 4);
    CHECK(nst::cpu::winograd_tile(16, 16) == 2);  // conv5_1 at 256²: F(2×2)
    {
        const ConvAlgorithmScope direct(Conv3x3Algorithm::direct);
        CHECK_FALSE(nst::cpu::use_winograd(512, 32, 32));
    }
    {
        const ConvAlgorithmScope winograd(Conv3x3Algorithm::winograd);
        CHECK(nst::cpu::use_winograd(3, 32, 32));
        CHECK(nst::cpu::winograd_tile(32, 32) == 2);
    }
    {
        const ConvAlgorithmScope winograd(Conv3x3Algorithm::winograd4x4);
        CHECK(nst::cpu::use_winograd(3, 32, 32));
        CHECK(nst::cpu::winograd_tile(32, 32) == 4);
    }
}

TEST_CASE("bias_relu_forward and relu_backward match the formulas", "[cpu][relu]") {
    CpuBackend backend;
    const int channels = 5;
    const std::size_t plane = 37;
    auto y = random_vector(channels * plane, 21);
    const auto bias = random_vector(channels, 22, -0.5f, 0.5f);
    std::vector<double> expected(y.size());
    for (int c = 0; c < channels; ++c)
        for (std::size_t p = 0; p < plane; ++p)
            expected[c * plane + p] = std::max(0.0, double(y[c * plane + p]) + double(bias[c]));
    backend.bias_relu_forward(channels, plane, bias.data(), y.data());
    // One float addition: relative error ≤ u.
    const auto rc = compare(y, expected, 0.0, kUnit);
    INFO(rc.report);
    CHECK(rc.ok);
    CHECK(std::count(y.begin(), y.end(), 0.0f) > 0);  // the input crossed zero somewhere

    const auto incoming = random_vector(y.size(), 23);
    std::vector<float> dy = incoming;
    backend.relu_backward(y.size(), y.data(), dy.data());
    std::vector<double> expected_dy(y.size());
    for (std::size_t i = 0; i < y.size(); ++i) expected_dy[i] = y[i] > 0.0f ? incoming[i] : 0.0;
    // A mask: exact.
    CHECK(compare(dy, expected_dy, 0.0, 0.0).ok);
}

TEST_CASE("bias_relu_forward keeps NaN, and relu_backward passes dy through where y is NaN",
          "[cpu][relu]") {
    // The CUDA kernels call the same per-element functions (kernels/activation.h):
    // fmaxf(0, NaN) = 0 there would hide a blow-up from L-BFGS's non-finite check.
    CpuBackend backend;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    const int channels = 2;
    const std::size_t plane = 4;
    std::vector<float> y = {nan, -1.0f, 2.0f, -inf, nan, inf, 0.5f, -0.5f};
    const std::vector<float> bias = {0.25f, nan};  // channel 1: a NaN bias
    backend.bias_relu_forward(channels, plane, bias.data(), y.data());
    INFO("y = " << y[0] << " " << y[1] << " " << y[2] << " " << y[3] << " | " << y[4] << " "
                << y[5] << " " << y[6] << " " << y[7]);
    CHECK(std::isnan(y[0]));   // NaN + b
    CHECK(y[1] == 0.0f);       // −1 + ¼ < 0
    CHECK(y[2] == 2.25f);      // exact in float
    CHECK(y[3] == 0.0f);       // −∞ + ¼
    for (std::size_t p = 0; p < plane; ++p) CHECK(std::isnan(y[plane + p]));  // x + NaN
    CHECK_FALSE(backend.all_finite(y.size(), y.data()));

    // relu_backward zeroes dy where y ≤ 0; a NaN y compares false, so dy passes
    // through unchanged there (the NaN is already in the forward output).
    const std::vector<float> post = {nan, 0.0f, 2.25f, -0.0f, nan, inf, 1.0f, 3.0f};
    std::vector<float> dy = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f};
    backend.relu_backward(post.size(), post.data(), dy.data());
    const std::vector<float> expected_dy = {1.0f, 0.0f, 3.0f, 0.0f, 5.0f, 6.0f, 7.0f, 8.0f};
    for (std::size_t i = 0; i < dy.size(); ++i) {
        INFO("i = " << i << ": y = " << post[i] << ", dy = " << dy[i] << ", expected "
                    << expected_dy[i]);
        CHECK(dy[i] == expected_dy[i]);
    }
}

TEST_CASE("pooling forward matches naive loops on odd sizes", "[cpu][pool]") {
    CpuBackend backend;
    const int channels = 3, height = 7, width = 9, oh = height / 2, ow = width / 2;
    const auto x = random_vector(std::size_t(channels) * height * width, 31);
    std::vector<double> average(std::size_t(channels) * oh * ow), maximum(average.size());
    for (int c = 0; c < channels; ++c)
        for (int i = 0; i < oh; ++i)
            for (int j = 0; j < ow; ++j) {
                double sum = 0.0, best = -1e300;
                for (int u = 0; u < 2; ++u)
                    for (int v = 0; v < 2; ++v) {
                        const double value = x[(std::size_t(c) * height + 2 * i + u) * width + 2 * j + v];
                        sum += value;
                        best = std::max(best, value);
                    }
                average[(std::size_t(c) * oh + i) * ow + j] = sum / 4.0;
                maximum[(std::size_t(c) * oh + i) * ow + j] = best;
            }
    std::vector<float> y(average.size(), std::numeric_limits<float>::quiet_NaN());
    backend.pool_forward(PoolMode::average, channels, height, width, x.data(), y.data());
    // Three float additions of values < 1 (×¼ is exact): |error| ≤ γ₃ · 4 / 4.
    const auto ac = compare(y, average, 3.0 * kUnit / (1 - 3 * kUnit) * 1.0, 0.0);
    INFO("average\n" << ac.report);
    CHECK(ac.ok);
    backend.pool_forward(PoolMode::max, channels, height, width, x.data(), y.data());
    CHECK(compare(y, maximum, 0.0, 0.0).ok);  // a selection: exact
}

TEST_CASE("preprocess matches the formula for RGB and BGR", "[cpu][preprocess]") {
    CpuBackend backend;
    const std::size_t plane = 35;
    const auto x = random_vector(3 * plane, 41, 0.0f, 1.0f);
    for (bool bgr : {false, true}) {
        nst::Preprocessing pre;
        pre.bgr = bgr;
        pre.pixel_scale = 255.0f;
        const float mean[3] = {103.939f, 116.779f, 123.68f}, std_dev[3] = {0.5f, 1.0f, 2.5f};
        std::copy(mean, mean + 3, pre.mean);
        std::copy(std_dev, std_dev + 3, pre.std);
        std::vector<float> out(3 * plane);
        backend.preprocess(pre, plane, x.data(), out.data());
        std::vector<double> expected(3 * plane);
        double bound = 0.0;
        for (int c = 0; c < 3; ++c) {
            const int source = bgr ? 2 - c : c;
            for (std::size_t p = 0; p < plane; ++p) {
                const double sx = double(pre.pixel_scale) * x[source * plane + p];
                expected[c * plane + p] = (sx - pre.mean[c]) / pre.std[c];
                // Three roundings (×, −, ÷), each ≤ u relative to its operands.
                bound = std::max(bound, 3.0 * kUnit * (std::fabs(sx) + pre.mean[c]) / pre.std[c] * 1.01);
            }
        }
        const auto pc = compare(out, expected, bound, 0.0);
        INFO((bgr ? "BGR\n" : "RGB\n") << pc.report);
        CHECK(pc.ok);
    }
}

TEST_CASE("gram matches naive loops and is symmetric", "[cpu][gram]") {
    CpuBackend backend;
    // N = 5, M = 37 (one block); N = 150 (blocks of 64 with a ragged last one).
    const std::pair<int, std::size_t> shapes[] = {{5, 37}, {150, 300}, {17, 1}};
    unsigned seed = 51;
    for (const auto& [n, m] : shapes) {
        CAPTURE(n, m);
        const auto f = random_vector(n * m, seed++);
        std::vector<double> expected(std::size_t(n) * n);
        double max_abs = 0.0;
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j) {
                double sum = 0.0, abs_sum = 0.0;
                for (std::size_t k = 0; k < m; ++k) {
                    const double t = double(f[i * m + k]) * f[j * m + k];
                    sum += t;
                    abs_sum += std::fabs(t);
                }
                expected[std::size_t(i) * n + j] = sum;
                max_abs = std::max(max_abs, abs_sum);
            }
        std::vector<float> g(std::size_t(n) * n, std::numeric_limits<float>::quiet_NaN());
        backend.gram(n, m, f.data(), g.data());
        // K = M products per entry.
        const auto gc = compare(g, expected, accumulation_bound(int(m), max_abs), 0.0);
        INFO(gc.report);
        CHECK(gc.ok);
        bool symmetric = true;
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < i; ++j) symmetric = symmetric && g[i * n + j] == g[j * n + i];
        CHECK(symmetric);
    }
}

TEST_CASE("loss values match double-precision formulas", "[cpu][loss]") {
    CpuBackend backend;
    SECTION("content") {
        const std::size_t count = 40000;  // more than two reduction chunks
        const auto f = random_vector(count, 61), p = random_vector(count, 62);
        std::vector<float> grad(count, 0.0f);
        const double loss = backend.content_loss(count, f.data(), p.data(), 1.0f, grad.data());
        double expected = 0.0;
        for (std::size_t i = 0; i < count; ++i) expected += 0.5 * (double(f[i]) - p[i]) * (double(f[i]) - p[i]);
        // Both are double sums of the same exact terms in different orders: relative
        // error ~ count · 2⁻⁵³.
        CHECK(loss == Approx(expected).epsilon(1e-11));
    }
    SECTION("style") {
        const int n = 5;
        const std::size_t m = 37;
        const auto f = random_vector(n * m, 63), a = random_vector(n * n, 64, 0.0f, 10.0f);
        std::vector<float> g(n * n), grad(n * m, 0.0f);
        backend.gram(n, m, f.data(), g.data());
        const double loss = backend.style_loss(n, m, f.data(), g.data(), a.data(), 1.0f, grad.data());
        double expected = 0.0;
        for (int i = 0; i < n * n; ++i) expected += (double(g[i]) - a[i]) * (double(g[i]) - a[i]);
        expected /= 4.0 * n * n * double(m) * double(m);
        CHECK(loss == Approx(expected).epsilon(1e-12));  // double sum of 25 exact terms
    }
    SECTION("tv") {
        const int channels = 3, height = 7, width = 9;
        const auto x = random_vector(std::size_t(channels) * height * width, 65);
        std::vector<float> grad(x.size(), 0.0f);
        const double loss = backend.tv_loss(channels, height, width, x.data(), 1.0f, grad.data());
        double expected = 0.0;
        for (int c = 0; c < channels; ++c)
            for (int i = 0; i < height; ++i)
                for (int j = 0; j < width; ++j) {
                    const double value = x[(std::size_t(c) * height + i) * width + j];
                    if (j + 1 < width) {
                        const double d = x[(std::size_t(c) * height + i) * width + j + 1] - value;
                        expected += d * d;
                    }
                    if (i + 1 < height) {
                        const double d = x[(std::size_t(c) * height + i + 1) * width + j] - value;
                        expected += d * d;
                    }
                }
        CHECK(loss == Approx(expected).epsilon(1e-12));  // double sums, same exact terms
    }
}

TEST_CASE("temporal loss: the value against a double-precision loop, the gradient accumulated",
          "[cpu][loss][temporal]") {
    CpuBackend backend;
    const int channels = 3;
    const std::size_t plane = 97 * 89;  // 3·plane = 25899: two reduction chunks, a ragged tail
    const std::size_t count = channels * plane;
    const auto x = random_vector(count, 91), target = random_vector(count, 92);
    auto pixel_weights = random_vector(plane, 93, 0.0f, 1.0f);
    for (std::size_t p = 0; p < plane; p += 5) pixel_weights[p] = 0.0f;  // occluded pixels
    for (std::size_t p = 1; p < plane; p += 7) pixel_weights[p] = 1.0f;

    double sum = 0.0;
    for (std::size_t i = 0; i < count; ++i) {
        const double d = double(x[i]) - double(target[i]);
        sum += double(pixel_weights[i % plane]) * d * d;
    }
    const double expected = sum / double(count);
    std::vector<float> zero_start(count, 0.0f);
    const double loss = backend.temporal_loss(channels, plane, x.data(), target.data(), pixel_weights.data(),
                                              0.5f, zero_start.data());
    // The same terms (exact differences, two double products each) summed in
    // another order, then 1/D applied instead of a division: positive terms, so
    // each sum is within (n − 1)·2⁻⁵³ of the exact one, 2·count·2⁻⁵³ ≈ 5.7e-12 in
    // all. Measured: 1.2e-15.
    const double bound = 2.0 * double(count) * std::ldexp(1.0, -53);
    std::printf("temporal loss: value relative error %.3g (bound %.3g)\n", std::fabs(loss - expected) / expected,
                bound);
    CHECK(std::fabs(loss - expected) <= bound * expected);

    // Accumulated, never overwritten: from a prefilled gradient, each element is
    // the prefill plus the very product added to a zero one (one rounding).
    const auto prefill = random_vector(count, 94);
    std::vector<float> grad = prefill;
    const double again = backend.temporal_loss(channels, plane, x.data(), target.data(), pixel_weights.data(),
                                               0.5f, grad.data());
    CHECK(again == loss);  // the value is written, not added to
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < count; ++i)
        if (grad[i] != prefill[i] + zero_start[i]) {
            if (++wrong <= 5)
                UNSCOPED_INFO("grad[" << i << "] = " << grad[i] << ", prefill + step = " << prefill[i] + zero_start[i]);
        }
    CHECK(wrong == 0);
    // Weight 0: the value, and not a bit of the gradient changed.
    std::vector<float> untouched = prefill;
    CHECK(backend.temporal_loss(channels, plane, x.data(), target.data(), pixel_weights.data(), 0.0f,
                                untouched.data()) == loss);
    CHECK(untouched == prefill);
}

namespace {

// Naive bilinear sample of plane (H, W) at (px, py) in double, the point clamped
// to [0, W−1] × [0, H−1] (kernels/warp.h's definition, written independently).
double oracle_bilinear(const std::vector<float>& src, int c, int height, int width, double px, double py) {
    px = std::min(std::max(px, 0.0), double(width - 1));
    py = std::min(std::max(py, 0.0), double(height - 1));
    const int x0 = int(std::floor(px)), y0 = int(std::floor(py));
    const int x1 = std::min(x0 + 1, width - 1), y1 = std::min(y0 + 1, height - 1);
    const double ax = px - x0, ay = py - y0;
    const auto at = [&](int y, int x) { return double(src[(std::size_t(c) * height + y) * width + x]); };
    return (1 - ay) * ((1 - ax) * at(y0, x0) + ax * at(y0, x1)) + ay * ((1 - ax) * at(y1, x0) + ax * at(y1, x1));
}

std::vector<float> constant_flow(int height, int width, float u, float v) {
    std::vector<float> flow(2 * std::size_t(height) * width, u);
    std::fill(flow.begin() + std::ptrdiff_t(height) * width, flow.end(), v);
    return flow;
}

}  // namespace

TEST_CASE("warp_bilinear: integer shifts, borders, sub-pixel flows, zero and NaN flows", "[cpu][warp]") {
    CpuBackend backend;
    const int channels = 3, height = 13, width = 17;
    const std::size_t plane = std::size_t(height) * width, count = channels * plane;
    const auto src = random_vector(count, 95);
    const auto at = [&](int c, int y, int x) { return src[(std::size_t(c) * height + y) * width + x]; };
    std::vector<float> dst(count);

    SECTION("an integer translation is the shifted image; points outside take the edge") {
        for (const auto& shift : {std::pair<int, int>{2, -3}, {-5, 1}, {0, 4}, {40, -40}}) {
            const int u = shift.first, v = shift.second;
            backend.warp_bilinear(channels, height, width, src.data(),
                                  constant_flow(height, width, float(u), float(v)).data(), dst.data());
            // A whole-pixel point has weights 1 and 0: the source value itself, exactly.
            std::size_t interior = 0, border = 0, wrong = 0;
            for (int c = 0; c < channels; ++c)
                for (int y = 0; y < height; ++y)
                    for (int x = 0; x < width; ++x) {
                        const int sx = x + u, sy = y + v;
                        const bool inside = sx >= 0 && sx < width && sy >= 0 && sy < height;
                        const float want = at(c, std::min(std::max(sy, 0), height - 1),
                                              std::min(std::max(sx, 0), width - 1));
                        (inside ? interior : border) += 1;
                        const float got = dst[(std::size_t(c) * height + y) * width + x];
                        if (got != want && ++wrong <= 5)
                            UNSCOPED_INFO("shift (" << u << ", " << v << ") at (" << c << ", " << y << ", " << x
                                                    << "): " << got << ", expected " << want);
                    }
            INFO("shift (" << u << ", " << v << "): " << interior << " interior, " << border << " clamped");
            CHECK(wrong == 0);
        }
    }

    SECTION("a sub-pixel flow matches a double-precision bilinear oracle") {
        // Flows up to ±3 px, a third of the points leaving the frame.
        auto flow = random_vector(2 * plane, 96, -3.0f, 3.0f);
        backend.warp_bilinear(channels, height, width, src.data(), flow.data(), dst.data());
        std::vector<double> expected(count);
        for (int c = 0; c < channels; ++c)
            for (int y = 0; y < height; ++y)
                for (int x = 0; x < width; ++x) {
                    const std::size_t p = std::size_t(y) * width + x;
                    expected[c * plane + p] =
                        oracle_bilinear(src, c, height, width, x + double(flow[p]), y + double(flow[plane + p]));
                }
        // The float sample point x + u is rounded once, by at most 2⁻²⁴·|x + u| ≤
        // 2⁻²⁴·(W + 3) px (H + 3 for y); the sample's slope is at most
        // |s1 − s0| ≤ 2·max|s| = 2 per px. Then 1 − a (exact for a ≥ ½, one
        // rounding otherwise), six products and three sums of values ≤ 1: ≤ 10
        // roundings of 2⁻²⁴. Bound: 2⁻²⁴·(2·(W + H + 6) + 10) ≈ 4.9e-6. Measured: 8.2e-7
        // (the rounding of x + u near 16 px, 2⁻²⁰ px, on a slope near 2).
        const double bound = kUnit * (2.0 * (width + height + 6) + 10.0);
        const auto cmp = compare(dst, expected, bound, 0.0);
        double worst = 0.0;
        for (std::size_t i = 0; i < count; ++i) worst = std::max(worst, std::fabs(dst[i] - expected[i]));
        std::printf("warp_bilinear: sub-pixel flow, max |error| %.3g (bound %.3g)\n", worst, bound);
        INFO(cmp.report);
        CHECK(cmp.ok);
    }

    SECTION("zero flow is the identity, bit for bit") {
        backend.warp_bilinear(channels, height, width, src.data(), constant_flow(height, width, 0.0f, 0.0f).data(),
                              dst.data());
        // Weights exactly 1 and 0 on finite neighbours: s·1 + s'·0 = s.
        CHECK(dst == src);
    }

    SECTION("NaN and infinite flows give finite values") {
        auto flow = random_vector(2 * plane, 97, -3.0f, 3.0f);
        const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
        for (std::size_t p = 0; p < plane; p += 3) flow[p] = nan;              // u
        for (std::size_t p = 1; p < plane; p += 4) flow[plane + p] = nan;      // v
        for (std::size_t p = 2; p < plane; p += 11) flow[p] = inf;
        for (std::size_t p = 5; p < plane; p += 13) flow[plane + p] = -inf;
        backend.warp_bilinear(channels, height, width, src.data(), flow.data(), dst.data());
        std::size_t non_finite = 0;
        for (float v : dst) non_finite += std::isfinite(v) ? 0 : 1;
        CHECK(non_finite == 0);
        // A NaN coordinate lands on 0, an infinite one on the edge (kernels/warp.h).
        const std::size_t p = 3 * std::size_t(width) + 3;  // u NaN (p % 3 == 0), v finite
        REQUIRE(std::isnan(flow[p]));
        REQUIRE(std::isfinite(flow[plane + p]));
        const double want = oracle_bilinear(src, 0, height, width, 0.0, 3 + double(flow[plane + p]));
        INFO("u NaN at (3, 3): " << dst[p] << ", the sample at (0, 3 + v): " << want);
        CHECK(std::fabs(dst[p] - want) <= kUnit * (2.0 * (height + 3) + 10.0));  // the bound above
    }
}

TEST_CASE("vector ops match double-precision formulas", "[cpu][vector]") {
    CpuBackend backend;
    const std::size_t count = 50001;  // several reduction chunks and a ragged tail
    const auto x = random_vector(count, 71), y = random_vector(count, 72);
    double dot = 0.0, asum = 0.0;
    for (std::size_t i = 0; i < count; ++i) {
        dot += double(x[i]) * y[i];
        asum += std::fabs(double(x[i]));
    }
    // Products of floats are exact in double; only the summation order differs.
    CHECK(backend.dot(count, x.data(), y.data()) == Approx(dot).epsilon(1e-10).margin(1e-10));
    CHECK(backend.asum(count, x.data()) == Approx(asum).epsilon(1e-12));
    double amax = 0.0;
    for (float v : x) amax = std::max(amax, std::fabs(double(v)));
    CHECK(backend.amax(count, x.data()) == amax);  // a maximum is exact
    std::vector<float> spike = x;
    spike[count - 1] = -7.5f;  // the largest magnitude, negative, in the ragged tail
    CHECK(backend.amax(count, spike.data()) == 7.5);
    CHECK(backend.amax(0, x.data()) == 0.0);

    // Coefficients in backend memory: the same numbers as the host-scalar ops.
    ScalarBuffer scalars(backend, 2);
    backend.dot_into(count, x.data(), y.data(), 0.5, scalars.slot(0));
    CHECK(*scalars.slot(0) == 0.5 * backend.dot(count, x.data(), y.data()));
    *scalars.slot(1) = 0.125;
    std::vector<float> from_device = y, from_host = y;
    backend.axpy_from(count, scalars.slot(0), scalars.slot(1), -2.0, x.data(), from_device.data());
    backend.axpy(count, static_cast<float>(-2.0 * (*scalars.slot(0) - 0.125)), x.data(), from_host.data());
    CHECK(from_device == from_host);  // the same float coefficient: the same bits
    from_device = y;
    from_host = y;
    backend.axpy_from(count, scalars.slot(1), nullptr, 3.0, x.data(), from_device.data());
    backend.axpy(count, 0.375f, x.data(), from_host.data());
    CHECK(from_device == from_host);

    std::vector<float> z = y;
    backend.axpy(count, 0.75f, x.data(), z.data());
    std::vector<double> expected(count);
    for (std::size_t i = 0; i < count; ++i) expected[i] = double(y[i]) + 0.75 * x[i];
    // y + αx: at most two roundings of values < 2.
    CHECK(compare(z, expected, 2.0 * kUnit * 2.0, 0.0).ok);

    z = x;
    backend.scale(count, -1.5f, z.data());
    for (std::size_t i = 0; i < count; ++i) expected[i] = -1.5 * x[i];
    CHECK(compare(z, expected, 0.0, kUnit).ok);  // one rounding

    std::vector<float> copied(count, 0.0f);
    backend.copy(count, x.data(), copied.data());
    CHECK(copied == x);
    backend.fill(count, 2.5f, copied.data());
    CHECK(std::all_of(copied.begin(), copied.end(), [](float v) { return v == 2.5f; }));

    z = x;
    backend.clamp(count, -0.25f, 0.5f, z.data());
    for (std::size_t i = 0; i < count; ++i) expected[i] = std::min(0.5, std::max(-0.25, double(x[i])));
    CHECK(compare(z, expected, 0.0, 0.0).ok);  // a selection: exact
}

TEST_CASE("all_finite detects NaN and infinities anywhere", "[cpu][vector]") {
    CpuBackend backend;
    const std::size_t count = 40000;
    std::vector<float> x = random_vector(count, 81);
    CHECK(backend.all_finite(count, x.data()));
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity()})
        for (std::size_t at : {std::size_t(0), std::size_t(20000), count - 1}) {
            std::vector<float> z = x;
            z[at] = bad;
            CAPTURE(bad, at);
            CHECK_FALSE(backend.all_finite(count, z.data()));
        }
    CHECK(backend.all_finite(0, x.data()));
}

TEST_CASE("adam_update matches the bias-corrected formula", "[cpu][vector]") {
    CpuBackend backend;
    const std::size_t count = 1001;
    const float lr = 0.02f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    const auto grad = random_vector(count, 91);
    auto m = random_vector(count, 92, -0.1f, 0.1f);
    auto v = random_vector(count, 93, 0.0f, 0.01f);
    auto x = random_vector(count, 94);
    const auto m0 = m, v0 = v, x0 = x;
    for (int step : {1, 7}) {
        m = m0, v = v0, x = x0;
        backend.adam_update(count, lr, beta1, beta2, eps, step, grad.data(), m.data(), v.data(),
                            x.data());
        std::vector<double> em(count), ev(count), ex(count);
        double bound = 0.0;
        for (std::size_t i = 0; i < count; ++i) {
            em[i] = double(beta1) * m0[i] + (1.0 - double(beta1)) * grad[i];
            ev[i] = double(beta2) * v0[i] + (1.0 - double(beta2)) * double(grad[i]) * grad[i];
            const double m_hat = em[i] / (1.0 - std::pow(double(beta1), step));
            const double v_hat = ev[i] / (1.0 - std::pow(double(beta2), step));
            const double update = double(lr) * m_hat / (std::sqrt(v_hat) + double(eps));
            ex[i] = double(x0[i]) - update;
            // m and v carry a few float roundings (≤ 4u relative to their terms),
            // which reach the update as ≤ 6u of it; x − update adds one rounding.
            bound = std::max(bound, kUnit * (std::fabs(x0[i]) + 6.0 * std::fabs(update)));
        }
        CAPTURE(step);
        const double m_bound = 4.0 * kUnit * 1.0, v_bound = 4.0 * kUnit * 0.01;  // |terms| ≤ 1, 0.01
        CHECK(compare(m, em, m_bound, 0.0).ok);
        CHECK(compare(v, ev, v_bound, 0.0).ok);
        const auto xc = compare(x, ex, bound, 0.0);
        INFO(xc.report);
        CHECK(xc.ok);
    }
}

extern "C" int openblas_get_num_threads(void);  // OpenBLAS's, without its headers' include path

TEST_CASE("the CPU backend's thread settings are scoped to it", "[cpu][threads]") {
    const int omp_before = omp_get_max_threads(), blas_before = openblas_get_num_threads();
    const char* env = std::getenv("OMP_NUM_THREADS");
    const std::string saved_env = env ? env : "";
    unsetenv("OMP_NUM_THREADS");
    omp_set_num_threads(1);  // as a library loaded earlier may (torch does)
    {
        CpuBackend all;  // threads 0: all cores, not the 1 set above
        CHECK(all.threads() == omp_get_num_procs());
        CHECK(omp_get_max_threads() == all.threads());
        CHECK(openblas_get_num_threads() == 1);  // inside the backend's own OpenMP regions
        {
            CpuBackend one(1);
            CHECK(omp_get_max_threads() == 1);
        }
        CHECK(omp_get_max_threads() == all.threads());  // restored by the inner one
    }
    CHECK(omp_get_max_threads() == 1);  // the caller's setting, restored
    CHECK(openblas_get_num_threads() == blas_before);
    setenv("OMP_NUM_THREADS", "3", 1);
    CHECK(CpuBackend().threads() == 3);  // the environment's count, as OpenMP's default
    if (env)
        setenv("OMP_NUM_THREADS", saved_env.c_str(), 1);
    else
        unsetenv("OMP_NUM_THREADS");
    omp_set_num_threads(omp_before);
}

TEST_CASE("reductions are bitwise identical with one and two threads", "[cpu][vector]") {
    CpuBackend backend;
    const int side = 317;  // a 317×317 plane: several reduction chunks, a ragged tail
    const std::size_t count = std::size_t(side) * side;
    const auto x = random_vector(count, 101), y = random_vector(count, 102);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const double dot1 = backend.dot(count, x.data(), y.data());
    std::vector<float> grad1(count, 0.0f);
    const double tv1 = backend.tv_loss(1, side, side, x.data(), 1.0f, grad1.data());
    omp_set_num_threads(2);
    const double dot2 = backend.dot(count, x.data(), y.data());
    std::vector<float> grad2(count, 0.0f);
    const double tv2 = backend.tv_loss(1, side, side, x.data(), 1.0f, grad2.data());
    omp_set_num_threads(threads);
    CHECK(dot1 == dot2);
    CHECK(tv1 == tv2);
    CHECK(grad1 == grad2);
    // The temporal loss and the warp, over the same plane.
    const auto weights = random_vector(count, 103, 0.0f, 1.0f);
    auto flow = random_vector(2 * count, 104, -3.0f, 3.0f);
    std::vector<std::vector<float>> temporal_grad(2, std::vector<float>(count, 0.0f)), warped(2, std::vector<float>(count));
    double temporal[2];
    for (int threads_used : {1, 2}) {
        omp_set_num_threads(threads_used);
        const int k = threads_used - 1;
        temporal[k] = backend.temporal_loss(1, count, x.data(), y.data(), weights.data(), 1.0f, temporal_grad[k].data());
        backend.warp_bilinear(1, side, side, x.data(), flow.data(), warped[k].data());
    }
    omp_set_num_threads(threads);
    CHECK(temporal[0] == temporal[1]);
    CHECK(temporal_grad[0] == temporal_grad[1]);
    CHECK(warped[0] == warped[1]);
}

TEST_CASE("an allocation larger than the machine's memory fails at once, with a message", "[cpu][memory]") {
    CpuBackend backend;
    const std::size_t before = backend.bytes_in_use();
    // 16 TiB: more than any machine this runs on has available.
    const std::size_t count = std::size_t(1) << 42;
    try {
        nst::Buffer huge(backend, count);
        FAIL("a 16 TiB allocation succeeded");
    } catch (const nst::RuntimeFailure& e) {
        const std::string message = e.what();
        INFO(message);
        CHECK(message.find("out of host memory") != std::string::npos);
        CHECK(message.find("MiB available") != std::string::npos);
    }
    CHECK(backend.bytes_in_use() == before);  // nothing counted for the failed request
    nst::Buffer small(backend, 1000);           // and the backend still works
    CHECK(backend.bytes_in_use() == before + 1000 * sizeof(float));
}

TEST_CASE("Winograd filters cached per weight buffer follow every write to it", "[cpu][conv]") {
    // 16 channels: the Winograd path, whose transformed filters are cached.
    const ConvShape shape{16, 16, 9, 11};
    const std::size_t weights = 16 * 16 * 9, plane = 9 * 11;
    const auto x = random_vector(16 * plane, 81), w1 = random_vector(weights, 82),
               w2 = random_vector(weights, 83);
    // Reference: a fresh backend for each weight set (nothing cached before).
    auto fresh = [&](const std::vector<float>& w, bool backward) {
        CpuBackend other(1);
        nst::Buffer bw(other, weights), bx(other, x.size()), by(other, x.size());
        other.upload(bw.data(), w.data(), w.size());
        other.upload(bx.data(), x.data(), x.size());
        if (backward) other.conv3x3_backward_data(shape, bx.data(), bw.data(), by.data());
        else other.conv3x3_forward(shape, bx.data(), bw.data(), by.data());
        std::vector<float> out(x.size());
        other.download(out.data(), by.data(), out.size());
        return out;
    };
    for (bool backward : {false, true}) {
        INFO((backward ? "backward" : "forward"));
        CpuBackend backend(1);
        nst::Buffer bw(backend, weights), bx(backend, x.size()), by(backend, x.size());
        backend.upload(bx.data(), x.data(), x.size());
        auto run = [&] {
            if (backward) backend.conv3x3_backward_data(shape, bx.data(), bw.data(), by.data());
            else backend.conv3x3_forward(shape, bx.data(), bw.data(), by.data());
            std::vector<float> out(x.size());
            backend.download(out.data(), by.data(), out.size());
            return out;
        };
        backend.upload(bw.data(), w1.data(), w1.size());
        CHECK(run() == fresh(w1, backward));
        CHECK(run() == fresh(w1, backward));  // from the cache: the same bits
        backend.upload(bw.data(), w2.data(), w2.size());  // new weights, same buffer
        CHECK(run() == fresh(w2, backward));
        backend.copy(weights, bw.data(), bw.data());  // a no-op copy keeps them
        backend.fill(weights, 0.0f, bw.data());
        CHECK(run() == std::vector<float>(x.size(), 0.0f));
    }
}
