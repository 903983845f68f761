// The whole objective (tier 2 of DESIGN.md): the engine's loss terms and image
// gradient on a narrow VGG-19 against an independent double-precision
// implementation written here with naive loops, whose gradient is taken by
// central finite differences.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <random>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/base/error.h"
#include "engine/objective/objective.h"
#include "tests/test_support.h"

using namespace nst;

namespace {



// ---- the oracle: the objective of DESIGN.md in double precision, naive loops ----
using test::Tensor;

Tensor to_tensor(const Image& image) {
    return Tensor{3, image.height, image.width, std::vector<double>(image.pixels.begin(), image.pixels.end())};
}

// Post-ReLU activations of every layer up to `deepest`.
std::vector<Tensor> reference_forward(const VggWeights& weights, const Tensor& x, int deepest, bool max_pool) {
    const Preprocessing& p = weights.preprocessing;
    Tensor in{3, x.h, x.w, std::vector<double>(x.v.size())};
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < x.h; ++i)
            for (int j = 0; j < x.w; ++j)
                in.at(c, i, j) = (double(p.pixel_scale) * x.at(p.bgr ? 2 - c : c, i, j) - p.mean[c]) / p.std[c];
    std::vector<Tensor> outs;
    for (int l = 0; l <= deepest; ++l) {
        const ConvWeights& cw = weights.layers[l];
        const Tensor out = test::reference_conv3x3_relu(cw, in);
        outs.push_back(out);
        if (vgg19_pool_after(l) && l < deepest) {
            Tensor pooled{out.c, out.h / 2, out.w / 2, std::vector<double>(std::size_t(out.c) * (out.h / 2) * (out.w / 2))};
            for (int c = 0; c < out.c; ++c)
                for (int i = 0; i < pooled.h; ++i)
                    for (int j = 0; j < pooled.w; ++j) {
                        const double a = out.at(c, 2 * i, 2 * j), b = out.at(c, 2 * i, 2 * j + 1);
                        const double d = out.at(c, 2 * i + 1, 2 * j), e = out.at(c, 2 * i + 1, 2 * j + 1);
                        pooled.at(c, i, j) = max_pool ? std::max(std::max(a, b), std::max(d, e)) : (a + b + d + e) / 4;
                    }
            in = pooled;
        } else {
            in = out;
        }
    }
    return outs;
}

std::vector<double> reference_gram(const Tensor& f) {
    const std::size_t m = std::size_t(f.h) * f.w;
    std::vector<double> g(std::size_t(f.c) * f.c);
    for (int a = 0; a < f.c; ++a)
        for (int b = 0; b < f.c; ++b) {
            double s = 0;
            for (std::size_t k = 0; k < m; ++k) s += f.v[a * m + k] * f.v[b * m + k];
            g[a * f.c + b] = s;
        }
    return g;
}

struct ReferenceTerms { double loss, content, style, tv; };

int deepest_layer(const ObjectiveConfig& config) {
    int deepest = 0;
    for (auto& l : config.content_layers) deepest = std::max(deepest, vgg19_layer_index(l.layer));
    for (auto& l : config.style_layers) deepest = std::max(deepest, vgg19_layer_index(l.layer));
    return deepest;
}

// fc, fs: reference_forward() of the content and style images.
ReferenceTerms reference_objective(const VggWeights& weights, const ObjectiveConfig& config,
                                   const Tensor& x, const std::vector<Tensor>& fc,
                                   const std::vector<Tensor>& fs) {
    const auto fx = reference_forward(weights, x, deepest_layer(config), config.pool == PoolMode::max);
    ReferenceTerms t{0, 0, 0, 0};
    for (auto& l : config.content_layers) {
        const int i = vgg19_layer_index(l.layer);
        double s = 0;
        for (std::size_t k = 0; k < fx[i].v.size(); ++k) s += (fx[i].v[k] - fc[i].v[k]) * (fx[i].v[k] - fc[i].v[k]);
        t.content += l.weight * 0.5 * s;
    }
    for (auto& l : config.style_layers) {
        const int i = vgg19_layer_index(l.layer);
        const auto g = reference_gram(fx[i]), a = reference_gram(fs[i]);  // A: recomputed, cheap
        const double n = fx[i].c, m = double(fx[i].h) * fx[i].w;
        double s = 0;
        for (std::size_t k = 0; k < g.size(); ++k) s += (g[k] - a[k]) * (g[k] - a[k]);
        t.style += l.weight * s / (4 * n * n * m * m);
    }
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < x.h; ++i)
            for (int j = 0; j < x.w; ++j) {
                if (j + 1 < x.w) t.tv += std::pow(x.at(c, i, j + 1) - x.at(c, i, j), 2);
                if (i + 1 < x.h) t.tv += std::pow(x.at(c, i + 1, j) - x.at(c, i, j), 2);
            }
    t.loss = config.content_weight * t.content + config.style_weight * t.style + config.tv_weight * t.tv;
    return t;
}

ObjectiveConfig test_config(PoolMode pool) {
    ObjectiveConfig config;
    config.content_weight = 1.0;
    config.style_weight = 1e3;
    config.tv_weight = 10.0;
    config.pool = pool;
    return config;
}

}  // namespace

TEST_CASE("objective: loss terms and image gradient match a double-precision oracle", "[objective]") {
    const PoolMode pool = GENERATE(PoolMode::average, PoolMode::max);
    const VggWeights weights = test::narrow_vgg19(7);
    // 19×17: odd sizes, so every pool drops a row or a column; conv5_1 runs at 1×1.
    const int width = 19, height = 17;
    const Image content = test::random_image(width, height, 1);
    const Image style = test::random_image(23, 21, 2);  // the style image has its own size
    const Image start = test::random_image(width, height, 3);
    ObjectiveConfig config = test_config(pool);
    const Tensor x_ref = to_tensor(start);
    const bool max_pool = pool == PoolMode::max;
    const auto fc = reference_forward(weights, to_tensor(content), deepest_layer(config), max_pool);
    const auto fs = reference_forward(weights, to_tensor(style), deepest_layer(config), max_pool);
    // Weights that give each term the same share of L at the start, so that a
    // mistake in any one of them shows in the total and in the gradient.
    const ReferenceTerms unweighted = reference_objective(weights, config, x_ref, fc, fs);
    REQUIRE(unweighted.content > 0);
    REQUIRE(unweighted.style > 0);
    REQUIRE(unweighted.tv > 0);
    config.content_weight = 1.0 / unweighted.content;
    config.style_weight = 1.0 / unweighted.style;
    config.tv_weight = 1.0 / unweighted.tv;
    const ReferenceTerms ref = reference_objective(weights, config, x_ref, fc, fs);

    CpuBackend backend(1);
    StyleTransferObjective objective(backend, weights, config, width, height);
    objective.set_content(content);
    objective.set_styles({style});
    Buffer x(backend, objective.size()), grad(backend, objective.size());
    backend.upload(x.data(), start.pixels.data(), start.pixels.size());
    const double loss = objective.evaluate(x.data(), grad.data());
    std::vector<float> gradient(objective.size());
    backend.download(gradient.data(), grad.data(), gradient.size());

    const LossTerms& terms = objective.last_terms();
    INFO("loss " << loss << " ref " << ref.loss << "; content " << terms.content << " ref " << ref.content
         << "; style " << terms.style << " ref " << ref.style << "; tv " << terms.tv << " ref " << ref.tv);
    // float32 activations through 12 conv layers of ≤ 45 products each carry a
    // relative error of a few 1e-6; the losses are sums of squares of them.
    CHECK(loss == Approx(ref.loss).epsilon(1e-4));
    CHECK(terms.content == Approx(ref.content).epsilon(1e-4));
    CHECK(terms.style == Approx(ref.style).epsilon(1e-4));
    CHECK(terms.tv == Approx(ref.tv).epsilon(1e-5));

    // Central differences of the double-precision oracle, h = 1e-5 in pixel
    // units: truncation O(h²·L''') ≈ 1e-10 relative; a ReLU or max-pool kink
    // within ±h of a pixel is improbable for random inputs (checked below by
    // comparing the whole vector, which one kink would not hide).
    const double h = 1e-5;
    std::vector<double> fd(objective.size());
    Tensor probe = x_ref;
    for (std::size_t i = 0; i < fd.size(); ++i) {
        const double saved = probe.v[i];
        probe.v[i] = saved + h;
        const double up = reference_objective(weights, config, probe, fc, fs).loss;
        probe.v[i] = saved - h;
        const double down = reference_objective(weights, config, probe, fc, fs).loss;
        probe.v[i] = saved;
        fd[i] = (up - down) / (2 * h);
    }
    double scale = 0;
    for (double v : fd) scale = std::max(scale, std::fabs(v));
    // atol 1e-4·max|g|: the float32 backward pass sums ~10³ terms per pixel
    // with relative rounding ~1e-7 each; rtol 1e-3 for the same reason.
    const auto cmp = test::compare(gradient, fd, 1e-4 * scale, 1e-3);
    INFO(cmp.report);
    CHECK(cmp.ok);
    CHECK(cmp.relative_l2 < 1e-4);  // float32 vs double over the whole gradient
}

TEST_CASE("objective: with temporal targets, loss and image gradient match the oracle", "[objective][temporal]") {
    const VggWeights weights = test::narrow_vgg19(7);
    const int width = 19, height = 17;
    const std::size_t plane = std::size_t(width) * height;
    const Image content = test::random_image(width, height, 1);
    const Image style = test::random_image(23, 21, 2);
    const Image start = test::random_image(width, height, 3);
    // Two earlier frames warped here (short- and long-term), with occluded pixels.
    std::vector<TemporalTarget> targets(2);
    for (unsigned k = 0; k < 2; ++k) {
        targets[k].warped = test::random_image(width, height, 10 + k);
        targets[k].weights = test::random_vector(plane, 20 + k, 0.0f, 1.0f);
        for (std::size_t p = k; p < plane; p += 3) targets[k].weights[p] = 0.0f;
    }
    const auto reference_temporal = [&](const Tensor& x) {
        double total = 0;
        for (const TemporalTarget& t : targets) {
            double s = 0;
            for (std::size_t i = 0; i < x.v.size(); ++i)
                s += double(t.weights[i % plane]) * std::pow(x.v[i] - double(t.warped.pixels[i]), 2);
            total += s / double(x.v.size());
        }
        return total;
    };
    ObjectiveConfig config = test_config(PoolMode::average);
    const Tensor x_ref = to_tensor(start);
    const auto fc = reference_forward(weights, to_tensor(content), deepest_layer(config), false);
    const auto fs = reference_forward(weights, to_tensor(style), deepest_layer(config), false);
    // Every term the same share of L at the start, the temporal one too.
    const ReferenceTerms unweighted = reference_objective(weights, config, x_ref, fc, fs);
    const double unweighted_temporal = reference_temporal(x_ref);
    REQUIRE(unweighted_temporal > 0);
    config.content_weight = 1.0 / unweighted.content;
    config.style_weight = 1.0 / unweighted.style;
    config.tv_weight = 1.0 / unweighted.tv;
    config.temporal_weight = 1.0 / unweighted_temporal;
    const auto reference_loss = [&](const Tensor& x) {
        return reference_objective(weights, config, x, fc, fs).loss + config.temporal_weight * reference_temporal(x);
    };

    CpuBackend backend(1);
    StyleTransferObjective objective(backend, weights, config, width, height);
    objective.set_content(content);
    objective.set_styles({style});
    objective.set_temporal_targets(targets);
    Buffer x(backend, objective.size()), grad(backend, objective.size());
    backend.upload(x.data(), start.pixels.data(), start.pixels.size());
    const double loss = objective.evaluate(x.data(), grad.data());
    std::vector<float> gradient(objective.size());
    backend.download(gradient.data(), grad.data(), gradient.size());

    INFO("loss " << loss << " ref " << reference_loss(x_ref) << "; temporal " << objective.last_terms().temporal
                 << " ref " << unweighted_temporal);
    // As the test above: float32 activations, relative error of a few 1e-6 in
    // the network's terms; the temporal term itself is exact to double sums.
    CHECK(loss == Approx(reference_loss(x_ref)).epsilon(1e-4));
    CHECK(objective.last_terms().temporal == Approx(unweighted_temporal).epsilon(1e-12));

    // Central differences, h = 1e-5, tolerances as in the test above.
    const double h = 1e-5;
    std::vector<double> fd(objective.size());
    Tensor probe = x_ref;
    for (std::size_t i = 0; i < fd.size(); ++i) {
        const double saved = probe.v[i];
        probe.v[i] = saved + h;
        const double up = reference_loss(probe);
        probe.v[i] = saved - h;
        const double down = reference_loss(probe);
        probe.v[i] = saved;
        fd[i] = (up - down) / (2 * h);
    }
    double scale = 0;
    for (double v : fd) scale = std::max(scale, std::fabs(v));
    const auto cmp = test::compare(gradient, fd, 1e-4 * scale, 1e-3);
    std::printf("objective with temporal targets: gradient relative L2 error %.3g against finite differences\n",
                cmp.relative_l2);
    INFO(cmp.report);
    CHECK(cmp.ok);
    CHECK(cmp.relative_l2 < 1e-4);
}

TEST_CASE("objective: no temporal targets leave a still's loss and gradient as they were", "[objective][temporal]") {
    const VggWeights weights = test::narrow_vgg19(11);
    const Image content = test::random_image(24, 20, 4), style = test::random_image(20, 24, 5);
    CpuBackend backend;
    Buffer x(backend, 3 * 24 * 20);
    backend.upload(x.data(), content.pixels.data(), content.pixels.size());
    // An objective that never had targets, and one whose targets were cleared.
    const auto evaluate = [&](bool cleared) {
        StyleTransferObjective objective(backend, weights, test_config(PoolMode::average), 24, 20);
        objective.set_content(content);
        objective.set_styles({style});
        if (cleared) {
            TemporalTarget target{test::random_image(24, 20, 6), std::vector<float>(24 * 20, 1.0f)};
            objective.set_temporal_targets({target});
            objective.set_temporal_targets({});
        }
        Buffer grad(backend, objective.size());
        const double loss = objective.evaluate(x.data(), grad.data());
        CHECK(objective.last_terms().temporal == 0.0);
        std::vector<float> host(objective.size());
        backend.download(host.data(), grad.data(), host.size());
        return std::make_pair(loss, host);
    };
    const auto never = evaluate(false), cleared = evaluate(true);
    CHECK(never.first == cleared.first);
    CHECK(never.second == cleared.second);
}

TEST_CASE("objective: evaluation is reproducible bit for bit", "[objective]") {
    const VggWeights weights = test::narrow_vgg19(11);
    const Image content = test::random_image(24, 20, 4), style = test::random_image(20, 24, 5);
    CpuBackend backend;
    StyleTransferObjective objective(backend, weights, test_config(PoolMode::average), 24, 20);
    objective.set_content(content);
    objective.set_styles({style});
    Buffer x(backend, objective.size()), g1(backend, objective.size()), g2(backend, objective.size());
    backend.upload(x.data(), content.pixels.data(), content.pixels.size());
    const double a = objective.evaluate(x.data(), g1.data());
    const double b = objective.evaluate(x.data(), g2.data());
    CHECK(a == b);
    std::vector<float> h1(objective.size()), h2(objective.size());
    backend.download(h1.data(), g1.data(), h1.size());
    backend.download(h2.data(), g2.data(), h2.size());
    CHECK(h1 == h2);
}

TEST_CASE("objective: blended style targets are the weighted sum of each style's Gram", "[objective]") {
    const VggWeights weights = test::narrow_vgg19(13);
    const Image content = test::random_image(20, 20, 6);
    const Image s1 = test::random_image(20, 16, 7), s2 = test::random_image(18, 22, 8);
    CpuBackend backend;
    const ObjectiveConfig config = test_config(PoolMode::average);
    StyleTransferObjective blended(backend, weights, config, 20, 20);
    blended.set_styles({s1, s2}, {3.0, 1.0});  // normalised to 0.75, 0.25
    StyleTransferObjective only1(backend, weights, config, 20, 20), only2(backend, weights, config, 20, 20);
    only1.set_styles({s1});
    only2.set_styles({s2});
    for (const auto& layer : config.style_layers) {
        const auto a = blended.style_target(layer.layer);
        const auto a1 = only1.style_target(layer.layer), a2 = only2.style_target(layer.layer);
        std::vector<double> expected(a.size());
        for (std::size_t i = 0; i < a.size(); ++i) expected[i] = 0.75 * a1[i] + 0.25 * a2[i];
        // Two float32 roundings (scale, add) of values of the same magnitude.
        const auto cmp = test::compare(a, expected, 1e-6, 1e-6);
        INFO(layer.layer << "\n" << cmp.report);
        CHECK(cmp.ok);
    }
}

TEST_CASE("objective: bad configuration is refused clearly", "[objective]") {
    const VggWeights weights = test::narrow_vgg19(17);
    CpuBackend backend;
    auto build = [&](const VggWeights& w, const ObjectiveConfig& config, int size) {
        StyleTransferObjective objective(backend, w, config, size, size);
    };
    ObjectiveConfig config;
    config.style_layers = {{"conv9_1", 1.0}};
    CHECK_THROWS_AS(build(weights, config, 16), nst::UsageError);
    config.style_layers.clear();
    config.content_layers.clear();
    CHECK_THROWS_AS(build(weights, config, 16), nst::UsageError);
    VggWeights shallow = weights;
    shallow.layers.resize(5);  // stops at conv3_1
    CHECK_THROWS_AS(build(shallow, ObjectiveConfig{}, 16), nst::InputError);
    // conv5_1 needs 4 pools: an 8×8 image has nothing left at conv5_1.
    CHECK_THROWS_AS(build(weights, ObjectiveConfig{}, 8), nst::InputError);
}

TEST_CASE("objective and optimisers: host waits per evaluation and per iteration", "[objective][lbfgs][adam]") {
    // host_waits() counts the calls that make a GPU wait for its queue; the CPU
    // backend counts the same calls, so this bounds the GPU's waits without one.
    const VggWeights weights = test::narrow_vgg19(17);
    const Image content = test::random_image(24, 20, 8), style = test::random_image(20, 24, 9);
    CpuBackend backend;
    StyleTransferObjective objective(backend, weights, test_config(PoolMode::average), 24, 20);
    objective.set_content(content);
    objective.set_styles({style});
    const Image start = test::random_image(24, 20, 10);
    Buffer x(backend, objective.size()), g(backend, objective.size());

    SECTION("one wait per evaluation, all loss terms included") {
        backend.upload(x.data(), start.pixels.data(), start.pixels.size());
        const std::size_t before = backend.host_waits();
        objective.evaluate(x.data(), g.data());
        CHECK(backend.host_waits() - before == 1);
    }

    // Waits between consecutive iteration reports (the report of iteration k
    // comes right after that iteration's last wait).
    const auto waits_per_iteration = [&](auto&& minimize) {
        backend.upload(x.data(), start.pixels.data(), start.pixels.size());
        std::vector<std::size_t> at_report;
        const std::size_t before = backend.host_waits();
        const OptimizationResult result = minimize([&](const IterationReport&) {
            at_report.push_back(backend.host_waits() - before);
            return true;
        });
        INFO(result.message);
        REQUIRE(result.iterations == 12);
        std::vector<std::size_t> per_iteration;
        for (std::size_t k = 1; k < at_report.size(); ++k)
            per_iteration.push_back(at_report[k] - at_report[k - 1]);
        CHECK(at_report.front() == 1);  // the starting point: one evaluation, one wait
        return per_iteration;
    };

    SECTION("L-BFGS, fixed step: at most two waits per iteration, whatever the history storage") {
        for (HistoryPrecision precision :
             {HistoryPrecision::fp32, HistoryPrecision::bf16, HistoryPrecision::fp16}) {
            INFO("history storage " << int(precision) << " (0 fp32, 1 bf16, 2 fp16)");
            LbfgsOptions options;
            options.history = 5;
            options.history_precision = precision;
            const auto per_iteration = waits_per_iteration([&](const IterationCallback& callback) {
                return minimize_lbfgs(backend, objective, x.data(), 12, options, callback);
            });
            REQUIRE(per_iteration.size() == 12);
            for (std::size_t k = 0; k < per_iteration.size(); ++k) {
                INFO("iteration " << k + 1 << ": " << per_iteration[k] << " host waits");
                CHECK(per_iteration[k] <= 2);
            }
        }
    }

    SECTION("Adam: one wait per iteration") {
        AdamOptions options;
        options.learning_rate = 0.01;
        const auto per_iteration = waits_per_iteration([&](const IterationCallback& callback) {
            return minimize_adam(backend, objective, x.data(), 12, options, callback);
        });
        REQUIRE(per_iteration.size() == 12);
        for (std::size_t k = 0; k < per_iteration.size(); ++k) {
            INFO("iteration " << k + 1 << ": " << per_iteration[k] << " host waits");
            CHECK(per_iteration[k] == 1);
        }
    }
}
