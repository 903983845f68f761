// 3×3 convolution (stride 1, zero padding 1) by Winograd's minimal filtering
// algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
// 2016), in two sizes: F(2×2, 3×3) and F(4×4, 3×3). Each m×m output tile is
//
//   Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A
//
// with d_c the (m+2)×(m+2) input patch at rows m·i−1 … m·i+m, columns
// m·j−1 … m·j+m (zero outside the image) and g_c the 3×3 filter. The sum over
// c is, for each of the (m+2)² positions ξ of the transformed tile, one matrix
// product
//
//   M_ξ (C_out, tiles) = U_ξ (C_out, C_in) · V_ξ (C_in, tiles),
//
// (m+2)²/m² multiplications per output and channel pair where the direct
// method needs 9: 4 for F(2×2) (2.25× fewer), 2.25 for F(4×4) (4× fewer).
//
// F(2×2, 3×3), points 0, 1, −1, ∞:
//
//   Bᵀ = | 1  0 −1  0 |   G = | 1    0    0  |   Aᵀ = | 1  1  1  0 |
//        | 0  1  1  0 |       | ½    ½    ½  |        | 0  1 −1 −1 |
//        | 0 −1  1  0 |       | ½   −½    ½  |
//        | 0  1  0 −1 |       | 0    0    1  |
//
// F(4×4, 3×3), points 0, 1, −1, 2, ½, ∞ (the Toom–Cook construction of Lavin's
// paper, with ½ in place of −2; see the backward pass below for why):
//
//   Bᵀ = | −1   5/2   0   −5/2   1   0 |   G = |  −1     0     0  |
//        |  0    1  −3/2  −3/2   1   0 |       |  −1    −1    −1  |
//        |  0   −1   7/2  −7/2   1   0 |       |  1/9  −1/9   1/9 |
//        |  0   1/2  −1   −1/2   1   0 |       |  1/9   2/9   4/9 |
//        |  0    2   −1    −2    1   0 |       | 16/9   8/9   4/9 |
//        |  0   −1   5/2    0  −5/2  1 |       |   0     0     1  |
//
//   Aᵀ = | 1  1  1  1   1    0 |
//        | 0  1 −1  2  1/2   0 |
//        | 0  1  1  4  1/4   0 |
//        | 0  1 −1  8  1/8   1 |
//
// U = G g Gᵀ is computed in double and rounded once; the other transforms are
// float additions and multiplications by these constants (written factored in
// cpu_winograd_transforms.inc, e.g. (d4 − d0) + 5/2·(d1 − d3)).
//
// Backward data is the forward convolution with filters w'[c,o] = flip(w[o,c])
// (see cpu_conv.cpp). Flipping reverses the filter's rows and columns, and
// G·J = D·P·G with J the 3×3 reversal, P a permutation of the points that maps
// each point a to 1/a (0 ↔ ∞, 2 ↔ ½; 1 and −1 stay) and D diagonal with powers
// of two: D = 1 for F(2×2) (P swaps rows 0 and 3), D = diag(−1, 1, 1, ¼, 4, −1)
// for F(4×4) — the reason for the point ½, as −2 has no partner. So
// G w'_{co} Gᵀ = D P (G w_{oc} Gᵀ) Pᵀ D: the backward pass multiplies by
// d_i d_j · U_{P(ξ)}ᵀ, the forward's transformed filters at the mirrored
// position, transposed, scaled exactly by a power of two (SGEMM's alpha). One
// filter transform serves both directions, bit for bit.
//
// Accuracy: every output is a sum of signed products whose rounding depth is
// at most C_in + k (one rounding of U; the input transform's, per side 1 for
// F(2×2) and 3 for F(4×4): a difference, a product by 5/2, 3/2 or 7/2, an
// addition; one product; C_in − 1 in the channel sum; the output transform's,
// per side 2 for F(2×2) and 3 for F(4×4), whose products by 2^±k are exact),
// k = 7 for F(2×2) and k = 13 for F(4×4), so
//
//   |ŷ − y| ≤ γ_{C_in+k} · [ Σ_c |Aᵀ| ( |G||g_c||Gᵀ| ⊙ |Bᵀ||d_c||B| ) |A| ],
//
// γ_n = n·u / (1 − n·u). The bracket exceeds the direct method's Σ|w||x|,
// F(4×4)'s by more than F(2×2)'s, while the depth is much smaller than the
// direct method's 9·C_in. tests/test_cpu_ops.cpp checks this bound against a
// double-precision oracle, and the errors on VGG-19's real weights are
// measured there and in docs/BENCHMARKS.md.
#pragma once

#include <cstddef>

namespace nst::cpu {

// Which algorithm CpuBackend's 3×3 convolutions use. `automatic` takes
// Winograd where it measured faster (wide enough reductions); `direct` is the
// im2col + SGEMM reference, kept for layers with few channels and for tests.
// `winograd` is F(2×2, 3×3), `winograd4x4` F(4×4, 3×3).
enum class Conv3x3Algorithm { automatic, direct, winograd, winograd4x4 };

// Process-wide; tests select an algorithm to check each path against its own bound.
// The initial choice is `automatic`, or NST_CPU_CONV=direct|winograd2x2|winograd4x4.
void set_conv3x3_algorithm(Conv3x3Algorithm algorithm);
Conv3x3Algorithm conv3x3_algorithm();

// Whether a convolution summing over `reduced_channels` input channels
// (C_in forward, C_out backward) takes the Winograd path.
bool use_winograd(int reduced_channels, int height, int width);

// The output tile (2 or 4) of the Winograd path for a convolution of that size;
// the same in both directions, so that they share one filter transform.
int winograd_tile(int height, int width);

// weight (C_out, C_in, 3, 3) -> u ((tile+2)², C_out, C_in), u[ξ] = (G g Gᵀ)_ξ,
// computed in double and rounded once. The matrices lie winograd_filter_stride
// floats apart (u holds (tile+2)² times that).
std::size_t winograd_filter_stride(int out_channels, int in_channels);
void winograd_filter_transform(int tile, int out_channels, int in_channels, const float* weight,
                               float* u);

// Blocks come in multiples of kWorkSplit, and a shared block holds
// kSharedBudgets threads' budgets, whatever the thread count: an SGEMM's
// rounding depends on its shape (OpenBLAS's kernels treat a block's last
// columns apart), so a split that followed the thread count gave other bits
// on another number of threads. With a fixed split any count gives the same
// result; 1, 2 and 4 threads finish together.
constexpr int kWorkSplit = 4;
constexpr int kSharedBudgets = 2;

struct WinogradPlan {
    int in_channels = 0;   // channels summed over (K of the GEMMs)
    int out_channels = 0;  // channels produced (M of the GEMMs)
    int height = 0, width = 0;
    int tile = 2;         // output tile side: 2 (F(2×2, 3×3)) or 4 (F(4×4, 3×3))
    int positions = 16;   // (tile + 2)²: the GEMMs per block
    int tiles = 0;        // output tiles covering the image, row-major
    int block_tiles = 0;  // tiles per block (N of the GEMMs)
    bool shared = false;  // all threads on each block in turn (large filters), else a block per thread
    int blocks = 0;
    int threads = 0;
    std::size_t thread_floats = 0;  // scratch floats per thread
};

WinogradPlan plan_winograd(int tile, int in_channels, int out_channels, int height, int width);

// x (K, H, W) -> y (M, H, W), with u (P, F_rows, F_cols) from
// winograd_filter_transform with plan.tile:
//   forward  (backward = false): u from weight (M, K):  M_ξ = u[ξ] · V_ξ
//   backward (backward = true):  u from weight (K, M):  M_ξ = d_i d_j · u[P(ξ)]ᵀ · V_ξ
// scratch holds plan.threads · plan.thread_floats floats.
void winograd_conv3x3(const WinogradPlan& plan, const float* x, const float* u, bool backward,
                      float* y, float* scratch);

}  // namespace nst::cpu
