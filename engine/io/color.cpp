// Colour control: YIQ conversion, luminance matching and colour-histogram
// matching (formulas in color.h). Everything in double, stored as float.
#include "engine/io/color.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "engine/base/error.h"

namespace nst {

namespace {

using Mat3 = std::array<std::array<double, 3>, 3>;

constexpr Mat3 kRgbToYiq = {{{0.299, 0.587, 0.114},
                             {0.595716, -0.274453, -0.321263},
                             {0.211456, -0.522591, 0.311135}}};

Mat3 multiply(const Mat3& a, const Mat3& b) {
    Mat3 c{};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 3; ++k) c[i][j] += a[i][k] * b[k][j];
    return c;
}

Mat3 transpose(const Mat3& a) {
    Mat3 t{};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) t[i][j] = a[j][i];
    return t;
}

Mat3 inverse(const Mat3& a) {
    const double det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
                       a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                       a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    if (!(std::fabs(det) > 0)) throw InputError("a colour matrix is singular");
    Mat3 inv{};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
            // Cofactor of a[j][i] (adjugate = transposed cofactors).
            const int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
            inv[i][j] = (a[r0][c0] * a[r1][c1] - a[r0][c1] * a[r1][c0]) / det;
        }
    return inv;
}

const Mat3& yiq_to_rgb_matrix() {
    static const Mat3 m = inverse(kRgbToYiq);
    return m;
}

// y = M x for each pixel of a (3, H, W) image.
Image apply(const Mat3& m, const Image& in) {
    Image out = in;
    const std::size_t plane = in.plane();
    for (std::size_t p = 0; p < plane; ++p) {
        const double x[3] = {in.pixels[p], in.pixels[plane + p], in.pixels[2 * plane + p]};
        for (int c = 0; c < 3; ++c)
            out.pixels[c * plane + p] = float(m[c][0] * x[0] + m[c][1] * x[1] + m[c][2] * x[2]);
    }
    return out;
}

// Eigen-decomposition of a symmetric 3×3 matrix by cyclic Jacobi rotations:
// S = U diag(values) Uᵀ, eigenvectors in U's columns, sorted by descending value.
void symmetric_eigen(const Mat3& s, std::array<double, 3>& values, Mat3& u) {
    Mat3 a = s;
    u = Mat3{{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}};
    for (int sweep = 0; sweep < 50; ++sweep) {
        const double off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
        const double scale = a[0][0] * a[0][0] + a[1][1] * a[1][1] + a[2][2] * a[2][2];
        if (off <= 1e-30 * scale || off == 0.0) break;
        for (int p = 0; p < 2; ++p)
            for (int q = p + 1; q < 3; ++q) {
                if (a[p][q] == 0.0) continue;
                const double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
                const double t = (theta >= 0 ? 1.0 : -1.0) /
                                 (std::fabs(theta) + std::sqrt(theta * theta + 1));
                const double c = 1 / std::sqrt(t * t + 1), sn = t * c;
                for (int k = 0; k < 3; ++k) {  // A ← A J (columns p, q)
                    const double akp = a[k][p], akq = a[k][q];
                    a[k][p] = c * akp - sn * akq;
                    a[k][q] = sn * akp + c * akq;
                }
                for (int k = 0; k < 3; ++k) {  // A ← Jᵀ A (rows p, q)
                    const double apk = a[p][k], aqk = a[q][k];
                    a[p][k] = c * apk - sn * aqk;
                    a[q][k] = sn * apk + c * aqk;
                }
                for (int k = 0; k < 3; ++k) {  // U ← U J
                    const double ukp = u[k][p], ukq = u[k][q];
                    u[k][p] = c * ukp - sn * ukq;
                    u[k][q] = sn * ukp + c * ukq;
                }
            }
    }
    std::array<int, 3> order = {0, 1, 2};
    std::sort(order.begin(), order.end(), [&](int i, int j) { return a[i][i] > a[j][j]; });
    Mat3 sorted{};
    for (int k = 0; k < 3; ++k) {
        values[k] = a[order[k]][order[k]];
        for (int i = 0; i < 3; ++i) sorted[i][k] = u[i][order[k]];
    }
    u = sorted;
}

// U diag(f(λ)) Uᵀ for a symmetric positive-definite S.
template <typename F>
Mat3 symmetric_function(const Mat3& s, F f) {
    std::array<double, 3> values{};
    Mat3 u{};
    symmetric_eigen(s, values, u);
    Mat3 d{};
    for (int k = 0; k < 3; ++k) d[k][k] = f(std::max(values[k], 0.0));
    return multiply(multiply(u, d), transpose(u));
}

// Lower-triangular L with S = L Lᵀ.
Mat3 cholesky(const Mat3& s) {
    Mat3 l{};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j <= i; ++j) {
            double sum = s[i][j];
            for (int k = 0; k < j; ++k) sum -= l[i][k] * l[j][k];
            if (i == j) {
                if (!(sum > 0)) throw InputError("an image's colour covariance is not positive definite");
                l[i][i] = std::sqrt(sum);
            } else {
                l[i][j] = sum / l[j][j];
            }
        }
    return l;
}

Mat3 covariance_of(const ColorStatistics& s) {
    Mat3 m{};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) m[i][j] = s.covariance[i][j];
    return m;
}

void check_planar_rgb(const Image& image, const char* what) {
    if (image.width < 1 || image.height < 1 || image.pixels.size() != 3 * image.plane())
        throw Error(std::string(what) + ": not a 3-channel image");
}

}  // namespace

Image rgb_to_yiq(const Image& rgb) {
    check_planar_rgb(rgb, "rgb_to_yiq");
    return apply(kRgbToYiq, rgb);
}

Image yiq_to_rgb(const Image& yiq) {
    check_planar_rgb(yiq, "yiq_to_rgb");
    return apply(yiq_to_rgb_matrix(), yiq);
}

std::vector<float> luminance(const Image& rgb) {
    check_planar_rgb(rgb, "luminance");
    const std::size_t plane = rgb.plane();
    std::vector<float> y(plane);
    for (std::size_t p = 0; p < plane; ++p)
        y[p] = float(kRgbToYiq[0][0] * rgb.pixels[p] + kRgbToYiq[0][1] * rgb.pixels[plane + p] +
                     kRgbToYiq[0][2] * rgb.pixels[2 * plane + p]);
    return y;
}

Image grey_image(const std::vector<float>& y, int width, int height) {
    NST_ASSERT(y.size() == std::size_t(width) * height);
    Image grey;
    grey.width = width;
    grey.height = height;
    grey.pixels.reserve(3 * y.size());
    for (int c = 0; c < 3; ++c) grey.pixels.insert(grey.pixels.end(), y.begin(), y.end());
    return grey;
}

std::vector<float> match_mean_std(const std::vector<float>& source, const std::vector<float>& target) {
    NST_ASSERT(!source.empty() && !target.empty());
    auto moments = [](const std::vector<float>& v) {
        double mean = 0;
        for (float x : v) mean += x;
        mean /= double(v.size());
        double var = 0;
        for (float x : v) var += (x - mean) * (x - mean);
        return std::pair<double, double>(mean, std::sqrt(var / double(v.size())));
    };
    const auto [mean_s, std_s] = moments(source);
    const auto [mean_t, std_t] = moments(target);
    const double gain = std_s > 0 ? std_t / std_s : 0.0;
    std::vector<float> out(source.size());
    for (std::size_t i = 0; i < source.size(); ++i) out[i] = float((source[i] - mean_s) * gain + mean_t);
    return out;
}

Image combine_luminance_chroma(const Image& luminance_from, const Image& chroma_from) {
    check_planar_rgb(luminance_from, "combine_luminance_chroma");
    check_planar_rgb(chroma_from, "combine_luminance_chroma");
    if (luminance_from.width != chroma_from.width || luminance_from.height != chroma_from.height)
        throw Error("combine_luminance_chroma: the two images differ in size");
    Image yiq = rgb_to_yiq(chroma_from);
    const std::vector<float> y = luminance(luminance_from);
    std::copy(y.begin(), y.end(), yiq.pixels.begin());
    return yiq_to_rgb(yiq);
}

ColorStatistics color_statistics(const Image& rgb) {
    check_planar_rgb(rgb, "color_statistics");
    ColorStatistics s;
    const std::size_t plane = rgb.plane();
    for (int c = 0; c < 3; ++c) {
        double sum = 0;
        for (std::size_t p = 0; p < plane; ++p) sum += rgb.pixels[c * plane + p];
        s.mean[c] = sum / double(plane);
    }
    for (int i = 0; i < 3; ++i)
        for (int j = i; j < 3; ++j) {
            double sum = 0;
            for (std::size_t p = 0; p < plane; ++p)
                sum += (rgb.pixels[i * plane + p] - s.mean[i]) * (rgb.pixels[j * plane + p] - s.mean[j]);
            s.covariance[i][j] = s.covariance[j][i] = sum / double(plane);
        }
    return s;
}

ColorTransfer parse_color_transfer(const std::string& name) {
    if (name == "cholesky") return ColorTransfer::cholesky;
    if (name == "pca") return ColorTransfer::pca;
    if (name == "symmetric") return ColorTransfer::symmetric;
    throw UsageError("colour transfer '" + name + "': expected cholesky, pca or symmetric");
}

Image match_color_statistics(const Image& source, const Image& target, ColorTransfer method) {
    const ColorStatistics s = color_statistics(source), t = color_statistics(target);
    Mat3 cov_s = covariance_of(s);
    const Mat3 cov_t = covariance_of(t);
    const double ridge = 1e-9 * (cov_s[0][0] + cov_s[1][1] + cov_s[2][2]) / 3 + 1e-15;
    for (int c = 0; c < 3; ++c) cov_s[c][c] += ridge;

    Mat3 a{};
    switch (method) {
    case ColorTransfer::cholesky:
        a = multiply(cholesky(cov_t), inverse(cholesky(cov_s)));
        break;
    case ColorTransfer::symmetric:
        a = multiply(symmetric_function(cov_t, [](double v) { return std::sqrt(v); }),
                     symmetric_function(cov_s, [](double v) { return 1 / std::sqrt(v); }));
        break;
    case ColorTransfer::pca: {
        std::array<double, 3> values_s{}, values_t{};
        Mat3 u_s{}, u_t{};
        symmetric_eigen(cov_s, values_s, u_s);
        symmetric_eigen(cov_t, values_t, u_t);
        // An eigenvector's sign is arbitrary: point the first (brightness-like) axes
        // towards positive component sums, then align each target axis with the
        // source axis of the same rank, so that no colour axis is inverted.
        for (Mat3* u : {&u_s, &u_t}) {
            const double sum = (*u)[0][0] + (*u)[1][0] + (*u)[2][0];
            if (sum < 0)
                for (int i = 0; i < 3; ++i) (*u)[i][0] = -(*u)[i][0];
        }
        for (int k = 1; k < 3; ++k) {
            const double dot = u_s[0][k] * u_t[0][k] + u_s[1][k] * u_t[1][k] + u_s[2][k] * u_t[2][k];
            if (dot < 0)
                for (int i = 0; i < 3; ++i) u_t[i][k] = -u_t[i][k];
        }
        Mat3 d{};
        for (int k = 0; k < 3; ++k) d[k][k] = std::sqrt(std::max(values_t[k], 0.0) / values_s[k]);
        a = multiply(multiply(u_t, d), transpose(u_s));
        break;
    }
    }

    Image out = source;
    const std::size_t plane = source.plane();
    for (std::size_t p = 0; p < plane; ++p) {
        const double x[3] = {source.pixels[p] - s.mean[0], source.pixels[plane + p] - s.mean[1],
                             source.pixels[2 * plane + p] - s.mean[2]};
        for (int c = 0; c < 3; ++c)
            out.pixels[c * plane + p] = float(a[c][0] * x[0] + a[c][1] * x[1] + a[c][2] * x[2] + t.mean[c]);
    }
    return out;
}

}  // namespace nst
