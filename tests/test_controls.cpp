// Perceptual controls (Gatys et al. 2017, "Controlling Perceptual Factors in
// Neural Style Transfer"): colour (YIQ, luminance matching, colour-histogram
// matching), spatial control (guided Gram matrices, the masked content loss)
// and coarse-to-fine scales, each against an independent oracle: double-
// precision formulas written here, finite differences, or a fresh objective
// built by hand.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "engine/io/color.h"
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/base/error.h"
#include "engine/objective/masks.h"
#include "engine/objective/objective.h"
#include "tests/test_support.h"

using namespace nst;

namespace {


// Random pixels with correlated channels and unequal spreads, so that every
// entry of the colour covariance matters (a random_image's is nearly diagonal).
Image correlated_image(int width, int height, unsigned seed, const double mix[3][3], const double offset[3]) {
    Image image = test::random_image(width, height, seed);
    const std::size_t plane = image.plane();
    for (std::size_t p = 0; p < plane; ++p) {
        const double x[3] = {image.pixels[p], image.pixels[plane + p], image.pixels[2 * plane + p]};
        for (int c = 0; c < 3; ++c)
            image.pixels[c * plane + p] = float(offset[c] + mix[c][0] * x[0] + mix[c][1] * x[1] + mix[c][2] * x[2]);
    }
    return image;
}

// The published YIQ matrix (NTSC 1953), applied in double: the oracle.
const double kYiq[3][3] = {{0.299, 0.587, 0.114}, {0.595716, -0.274453, -0.321263}, {0.211456, -0.522591, 0.311135}};

std::vector<double> yiq_plane(const Image& rgb, int channel) {
    const std::size_t plane = rgb.plane();
    std::vector<double> out(plane);
    for (std::size_t p = 0; p < plane; ++p)
        out[p] = kYiq[channel][0] * rgb.pixels[p] + kYiq[channel][1] * rgb.pixels[plane + p] +
                 kYiq[channel][2] * rgb.pixels[2 * plane + p];
    return out;
}

void mean_std(const std::vector<double>& v, double& mean, double& sd) {
    mean = 0;
    for (double x : v) mean += x;
    mean /= double(v.size());
    double var = 0;
    for (double x : v) var += (x - mean) * (x - mean);
    sd = std::sqrt(var / double(v.size()));
}


// ---- the oracle for spatial control: double precision, naive loops -------------------
using test::Tensor;

// Post-ReLU activations up to `deepest`, average pooling.
std::vector<Tensor> reference_forward(const VggWeights& weights, const std::vector<double>& x, int width,
                                      int height, int deepest) {
    const Preprocessing& p = weights.preprocessing;
    Tensor in{3, height, width, std::vector<double>(x.size())};
    const std::size_t plane = std::size_t(width) * height;
    for (int c = 0; c < 3; ++c)
        for (std::size_t k = 0; k < plane; ++k)
            in.v[c * plane + k] = (double(p.pixel_scale) * x[(p.bgr ? 2 - c : c) * plane + k] - p.mean[c]) / p.std[c];
    std::vector<Tensor> outs;
    for (int l = 0; l <= deepest; ++l) {
        const ConvWeights& cw = weights.layers[l];
        const Tensor out = test::reference_conv3x3_relu(cw, in);
        outs.push_back(out);
        if (vgg19_pool_after(l) && l < deepest) {
            Tensor pooled{out.c, out.h / 2, out.w / 2, std::vector<double>(std::size_t(out.c) * (out.h / 2) * (out.w / 2))};
            for (int c = 0; c < out.c; ++c)
                for (int i = 0; i < pooled.h; ++i)
                    for (int j = 0; j < pooled.w; ++j)
                        pooled.at(c, i, j) = (out.at(c, 2 * i, 2 * j) + out.at(c, 2 * i, 2 * j + 1) +
                                              out.at(c, 2 * i + 1, 2 * j) + out.at(c, 2 * i + 1, 2 * j + 1)) / 4;
            in = pooled;
        } else {
            in = out;
        }
    }
    return outs;
}

// A mask (width × height) at layer `layer`, pooled in double.
std::vector<double> reference_mask(const std::vector<float>& mask, int width, int height, int layer) {
    std::vector<double> m(mask.begin(), mask.end());
    for (int l = 0; l < layer; ++l)
        if (vgg19_pool_after(l)) {
            std::vector<double> pooled(std::size_t(width / 2) * (height / 2));
            for (int i = 0; i < height / 2; ++i)
                for (int j = 0; j < width / 2; ++j)
                    pooled[std::size_t(i) * (width / 2) + j] =
                        (m[std::size_t(2 * i) * width + 2 * j] + m[std::size_t(2 * i) * width + 2 * j + 1] +
                         m[std::size_t(2 * i + 1) * width + 2 * j] + m[std::size_t(2 * i + 1) * width + 2 * j + 1]) / 4;
            m = pooled;
            width /= 2;
            height /= 2;
        }
    return m;
}

// Guided Gram matrix of region m, divided by the region's size Σ m².
std::vector<double> normalised_guided_gram(const Tensor& f, const std::vector<double>& m) {
    const std::size_t plane = std::size_t(f.h) * f.w;
    double size = 0;
    for (double v : m) size += v * v;
    std::vector<double> g(std::size_t(f.c) * f.c, 0.0);
    for (int a = 0; a < f.c; ++a)
        for (int b = 0; b < f.c; ++b) {
            double s = 0;
            for (std::size_t k = 0; k < plane; ++k) s += m[k] * m[k] * f.v[a * plane + k] * f.v[b * plane + k];
            g[std::size_t(a) * f.c + b] = s / size;
        }
    return g;
}

struct GuidedProblem {
    VggWeights weights;
    ObjectiveConfig config;
    int width = 0, height = 0;
    Image content;
    std::vector<Image> styles;
    std::vector<std::vector<float>> output_masks, style_masks;
    std::vector<float> content_mask;
};

int deepest_of(const ObjectiveConfig& config) {
    int deepest = 0;
    for (auto& l : config.content_layers) deepest = std::max(deepest, vgg19_layer_index(l.layer));
    for (auto& l : config.style_layers) deepest = std::max(deepest, vgg19_layer_index(l.layer));
    return deepest;
}

// The formulas of objective.h ("Spatial control"), independently: returns the
// unweighted content and style terms at x.
std::pair<double, double> reference_guided(const GuidedProblem& p, const std::vector<double>& x) {
    const int deepest = deepest_of(p.config);
    const auto fx = reference_forward(p.weights, x, p.width, p.height, deepest);
    const auto fc = reference_forward(p.weights, std::vector<double>(p.content.pixels.begin(), p.content.pixels.end()),
                                      p.width, p.height, deepest);
    double content = 0;
    for (const auto& l : p.config.content_layers) {
        const int i = vgg19_layer_index(l.layer);
        const auto m = reference_mask(p.content_mask, p.width, p.height, i);
        const std::size_t plane = std::size_t(fx[i].h) * fx[i].w;
        double s = 0;
        for (std::size_t k = 0; k < fx[i].v.size(); ++k) {
            const double d = m[k % plane] * (fx[i].v[k] - fc[i].v[k]);
            s += d * d;
        }
        content += l.weight * 0.5 * s;
    }
    double style = 0;
    for (std::size_t r = 0; r < p.styles.size(); ++r) {
        const Image& s = p.styles[r];
        const auto fs = reference_forward(p.weights, std::vector<double>(s.pixels.begin(), s.pixels.end()),
                                          s.width, s.height, deepest);
        for (const auto& l : p.config.style_layers) {
            const int i = vgg19_layer_index(l.layer);
            const auto m = reference_mask(p.output_masks[r], p.width, p.height, i);
            const auto sm = r < p.style_masks.size() && !p.style_masks[r].empty()
                                ? reference_mask(p.style_masks[r], s.width, s.height, i)
                                : std::vector<double>(std::size_t(fs[i].h) * fs[i].w, 1.0);
            const auto g = normalised_guided_gram(fx[i], m), a = normalised_guided_gram(fs[i], sm);
            double e = 0;
            for (std::size_t k = 0; k < g.size(); ++k) e += (g[k] - a[k]) * (g[k] - a[k]);
            style += l.weight * e / (4.0 * fx[i].c * fx[i].c);
        }
    }
    return {content, style};
}

GuidedProblem guided_problem() {
    GuidedProblem p;
    p.weights = test::narrow_vgg19(21);
    // conv2_1 sits after a pool (masks pooled once), conv1_1 at full size;
    // the content layer conv2_2 is masked too.
    p.config.content_layers = {{"conv2_2", 1.0}};
    p.config.style_layers = {{"conv1_1", 0.5}, {"conv2_1", 0.5}};
    p.config.tv_weight = 0.0;
    p.width = 13;  // odd: the pool drops a column and a row
    p.height = 11;
    p.content = test::random_image(p.width, p.height, 31);
    p.styles = {test::random_image(15, 12, 32), test::random_image(11, 14, 33)};
    // Soft masks (values in (0,1)) so that partial members and Σ m² matter.
    const std::size_t plane = std::size_t(p.width) * p.height;
    const auto soft = test::random_vector(plane, 34, 0.0f, 1.0f);
    std::vector<float> first(plane), second(plane);
    for (std::size_t k = 0; k < plane; ++k) {
        const int column = int(k % std::size_t(p.width));
        first[k] = column < 6 ? 1.0f : 0.3f * soft[k];
        second[k] = column < 6 ? 0.2f * soft[k] : 1.0f;
    }
    p.output_masks = {first, second};
    // Style 1 uses its own region (a soft mask), style 2 its whole image.
    p.style_masks = {test::random_vector(15 * 12, 35, 0.1f, 1.0f), {}};
    p.content_mask = test::random_vector(plane, 36, 0.0f, 1.0f);
    return p;
}

}  // namespace

// ---- colour --------------------------------------------------------------------------

TEST_CASE("controls: RGB -> YIQ follows the published matrix and round-trips exactly", "[controls][color]") {
    const Image rgb = test::random_image(23, 17, 1);
    const Image yiq = rgb_to_yiq(rgb);
    for (int c = 0; c < 3; ++c) {
        std::vector<float> plane(yiq.pixels.begin() + c * long(rgb.plane()),
                                 yiq.pixels.begin() + (c + 1) * long(rgb.plane()));
        // One float rounding of a value ≤ 1.2 in magnitude: ≤ 1.2 · 2⁻²⁴ ≈ 7e-8.
        const auto cmp = test::compare(plane, yiq_plane(rgb, c), 1e-7, 0.0);
        INFO("channel " << c << "\n" << cmp.report);
        CHECK(cmp.ok);
    }
    const Image back = yiq_to_rgb(yiq);
    // The inverse is the exact inverse in double; the only errors are the float
    // roundings of YIQ (≤ 7e-8 each) carried through an inverse whose rows sum to
    // ≤ 2.8 in absolute value: ≤ 3e-7; 1e-6 leaves margin.
    const auto cmp = test::compare(back.pixels, rgb.pixels, 1e-6, 0.0);
    INFO(cmp.report);
    CHECK(cmp.ok);
    // Grey (Y, Y, Y) has luminance Y and no chroma, since 0.299 + 0.587 + 0.114 = 1
    // and the I and Q rows sum to 0.
    const Image grey = grey_image(luminance(rgb), rgb.width, rgb.height);
    const Image grey_yiq = rgb_to_yiq(grey);
    for (std::size_t p = 0; p < rgb.plane(); ++p) {
        CHECK(std::fabs(grey_yiq.pixels[p] - grey.pixels[p]) <= 1e-6);  // two roundings of values ≤ 1
        CHECK(std::fabs(grey_yiq.pixels[rgb.plane() + p]) <= 1e-6);
        CHECK(std::fabs(grey_yiq.pixels[2 * rgb.plane() + p]) <= 1e-6);
    }
}

TEST_CASE("controls: luminance matching gives the content's mean and standard deviation", "[controls][color]") {
    const auto source = test::random_vector(900, 2, 0.2f, 0.9f);
    std::vector<float> target = test::random_vector(1200, 3, 0.0f, 0.5f);
    for (float& v : target) v = v * v;  // a different distribution, not only a shift
    const std::vector<float> matched = match_mean_std(source, target);
    double mean, sd, target_mean, target_sd;
    mean_std(std::vector<double>(matched.begin(), matched.end()), mean, sd);
    mean_std(std::vector<double>(target.begin(), target.end()), target_mean, target_sd);
    // Values of magnitude < 1 stored in float (relative 6e-8 each): the moments
    // of 900 of them agree to ~1e-7; 1e-6 with margin.
    CHECK(std::fabs(mean - target_mean) <= 1e-6);
    CHECK(std::fabs(sd - target_sd) <= 1e-6);
    // The map is affine and increasing: the order of the values is kept.
    for (std::size_t i = 1; i < source.size(); ++i)
        CHECK((source[i] > source[i - 1]) == (matched[i] > matched[i - 1]));
}

TEST_CASE("controls: recombined images keep the chroma of one and the luminance of the other", "[controls][color]") {
    const Image stylised = test::random_image(19, 13, 4), content = test::random_image(19, 13, 5);
    const Image combined = combine_luminance_chroma(stylised, content);
    const std::vector<double> y = yiq_plane(combined, 0), i = yiq_plane(combined, 1), q = yiq_plane(combined, 2);
    // Oracle: the published matrix in double on each input. Tolerance: the YIQ
    // values are rounded to float once, back to RGB once (≤ 3e-7, first test case)
    // and the oracle's matrix rows sum to ≤ 1.2 in absolute value: ≤ 5e-7.
    const auto cy = test::compare(y, yiq_plane(stylised, 0), 1e-6, 0.0);
    const auto ci = test::compare(i, yiq_plane(content, 1), 1e-6, 0.0);
    const auto cq = test::compare(q, yiq_plane(content, 2), 1e-6, 0.0);
    INFO(cy.report << ci.report << cq.report);
    CHECK(cy.ok);
    CHECK(ci.ok);
    CHECK(cq.ok);
}

TEST_CASE("controls: colour-histogram matching gives the content's mean and covariance", "[controls][color]") {
    const ColorTransfer method = GENERATE(ColorTransfer::cholesky, ColorTransfer::pca, ColorTransfer::symmetric);
    const double style_mix[3][3] = {{0.6, 0.3, 0.0}, {0.1, 0.5, 0.2}, {0.0, 0.4, 0.3}};
    const double content_mix[3][3] = {{0.2, 0.0, 0.1}, {0.3, 0.4, 0.0}, {0.1, 0.2, 0.7}};
    const double style_offset[3] = {0.1, 0.2, 0.05}, content_offset[3] = {0.3, 0.1, 0.1};
    const Image style = correlated_image(41, 37, 6, style_mix, style_offset);
    const Image content = correlated_image(53, 29, 7, content_mix, content_offset);
    const Image matched = match_color_statistics(style, content, method);
    REQUIRE(matched.width == style.width);
    REQUIRE(matched.height == style.height);
    // Oracle: the moments in double, computed here.
    auto moments = [](const Image& image, double mean[3], double cov[3][3]) {
        const std::size_t plane = image.plane();
        for (int c = 0; c < 3; ++c) {
            mean[c] = 0;
            for (std::size_t p = 0; p < plane; ++p) mean[c] += image.pixels[c * plane + p];
            mean[c] /= double(plane);
        }
        for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) {
                cov[a][b] = 0;
                for (std::size_t p = 0; p < plane; ++p)
                    cov[a][b] += (image.pixels[a * plane + p] - mean[a]) * (image.pixels[b * plane + p] - mean[b]);
                cov[a][b] /= double(plane);
            }
    };
    double m_mean[3], m_cov[3][3], c_mean[3], c_cov[3][3];
    moments(matched, m_mean, m_cov);
    moments(content, c_mean, c_cov);
    double scale = 0;
    for (auto& row : c_cov)
        for (double v : row) scale = std::max(scale, std::fabs(v));
    for (int a = 0; a < 3; ++a) {
        // Float storage of values < 1.5: the mean is exact to ~1e-7.
        CHECK(std::fabs(m_mean[a] - c_mean[a]) <= 1e-6);
        for (int b = 0; b < 3; ++b) {
            INFO("covariance[" << a << "][" << b << "]: " << m_cov[a][b] << " vs " << c_cov[a][b]);
            // The ridge of 1e-9·tr(Σ_s)/3 on Σ_s changes A Σ_s Aᵀ by about 1e-9 ×
            // cond(Σ_s) (< 1e3 here) relative; storing the pixels in float adds
            // ~1e-7 relative per moment. 1e-5 of the largest entry leaves margin.
            CHECK(std::fabs(m_cov[a][b] - c_cov[a][b]) <= 1e-5 * scale);
        }
    }
}

TEST_CASE("controls: the three colour transfers are different maps", "[controls][color]") {
    // Each matches the same two moments, so they may differ only in the map; a
    // mistake that made two of them the same code path would pass the test above.
    const double style_mix[3][3] = {{0.6, 0.3, 0.0}, {0.1, 0.5, 0.2}, {0.0, 0.4, 0.3}};
    const double content_mix[3][3] = {{0.2, 0.0, 0.1}, {0.3, 0.4, 0.0}, {0.1, 0.2, 0.7}};
    const double offset[3] = {0.1, 0.1, 0.1};
    const Image style = correlated_image(31, 29, 8, style_mix, offset);
    const Image content = correlated_image(30, 20, 9, content_mix, offset);
    const Image a = match_color_statistics(style, content, ColorTransfer::cholesky);
    const Image b = match_color_statistics(style, content, ColorTransfer::pca);
    const Image c = match_color_statistics(style, content, ColorTransfer::symmetric);
    auto distance = [](const Image& x, const Image& y) {
        double d = 0;
        for (std::size_t i = 0; i < x.pixels.size(); ++i) d = std::max(d, double(std::fabs(x.pixels[i] - y.pixels[i])));
        return d;
    };
    CHECK(distance(a, b) > 1e-3);
    CHECK(distance(a, c) > 1e-3);
    CHECK(distance(b, c) > 1e-3);
    CHECK_THROWS_AS(parse_color_transfer("lab"), UsageError);
}

// ---- spatial control ------------------------------------------------------------------

TEST_CASE("controls: mask pooling and the mask multiply match the network's pooling and naive loops", "[controls][masks]") {
    CpuBackend backend(1);
    const int width = 13, height = 9, channels = 4;
    const auto mask = test::random_vector(std::size_t(width) * height, 40, 0.0f, 1.0f);
    // pool_mask against the backend's average pooling of a one-channel image:
    // the same summation order, so the same bits.
    Buffer in(backend, mask.size()), out(backend, std::size_t(width / 2) * (height / 2));
    backend.upload(in.data(), mask.data(), mask.size());
    backend.pool_forward(PoolMode::average, 1, height, width, in.data(), out.data());
    std::vector<float> pooled(out.size());
    backend.download(pooled.data(), out.data(), pooled.size());
    CHECK(pool_mask(mask, width, height) == pooled);
    int lw = 0, lh = 0;
    CHECK(mask_at_layer(mask, width, height, vgg19_layer_index("conv2_1"), false, &lw, &lh) == pooled);
    CHECK(lw == width / 2);
    CHECK(lh == height / 2);

    const auto x = test::random_vector(std::size_t(channels) * mask.size(), 41);
    Buffer bx(backend, x.size()), bm(backend, mask.size()), by(backend, x.size());
    backend.upload(bx.data(), x.data(), x.size());
    backend.upload(bm.data(), mask.data(), mask.size());
    backend.mask_channels(channels, mask.size(), bx.data(), bm.data(), by.data());
    std::vector<float> y(x.size());
    backend.download(y.data(), by.data(), y.size());
    std::vector<float> expected(x.size());
    for (int c = 0; c < channels; ++c)
        for (std::size_t p = 0; p < mask.size(); ++p) expected[c * mask.size() + p] = x[c * mask.size() + p] * mask[p];
    CHECK(y == expected);  // one float multiply each: identical
    backend.mask_channels(channels, mask.size(), bx.data(), bm.data(), bx.data());  // in place
    backend.download(y.data(), bx.data(), y.size());
    CHECK(y == expected);
}

TEST_CASE("controls: guided Gram style loss and masked content loss match a double-precision oracle and finite differences", "[controls][masks]") {
    GuidedProblem p = guided_problem();
    const Image start = test::random_image(p.width, p.height, 37);
    const std::vector<double> x0(start.pixels.begin(), start.pixels.end());
    const auto unweighted = reference_guided(p, x0);
    REQUIRE(unweighted.first > 0);
    REQUIRE(unweighted.second > 0);
    // Each term with the same share of L, so a mistake in either shows.
    p.config.content_weight = 1.0 / unweighted.first;
    p.config.style_weight = 1.0 / unweighted.second;
    auto total = [&](const std::vector<double>& x) {
        const auto t = reference_guided(p, x);
        return p.config.content_weight * t.first + p.config.style_weight * t.second;
    };

    CpuBackend backend(1);
    StyleTransferObjective objective(backend, p.weights, p.config, p.width, p.height);
    objective.set_content_mask(p.content_mask);
    objective.set_content(p.content);
    objective.set_guided_styles(p.styles, p.output_masks, p.style_masks);
    Buffer x(backend, objective.size()), grad(backend, objective.size());
    backend.upload(x.data(), start.pixels.data(), start.pixels.size());
    const double loss = objective.evaluate(x.data(), grad.data());
    std::vector<float> gradient(objective.size());
    backend.download(gradient.data(), grad.data(), gradient.size());

    const LossTerms& terms = objective.last_terms();
    INFO("content " << terms.content << " ref " << unweighted.first << "; style " << terms.style << " ref "
                    << unweighted.second);
    // float32 activations and Gram matrices over ≤ 143 positions: relative
    // errors of a few 1e-6 in sums of squares (as in test_objective).
    CHECK(terms.content == Approx(unweighted.first).epsilon(1e-4));
    CHECK(terms.style == Approx(unweighted.second).epsilon(1e-4));
    CHECK(loss == Approx(2.0).epsilon(1e-4));  // each term weighted to 1

    // Central differences of the double oracle, h = 1e-5 (see test_objective.cpp:
    // truncation ~1e-10 relative; a ReLU kink within ±h is improbable).
    const double h = 1e-5;
    std::vector<double> fd(x0.size());
    std::vector<double> probe = x0;
    for (std::size_t i = 0; i < fd.size(); ++i) {
        probe[i] = x0[i] + h;
        const double up = total(probe);
        probe[i] = x0[i] - h;
        const double down = total(probe);
        probe[i] = x0[i];
        fd[i] = (up - down) / (2 * h);
    }
    double scale = 0;
    for (double v : fd) scale = std::max(scale, std::fabs(v));
    // float32 backward pass against double: as in test_objective.cpp.
    const auto cmp = test::compare(gradient, fd, 1e-4 * scale, 1e-3);
    INFO(cmp.report);
    CHECK(cmp.ok);
    CHECK(cmp.relative_l2 < 1e-4);
}

TEST_CASE("controls: the style gradient inside one region does not depend on the other region's style", "[controls][masks]") {
    // Hard, non-overlapping masks (columns < 8 | columns ≥ 8) and one style layer,
    // conv1_1, before any pool. There ∂L/∂F at a position of region 1 is
    // m_1 ⊙ (G_1 − Ã_1)(F ⊙ m_1)/(N² M_1²) + 0: nothing of style 2 enters. The
    // image gradient at column j comes from F at columns j−1..j+1 (one 3×3 conv),
    // so image columns ≤ 6 see only region 1 and must be bit-identical when style
    // 2 changes; the same float operations run on the same values there.
    const VggWeights weights = test::narrow_vgg19(23);
    ObjectiveConfig config;
    config.content_layers = {};
    config.style_layers = {{"conv1_1", 1.0}};
    config.style_weight = 1.0;
    const int width = 16, height = 10, border = 8;
    std::vector<float> left(std::size_t(width) * height), right(left.size());
    for (std::size_t k = 0; k < left.size(); ++k) {
        left[k] = int(k % std::size_t(width)) < border ? 1.0f : 0.0f;
        right[k] = 1.0f - left[k];
    }
    const Image style1 = test::random_image(14, 12, 50), style2 = test::random_image(12, 14, 51),
                other_style2 = test::random_image(15, 11, 52), start = test::random_image(width, height, 53);
    CpuBackend backend(2);
    auto gradient_with = [&](const Image& second) {
        StyleTransferObjective objective(backend, weights, config, width, height);
        objective.set_guided_styles({style1, second}, {left, right});
        Buffer x(backend, objective.size()), grad(backend, objective.size());
        backend.upload(x.data(), start.pixels.data(), start.pixels.size());
        objective.evaluate(x.data(), grad.data());
        std::vector<float> g(objective.size());
        backend.download(g.data(), grad.data(), g.size());
        return g;
    };
    const auto a = gradient_with(style2), b = gradient_with(other_style2);
    int same_inside = 0, differ_outside = 0, outside = 0;
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < height; ++i)
            for (int j = 0; j < width; ++j) {
                const std::size_t k = (std::size_t(c) * height + i) * width + j;
                if (j <= border - 2) {
                    INFO("channel " << c << " row " << i << " column " << j << ": " << a[k] << " vs " << b[k]);
                    CHECK(a[k] == b[k]);
                    same_inside += a[k] == b[k] && a[k] != 0.0f;
                } else if (j >= border) {
                    ++outside;
                    differ_outside += a[k] != b[k];
                }
            }
    // Not vacuous: region 1 has a gradient, and region 2's follows its style.
    CHECK(same_inside > 3 * height * (border - 1) / 2);
    CHECK(differ_outside > outside / 2);
}

TEST_CASE("controls: eroded masks hold the least mask value over each neuron's receptive field", "[controls][masks]") {
    // Oracle: the receptive field of a neuron, walked down the network one axis
    // at a time (a 3×3 conv widens it by one on each side, a 2×2 pool doubles
    // it; clipped to each layer's size, since padding reads no pixel), then the
    // minimum of the mask over that rectangle. Minima involve no rounding, so
    // the comparison is exact, for soft masks too.
    const int width = 37, height = 29;
    const auto mask = test::random_vector(std::size_t(width) * height, 42, 0.0f, 1.0f);
    for (const char* name : {"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"}) {
        const int layer = vgg19_layer_index(name);
        int lw = 0, lh = 0;
        const auto eroded = mask_at_layer(mask, width, height, layer, true, &lw, &lh);
        // Sizes of each layer's output, and the receptive field of index i on one axis.
        auto field = [&](int i, int size) {
            std::vector<int> sizes;
            for (int l = 0; l <= layer; ++l) {
                sizes.push_back(size);
                if (l < layer && vgg19_pool_after(l)) size /= 2;
            }
            int lo = i, hi = i;
            for (int l = layer; l >= 0; --l) {
                lo = std::max(0, lo - 1);
                hi = std::min(sizes[l] - 1, hi + 1);
                if (l > 0 && vgg19_pool_after(l - 1)) {
                    lo = 2 * lo;
                    hi = 2 * hi + 1;
                }
            }
            return std::pair<int, int>(lo, hi);
        };
        REQUIRE(eroded.size() == std::size_t(lw) * lh);
        std::size_t mismatches = 0;
        for (int i = 0; i < lh; ++i)
            for (int j = 0; j < lw; ++j) {
                const auto rows = field(i, height), columns = field(j, width);
                float least = 1.0f;
                for (int y = rows.first; y <= rows.second; ++y)
                    for (int x = columns.first; x <= columns.second; ++x)
                        least = std::min(least, mask[std::size_t(y) * width + x]);
                mismatches += eroded[std::size_t(i) * lw + j] != least;
            }
        INFO(name);
        CHECK(mismatches == 0);
    }
}

TEST_CASE("controls: with eroded masks no gradient crosses the border, at any depth", "[controls][masks]") {
    // With erosion a neuron of region 2 has its whole receptive field in region 2,
    // so region 2's loss reaches no pixel of region 1, even next to the border
    // and through a pool (conv2_1). All pixels of region 1 must keep their exact
    // gradient when style 2 changes. (The narrow network keeps the direct, im2col
    // convolution, whose outputs do not mix neighbouring values the way
    // Winograd's tile transforms would.)
    const VggWeights weights = test::narrow_vgg19(24);
    ObjectiveConfig config;
    config.content_layers = {};
    config.style_layers = {{"conv1_1", 0.5}, {"conv2_1", 0.5}};
    config.style_weight = 1.0;
    config.erode_style_masks = true;
    const int width = 20, height = 12, border = 8;
    std::vector<float> left(std::size_t(width) * height), right(left.size());
    for (std::size_t k = 0; k < left.size(); ++k) {
        left[k] = int(k % std::size_t(width)) < border ? 1.0f : 0.0f;
        right[k] = 1.0f - left[k];
    }
    const Image style1 = test::random_image(16, 14, 54), style2 = test::random_image(14, 16, 55),
                other_style2 = test::random_image(17, 13, 56), start = test::random_image(width, height, 57);
    CpuBackend backend(2);
    auto gradient_with = [&](const Image& second) {
        StyleTransferObjective objective(backend, weights, config, width, height);
        objective.set_guided_styles({style1, second}, {left, right});
        Buffer x(backend, objective.size()), grad(backend, objective.size());
        backend.upload(x.data(), start.pixels.data(), start.pixels.size());
        objective.evaluate(x.data(), grad.data());
        std::vector<float> g(objective.size());
        backend.download(g.data(), grad.data(), g.size());
        return g;
    };
    const auto a = gradient_with(style2), b = gradient_with(other_style2);
    int differ_inside = 0, differ_outside = 0, outside = 0;
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < height; ++i)
            for (int j = 0; j < width; ++j) {
                const std::size_t k = (std::size_t(c) * height + i) * width + j;
                if (j < border) {
                    differ_inside += a[k] != b[k];
                } else {
                    ++outside;
                    differ_outside += a[k] != b[k];
                }
            }
    CHECK(differ_inside == 0);
    CHECK(differ_outside > outside / 4);  // region 2 follows its style (not vacuous)
}

TEST_CASE("controls: a full mask with the whole style image is the unmasked objective", "[controls][masks]") {
    // With m = 1 everywhere and a style image with as many positions as the
    // output, M_r = M^s_r = M and the guided loss is E_l of DESIGN.md.
    const VggWeights weights = test::narrow_vgg19(25);
    ObjectiveConfig config;
    config.content_layers = {{"conv4_2", 1.0}};
    const int width = 20, height = 18;
    const Image content = test::random_image(width, height, 60), style = test::random_image(18, 20, 61),
                start = test::random_image(width, height, 62);
    CpuBackend backend(1);
    StyleTransferObjective plain(backend, weights, config, width, height), guided(backend, weights, config, width, height);
    plain.set_content(content);
    plain.set_styles({style});
    guided.set_content_mask(std::vector<float>(std::size_t(width) * height, 1.0f));
    guided.set_content(content);
    guided.set_guided_styles({style}, {std::vector<float>(std::size_t(width) * height, 1.0f)});
    Buffer x(backend, plain.size()), g1(backend, plain.size()), g2(backend, plain.size());
    backend.upload(x.data(), start.pixels.data(), start.pixels.size());
    const double a = plain.evaluate(x.data(), g1.data()), b = guided.evaluate(x.data(), g2.data());
    // Masks of 1 change nothing but the float rescaling m²/M_r² (exactly 1 at
    // layers without an odd dropped row; the pooled 1s stay exactly 1).
    CHECK(b == Approx(a).epsilon(1e-6));
    std::vector<float> h1(plain.size()), h2(plain.size());
    backend.download(h1.data(), g1.data(), h1.size());
    backend.download(h2.data(), g2.data(), h2.size());
    const auto cmp = test::compare(h2, h1, 1e-6 * [&] {
        double m = 0;
        for (float v : h1) m = std::max(m, double(std::fabs(v)));
        return m;
    }(), 1e-5);  // the same float ops in another order (mask multiply by 1, axpy from 0)
    INFO(cmp.report);
    CHECK(cmp.ok);
}

TEST_CASE("controls: an empty style-image region is refused", "[controls][masks]") {
    const VggWeights weights = test::narrow_vgg19(27);
    ObjectiveConfig config;
    config.content_layers = {};
    config.style_layers = {{"conv1_1", 1.0}};
    CpuBackend backend(1);
    StyleTransferObjective objective(backend, weights, config, 16, 16);
    const Image style = test::random_image(16, 16, 70);
    CHECK_THROWS_AS(objective.set_guided_styles({style}, {std::vector<float>(256, 1.0f)},
                                                {std::vector<float>(256, 0.0f)}),
                    InputError);
    CHECK_THROWS_AS(objective.set_guided_styles({style}, {}), UsageError);
}

// ---- coarse to fine -------------------------------------------------------------------

TEST_CASE("controls: coarse-to-fine sizes halve down to the output size", "[controls][scales]") {
    CHECK(coarse_to_fine_sizes(512, 1) == std::vector<int>{512});
    CHECK(coarse_to_fine_sizes(512, 3) == std::vector<int>{128, 256, 512});
    CHECK(coarse_to_fine_sizes(300, 2) == std::vector<int>{150, 300});
    CHECK(coarse_to_fine_sizes(100, 3) == std::vector<int>{25, 50, 100});
    CHECK_THROWS_AS(coarse_to_fine_sizes(64, 4), UsageError);  // 8 px < 16
}

TEST_CASE("controls: each scale's targets equal a fresh single-scale objective's at that size", "[controls][scales]") {
    const VggWeights weights = test::narrow_vgg19(29);
    ObjectiveConfig config;
    TransferInputs inputs;
    inputs.content = test::random_image(90, 70, 80);
    inputs.styles = {test::random_image(60, 75, 81)};
    inputs.style_scale = 0.8;
    CpuBackend backend(1);
    for (int side : {32, 45, 90}) {
        INFO("longest side " << side);
        const auto objective = make_objective_at(backend, weights, config, inputs, side);
        // By hand, as a single-scale run at this size: the content resized to the
        // side, the style to style_scale × the side.
        const Image content = resize_longest_side(inputs.content, side);
        const Image style = resize_longest_side(inputs.styles[0], int(std::lround(0.8 * side)));
        REQUIRE(objective->width() == content.width);
        REQUIRE(objective->height() == content.height);
        StyleTransferObjective fresh(backend, weights, config, content.width, content.height);
        fresh.set_content(content);
        fresh.set_styles({style});
        // The same inputs through the same deterministic code: identical bits.
        for (const auto& l : config.style_layers) CHECK(objective->style_target(l.layer) == fresh.style_target(l.layer));
        for (const auto& l : config.content_layers)
            CHECK(objective->content_target(l.layer) == fresh.content_target(l.layer));
    }
}
