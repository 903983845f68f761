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
// Each OpenMP thread takes whole tiles: it builds the tile's columns in its own
// slice of the scratch buffer and multiplies them with a single-threaded SGEMM.
// The tile height keeps one slice within kTileBudget, so memory is bounded for
// any image size, while each GEMM stays large (K = C_in·9, N in the thousands).
//
// Layers that sum over 16 or more channels take Winograd instead
// (cpu_winograd.h): F(4×4, 3×3) on planes of 32×32 and more, 4× fewer
// multiplications at an error 3–10× the direct method's, and F(2×2, 3×3) on
// smaller planes, 2.25× fewer at 1–3×; both bounded there. The transformed
// filters are made once per weight buffer and cached (winograd_filters below).
//
// Threading: the backend runs OpenBLAS single-threaded and parallelises around
// it with OpenMP (see set_thread_count). Two thread pools, OpenMP's for the
// elementwise work and OpenBLAS's own for the GEMMs, each busy-wait after their
// work and so steal the two cores from each other: that measured 2–3× slower
// than a single pool.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>
#include <cstdint>
#include <cstring>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cpu/cpu_winograd.h"
#include "engine/base/error.h"

namespace nst {

namespace {

// Floats in one thread's column tile: 2M floats = 8 MiB.
constexpr std::size_t kTileBudget = std::size_t(2) << 20;

// The work of a convolution is split into a multiple of this many parts, for
// any thread count (cpu_winograd.h: the same constant).
constexpr int kWorkSplit = cpu::kWorkSplit;

struct Tiling {
    int rows = 0;   // output rows per tile
    int tiles = 0;  // tiles covering the height
    std::size_t tile_floats = 0;  // column floats per thread
    int threads = 0;
};

Tiling plan_tiles(int in_channels, int height, int width) {
    Tiling plan;
    plan.threads = std::max(1, omp_get_max_threads());
    const std::size_t per_row = std::size_t(in_channels) * 9 * std::size_t(width);
    const int max_rows = static_cast<int>(
        std::min<std::size_t>(std::max<std::size_t>(1, kTileBudget / per_row), height));
    // A multiple of kWorkSplit tiles, whatever the thread count: a GEMM's
    // rounding depends on its shape, so the same split gives the same bits on
    // any number of threads (and 1, 2 or 4 of them finish together).
    int tiles = (height + max_rows - 1) / max_rows;
    tiles = std::min(height, ((tiles + kWorkSplit - 1) / kWorkSplit) * kWorkSplit);
    plan.rows = (height + tiles - 1) / tiles;
    plan.tiles = (height + plan.rows - 1) / plan.rows;
    plan.tile_floats = std::size_t(plan.rows) * per_row;
    return plan;
}

// x (C, H, W) -> cols (C·9, rows·W) for output rows [row0, row0 + rows).
void im2col_rows(int channels, int height, int width, int row0, int rows, const float* x,
                 float* cols) {
    const std::size_t plane = std::size_t(height) * width;
    const std::size_t tile = std::size_t(rows) * width;
    const std::size_t row_bytes = std::size_t(width) * sizeof(float);
    const std::size_t shifted_bytes = std::size_t(width - 1) * sizeof(float);
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

// x (C_in, H, W), weight (C_out, C_in·9) -> y (C_out, H, W); scratch holds
// plan.threads · plan.tile_floats floats.
void conv3x3_im2col(const Tiling& plan, int in_channels, int out_channels, int height, int width,
                    const float* x, const float* weight, float* y, float* scratch) {
    const int k = in_channels * 9;
    const int plane = height * width;
#pragma omp parallel num_threads(plan.threads)
    {
        float* cols = scratch + std::size_t(omp_get_thread_num()) * plan.tile_floats;
#pragma omp for schedule(static)
        for (int tile = 0; tile < plan.tiles; ++tile) {
            const int row0 = tile * plan.rows;
            const int rows = std::min(plan.rows, height - row0);
            im2col_rows(in_channels, height, width, row0, rows, x, cols);
            const int n = rows * width;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out_channels, n, k, 1.0f,
                        weight, k, cols, n, 0.0f, y + std::size_t(row0) * width, plane);
        }
    }
}

void check_shape(const ConvShape& shape) {
    NST_ASSERT(shape.in_channels > 0 && shape.out_channels > 0);
    NST_ASSERT(shape.height > 0 && shape.width > 0);
    // cblas takes int dimensions.
    NST_ASSERT(std::size_t(shape.height) * std::size_t(shape.width) <= 0x7fffffffu);
    NST_ASSERT(std::size_t(std::max(shape.in_channels, shape.out_channels)) * 9 <= 0x7fffffffu);
}

// Winograd's transformed filters ((tile + 2)², C_out, C_in).
std::size_t filter_floats(const ConvShape& shape, int tile) {
    return std::size_t(tile + 2) * (tile + 2) *
           cpu::winograd_filter_stride(shape.out_channels, shape.in_channels);
}

}  // namespace

// Winograd's transformed filters U = G g Gᵀ ((tile + 2)², C_out, C_in) of a weight
// buffer, made on its first use and kept until the buffer is written through
// upload/copy/fill or released (forget_filters): VGG's weights are uploaded
// once and convolved thousands of times, and the transform of a 512×512 layer
// costs about as much as a small layer's convolution.
const float* CpuBackend::winograd_filters(const ConvShape& shape, int tile, const float* weight) {
    auto it = winograd_filters_.find(weight);
    if (it != winograd_filters_.end() && it->second.out_channels == shape.out_channels &&
        it->second.in_channels == shape.in_channels && it->second.tile == tile)
        return it->second.filters;
    if (it != winograd_filters_.end()) {
        release(it->second.filters);
        winograd_filters_.erase(it);
    }
    float* filters = allocate(filter_floats(shape, tile));
    cpu::winograd_filter_transform(tile, shape.out_channels, shape.in_channels, weight, filters);
    winograd_filters_[weight] = {shape.out_channels, shape.in_channels, tile,
                                 std::size_t(shape.out_channels) * shape.in_channels * 9, filters};
    return filters;
}

void CpuBackend::forget_filters(const float* begin, std::size_t count) {
    for (auto it = winograd_filters_.begin(); it != winograd_filters_.end();) {
        const auto key = reinterpret_cast<std::uintptr_t>(it->first);
        const auto first = reinterpret_cast<std::uintptr_t>(begin);
        const bool overlaps = key < first + count * sizeof(float) &&
                              first < key + it->second.weight_count * sizeof(float);
        if (overlaps) {
            release(it->second.filters);
            it = winograd_filters_.erase(it);
        } else {
            ++it;
        }
    }
}

namespace {

// The backward pass's flipped filters, padded to 64 bytes.
std::size_t flipped_filter_floats(const ConvShape& shape) {
    return ((std::size_t(shape.in_channels) * shape.out_channels * 9 + 15) / 16) * 16;
}

}  // namespace

std::size_t CpuBackend::conv_scratch_floats(const ConvShape& shape, bool backward) const {
    const int reduced = backward ? shape.out_channels : shape.in_channels;
    const int produced = backward ? shape.in_channels : shape.out_channels;
    if (cpu::use_winograd(reduced, shape.height, shape.width)) {
        const cpu::WinogradPlan plan =
            cpu::plan_winograd(cpu::winograd_tile(shape.height, shape.width), reduced, produced,
                               shape.height, shape.width);
        return plan.thread_floats * plan.threads;
    }
    const Tiling plan = plan_tiles(reduced, shape.height, shape.width);
    return (backward ? flipped_filter_floats(shape) : 0) + plan.tile_floats * plan.threads;
}

Backend::OwnMemory CpuBackend::planned_conv_memory(const ConvShape& shape, bool backward) const {
    // One scratch buffer, grown to the largest use: the convolutions' columns or
    // Winograd tiles, and the style loss's G − A (cpu_losses.cpp). Winograd
    // filters are cached per weight buffer (winograd_filters above).
    OwnMemory own;
    own.scratch = conv_scratch_floats(shape, backward) * sizeof(float);
    if (cpu::use_winograd(backward ? shape.out_channels : shape.in_channels, shape.height, shape.width))
        own.weight_cache = filter_floats(shape, cpu::winograd_tile(shape.height, shape.width)) * sizeof(float);
    return own;
}

Backend::OwnMemory CpuBackend::planned_style_loss_memory(int n) const {
    OwnMemory own;
    own.scratch = std::size_t(n) * n * sizeof(float);  // G − A, in the convolutions' scratch
    return own;
}

void CpuBackend::conv3x3_forward(const ConvShape& shape, const float* x, const float* weight,
                                 float* y) {
    check_shape(shape);
    if (cpu::use_winograd(shape.in_channels, shape.height, shape.width)) {
        const int tile = cpu::winograd_tile(shape.height, shape.width);
        const cpu::WinogradPlan plan = cpu::plan_winograd(tile, shape.in_channels,
                                                          shape.out_channels, shape.height,
                                                          shape.width);
        const float* filters = winograd_filters(shape, tile, weight);
        float* scratch = column_scratch(conv_scratch_floats(shape, false));
        cpu::winograd_conv3x3(plan, x, filters, false, y, scratch);
        return;
    }
    const Tiling plan = plan_tiles(shape.in_channels, shape.height, shape.width);
    float* scratch = column_scratch(conv_scratch_floats(shape, false));
    conv3x3_im2col(plan, shape.in_channels, shape.out_channels, shape.height, shape.width, x,
                   weight, y, scratch);
}

void CpuBackend::conv3x3_backward_data(const ConvShape& shape, const float* dy,
                                       const float* weight, float* dx) {
    check_shape(shape);
    const int c_in = shape.in_channels, c_out = shape.out_channels;
    if (cpu::use_winograd(c_out, shape.height, shape.width)) {
        // The forward's transformed filters, read mirrored and transposed.
        const int tile = cpu::winograd_tile(shape.height, shape.width);
        const cpu::WinogradPlan plan =
            cpu::plan_winograd(tile, c_out, c_in, shape.height, shape.width);
        const float* filters = winograd_filters(shape, tile, weight);
        float* scratch = column_scratch(conv_scratch_floats(shape, true));
        cpu::winograd_conv3x3(plan, dy, filters, true, dx, scratch);
        return;
    }
    const Tiling plan = plan_tiles(c_out, shape.height, shape.width);
    // Scratch: the flipped filters w' (C_in, C_out·9), padded to 64 bytes, then the columns.
    const std::size_t filter_count = flipped_filter_floats(shape);
    float* scratch = column_scratch(conv_scratch_floats(shape, true));
    float* flipped = scratch;  // (C_in, C_out, 3, 3)
#pragma omp parallel for schedule(static)
    for (int c = 0; c < c_in; ++c)
        for (int o = 0; o < c_out; ++o) {
            const float* w = weight + (std::size_t(o) * c_in + c) * 9;
            float* f = flipped + (std::size_t(c) * c_out + o) * 9;
            for (int t = 0; t < 9; ++t) f[t] = w[8 - t];  // (u,v) -> (2−u, 2−v)
        }
    conv3x3_im2col(plan, c_out, c_in, shape.height, shape.width, dy, flipped, dx,
                   scratch + filter_count);
}

}  // namespace nst
