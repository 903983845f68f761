// The whole style-transfer objective and a short L-BFGS run on the GPU against
// the CPU backend, with a narrow VGG-19 (same topology, few channels) so the CPU
// side stays fast; and bitwise reproducibility of a GPU run.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>

#include "engine/cpu/cpu_backend.h"
#include "engine/cuda_api.h"
#include "engine/objective.h"
#include "engine/optimizer.h"
#include "engine/weights.h"
#include "tests/cuda/cuda_test_support.h"

using namespace nst;
using namespace nst::test;

namespace {

// Layers conv1_1 … conv5_1 with He-scaled random weights (activations keep
// their scale through 13 ReLU layers), Caffe-style preprocessing.
VggWeights narrow_weights() {
    const int widths[] = {4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8};  // C_out per layer
    VggWeights weights;
    weights.preprocessing.bgr = true;
    weights.preprocessing.pixel_scale = 255.0f;
    weights.preprocessing.mean[0] = 103.939f;
    weights.preprocessing.mean[1] = 116.779f;
    weights.preprocessing.mean[2] = 123.68f;
    weights.source = "narrow random network for tests";
    int in = 3;
    for (int l = 0; l < 13; ++l) {
        ConvWeights layer;
        layer.name = vgg19_layer_names()[l];
        layer.in_channels = in;
        layer.out_channels = widths[l];
        const float bound = std::sqrt(6.0f / (9.0f * static_cast<float>(in)));
        layer.weight = random_vector(std::size_t(widths[l]) * in * 9, 100 + l, -bound, bound);
        layer.bias = random_vector(widths[l], 200 + l, 0.0f, 0.1f);
        weights.layers.push_back(std::move(layer));
        in = widths[l];
    }
    return weights;
}

Image random_image(int width, int height, unsigned seed) {
    Image image;
    image.width = width;
    image.height = height;
    image.pixels = random_vector(3 * image.plane(), seed, 0.0f, 1.0f);
    return image;
}

// Odd output size: 37×29 → 18×14 → 9×7 → 4×3 → 2×1 at conv5_1.
constexpr int kWidth = 37, kHeight = 29;

ObjectiveConfig config_for(PoolMode pool) {
    ObjectiveConfig config;  // default layers: content conv4_2, style conv1_1 … conv5_1
    config.style_weight = 1e3;
    config.tv_weight = 1e-2;  // exercised too
    config.pool = pool;
    return config;
}

struct Run {
    std::unique_ptr<Backend> backend;
    std::unique_ptr<StyleTransferObjective> objective;
};

Run make_run(std::unique_ptr<Backend> backend, const VggWeights& weights, PoolMode pool) {
    Run run;
    run.backend = std::move(backend);
    run.objective = std::make_unique<StyleTransferObjective>(*run.backend, weights,
                                                             config_for(pool), kWidth, kHeight);
    run.objective->set_content(random_image(kWidth, kHeight, 301));
    run.objective->set_styles({random_image(23, 31, 302), random_image(41, 19, 303)}, {0.7, 0.3});
    return run;
}

}  // namespace

TEST_CASE("one evaluation of the objective matches the CPU backend", "[cuda][objective]") {
    const VggWeights weights = narrow_weights();
    const auto x0 = random_vector(3 * std::size_t(kWidth) * kHeight, 304, 0.0f, 1.0f);
    for (PoolMode pool : {PoolMode::average, PoolMode::max}) {
        INFO((pool == PoolMode::max ? "max" : "average") << " pooling");
        Run cpu = make_run(std::make_unique<CpuBackend>(0), weights, pool);
        Run gpu = make_run(make_cuda_backend(0, false), weights, pool);
        std::vector<float> grad[2];
        int k = 0;
        for (Run* run : {&cpu, &gpu}) {
            Buffer x = to_backend(*run->backend, x0), g(*run->backend, x0.size());
            run->objective->evaluate(x.data(), g.data());
            grad[k++] = to_host(*run->backend, g);
        }
        // Through 13 conv layers forward and back each adds its own FP32
        // summation-order difference (≤ √(9·8)·u ≈ 5e-7 for these widths); 26 such
        // independent contributions give ≈ √26·5e-7 ≈ 2.5e-6, inside the per-op
        // bound of 1e-5 (cuda_test_support.h).
        const LossTerms& c = cpu.objective->last_terms();
        const LossTerms& d = gpu.objective->last_terms();
        require_close(d.loss, c.loss, "loss");
        require_close(d.content, c.content, "content loss");
        require_close(d.style, c.style, "style loss");
        require_close(d.tv, c.tv, "tv loss");
        REQUIRE(d.style_per_layer.size() == c.style_per_layer.size());
        for (std::size_t l = 0; l < c.style_per_layer.size(); ++l)
            require_close(d.style_per_layer[l], c.style_per_layer[l],
                          "style loss of layer " + std::to_string(l));
        require_close(grad[1], grad[0], "gradient w.r.t. the image");
    }
}

TEST_CASE("evaluations allocate nothing after the first", "[cuda][objective][memory]") {
    const VggWeights weights = narrow_weights();
    Run gpu = make_run(make_cuda_backend(0, false), weights, PoolMode::average);
    const auto x0 = random_vector(3 * std::size_t(kWidth) * kHeight, 305, 0.0f, 1.0f);
    Buffer x = to_backend(*gpu.backend, x0), g(*gpu.backend, x0.size());
    gpu.objective->evaluate(x.data(), g.data());
    const std::size_t settled = gpu.backend->bytes_in_use(), peak = gpu.backend->peak_bytes();
    for (int i = 0; i < 3; ++i) gpu.objective->evaluate(x.data(), g.data());
    CHECK(gpu.backend->bytes_in_use() == settled);
    CHECK(gpu.backend->peak_bytes() == peak);
}

namespace {

struct Trajectory {
    std::vector<double> losses;  // iteration 0 … 20
    std::vector<float> image;
};

Trajectory lbfgs_run(std::unique_ptr<Backend> backend, const VggWeights& weights) {
    Run run = make_run(std::move(backend), weights, PoolMode::average);
    const auto x0 = random_vector(3 * std::size_t(kWidth) * kHeight, 306, 0.0f, 1.0f);
    Buffer x = to_backend(*run.backend, x0);
    LbfgsOptions options;
    options.history = 10;
    Trajectory t;
    minimize_lbfgs(*run.backend, *run.objective, x.data(), 20, options,
                   [&](const IterationReport& report) {
                       t.losses.push_back(report.loss);
                       return true;
                   });
    t.image = to_host(*run.backend, x);
    return t;
}

}  // namespace

TEST_CASE("20 L-BFGS iterations follow the CPU trajectory and repeat bit for bit", "[cuda][lbfgs]") {
    const VggWeights weights = narrow_weights();
    const Trajectory cpu = lbfgs_run(std::make_unique<CpuBackend>(0), weights);
    const Trajectory gpu = lbfgs_run(make_cuda_backend(0, false), weights);
    const Trajectory again = lbfgs_run(make_cuda_backend(0, false), weights);

    REQUIRE(gpu.losses.size() == cpu.losses.size());
    REQUIRE(cpu.losses.size() == 21);
    // Each step starts from iterates that already differ by the earlier steps'
    // ≤ 1e-5 evaluation differences and turns them into new step directions
    // (two-loop recursion over 10 pairs), so the gap can grow along the run; 20
    // steps of a smooth descent are allowed 10× the single-evaluation bound.
    for (std::size_t i = 0; i < cpu.losses.size(); ++i)
        require_close(gpu.losses[i], cpu.losses[i], "loss at iteration " + std::to_string(i),
                      1e-4);
    CHECK(cpu.losses.back() < 0.5 * cpu.losses.front());  // it did optimise
    require_close(gpu.image, cpu.image, "image after 20 iterations", 1e-4);

    // Same card, same inputs: identical bits, every loss and every pixel.
    REQUIRE(again.losses.size() == gpu.losses.size());
    CHECK(std::memcmp(again.losses.data(), gpu.losses.data(),
                      gpu.losses.size() * sizeof(double)) == 0);
    CHECK(same_bits(again.image, gpu.image));
}
