// Each loss term of the objective on its own (engine/objective/*_term.h, tier 2
// of DESIGN.md): run through the evaluation path by itself, untiled and tiled,
// its value and image gradient against a double-precision oracle written here
// with naive loops (the gradient by central finite differences); its
// held_bytes() against the backend's byte counter; and the terms' weighted
// values against the objective's loss.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <iterator>
#include <string>
#include <utility>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/objective/masks.h"
#include "engine/objective/objective.h"
#include "engine/objective/content_term.h"
#include "engine/objective/loss_term.h"
#include "engine/objective/style_term.h"
#include "engine/objective/temporal_term.h"
#include "engine/objective/tv_term.h"
#include "tests/test_support.h"

using namespace nst;
using test::Tensor;

namespace {

// ---- the oracle: the terms of DESIGN.md in double precision, naive loops ----

Tensor to_tensor(const Image& image) {
    return Tensor{3, image.height, image.width, std::vector<double>(image.pixels.begin(), image.pixels.end())};
}

// Post-ReLU activations of every layer up to `deepest`, average pooling.
std::vector<Tensor> reference_forward(const VggWeights& weights, const Tensor& x, int deepest) {
    const Preprocessing& p = weights.preprocessing;
    Tensor in{3, x.h, x.w, std::vector<double>(x.v.size())};
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < x.h; ++i)
            for (int j = 0; j < x.w; ++j)
                in.at(c, i, j) = (double(p.pixel_scale) * x.at(p.bgr ? 2 - c : c, i, j) - p.mean[c]) / p.std[c];
    std::vector<Tensor> outs;
    for (int l = 0; l <= deepest; ++l) {
        const Tensor out = test::reference_conv3x3_relu(weights.layers[l], in);
        outs.push_back(out);
        in = out;
        if (!vgg19_pool_after(l) || l == deepest) continue;
        Tensor pooled{out.c, out.h / 2, out.w / 2, std::vector<double>(std::size_t(out.c) * (out.h / 2) * (out.w / 2))};
        for (int c = 0; c < out.c; ++c)
            for (int i = 0; i < pooled.h; ++i)
                for (int j = 0; j < pooled.w; ++j)
                    pooled.at(c, i, j) = (out.at(c, 2 * i, 2 * j) + out.at(c, 2 * i, 2 * j + 1) +
                                          out.at(c, 2 * i + 1, 2 * j) + out.at(c, 2 * i + 1, 2 * j + 1)) / 4;
        in = pooled;
    }
    return outs;
}

// (F ⊙ m)(F ⊙ m)ᵀ; mask (h·w) or empty (m = 1).
std::vector<double> reference_gram(const Tensor& f, const std::vector<float>& mask = {}) {
    const std::size_t m = std::size_t(f.h) * f.w;
    const auto masked = [&](int a, std::size_t k) { return f.v[a * m + k] * (mask.empty() ? 1.0 : mask[k]); };
    std::vector<double> g(std::size_t(f.c) * f.c);
    for (int a = 0; a < f.c; ++a)
        for (int b = 0; b < f.c; ++b)
            for (std::size_t k = 0; k < m; ++k) g[a * f.c + b] += masked(a, k) * masked(b, k);
    return g;
}

// Layers up to conv3_1 (two pools): small enough for finite differences of the
// whole image, deep enough for pooled masks and an odd trailing row and column.
ObjectiveConfig shallow_config() {
    ObjectiveConfig c;
    c.content_layers = {{"conv2_2", 0.7}, {"conv3_1", 1.3}};
    c.style_layers = {{"conv1_1", 0.5}, {"conv2_1", 0.3}, {"conv3_1", 0.2}};
    c.content_weight = 2.0;
    c.style_weight = 30.0;
    c.tv_weight = 0.5;
    c.temporal_weight = 40.0;
    return c;
}

constexpr int kWidth = 19, kHeight = 17;  // odd: every pool drops a row or a column
const int kDeepest = vgg19_layer_index("conv3_1");

// A hard mask of the left `fraction` of a width × height image.
std::vector<float> left_mask(int width, int height, double fraction) {
    std::vector<float> mask(std::size_t(width) * height);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) mask[std::size_t(y) * width + x] = x < fraction * width ? 1.0f : 0.0f;
    return mask;
}

std::vector<float> complement(std::vector<float> mask) {
    for (float& v : mask) v = 1.0f - v;
    return mask;
}

// L_c = ½ Σ_l c_l Σ_ij m_l(j)² (F_ij − P_ij)² (m = 1 without a mask).
double reference_content(const ObjectiveConfig& config, const std::vector<Tensor>& fx,
                         const std::vector<Tensor>& fc, const std::vector<float>& mask) {
    double total = 0;
    for (const auto& layer : config.content_layers) {
        const int l = vgg19_layer_index(layer.layer);
        const std::vector<float> m = mask.empty() ? std::vector<float>{} : mask_at_layer(mask, kWidth, kHeight, l);
        const std::size_t plane = std::size_t(fx[l].h) * fx[l].w;
        double s = 0;
        for (std::size_t k = 0; k < fx[l].v.size(); ++k) {
            const double weight = m.empty() ? 1.0 : double(m[k % plane]) * m[k % plane];
            s += weight * (fx[l].v[k] - fc[l].v[k]) * (fx[l].v[k] - fc[l].v[k]);
        }
        total += layer.weight * 0.5 * s;
    }
    return total;
}

// L_s = Σ_l w_l Σ_ij (G − A)² / (4 N² M²), A = Σ_k b_k A_k with Σ b_k = 1.
double reference_style(const ObjectiveConfig& config, const std::vector<Tensor>& fx,
                       const std::vector<std::vector<Tensor>>& styles, const std::vector<double>& blend) {
    double total = 0;
    for (const auto& layer : config.style_layers) {
        const int l = vgg19_layer_index(layer.layer);
        const std::vector<double> g = reference_gram(fx[l]);
        std::vector<double> a(g.size(), 0.0);
        for (std::size_t k = 0; k < styles.size(); ++k) {
            const std::vector<double> ak = reference_gram(styles[k][l]);
            for (std::size_t e = 0; e < a.size(); ++e) a[e] += blend[k] * ak[e];
        }
        const double n = fx[l].c, m = double(fx[l].h) * fx[l].w;
        double s = 0;
        for (std::size_t e = 0; e < g.size(); ++e) s += (g[e] - a[e]) * (g[e] - a[e]);
        total += layer.weight * s / (4 * n * n * m * m);
    }
    return total;
}

// Guided: L_s = Σ_l w_l Σ_r Σ_ij (G_r − A_r M_r / M^s_r)² / (4 N² M_r²), style images whole (s_r = 1).
double reference_guided_style(const ObjectiveConfig& config, const std::vector<Tensor>& fx,
                              const std::vector<std::vector<Tensor>>& styles,
                              const std::vector<std::vector<float>>& output_masks) {
    double total = 0;
    for (const auto& layer : config.style_layers) {
        const int l = vgg19_layer_index(layer.layer);
        double e = 0;
        for (std::size_t r = 0; r < output_masks.size(); ++r) {
            const std::vector<float> m = mask_at_layer(output_masks[r], kWidth, kHeight, l);
            const double size = mask_size(m);
            if (!(size > 0)) continue;
            const std::vector<double> g = reference_gram(fx[l], m), a = reference_gram(styles[r][l]);
            const double style_size = double(styles[r][l].h) * styles[r][l].w, n = fx[l].c;
            double s = 0;
            for (std::size_t k = 0; k < g.size(); ++k)
                s += std::pow(g[k] - a[k] * size / style_size, 2);
            e += s / (4 * n * n * size * size);
        }
        total += layer.weight * e;
    }
    return total;
}

double reference_tv(const Tensor& x) {
    double tv = 0;
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < x.h; ++i)
            for (int j = 0; j < x.w; ++j) {
                if (j + 1 < x.w) tv += std::pow(x.at(c, i, j + 1) - x.at(c, i, j), 2);
                if (i + 1 < x.h) tv += std::pow(x.at(c, i + 1, j) - x.at(c, i, j), 2);
            }
    return tv;
}

// L_temporal = Σ_k (1/D) Σ_{c,p} w_k(p) (x_{c,p} − ω_k(c,p))², D = 3·H·W.
double reference_temporal(const Tensor& x, const std::vector<TemporalTarget>& targets) {
    const std::size_t plane = std::size_t(x.h) * x.w;
    double total = 0;
    for (const TemporalTarget& target : targets) {
        double s = 0;
        for (std::size_t i = 0; i < x.v.size(); ++i)
            s += double(target.weights[i % plane]) * std::pow(x.v[i] - double(target.warped.pixels[i]), 2);
        total += s / double(x.v.size());
    }
    return total;
}

// An earlier frame warped here: random pixels, weights in [0,1] with occluded
// (0) and fully trusted (1) pixels.
TemporalTarget temporal_target(unsigned seed) {
    TemporalTarget target;
    target.warped = test::random_image(kWidth, kHeight, seed);
    target.weights = test::random_vector(std::size_t(kWidth) * kHeight, seed + 1, 0.0f, 1.0f);
    for (std::size_t p = 0; p < target.weights.size(); p += 4) target.weights[p] = 0.0f;
    for (std::size_t p = 1; p < target.weights.size(); p += 9) target.weights[p] = 1.0f;
    return target;
}

// ---- one term through the evaluation path ----

struct TermResult {
    double value = 0;
    std::vector<float> grad;
};

// The term alone through queue_loss_terms, the objective's path.
TermResult evaluate_term(LossContext& context, const LossTermList& terms, const Image& start) {
    Backend& backend = context.backend;
    allocate_term_slots(context, terms);
    const std::vector<bool> has_loss = layers_read(context, terms);
    Buffer x(backend, start.pixels.size()), grad(backend, start.pixels.size());
    backend.upload(x.data(), start.pixels.data(), start.pixels.size());
    queue_loss_terms(context, terms, has_loss, x.data(), grad.data());
    context.slots.queue_read();
    backend.synchronize();
    TermResult result;
    result.value = terms[0]->read_value();
    result.grad.resize(start.pixels.size());
    backend.download(result.grad.data(), grad.data(), result.grad.size());
    return result;
}

// Compares a term's value and image gradient with the oracle `reference(x)`
// (its unweighted value) times `weight`, the gradient by central differences.
void check_against_oracle(const TermResult& result, double weight,
                          const std::function<double(const Tensor&)>& reference, const Tensor& x) {
    const double expected = reference(x);
    INFO("value " << result.value << ", oracle " << expected);
    // float32 activations through ≤ 5 conv layers: a relative error of a few 1e-6,
    // squared differences of them (as tests/test_objective.cpp).
    CHECK(result.value == Approx(expected).epsilon(1e-4));
    // h = 1e-5 in pixel units: truncation O(h²) ≈ 1e-10 relative; a ReLU kink
    // within ±h of a pixel is improbable for random inputs.
    const double h = 1e-5;
    std::vector<double> fd(x.v.size());
    Tensor probe = x;
    for (std::size_t i = 0; i < fd.size(); ++i) {
        const double saved = probe.v[i];
        probe.v[i] = saved + h;
        const double up = reference(probe);
        probe.v[i] = saved - h;
        const double down = reference(probe);
        probe.v[i] = saved;
        fd[i] = weight * (up - down) / (2 * h);
    }
    double scale = 0;
    for (double v : fd) scale = std::max(scale, std::fabs(v));
    // atol 1e-4·max|g|, rtol 1e-3: a float32 backward pass of ~10² terms per
    // pixel (as tests/test_objective.cpp, whose network is deeper).
    const auto cmp = test::compare(result.grad, fd, 1e-4 * scale, 1e-3);
    INFO(cmp.report);
    CHECK(cmp.ok);
    CHECK(cmp.relative_l2 < 1e-4);
}

struct Problem {
    VggWeights weights = test::narrow_vgg19(23);
    ObjectiveConfig config = shallow_config();
    Image content = test::random_image(kWidth, kHeight, 31);
    Image style_a = test::random_image(23, 21, 32);  // style images have their own sizes
    Image style_b = test::random_image(15, 18, 33);
    Image start = test::random_image(kWidth, kHeight, 34);

    std::vector<Tensor> features(const Image& image) const {
        return reference_forward(weights, to_tensor(image), kDeepest);
    }
};

ObjectiveConfig with_tile(ObjectiveConfig config, bool tiled) {
    if (tiled) config.tile.core = 8;  // grid 4 at conv3_1: 3 × 3 tiles of 19 × 17
    return config;
}

}  // namespace

TEST_CASE("loss terms: content, with and without a mask, against the oracle", "[objective][loss-terms]") {
    const bool tiled = GENERATE(false, true);
    const bool masked = GENERATE(false, true);
    INFO((tiled ? "tiled" : "untiled") << (masked ? ", masked" : ""));
    const Problem p;
    CpuBackend backend(1);
    LossContext context(backend, p.weights, with_tile(p.config, tiled), kWidth, kHeight);
    REQUIRE(context.tiled() == tiled);
    LossTermList terms;
    terms.push_back(make_content_term(context));
    context.set_loss_layers(layers_read(context, terms));
    auto& content = dynamic_cast<ContentTerm&>(*terms[0]);
    const std::vector<float> mask = masked ? left_mask(kWidth, kHeight, 0.6) : std::vector<float>{};
    if (masked) content.set_mask(mask);
    content.set_content(p.content);
    const TermResult result = evaluate_term(context, terms, p.start);
    const auto fc = p.features(p.content);
    check_against_oracle(result, p.config.content_weight,
                         [&](const Tensor& x) {
                             return reference_content(p.config, reference_forward(p.weights, x, kDeepest), fc, mask);
                         },
                         to_tensor(p.start));
}

TEST_CASE("loss terms: style, one image and blended, against the oracle", "[objective][loss-terms]") {
    const bool tiled = GENERATE(false, true);
    const bool blended = GENERATE(false, true);
    INFO((tiled ? "tiled" : "untiled") << (blended ? ", blended" : ""));
    const Problem p;
    CpuBackend backend(1);
    LossContext context(backend, p.weights, with_tile(p.config, tiled), kWidth, kHeight);
    LossTermList terms;
    terms.push_back(make_style_term(context));
    context.set_loss_layers(layers_read(context, terms));
    auto& style = dynamic_cast<StyleTerm&>(*terms[0]);
    std::vector<std::vector<Tensor>> style_features{p.features(p.style_a)};
    std::vector<double> blend{1.0};
    if (blended) {
        style.set_styles({p.style_a, p.style_b}, {3.0, 1.0});
        style_features.push_back(p.features(p.style_b));
        blend = {0.75, 0.25};
    } else {
        style.set_styles({p.style_a}, {});
    }
    const TermResult result = evaluate_term(context, terms, p.start);
    check_against_oracle(result, p.config.style_weight,
                         [&](const Tensor& x) {
                             return reference_style(p.config, reference_forward(p.weights, x, kDeepest),
                                                    style_features, blend);
                         },
                         to_tensor(p.start));
    REQUIRE(style.per_layer().size() == p.config.style_layers.size());
    double sum = 0;
    for (std::size_t i = 0; i < style.per_layer().size(); ++i)
        sum += p.config.style_layers[i].weight * style.per_layer()[i];
    CHECK(sum == result.value);  // E_l weighted: the same sum, in the same order
}

TEST_CASE("loss terms: guided style against the oracle", "[objective][loss-terms][controls]") {
    const bool tiled = GENERATE(false, true);
    INFO((tiled ? "tiled" : "untiled"));
    const Problem p;
    CpuBackend backend(1);
    LossContext context(backend, p.weights, with_tile(p.config, tiled), kWidth, kHeight);
    LossTermList terms;
    terms.push_back(make_style_term(context));
    context.set_loss_layers(layers_read(context, terms));
    // Two regions that split the image off the pooling grid (soft pooled edges).
    const std::vector<float> left = left_mask(kWidth, kHeight, 0.45);
    const std::vector<std::vector<float>> masks{left, complement(left)};
    dynamic_cast<StyleTerm&>(*terms[0]).set_guided_styles({p.style_a, p.style_b}, masks, {});
    const TermResult result = evaluate_term(context, terms, p.start);
    const std::vector<std::vector<Tensor>> style_features{p.features(p.style_a), p.features(p.style_b)};
    check_against_oracle(result, p.config.style_weight,
                         [&](const Tensor& x) {
                             return reference_guided_style(p.config, reference_forward(p.weights, x, kDeepest),
                                                           style_features, masks);
                         },
                         to_tensor(p.start));
}

TEST_CASE("loss terms: total variation against the oracle", "[objective][loss-terms]") {
    const bool tiled = GENERATE(false, true);
    const Problem p;
    CpuBackend backend(1);
    LossContext context(backend, p.weights, with_tile(p.config, tiled), kWidth, kHeight);
    LossTermList terms;
    terms.push_back(make_tv_term(context));
    context.set_loss_layers(layers_read(context, terms));
    CHECK(terms[0]->layers().empty());
    const TermResult result = evaluate_term(context, terms, p.start);
    check_against_oracle(result, p.config.tv_weight, reference_tv, to_tensor(p.start));
}

TEST_CASE("loss terms: temporal, one and two targets, against the oracle", "[objective][loss-terms][temporal]") {
    const bool tiled = GENERATE(false, true);
    const int count = GENERATE(1, 2);
    INFO((tiled ? "tiled" : "untiled") << ", " << count << " target(s)");
    const Problem p;
    CpuBackend backend(1);
    LossContext context(backend, p.weights, with_tile(p.config, tiled), kWidth, kHeight);
    LossTermList terms;
    terms.push_back(make_temporal_term(context));
    context.set_loss_layers(layers_read(context, terms));
    CHECK(terms[0]->layers().empty());
    std::vector<TemporalTarget> targets{temporal_target(41)};
    if (count == 2) targets.push_back(temporal_target(43));
    auto& temporal = dynamic_cast<TemporalTerm&>(*terms[0]);
    temporal.set_targets(targets);
    CHECK(temporal.slot_count() == targets.size());
    const TermResult result = evaluate_term(context, terms, p.start);
    // The term is exact to double sums of exact terms (tests/test_cpu_ops.cpp),
    // far inside check_against_oracle's tolerances for terms through the network.
    CHECK(result.value == Approx(reference_temporal(to_tensor(p.start), targets)).epsilon(1e-12));
    check_against_oracle(result, p.config.temporal_weight,
                         [&](const Tensor& x) { return reference_temporal(x, targets); }, to_tensor(p.start));
}

TEST_CASE("loss terms: temporal, tiled equals untiled and two targets are the sum of each",
          "[objective][loss-terms][temporal][tiles]") {
    const Problem p;
    CpuBackend backend(1);
    const TemporalTarget a = temporal_target(51), b = temporal_target(53);
    // The term alone, tiled or not, with these targets.
    const auto run = [&](bool tiled, const std::vector<TemporalTarget>& targets) {
        LossContext context(backend, p.weights, with_tile(p.config, tiled), kWidth, kHeight);
        LossTermList terms;
        terms.push_back(make_temporal_term(context));
        context.set_loss_layers(layers_read(context, terms));
        REQUIRE(context.tiled() == tiled);
        terms[0]->set_inputs([&] { ObjectiveInputs in; in.temporal = targets; return in; }());
        return evaluate_term(context, terms, p.start);
    };
    const TermResult untiled = run(false, {a, b}), tiled = run(true, {a, b});
    // It acts on the whole image after the tiles: the same ops on the same data.
    CHECK(tiled.value == untiled.value);
    CHECK(tiled.grad == untiled.grad);
    // Each target has its slot and adds its gradient in turn onto a zero one:
    // the value is the sum of the single values, the gradient each element's
    // float sum of the single gradients.
    const TermResult only_a = run(false, {a}), only_b = run(false, {b});
    CHECK(untiled.value == only_a.value + only_b.value);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < untiled.grad.size(); ++i)
        if (untiled.grad[i] != only_a.grad[i] + only_b.grad[i] && ++wrong <= 5)
            UNSCOPED_INFO("grad[" << i << "] = " << untiled.grad[i] << ", a + b = " << only_a.grad[i] + only_b.grad[i]);
    CHECK(wrong == 0);
}

namespace {

// The CPU backend, counting its allocations.
class AllocationCountingBackend final : public CpuBackend {
public:
    AllocationCountingBackend() : CpuBackend(1) {}
    float* allocate(std::size_t count) override {
        ++allocations;
        return CpuBackend::allocate(count);
    }
    std::size_t allocations = 0;
};

}  // namespace

TEST_CASE("loss terms: temporal targets set again are uploaded into the same buffers",
          "[objective][loss-terms][temporal][memory]") {
    const Problem p;
    AllocationCountingBackend backend;
    StyleTransferObjective objective(backend, p.weights, p.config, kWidth, kHeight);
    objective.set_styles({p.style_a});
    objective.set_content(p.content);
    Buffer x(backend, objective.size()), grad(backend, objective.size());
    backend.upload(x.data(), p.start.pixels.data(), p.start.pixels.size());
    objective.set_temporal_targets({temporal_target(61), temporal_target(63)});
    objective.evaluate(x.data(), grad.data());
    const std::size_t allocations = backend.allocations, bytes = backend.bytes_in_use();
    // A video's next frame: new targets, as many, of the same size.
    const std::vector<TemporalTarget> next{temporal_target(65), temporal_target(67)};
    objective.set_temporal_targets(next);
    const double loss = objective.evaluate(x.data(), grad.data());
    CHECK(backend.allocations == allocations);
    CHECK(backend.bytes_in_use() == bytes);
    CHECK(objective.last_terms().temporal == Approx(reference_temporal(to_tensor(p.start), next)).epsilon(1e-12));
    // One target fewer frees one, one more allocates one (and the slots change).
    objective.set_temporal_targets({next[0]});
    CHECK(backend.bytes_in_use() < bytes);
    objective.set_temporal_targets(next);
    CHECK(backend.bytes_in_use() == bytes);
    CHECK(objective.evaluate(x.data(), grad.data()) == loss);
}

TEST_CASE("loss terms: bad temporal targets are refused with one clear line", "[objective][loss-terms][temporal]") {
    const Problem p;
    CpuBackend backend(1);
    LossContext context(backend, p.weights, p.config, kWidth, kHeight);
    TemporalTerm term(context);
    term.set_targets({temporal_target(71)});
    const std::size_t held = term.held_bytes();
    const auto refused = [&](const std::string& what, const std::function<void(TemporalTarget&)>& spoil,
                             const std::string& message) {
        std::vector<TemporalTarget> targets{temporal_target(73), temporal_target(75)};
        spoil(targets[1]);
        INFO(what);
        try {
            term.set_targets(targets);
            FAIL("accepted");
        } catch (const InputError& e) {
            const std::string text = e.what();
            INFO(text);
            CHECK(text.find('\n') == std::string::npos);
            CHECK(text.find("temporal target 1") != std::string::npos);
            CHECK(text.find(message) != std::string::npos);
        }
        // Refused before anything was taken: the term is as it was.
        CHECK(term.target_count() == 1);
        CHECK(term.held_bytes() == held);
    };
    refused("a smaller warped frame", [](TemporalTarget& t) { t.warped = test::random_image(kWidth - 1, kHeight, 1); },
            "is 18x17, expected the output's 19x17");
    refused("too few weights", [](TemporalTarget& t) { t.weights.pop_back(); }, "322 consistency weights");
    refused("a NaN pixel", [](TemporalTarget& t) { t.warped.at(2, 3, 4) = std::nanf(""); },
            "non-finite value at channel 2, pixel (4, 3)");
    refused("an infinite weight", [](TemporalTarget& t) { t.weights[5] = INFINITY; }, "pixel (5, 0) is not in [0, 1]");
    refused("a negative weight", [](TemporalTarget& t) { t.weights[20] = -0.5f; }, "pixel (1, 1) is not in [0, 1]");
    refused("a NaN weight", [](TemporalTarget& t) { t.weights[0] = std::nanf(""); }, "is not in [0, 1]");
}

TEST_CASE("loss terms: held_bytes() is what the backend holds for each term", "[objective][loss-terms][memory]") {
    const bool tiled = GENERATE(false, true);
    INFO((tiled ? "tiled" : "untiled"));
    const Problem p;
    CpuBackend backend(1);
    LossContext context(backend, p.weights, with_tile(p.config, tiled), kWidth, kHeight);
    {
        LossTermList all;
        all.push_back(make_content_term(context));
        all.push_back(make_style_term(context));
        context.set_loss_layers(layers_read(context, all));
    }
    const std::vector<float> left = left_mask(kWidth, kHeight, 0.45);
    // Each set-up of a term, on terms of their own.
    const std::vector<std::pair<std::string, std::function<std::unique_ptr<LossTerm>()>>> setups{
        {"content", [&] { auto t = std::make_unique<ContentTerm>(context); t->set_content(p.content); return t; }},
        {"masked content",
         [&] { auto t = std::make_unique<ContentTerm>(context); t->set_mask(left); t->set_content(p.content); return t; }},
        {"style", [&] { auto t = std::make_unique<StyleTerm>(context); t->set_styles({p.style_a}, {}); return t; }},
        {"blended style",
         [&] { auto t = std::make_unique<StyleTerm>(context); t->set_styles({p.style_a, p.style_b}, {1, 2}); return t; }},
        {"guided style",
         [&] {
             auto t = std::make_unique<StyleTerm>(context);
             t->set_guided_styles({p.style_a, p.style_b}, {left, complement(left)}, {{}, left_mask(15, 18, 0.5)});
             return t;
         }},
        {"tv", [&] { return std::make_unique<TvTerm>(context); }},
        {"temporal",
         [&] {
             auto t = std::make_unique<TemporalTerm>(context);
             t->set_targets({temporal_target(81), temporal_target(83)});
             return t;
         }},
    };
    // A first round grows what the backend keeps across calls (its convolution
    // scratch, the network's transformed filters) and the context's mask
    // scratch, none of which a term holds.
    for (const auto& setup : setups) setup.second();
    for (const auto& setup : setups) {
        INFO(setup.first);
        const std::size_t before = backend.bytes_in_use();
        std::unique_ptr<LossTerm> term = setup.second();
        CHECK(backend.bytes_in_use() - before == term->held_bytes());
        term.reset();
        CHECK(backend.bytes_in_use() == before);  // it held nothing else
    }
}

TEST_CASE("loss terms: the weighted values sum to the objective's loss", "[objective][loss-terms]") {
    const bool tiled = GENERATE(false, true);
    const bool guided = GENERATE(false, true);
    INFO((tiled ? "tiled" : "untiled") << (guided ? ", guided and masked" : ""));
    const Problem p;
    CpuBackend backend(1);
    StyleTransferObjective objective(backend, p.weights, with_tile(p.config, tiled), kWidth, kHeight);
    const std::vector<float> left = left_mask(kWidth, kHeight, 0.45);
    if (guided) {
        objective.set_content_mask(left);
        objective.set_guided_styles({p.style_a, p.style_b}, {left, complement(left)});
    } else {
        objective.set_styles({p.style_a, p.style_b}, {1.0, 2.0});
    }
    objective.set_content(p.content);
    objective.set_temporal_targets({temporal_target(91), temporal_target(93)});
    Buffer x(backend, objective.size()), grad(backend, objective.size());
    backend.upload(x.data(), p.start.pixels.data(), p.start.pixels.size());
    const double loss = objective.evaluate(x.data(), grad.data());
    const LossTerms& terms = objective.last_terms();
    REQUIRE(objective.loss_terms().size() == std::size(kLossTermFields));
    double sum = 0;
    std::string names;
    for (std::size_t k = 0; k < std::size(kLossTermFields); ++k) {
        const LossTermField& field = kLossTermFields[k];
        names += std::string(k ? "," : "") + field.name;
        // The unit's value is the one reported.
        CHECK(objective.loss_terms()[k]->read_value() == terms.*field.value);
        CHECK(terms.*field.value > 0);
        sum = k == 0 ? p.config.*field.weight * terms.*field.value
                     : sum + p.config.*field.weight * terms.*field.value;
    }
    CHECK(names == "content,style,tv,temporal");
    CHECK(sum == loss);  // the same sum, in list order
    CHECK(terms.loss == loss);
}
