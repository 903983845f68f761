// Each backend op on the GPU against the CPU backend (the reference), on odd
// shapes, in exact FP32 (tolerances in cuda_test_support.h), plus the rules
// that need no reference: exact results where the CPU computes the same single
// rounding, first-maximum tie-breaking, accumulation into the gradient.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>

#include "engine/cpu/cpu_backend.h"
#include "engine/cuda_api.h"
#include "engine/objective.h"
#include "engine/weights.h"
#include "tests/cuda/cuda_test_support.h"

using namespace nst;
using namespace nst::test;

namespace {

struct Backends {
    CpuBackend cpu{0};
    std::unique_ptr<Backend> gpu = make_cuda_backend(0, /*tf32=*/false);
};

const ConvShape kConvShapes[] = {
    {3, 5, 7, 9},     // conv1_1-like: 3 input channels, odd sizes
    {16, 8, 13, 11},  // narrowing
    {64, 64, 17, 15},
    {576, 8, 5, 3},   // the longest sums (K = 9·576) in the tolerance's argument
};

}  // namespace

TEST_CASE("conv3x3 forward and backward-data match the CPU backend", "[cuda][conv]") {
    Backends b;
    for (const ConvShape& s : kConvShapes) {
        const std::size_t in = std::size_t(s.in_channels) * s.height * s.width;
        const std::size_t out = std::size_t(s.out_channels) * s.height * s.width;
        const std::size_t weights = std::size_t(s.out_channels) * s.in_channels * 9;
        const auto x = random_vector(in, 1), w = random_vector(weights, 2),
                   dy = random_vector(out, 3);
        const std::string shape = std::to_string(s.in_channels) + "->" +
                                  std::to_string(s.out_channels) + " " +
                                  std::to_string(s.height) + "x" + std::to_string(s.width);
        std::vector<float> y[2], dx[2];
        int k = 0;
        for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
            Buffer bx = to_backend(*backend, x), bw = to_backend(*backend, w),
                   bdy = to_backend(*backend, dy);
            Buffer by(*backend, out), bdx = to_backend(*backend, random_vector(in, 4));
            backend->conv3x3_forward(s, bx.data(), bw.data(), by.data());
            backend->conv3x3_backward_data(s, bdy.data(), bw.data(), bdx.data());
            y[k] = to_host(*backend, by);
            dx[k] = to_host(*backend, bdx);  // overwritten, not accumulated
            ++k;
        }
        require_close(y[1], y[0], "conv3x3_forward " + shape);
        require_close(dx[1], dx[0], "conv3x3_backward_data " + shape);
    }
}

TEST_CASE("bias+ReLU and the ReLU mask match the CPU backend exactly", "[cuda][relu]") {
    // Both backends call the same functions (kernels/activation.h): one addition
    // and one select per element, so the results must be identical, not merely close.
    Backends b;
    const int channels = 5;
    const std::size_t plane = 7 * 9;
    const auto y0 = random_vector(channels * plane, 5), bias = random_vector(channels, 6);
    const auto dy0 = random_vector(channels * plane, 7);
    std::vector<float> y[2], dy[2];
    int k = 0;
    for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
        Buffer by = to_backend(*backend, y0), bb = to_backend(*backend, bias),
               bdy = to_backend(*backend, dy0);
        backend->bias_relu_forward(channels, plane, bb.data(), by.data());
        backend->relu_backward(by.size(), by.data(), bdy.data());
        y[k] = to_host(*backend, by);
        dy[k] = to_host(*backend, bdy);
        ++k;
    }
    CHECK(same_bits(y[1], y[0]));
    CHECK(same_bits(dy[1], dy[0]));
    std::size_t zeros = 0;
    for (float v : y[1]) zeros += v == 0.0f;
    CHECK(zeros > 0);  // the mask was exercised
}

TEST_CASE("pooling forward and backward match the CPU backend", "[cuda][pool]") {
    Backends b;
    struct Case { int c, h, w; } cases[] = {{3, 7, 9}, {4, 8, 6}, {2, 5, 2}};
    for (PoolMode mode : {PoolMode::average, PoolMode::max}) {
        for (const auto& s : cases) {
            const std::size_t in = std::size_t(s.c) * s.h * s.w;
            const std::size_t out = std::size_t(s.c) * (s.h / 2) * (s.w / 2);
            // Values on a coarse grid so max windows contain ties: the gradient must
            // go to the first maximum in row-major order on both backends.
            auto x = random_vector(in, 8);
            for (float& v : x) v = std::round(v * 2.0f) / 2.0f;
            const auto dy = random_vector(out, 9);
            std::vector<float> y[2], dx[2];
            int k = 0;
            for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
                Buffer bx = to_backend(*backend, x), bdy = to_backend(*backend, dy);
                Buffer by(*backend, out), bdx = to_backend(*backend, random_vector(in, 10));
                backend->pool_forward(mode, s.c, s.h, s.w, bx.data(), by.data());
                backend->pool_backward(mode, s.c, s.h, s.w, bx.data(), bdy.data(), bdx.data());
                y[k] = to_host(*backend, by);
                dx[k] = to_host(*backend, bdx);
                ++k;
            }
            const std::string what = std::string(mode == PoolMode::max ? "max" : "avg") +
                                     " pool " + std::to_string(s.c) + "x" +
                                     std::to_string(s.h) + "x" + std::to_string(s.w);
            require_close(y[1], y[0], what + " forward");
            require_close(dx[1], dx[0], what + " backward");
            // Both backends call the same per-window functions (kernels/pooling.h):
            // the same additions in the same order, ×¼ and selections: exact.
            CHECK(same_bits(y[1], y[0]));
            CHECK(same_bits(dx[1], dx[0]));
        }
    }
}

TEST_CASE("preprocessing and its backward match the CPU backend", "[cuda][preprocess]") {
    Backends b;
    Preprocessing caffe;  // BGR, 0..255, mean subtracted
    caffe.bgr = true;
    caffe.pixel_scale = 255.0f;
    caffe.mean[0] = 103.939f, caffe.mean[1] = 116.779f, caffe.mean[2] = 123.68f;
    Preprocessing torchvision;  // RGB, 0..1, mean and std
    torchvision.mean[0] = 0.485f, torchvision.mean[1] = 0.456f, torchvision.mean[2] = 0.406f;
    torchvision.std[0] = 0.229f, torchvision.std[1] = 0.224f, torchvision.std[2] = 0.225f;
    const std::size_t plane = 11 * 7;
    const auto x = random_vector(3 * plane, 11, 0.0f, 1.0f);
    const auto dout = random_vector(3 * plane, 12), dx0 = random_vector(3 * plane, 13);
    for (const Preprocessing& pre : {caffe, torchvision}) {
        std::vector<float> out[2], dx[2];
        int k = 0;
        for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
            Buffer bx = to_backend(*backend, x), bdout = to_backend(*backend, dout),
                   bdx = to_backend(*backend, dx0);
            Buffer bout(*backend, 3 * plane);
            backend->preprocess(pre, plane, bx.data(), bout.data());
            backend->preprocess_backward(pre, plane, bdout.data(), bdx.data());
            out[k] = to_host(*backend, bout);
            dx[k] = to_host(*backend, bdx);
            ++k;
        }
        const std::string what = pre.bgr ? "caffe" : "torchvision";
        require_close(out[1], out[0], "preprocess " + what);
        require_close(dx[1], dx[0], "preprocess_backward " + what);
        // The same functions on both (kernels/preprocess.h): products rounded on
        // their own (no FMA), IEEE division, so the same bits.
        CHECK(same_bits(out[1], out[0]));
        CHECK(same_bits(dx[1], dx[0]));
    }
}

TEST_CASE("Gram matrix matches the CPU backend", "[cuda][gram]") {
    Backends b;
    struct Case { int n; std::size_t m; } cases[] = {{13, 77}, {64, 1001}, {3, 5}};
    for (const auto& s : cases) {
        const auto f = random_vector(s.n * s.m, 14);
        std::vector<float> g[2];
        int k = 0;
        for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
            Buffer bf = to_backend(*backend, f), bg(*backend, std::size_t(s.n) * s.n);
            backend->gram(s.n, s.m, bf.data(), bg.data());
            g[k++] = to_host(*backend, bg);
        }
        require_close(g[1], g[0], "gram " + std::to_string(s.n) + "x" + std::to_string(s.m));
    }
}

TEST_CASE("content, style and TV losses match the CPU backend", "[cuda][loss]") {
    Backends b;
    SECTION("content loss accumulates weight·(F − P)") {
        const std::size_t count = 5 * 13 * 7;
        const auto f = random_vector(count, 15), p = random_vector(count, 16),
                   g0 = random_vector(count, 17);
        double value[2];
        std::vector<float> grad[2];
        int k = 0;
        for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
            Buffer bf = to_backend(*backend, f), bp = to_backend(*backend, p),
                   bg = to_backend(*backend, g0);
            value[k] = backend->content_loss(count, bf.data(), bp.data(), 0.7f, bg.data());
            grad[k++] = to_host(*backend, bg);
        }
        require_close(value[1], value[0], "content loss");
        require_close(grad[1], grad[0], "content gradient");
    }
    SECTION("style loss from G − A, gradient through SGEMM") {
        const int n = 11;
        const std::size_t m = 9 * 7;
        const auto f = random_vector(n * m, 18), g0 = random_vector(n * m, 19);
        // A symmetric target, as a Gram matrix is.
        auto a = random_vector(std::size_t(n) * n, 20, 0.0f, 30.0f);
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < i; ++j) a[i * n + j] = a[j * n + i];
        double value[2];
        std::vector<float> grad[2];
        int k = 0;
        for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
            Buffer bf = to_backend(*backend, f), ba = to_backend(*backend, a),
                   bg = to_backend(*backend, g0), gram(*backend, std::size_t(n) * n);
            backend->gram(n, m, bf.data(), gram.data());
            value[k] = backend->style_loss(n, m, bf.data(), gram.data(), ba.data(), 1e3f,
                                           bg.data());
            grad[k++] = to_host(*backend, bg);
        }
        require_close(value[1], value[0], "style loss");
        require_close(grad[1], grad[0], "style gradient");
    }
    SECTION("total variation") {
        const int c = 3, h = 7, w = 9;
        const auto x = random_vector(std::size_t(c) * h * w, 21),
                   g0 = random_vector(std::size_t(c) * h * w, 22);
        double value[2];
        std::vector<float> grad[2];
        int k = 0;
        for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
            Buffer bx = to_backend(*backend, x), bg = to_backend(*backend, g0);
            value[k] = backend->tv_loss(c, h, w, bx.data(), 0.3f, bg.data());
            grad[k++] = to_host(*backend, bg);
        }
        require_close(value[1], value[0], "tv loss");
        require_close(grad[1], grad[0], "tv gradient");
    }
}

TEST_CASE("optimiser vector ops match the CPU backend", "[cuda][vector]") {
    Backends b;
    const std::size_t count = 100003;  // not a multiple of any block or grid size
    const auto x = random_vector(count, 23), y0 = random_vector(count, 24);
    double dots[2], asums[2], amaxes[2];
    std::vector<float> axpy[2], scaled[2], copied[2], filled[2], clamped[2], axpy_from_results[2];
    int k = 0;
    for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
        Buffer bx = to_backend(*backend, x), by = to_backend(*backend, y0);
        Buffer bz(*backend, count);
        dots[k] = backend->dot(count, bx.data(), by.data());
        asums[k] = backend->asum(count, bx.data());
        amaxes[k] = backend->amax(count, bx.data());
        {
            // dot_into / axpy_from: the coefficients never leave backend memory.
            ScalarBuffer scalars(*backend, 2);
            backend->dot_into(count, bx.data(), by.data(), 0.5, scalars.slot(0));
            backend->dot_into(count, bx.data(), bx.data(), 1e-5, scalars.slot(1));
            Buffer bw = to_backend(*backend, y0);
            backend->axpy_from(count, scalars.slot(0), scalars.slot(1), -0.25, bx.data(), bw.data());
            axpy_from_results[k] = to_host(*backend, bw);
        }
        backend->axpy(count, -0.3f, bx.data(), by.data());
        axpy[k] = to_host(*backend, by);
        backend->scale(count, 1.7f, by.data());
        scaled[k] = to_host(*backend, by);
        backend->copy(count, bx.data(), bz.data());
        copied[k] = to_host(*backend, bz);
        backend->clamp(count, -0.25f, 0.5f, bz.data());
        clamped[k] = to_host(*backend, bz);
        backend->fill(count, 0.125f, bz.data());
        filled[k] = to_host(*backend, bz);
        ++k;
    }
    // Double accumulation of exact float products on both sides: only the
    // summation order differs, ~1e-16 relative; 1e-12 leaves margin.
    require_close(dots[1], dots[0], "dot", 1e-12);
    require_close(asums[1], asums[0], "asum", 1e-12);
    CHECK(amaxes[1] == amaxes[0]);  // a maximum is exact
    // The coefficient comes from two double reductions (~1e-16 relative apart),
    // then one float multiply-add per element, as axpy.
    require_close(axpy_from_results[1], axpy_from_results[0], "axpy_from");
    // The same functions on both (kernels/vector_ops.h); axpy's product is rounded
    // on its own (no FMA), so both are exact.
    require_close(axpy[1], axpy[0], "axpy");
    require_close(scaled[1], scaled[0], "scale");
    CHECK(same_bits(axpy[1], axpy[0]));
    CHECK(same_bits(scaled[1], scaled[0]));
    CHECK(same_bits(copied[1], copied[0]));
    CHECK(same_bits(clamped[1], clamped[0]));
    CHECK(same_bits(filled[1], filled[0]));
}

TEST_CASE("16-bit history ops match the CPU backend, bit for bit where the arithmetic is shared", "[cuda][vector][half]") {
    // pack_half and axpy_from_half call the same per-element functions on both
    // backends (kernels/half.h: integer rounding, exact widening, axpy_value
    // without FMA), so their results must be identical; the dot products sum
    // exact products in double in different orders.
    Backends b;
    const std::size_t count = 100003;  // odd: the last 16-bit value shares a float with padding
    auto x = random_vector(count, 61);
    for (std::size_t i = 0; i < count; i += 7) x[i] *= 1e6f;  // beyond fp16's range unscaled
    x[5] = 0.0f;
    const auto y0 = random_vector(count, 62);
    for (HalfFormat format : {HalfFormat::bf16, HalfFormat::fp16}) {
        INFO((format == HalfFormat::bf16 ? "bf16" : "fp16"));
        std::vector<std::uint16_t> packed[2];
        std::vector<float> updated[2], exact[2];
        double dots[2], pairs[2];
        int k = 0;
        for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
            Buffer bx = to_backend(*backend, x), by = to_backend(*backend, y0);
            Buffer half((*backend), (count + 1) / 2);
            auto* h = reinterpret_cast<std::uint16_t*>(half.data());
            ScalarBuffer scalars(*backend, 4);
            backend->amax_into(count, bx.data(), scalars.slot(0));
            backend->pack_half(count, format, bx.data(), scalars.slot(0), h);
            const std::vector<float> words = to_host(*backend, half);
            packed[k].resize(count);
            std::memcpy(packed[k].data(), words.data(), count * sizeof(std::uint16_t));
            backend->dot_half_into(count, format, h, by.data(), 0.5, scalars.slot(1));
            backend->dot_half_pair_into(count, format, h, h, 1e-5, scalars.slot(2));
            backend->axpy_from_half(count, scalars.slot(1), scalars.slot(2), -0.25, format, h,
                                    by.data());
            scalars.queue_read();
            backend->synchronize();
            dots[k] = scalars.host(1);
            pairs[k] = scalars.host(2);
            updated[k] = to_host(*backend, by);
            // With the same coefficient on both (uploaded), axpy_from_half is exact.
            const double coefficient = 0.3;
            float coefficient_words[2];
            std::memcpy(coefficient_words, &coefficient, sizeof coefficient);
            backend->upload(reinterpret_cast<float*>(scalars.slot(3)), coefficient_words, 2);
            Buffer bw = to_backend(*backend, y0);
            backend->axpy_from_half(count, scalars.slot(3), nullptr, 1.0 / 1024, format, h, bw.data());
            exact[k] = to_host(*backend, bw);
            ++k;
        }
        std::size_t first_mismatch = count;
        for (std::size_t i = 0; i < count && first_mismatch == count; ++i)
            if (packed[1][i] != packed[0][i]) first_mismatch = i;
        INFO("first packed mismatch at " << first_mismatch);
        CHECK(first_mismatch == count);
        // Double sums of exact products, different orders: ~1e-16 relative; as dot.
        require_close(dots[1], dots[0], "dot_half", 1e-12);
        require_close(pairs[1], pairs[0], "dot_half_pair", 1e-12);
        // The coefficient comes from the two sums above (~1e-16 apart), then one
        // float multiply-add per element, as axpy_from.
        require_close(updated[1], updated[0], "axpy_from_half");
        CHECK(same_bits(exact[1], exact[0]));
    }
}

TEST_CASE("all_finite finds NaN and infinity anywhere", "[cuda][vector]") {
    Backends b;
    const std::size_t count = 70001;
    auto x = random_vector(count, 25);
    {
        Buffer bx = to_backend(*b.gpu, x);
        CHECK(b.gpu->all_finite(count, bx.data()));
    }
    for (std::size_t where : {std::size_t(0), std::size_t(4097), count - 1}) {
        for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
            auto y = x;
            y[where] = bad;
            Buffer by = to_backend(*b.gpu, y);
            INFO("bad value " << bad << " at " << where);
            CHECK_FALSE(b.gpu->all_finite(count, by.data()));
        }
    }
}

TEST_CASE("Adam update matches the CPU backend", "[cuda][vector]") {
    Backends b;
    const std::size_t count = 4099;
    const auto g = random_vector(count, 26), m0 = random_vector(count, 27, -0.1f, 0.1f),
               v0 = random_vector(count, 28, 0.0f, 0.01f), x0 = random_vector(count, 29);
    std::vector<float> m[2], v[2], x[2];
    int k = 0;
    for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
        Buffer bg = to_backend(*backend, g), bm = to_backend(*backend, m0),
               bv = to_backend(*backend, v0), bx = to_backend(*backend, x0);
        for (int step = 1; step <= 3; ++step)
            backend->adam_update(count, 1e-2f, 0.9f, 0.999f, 1e-8f, step, bg.data(), bm.data(),
                                 bv.data(), bx.data());
        m[k] = to_host(*backend, bm);
        v[k] = to_host(*backend, bv);
        x[k++] = to_host(*backend, bx);
    }
    require_close(m[1], m[0], "adam m");
    require_close(v[1], v[0], "adam v");
    require_close(x[1], x[0], "adam x");
    // The same adam_step on both (kernels/vector_ops.h): products rounded on
    // their own, IEEE division and square root in double, so the same bits.
    CHECK(same_bits(m[1], m[0]));
    CHECK(same_bits(v[1], v[0]));
    CHECK(same_bits(x[1], x[0]));
}

TEST_CASE("mask_channels matches the CPU backend exactly, in place too", "[cuda][masks]") {
    // One multiply per element, the same function on both sides (kernels/masks.h).
    Backends b;
    const int channels = 7;
    const std::size_t plane = 13 * 11;  // odd: the broadcast index p = i mod plane wraps unevenly
    const auto x = random_vector(channels * plane, 60), mask = random_vector(plane, 61, 0.0f, 1.0f);
    std::vector<float> y[2], in_place[2];
    int k = 0;
    for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
        Buffer bx = to_backend(*backend, x), bm = to_backend(*backend, mask), by(*backend, x.size());
        backend->mask_channels(channels, plane, bx.data(), bm.data(), by.data());
        backend->mask_channels(channels, plane, bx.data(), bm.data(), bx.data());
        y[k] = to_host(*backend, by);
        in_place[k] = to_host(*backend, bx);
        ++k;
    }
    CHECK(same_bits(y[1], y[0]));
    CHECK(same_bits(in_place[1], y[0]));
}

TEST_CASE("guided Gram matrices and a masked content loss match the CPU backend", "[cuda][masks]") {
    // The whole spatial-control path of the objective (mask_channels, Gram of the
    // masked features, the rescaled style_loss, the masked gradient) on a narrow
    // network up to conv3_1, soft masks and one style-image mask.
    test::NarrowVgg spec;
    spec.seed = 400;
    spec.widths = {4, 4, 6, 6, 8};
    const VggWeights weights = test::narrow_vgg19(spec);
    ObjectiveConfig config;
    config.content_layers = {{"conv2_2", 1.0}};
    config.style_layers = {{"conv1_1", 1.0 / 3}, {"conv2_1", 1.0 / 3}, {"conv3_1", 1.0 / 3}};
    const int width = 37, height = 29;
    const std::size_t plane = std::size_t(width) * height;
    auto image = [](int w, int h, unsigned seed) {
        Image i;
        i.width = w;
        i.height = h;
        i.pixels = random_vector(3 * std::size_t(w) * h, seed, 0.0f, 1.0f);
        return i;
    };
    const auto first = random_vector(plane, 420, 0.0f, 1.0f);
    std::vector<float> second(plane);
    for (std::size_t p = 0; p < plane; ++p) second[p] = 1.0f - first[p];
    const auto x0 = random_vector(3 * plane, 421, 0.0f, 1.0f);
    Backends b;
    std::vector<float> grad[2];
    double loss[2], content[2], style[2];
    int k = 0;
    for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
        StyleTransferObjective objective(*backend, weights, config, width, height);
        objective.set_content_mask(random_vector(plane, 422, 0.0f, 1.0f));
        objective.set_content(image(width, height, 423));
        objective.set_guided_styles({image(23, 31, 424), image(41, 19, 425)}, {first, second},
                                    {random_vector(23 * 31, 426, 0.0f, 1.0f)});
        Buffer x = to_backend(*backend, x0), g(*backend, x0.size());
        loss[k] = objective.evaluate(x.data(), g.data());
        content[k] = objective.last_terms().content;
        style[k] = objective.last_terms().style;
        // Nothing allocated in later evaluations: the mask scratch is set up once.
        const std::size_t settled = backend->bytes_in_use();
        objective.evaluate(x.data(), g.data());
        CHECK(backend->bytes_in_use() == settled);
        grad[k++] = to_host(*backend, g);
    }
    // Five conv layers forward and back, each with its own FP32 summation order
    // (≤ √(9·8)·u ≈ 5e-7), plus the mask multiplies (exact on both): well inside
    // the per-op bound of 1e-5 (cuda_test_support.h).
    require_close(loss[1], loss[0], "loss");
    require_close(content[1], content[0], "masked content loss");
    require_close(style[1], style[0], "guided style loss");
    require_close(grad[1], grad[0], "gradient w.r.t. the image");
}

TEST_CASE("copy_window matches the CPU backend exactly and leaves the rest untouched", "[cuda][window]") {
    // A copy: the same elements must land in the same places, bit for bit. A crop
    // (5 channels of a 13×17 tensor, window 6×9 at (4, 7)) into a 6×9 tensor, and a
    // paste of it into a prefilled 11×19 tensor at (3, 2): the elements outside the
    // window keep their values.
    Backends b;
    const int channels = 5;
    const auto src = random_vector(std::size_t(channels) * 13 * 17, 70);
    const auto prefilled = random_vector(std::size_t(channels) * 11 * 19, 71);
    WindowCopy crop;
    crop.channels = channels;
    crop.rows = 6;
    crop.cols = 9;
    crop.src_height = 13;
    crop.src_width = 17;
    crop.src_y = 4;
    crop.src_x = 7;
    crop.dst_height = 6;
    crop.dst_width = 9;
    WindowCopy paste = crop;
    paste.src_height = 6;
    paste.src_width = 9;
    paste.src_y = paste.src_x = 0;
    paste.dst_height = 11;
    paste.dst_width = 19;
    paste.dst_y = 3;
    paste.dst_x = 2;
    std::vector<float> cropped[2], pasted[2];
    int k = 0;
    for (Backend* backend : {static_cast<Backend*>(&b.cpu), b.gpu.get()}) {
        Buffer bs = to_backend(*backend, src), bc(*backend, std::size_t(channels) * 6 * 9),
               bp = to_backend(*backend, prefilled);
        backend->copy_window(crop, bs.data(), bc.data());
        backend->copy_window(paste, bc.data(), bp.data());
        cropped[k] = to_host(*backend, bc);
        pasted[k] = to_host(*backend, bp);
        ++k;
    }
    CHECK(same_bits(cropped[1], cropped[0]));
    CHECK(same_bits(pasted[1], pasted[0]));
    // The CPU side against the definition, independently of the shared index code.
    for (int c = 0; c < channels; ++c)
        for (int i = 0; i < 6; ++i)
            for (int j = 0; j < 9; ++j)
                REQUIRE(cropped[0][(std::size_t(c) * 6 + i) * 9 + j] ==
                        src[(std::size_t(c) * 13 + 4 + i) * 17 + 7 + j]);
    std::size_t untouched = 0;
    for (int c = 0; c < channels; ++c)
        for (int y = 0; y < 11; ++y)
            for (int x = 0; x < 19; ++x) {
                const std::size_t at = (std::size_t(c) * 11 + y) * 19 + x;
                const bool inside = y >= 3 && y < 9 && x >= 2 && x < 11;
                if (!inside && pasted[1][at] == prefilled[at]) ++untouched;
            }
    CHECK(untouched == std::size_t(channels) * (11 * 19 - 6 * 9));
}
