// The whole style-transfer objective and a 20-iteration L-BFGS run on the device
// under test (device_under_test.h; FP32, tf32 off) against the CPU backend, on the problem of
// tests/trajectory_check.h (a narrow VGG-19, so the CPU side stays fast), under
// that header's policy: the tolerances are the spread that one-ulp noise produces
// between CPU runs, measured here, times factors measured on the CPU (the CPU test
// tests/test_trajectory.cpp shows a noisy run passes and a small bug fails);
// bitwise reproducibility of a device run; and the spatial controls (masks).
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/objective/objective.h"
#include "tests/cuda/cuda_test_support.h"
#include "tests/cuda/device_under_test.h"
#include "tests/trajectory_check.h"

using namespace nst;
using namespace nst::test;

TEST_CASE("one evaluation of the objective matches the CPU backend", "[cuda][objective]") {
    for (PoolMode pool : {PoolMode::average, PoolMode::max}) {
        INFO((pool == PoolMode::max ? "max" : "average") << " pooling");
        // The bounds: kEvaluationFactor (5) × how far one-ulp noise in conv outputs
        // and Gram matrices moves each loss term and the gradient, measured here on
        // the CPU (2e-7 .. 4e-6 relative for most terms, 4e-5 for conv5_1's style
        // loss with max pooling; numbers in tests/reference/README.md).
        const EvaluationReference cpu = measure_cpu_evaluation(pool);
        const auto gpu_backend = make_backend_under_test();
        const Evaluation gpu = evaluate_once(*gpu_backend, pool);
        const CheckResult result = check_evaluation(gpu, cpu.reference, cpu.spread);
        INFO(result.report);
        CHECK(result.ok);
        // The TV term depends on the image alone, which both backends hold bit for
        // bit, so conv noise says nothing about it; its bound comes from the two
        // implementations' arithmetic instead. Each term is a squared neighbour
        // difference: the CPU squares the exact difference (in double), the GPU the
        // difference rounded to float (kernels/losses.cu), which is off by ≤ u = 6e-8
        // relative, its square by ≤ 2u. The terms are ≥ 0, so the sum is off by
        // ≤ 2u = 1.2e-7 relative; both sum in double (order effects ~1e-13).
        // 2.4e-7 is 2× that worst case.
        require_close(gpu.terms.tv, cpu.reference.terms.tv, "tv loss", 2.4e-7);
    }
}

TEST_CASE("evaluations allocate nothing after the first", "[cuda][objective][memory]") {
    const auto backend = make_backend_under_test();
    const auto objective = make_check_objective(*backend, check_weights(), PoolMode::average);
    Buffer x = to_backend(*backend, check_start_point()), g(*backend, x.size());
    objective->evaluate(x.data(), g.data());
    const std::size_t settled = backend->bytes_in_use(), peak = backend->peak_bytes();
    for (int i = 0; i < 3; ++i) objective->evaluate(x.data(), g.data());
    CHECK(backend->bytes_in_use() == settled);
    CHECK(backend->peak_bytes() == peak);
}

TEST_CASE("a tiled evaluation matches the untiled CPU reference", "[cuda][objective][tiles]") {
    // The check problem on 16 px cores (3×2 tiles, engine/objective/tiles.h): the tiled
    // objective differs from the untiled one only by the Gram matrices' summation
    // order (tests/test_tiles.cpp), well inside the one-ulp-noise policy the
    // untiled GPU evaluation is held to above. Later evaluations allocate nothing.
    TileSpec tile;
    tile.core = 16;
    for (PoolMode pool : {PoolMode::average, PoolMode::max}) {
        INFO((pool == PoolMode::max ? "max" : "average") << " pooling");
        const EvaluationReference cpu = measure_cpu_evaluation(pool);
        const auto backend = make_backend_under_test();
        const auto objective = make_check_objective(*backend, check_weights(), pool, tile);
        REQUIRE(objective->tiles().size() == 6);
        Buffer x = to_backend(*backend, check_start_point()), g(*backend, x.size());
        objective->evaluate(x.data(), g.data());
        const std::size_t settled = backend->bytes_in_use();
        objective->evaluate(x.data(), g.data());
        CHECK(backend->bytes_in_use() == settled);
        const Evaluation gpu{objective->last_terms(), to_host(*backend, g)};
        const CheckResult result = check_evaluation(gpu, cpu.reference, cpu.spread);
        INFO(result.report);
        CHECK(result.ok);
    }
}

TEST_CASE("20 L-BFGS iterations follow the CPU trajectory and repeat bit for bit", "[cuda][lbfgs]") {
    // The problem is chaotic: one-ulp noise moves the loss by up to 3e-2 after 20
    // iterations. The GPU is held to the first iterations tightly and afterwards to
    // kSpreadFactor (8) × the spread of noisy CPU runs measured here, with the
    // final loss within kFinalLossBand (5e-2) of the CPU's (trajectory_check.h).
    const TrajectoryReference cpu = measure_cpu_trajectory();
    const auto gpu_backend = make_backend_under_test();
    const Trajectory gpu = run_trajectory(*gpu_backend);
    const CheckResult result = check_trajectory(gpu, cpu.reference, cpu.spread);
    INFO(result.report);
    CHECK(result.ok);
    CHECK(gpu.losses.back() < 0.5 * gpu.losses.front());  // it did optimise (CPU: 14.9 → 0.84)

    // Same card, same inputs, deterministic reductions: identical bits, every loss
    // and every iterate.
    const auto again_backend = make_backend_under_test();
    const Trajectory again = run_trajectory(*again_backend);
    REQUIRE(again.losses.size() == gpu.losses.size());
    REQUIRE(again.images.size() == gpu.images.size());
    CHECK(std::memcmp(again.losses.data(), gpu.losses.data(),
                      gpu.losses.size() * sizeof(double)) == 0);
    for (std::size_t k = 0; k < gpu.images.size(); ++k) {
        INFO("iterate " << k);
        CHECK(same_bits(again.images[k], gpu.images[k]));
    }
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
    CpuBackend cpu(0);
    const auto device = make_backend_under_test();
    std::vector<float> grad[2];
    double loss[2], content[2], style[2];
    int k = 0;
    for (Backend* backend : {static_cast<Backend*>(&cpu), device.get()}) {
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
