// Resampling: separable Lanczos-3.
//
//   L(x) = sinc(x) · sinc(x / 3) for |x| < 3, else 0;  sinc(x) = sin(πx) / (πx).
//
// Output pixel o along an axis of n_in → n_out pixels has its centre at
// c = (o + ½)·s − ½ in input pixel coordinates, s = n_in / n_out (pixel centres
// aligned, so the image neither shifts nor loses its border half-pixels). Its value
// is Σ_j w_j · in[clamp(j)] with w_j = L((j − c) / f) / Σ_k L((k − c) / f) and
// f = max(s, 1): when downscaling the kernel is stretched by s (support 3s), which
// turns it into a low-pass filter at the output's Nyquist frequency (antialiasing);
// when upscaling it interpolates. Indices outside the image are clamped to the edge
// (edge pixels repeat). The horizontal pass runs first, in double precision, and
// the result is clamped to [0,1] only at the end, since Lanczos rings (overshoots)
// near sharp edges.
#include "engine/io/image.h"

#include "engine/base/error.h"

#include <algorithm>
#include <cmath>

namespace nst {

namespace {

double lanczos3(double x) {
    constexpr double pi = 3.14159265358979323846;
    if (x == 0.0) return 1.0;
    if (std::fabs(x) >= 3.0) return 0.0;
    const double px = pi * x;
    return 3.0 * std::sin(px) * std::sin(px / 3.0) / (px * px);
}

// The taps of every output pixel along one axis.
struct AxisFilter {
    int taps = 0;
    std::vector<int> index;      // (out, taps), clamped to [0, in)
    std::vector<double> weight;  // (out, taps), each row sums to 1
};

AxisFilter make_axis_filter(int in, int out) {
    const double scale = static_cast<double>(in) / out;
    const double stretch = std::max(scale, 1.0);
    const double support = 3.0 * stretch;
    AxisFilter filter;
    // Enough taps for every j with |j − c| < support, whatever the phase of c.
    filter.taps = static_cast<int>(std::ceil(2.0 * support)) + 1;
    filter.index.resize(static_cast<std::size_t>(out) * filter.taps);
    filter.weight.resize(filter.index.size());
    for (int o = 0; o < out; ++o) {
        const double center = (o + 0.5) * scale - 0.5;
        const int first = static_cast<int>(std::floor(center - support)) + 1;
        double sum = 0.0;
        for (int t = 0; t < filter.taps; ++t) {
            const int j = first + t;
            const double w = lanczos3((j - center) / stretch);
            const std::size_t k = static_cast<std::size_t>(o) * filter.taps + t;
            filter.index[k] = std::clamp(j, 0, in - 1);
            filter.weight[k] = w;
            sum += w;
        }
        // sum > 0: the tap nearest the centre has weight > 0.6 and the lobes are smaller.
        for (int t = 0; t < filter.taps; ++t)
            filter.weight[static_cast<std::size_t>(o) * filter.taps + t] /= sum;
    }
    return filter;
}

}  // namespace

Image resize_image(const Image& image, int width, int height) {
    if (width < 1 || height < 1)
        throw UsageError("cannot resize to " + std::to_string(width) + "x" +
                         std::to_string(height) + ": both sides must be at least 1 pixel");
    NST_ASSERT(image.width > 0 && image.height > 0 && image.pixels.size() == 3 * image.plane());
    if (width == image.width && height == image.height) return image;

    const int in_w = image.width, in_h = image.height;
    const AxisFilter horizontal = make_axis_filter(in_w, width);
    const AxisFilter vertical = make_axis_filter(in_h, height);

    // Horizontal pass: (3, in_h, in_w) → (3, in_h, width).
    std::vector<double> rows(static_cast<std::size_t>(3) * in_h * width);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < 3 * in_h; ++r) {
        const float* src = image.pixels.data() + static_cast<std::size_t>(r) * in_w;
        double* dst = rows.data() + static_cast<std::size_t>(r) * width;
        for (int x = 0; x < width; ++x) {
            const std::size_t k = static_cast<std::size_t>(x) * horizontal.taps;
            double sum = 0.0;
            for (int t = 0; t < horizontal.taps; ++t)
                sum += horizontal.weight[k + t] * src[horizontal.index[k + t]];
            dst[x] = sum;
        }
    }

    // Vertical pass: (3, in_h, width) → (3, height, width), then clamp.
    Image out;
    out.width = width;
    out.height = height;
    out.pixels.resize(3 * out.plane());
#pragma omp parallel for schedule(static)
    for (int r = 0; r < 3 * height; ++r) {
        const int c = r / height, y = r % height;
        const double* src = rows.data() + static_cast<std::size_t>(c) * in_h * width;
        float* dst = out.pixels.data() + static_cast<std::size_t>(r) * width;
        const std::size_t k = static_cast<std::size_t>(y) * vertical.taps;
        // Row by row, so the inner loop reads memory contiguously.
        std::vector<double> sum(width, 0.0);
        for (int t = 0; t < vertical.taps; ++t) {
            const double w = vertical.weight[k + t];
            const double* src_row = src + static_cast<std::size_t>(vertical.index[k + t]) * width;
            for (int x = 0; x < width; ++x) sum[x] += w * src_row[x];
        }
        for (int x = 0; x < width; ++x) dst[x] = static_cast<float>(std::clamp(sum[x], 0.0, 1.0));
    }
    return out;
}

Image resize_longest_side(const Image& image, int longest) {
    if (longest < 1)
        throw UsageError("cannot resize to a longest side of " + std::to_string(longest) +
                         " pixels: it must be at least 1");
    NST_ASSERT(image.width > 0 && image.height > 0);
    const int current = std::max(image.width, image.height);
    if (current == longest) return image;
    const double scale = static_cast<double>(longest) / current;
    auto side = [&](int length) {
        if (length == current) return longest;  // exact, whatever the rounding
        return std::max(1, static_cast<int>(std::lround(length * scale)));
    };
    return resize_image(image, side(image.width), side(image.height));
}

}  // namespace nst
