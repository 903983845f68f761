// Colour control (Gatys, Ecker, Bethge, Hertzmann, Shechtman 2017, "Controlling
// Perceptual Factors in Neural Style Transfer", §5): luminance-only transfer and
// colour-histogram matching, on host images (RGB planar, [0,1]).
//
// Colour space: YIQ (NTSC 1953), Y = 0.299 R + 0.587 G + 0.114 B,
//   I = 0.595716 R − 0.274453 G − 0.321263 B,  Q = 0.211456 R − 0.522591 G + 0.311135 B.
// The inverse is this matrix's exact inverse (computed in double), not the rounded
// published one, so RGB → YIQ → RGB is the identity up to float rounding.
#pragma once

#include <string>
#include <vector>

#include "engine/io/image.h"

namespace nst {

// RGB (3, H, W) -> YIQ (3, H, W), planes Y, I, Q; and back. Values are not clamped.
Image rgb_to_yiq(const Image& rgb);
Image yiq_to_rgb(const Image& yiq);

// The Y plane of an RGB image (H·W).
std::vector<float> luminance(const Image& rgb);

// The grey RGB image (Y, Y, Y) whose luminance is Y (0.299 + 0.587 + 0.114 = 1).
Image grey_image(const std::vector<float>& y, int width, int height);

// Affine luminance matching (Gatys et al. 2017, eq. 6):
//   Y' = (Y_s − μ_s) · σ_t / σ_s + μ_t,
// so that Y' has the mean and standard deviation of `target` (population std).
// A constant source (σ_s = 0) becomes the constant μ_t.
std::vector<float> match_mean_std(const std::vector<float>& source, const std::vector<float>& target);

// The luminance of `luminance_from` with the chroma (I, Q) of `chroma_from`, in
// RGB; both the same size. Not clamped (saving clamps to [0,1]).
Image combine_luminance_chroma(const Image& luminance_from, const Image& chroma_from);

// Mean (3) and covariance (3×3, population: divided by H·W) of an RGB image's pixels.
struct ColorStatistics {
    double mean[3] = {0, 0, 0};
    double covariance[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
};
ColorStatistics color_statistics(const Image& rgb);

// Colour-histogram matching (Gatys et al. 2017, §5.2): x' = A (x − μ_s) + μ_t for
// every pixel x of `source`, with A Σ_s Aᵀ = Σ_t, so x' has the target's mean
// and covariance. The three choices of A:
//   cholesky:  A = L_t L_s⁻¹                       (Σ = L Lᵀ)
//   pca:       A = U_t Λ_t^½ Λ_s^-½ U_sᵀ            (Σ = U Λ Uᵀ, eigenvalues descending;
//              principal axes paired by rank, signs aligned)
//   symmetric: A = Σ_t^½ Σ_s^-½                     (principal, symmetric matrix square
//              roots: the "image analogies" transfer, Hertzmann et al. 2001)
// Σ_s gets 1e-9·tr(Σ_s)/3 added on its diagonal so that a grey source (singular
// Σ_s) does not divide by zero; it changes the match by about 1e-9 × Σ_s's
// condition number, relative.
// Values are not clamped: the network takes any value, and clamping would undo
// the match.
enum class ColorTransfer { cholesky, pca, symmetric };
ColorTransfer parse_color_transfer(const std::string& name);  // throws UsageError
Image match_color_statistics(const Image& source, const Image& target, ColorTransfer method);

}  // namespace nst
