// CpuBackend: 3×3 convolution, stride 1, zero padding 1, no bias.
//
//   forward:        y[o,i,j]  = Σ_c Σ_{u,v} w[o,c,u,v] · x[c, i+u−1, j+v−1]
//   backward data:  dx[c,i,j] = Σ_o Σ_{u,v} w[o,c,u,v] · dy[o, i−u+1, j−v+1]
//                             = Σ_o Σ_{u,v} w'[c,o,u,v] · dy[o, i+u−1, j+v−1],
//                   w'[c,o,u,v] = w[o,c,2−u,2−v]
//
// The backward pass is therefore the forward convolution of dy with the
// transposed, spatially flipped filters. That formulation writes dx directly,
// where Wᵀ·dy followed by col2im would need a zeroed dx and a scattered
// read-modify-write pass; both do the same multiply-adds.
//
// Forward as one GEMM per tile of output rows (im2col):
//   cols (C_in·9, rows·W)[c·9 + u·3 + v][r·W + j] = x[c, row0+r+u−1, j+v−1]  (0 outside)
//   y[:, row0·W ...] (C_out, rows·W) = w (C_out, C_in·9) · cols
// The tile height is chosen so the column matrix stays within kColumnBudget, so
// memory is bounded for any image size; each tile's GEMM is still large
// (K = C_in·9, N ≥ several thousand) so OpenBLAS runs near its peak.
// im2col runs under OpenMP; the SGEMM runs outside any OpenMP region and uses
// OpenBLAS's own threads.
#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "engine/cpu/cpu_backend.h"
#include "engine/error.h"

namespace nst {

namespace {

// Floats in one tile's column matrix: 4M floats = 16 MiB.
constexpr std::size_t kColumnBudget = std::size_t(4) << 20;

int tile_rows(int in_channels, int height, int width) {
    const std::size_t per_row = std::size_t(in_channels) * 9 * std::size_t(width);
    const std::size_t rows = std::max<std::size_t>(1, kColumnBudget / per_row);
    return static_cast<int>(std::min<std::size_t>(rows, std::size_t(height)));
}

// x (C, H, W) -> cols (C·9, rows·W) for output rows [row0, row0 + rows).
void im2col_rows(int channels, int height, int width, int row0, int rows, const float* x,
                 float* cols) {
    const std::size_t plane = std::size_t(height) * width;
    const std::size_t tile = std::size_t(rows) * width;
    const std::size_t row_bytes = std::size_t(width) * sizeof(float);
    const std::size_t shifted_bytes = std::size_t(width - 1) * sizeof(float);
#pragma omp parallel for schedule(static)
    for (int k = 0; k < channels * 9; ++k) {
        const int c = k / 9, u = (k % 9) / 3, v = k % 3;
        const float* source = x + std::size_t(c) * plane;
        float* dst = cols + std::size_t(k) * tile;
        for (int r = 0; r < rows; ++r, dst += width) {
            const int source_row = row0 + r + u - 1;
            if (source_row < 0 || source_row >= height) {
                std::memset(dst, 0, row_bytes);
                continue;
            }
            const float* src = source + std::size_t(source_row) * width;
            if (v == 1) {
                std::memcpy(dst, src, row_bytes);
            } else if (v == 0) {  // dst[j] = src[j − 1]
                dst[0] = 0.0f;
                std::memcpy(dst + 1, src, shifted_bytes);
            } else {  // dst[j] = src[j + 1]
                std::memcpy(dst, src + 1, shifted_bytes);
                dst[width - 1] = 0.0f;
            }
        }
    }
}

// x (C_in, H, W), weight (C_out, C_in·9) -> y (C_out, H, W); cols holds
// tile_rows(C_in, H, W)·C_in·9·W floats.
void conv3x3_im2col(int in_channels, int out_channels, int height, int width, const float* x,
                    const float* weight, float* y, float* cols) {
    const int rows_per_tile = tile_rows(in_channels, height, width);
    const int k = in_channels * 9;
    const int plane = height * width;
    for (int row0 = 0; row0 < height; row0 += rows_per_tile) {
        const int rows = std::min(rows_per_tile, height - row0);
        im2col_rows(in_channels, height, width, row0, rows, x, cols);
        const int n = rows * width;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out_channels, n, k, 1.0f, weight,
                    k, cols, n, 0.0f, y + std::size_t(row0) * width, plane);
    }
}

void check_shape(const ConvShape& shape) {
    NST_ASSERT(shape.in_channels > 0 && shape.out_channels > 0);
    NST_ASSERT(shape.height > 0 && shape.width > 0);
    // cblas takes int dimensions.
    NST_ASSERT(std::size_t(shape.height) * std::size_t(shape.width) <= 0x7fffffffu);
    NST_ASSERT(std::size_t(std::max(shape.in_channels, shape.out_channels)) * 9 <= 0x7fffffffu);
}

}  // namespace

void CpuBackend::conv3x3_forward(const ConvShape& shape, const float* x, const float* weight,
                                 float* y) {
    check_shape(shape);
    const std::size_t columns = std::size_t(tile_rows(shape.in_channels, shape.height, shape.width)) *
                                std::size_t(shape.in_channels) * 9 * std::size_t(shape.width);
    float* cols = column_scratch(columns);
    conv3x3_im2col(shape.in_channels, shape.out_channels, shape.height, shape.width, x, weight, y,
                   cols);
}

void CpuBackend::conv3x3_backward_data(const ConvShape& shape, const float* dy,
                                       const float* weight, float* dx) {
    check_shape(shape);
    const int c_in = shape.in_channels, c_out = shape.out_channels;
    // Scratch: the flipped filters w' (C_in, C_out·9), padded to 64 bytes, then the columns.
    const std::size_t filter_count = ((std::size_t(c_in) * c_out * 9 + 15) / 16) * 16;
    const std::size_t columns = std::size_t(tile_rows(c_out, shape.height, shape.width)) *
                                std::size_t(c_out) * 9 * std::size_t(shape.width);
    float* scratch = column_scratch(filter_count + columns);
    float* flipped = scratch;  // (C_in, C_out, 3, 3)
#pragma omp parallel for schedule(static)
    for (int c = 0; c < c_in; ++c)
        for (int o = 0; o < c_out; ++o) {
            const float* w = weight + (std::size_t(o) * c_in + c) * 9;
            float* f = flipped + (std::size_t(c) * c_out + o) * 9;
            for (int t = 0; t < 9; ++t) f[t] = w[8 - t];  // (u,v) -> (2−u, 2−v)
        }
    conv3x3_im2col(c_out, c_in, shape.height, shape.width, dy, flipped, dx,
                   scratch + filter_count);
}

}  // namespace nst
