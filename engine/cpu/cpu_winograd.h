// 3×3 convolution (stride 1, zero padding 1) by Winograd's minimal filtering
// algorithm F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2016). Each 2×2 output tile is
//
//   Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A
//
//   Bᵀ = | 1  0 −1  0 |   G = | 1    0    0  |   Aᵀ = | 1  1  1  0 |
//        | 0  1  1  0 |       | ½    ½    ½  |        | 0  1 −1 −1 |
//        | 0 −1  1  0 |       | ½   −½    ½  |
//        | 0  1  0 −1 |       | 0    0    1  |
//
// with d_c the 4×4 input patch at rows 2i−1 … 2i+2, columns 2j−1 … 2j+2 (zero
// outside the image) and g_c the 3×3 filter. The sum over c is, for each of
// the 16 positions ξ of the 4×4 transformed tile, one matrix product
//
//   M_ξ (C_out, tiles) = U_ξ (C_out, C_in) · V_ξ (C_in, tiles),
//
// 16 multiplications per tile and channel pair where the direct method needs
// 36 (2.25× fewer). The transforms themselves are additions only, except G's
// halves, which are exact.
//
// Backward data is the forward convolution with filters w'[c,o] = flip(w[o,c])
// (see cpu_conv.cpp). Flipping reverses the filter's rows and columns, and
// G·J = P·G with J the 3×3 reversal and P the permutation swapping rows 0 and
// 3, so G w'_{co} Gᵀ = P (G w_{oc} Gᵀ) Pᵀ: the backward pass multiplies by
// U_{P(ξ)}ᵀ, the forward's transformed filters at the mirrored position,
// transposed. One filter transform serves both directions, bit for bit.
//
// Accuracy: every output is a sum of signed products whose rounding depth is
// at most C_in + 7 (one rounding of U, which is computed in double; two in
// Bᵀ d B; one product; C_in − 1 in the channel sum; four in Aᵀ M A), so
//
//   |ŷ − y| ≤ γ_{C_in+7} · [ Σ_c |Aᵀ| ( |G||g_c||Gᵀ| ⊙ |Bᵀ||d_c||B| ) |A| ],
//
// γ_n = n·u / (1 − n·u). The bracket exceeds the direct method's Σ|w||x|
// (at most 81·Σ_c max|g_c|·max|d_c|), while the depth is about 9× smaller than
// the direct method's 9·C_in. tests/test_cpu_ops.cpp checks this bound against
// a double-precision oracle. Measured on VGG-like layers (x ≥ 0, He-scaled
// filters), the errors are 0.6–1.2× the direct method's (relative L2 ~3e-7).
#pragma once

#include <cstddef>

namespace nst::cpu {

// Which algorithm CpuBackend's 3×3 convolutions use. `automatic` takes
// Winograd where it measured faster (wide enough reductions); `direct` is the
// im2col + SGEMM reference, kept for layers with few channels and for tests.
enum class Conv3x3Algorithm { automatic, direct, winograd };

// Process-wide; tests select an algorithm to check each path against its own bound.
void set_conv3x3_algorithm(Conv3x3Algorithm algorithm);
Conv3x3Algorithm conv3x3_algorithm();

// Whether a convolution summing over `reduced_channels` input channels
// (C_in forward, C_out backward) takes the Winograd path.
bool use_winograd(int reduced_channels, int height, int width);

// weight (C_out, C_in, 3, 3) -> u (16, C_out, C_in), u[ξ] = (G g Gᵀ)_ξ, computed
// in double and rounded once. The 16 matrices lie winograd_filter_stride floats
// apart (u holds 16 times that).
std::size_t winograd_filter_stride(int out_channels, int in_channels);
void winograd_filter_transform(int out_channels, int in_channels, const float* weight, float* u);

struct WinogradPlan {
    int in_channels = 0;   // channels summed over (K of the GEMMs)
    int out_channels = 0;  // channels produced (M of the GEMMs)
    int height = 0, width = 0;
    int tiles = 0;        // 2×2 output tiles covering the image, row-major
    int block_tiles = 0;  // tiles per block (N of the GEMMs)
    int blocks = 0;
    int threads = 0;
    std::size_t thread_floats = 0;  // scratch floats per thread
};

WinogradPlan plan_winograd(int in_channels, int out_channels, int height, int width);

// x (K, H, W) -> y (M, H, W), with u (16, F_rows, F_cols) from
// winograd_filter_transform:
//   forward  (backward = false): u from weight (M, K):  M_ξ = u[ξ] · V_ξ
//   backward (backward = true):  u from weight (K, M):  M_ξ = u[P(ξ)]ᵀ · V_ξ
// scratch holds plan.threads · plan.thread_floats floats.
void winograd_conv3x3(const WinogradPlan& plan, const float* x, const float* u, bool backward,
                      float* y, float* scratch);

}  // namespace nst::cpu
