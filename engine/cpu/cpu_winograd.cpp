// Winograd F(2×2, 3×3) for CpuBackend's 3×3 convolutions; the formulas, the
// backward-pass identity and the error bound are in cpu_winograd.h.
//
// Work is organised in blocks of consecutive output tiles (row-major over the
// tile grid). For one block a thread transforms the input into
// V (16, K, N), runs the 16 single-threaded SGEMMs into M (16, M, N) and
// transforms M into the output; its scratch is reused for the next block, so
// memory is bounded by the block size whatever the image size. Blocks are
// sized so that V and M stay near the thread's L2/L3 share, and so that there
// are at least as many blocks as threads (a multiple of their count).
//
// The transforms work on a run of tiles in one tile row at a time, with the
// input rows split into even and odd columns first: then every tile's 4×4
// patch is read from contiguous arrays and the loops over tiles vectorise.
#include "engine/cpu/cpu_winograd.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "engine/base/error.h"

namespace nst::cpu {

namespace {

// Floats of V and M per thread: 2M floats = 8 MiB, the im2col path's tile. It
// lives mostly in the shared L3; the blocks it allows (128 tiles for 512
// channels in and out) keep the SGEMMs near full speed, where 64 lost 20%.
constexpr std::size_t kBlockBudget = std::size_t(2) << 20;

// Tiles per run of one tile row in the transforms, and the floats of a run's
// working rows: the input's (8 · (kSegment + 1) split + 16 · kSegment after B);
// the output's (8 · kSegment + 4 · kSegment) fit in the same space.
constexpr int kSegment = 128;
constexpr std::size_t kWorkFloats = 8 * (kSegment + 1) + 16 * kSegment;

// Winograd only pays when the channel sum is long enough for the SGEMMs to be
// efficient; below this the im2col path (K = 9·C_in) measured faster.
constexpr int kMinWinogradChannels = 16;

std::atomic<Conv3x3Algorithm> selected_algorithm{Conv3x3Algorithm::automatic};

// Distance between the 16 matrices of V, M and U: their size plus 64 bytes.
// Sizes are often powers of two, and 16 streams exactly that far apart share
// cache sets (and alias in the store buffer), which measured the transforms 2×
// slower.
std::size_t padded_stride(std::size_t floats) { return (floats + 15) / 16 * 16 + 16; }

// P of the backward identity: swaps rows (and columns) 0 and 3.
constexpr int kMirror[4] = {3, 1, 2, 0};

// even[m] = row[2(j0+m) − 1], odd[m] = row[2(j0+m)] for m ∈ [0, len], zero
// outside [0, width); row == nullptr is a row outside the image.
void split_row(const float* row, int width, int j0, int len, float* __restrict even,
               float* __restrict odd) {
    if (row == nullptr) {
        std::fill(even, even + len + 1, 0.0f);
        std::fill(odd, odd + len + 1, 0.0f);
        return;
    }
    // m in [lo, hi): both columns inside the image.
    const int lo = j0 == 0 ? 1 : 0;
    const int hi = std::max(lo, std::min(len + 1, (width - 1) / 2 - j0 + 1));
    for (int m = 0; m < lo; ++m) {  // column −1 is padding
        even[m] = 0.0f;
        odd[m] = row[0];
    }
    const float* base = row + 2 * j0;
    for (int m = lo; m < hi; ++m) {
        even[m] = base[2 * m - 1];
        odd[m] = base[2 * m];
    }
    for (int m = hi; m <= len; ++m) {
        const int e = 2 * (j0 + m) - 1;
        even[m] = e < width ? row[e] : 0.0f;
        odd[m] = e + 1 < width ? row[e + 1] : 0.0f;
    }
}

// One row of patches times B: (d0, d1, d2, d3) = (even[m], odd[m], even[m+1], odd[m+1]).
void row_times_b(const float* __restrict even, const float* __restrict odd, int len,
                 float* __restrict h0, float* __restrict h1, float* __restrict h2,
                 float* __restrict h3) {
    for (int m = 0; m < len; ++m) {
        h0[m] = even[m] - even[m + 1];
        h1[m] = odd[m] + even[m + 1];
        h2[m] = even[m + 1] - odd[m];
        h3[m] = odd[m] - odd[m + 1];
    }
}

// Bᵀ times one column of the row results: (h0 − h2, h1 + h2, h2 − h1, h1 − h3).
void bt_times_column(const float* __restrict h0, const float* __restrict h1,
                     const float* __restrict h2, const float* __restrict h3, int len,
                     float* __restrict v0, float* __restrict v1, float* __restrict v2,
                     float* __restrict v3) {
    for (int m = 0; m < len; ++m) {
        v0[m] = h0[m] - h2[m];
        v1[m] = h1[m] + h2[m];
        v2[m] = h2[m] - h1[m];
        v3[m] = h1[m] - h3[m];
    }
}

// One row of M times A: (m0 + m1 + m2, m1 − m2 − m3).
void row_times_a(const float* __restrict m0, const float* __restrict m1,
                 const float* __restrict m2, const float* __restrict m3, int len,
                 float* __restrict q0, float* __restrict q1) {
    for (int m = 0; m < len; ++m) {
        q0[m] = m0[m] + m1[m] + m2[m];
        q1[m] = m1[m] - m2[m] - m3[m];
    }
}

// Aᵀ times the rows q (4, 2, len), written as two output rows with the tiles'
// two columns interleaved.
void at_times_rows(const float* __restrict q, int len, float* __restrict top,
                   float* __restrict bottom) {
    const float *q00 = q, *q01 = q + len, *q10 = q + 2 * len, *q11 = q + 3 * len;
    const float *q20 = q + 4 * len, *q21 = q + 5 * len, *q30 = q + 6 * len, *q31 = q + 7 * len;
    for (int m = 0; m < len; ++m) {
        top[2 * m] = q00[m] + q10[m] + q20[m];
        top[2 * m + 1] = q01[m] + q11[m] + q21[m];
        bottom[2 * m] = q10[m] - q20[m] - q30[m];
        bottom[2 * m + 1] = q11[m] - q21[m] - q31[m];
    }
}

struct Segment {
    int tile_row, tile_col, len, offset;  // tiles (tile_row, tile_col … +len) at block column offset
};

// Runs of at most kSegment tiles in one tile row, so the per-run rows stay in L1/L2.
template <typename Body>
void for_each_segment(int tile_cols, int first, int count, Body body) {
    for (int t = first; t < first + count;) {
        const int row = t / tile_cols, col = t % tile_cols;
        const int len = std::min({tile_cols - col, first + count - t, kSegment});
        body(Segment{row, col, len, t - first});
        t += len;
    }
}

// x (K, H, W) -> v (16, K, n), matrices `stride` apart, for the tiles [first, first + n); work holds
// kWorkFloats floats.
void input_transform(const WinogradPlan& plan, const float* x, int first, int n, float* v,
                     std::size_t stride, float* work) {
    const int height = plan.height, width = plan.width, tile_cols = (width + 1) / 2;
    const std::size_t plane = std::size_t(height) * width;
    for_each_segment(tile_cols, first, n, [&](const Segment& s) {
        const int span = s.len + 1;
        float* split = work;                   // (4 rows, 2, span): even and odd columns
        float* h = work + 8 * (kSegment + 1);  // (4 rows, 4, len): the rows times B
        for (int c = 0; c < plan.in_channels; ++c) {
            const float* channel = x + std::size_t(c) * plane;
            for (int r = 0; r < 4; ++r) {
                const int source = 2 * s.tile_row - 1 + r;
                float* even = split + std::size_t(2 * r) * span;
                split_row(source >= 0 && source < height ? channel + std::size_t(source) * width
                                                         : nullptr,
                          width, s.tile_col, s.len, even, even + span);
                float* hr = h + std::size_t(4 * r) * s.len;
                row_times_b(even, even + span, s.len, hr, hr + s.len, hr + 2 * s.len,
                            hr + 3 * s.len);
            }
            float* out = v + std::size_t(c) * n + s.offset;
            for (int k = 0; k < 4; ++k) {
                const float* hk = h + std::size_t(k) * s.len;  // row r at hk + 4·r·len
                bt_times_column(hk, hk + 4 * s.len, hk + 8 * s.len, hk + 12 * s.len, s.len,
                                out + std::size_t(k) * stride, out + std::size_t(4 + k) * stride,
                                out + std::size_t(8 + k) * stride,
                                out + std::size_t(12 + k) * stride);
            }
        }
    });
}

// mt (16, M, n), matrices `stride` apart -> y (M, H, W) for the tiles [first, first + n); work holds
// kWorkFloats floats.
void output_transform(const WinogradPlan& plan, const float* mt, int first, int n,
                      std::size_t stride, float* y, float* work) {
    const int height = plan.height, width = plan.width, tile_cols = (width + 1) / 2;
    const std::size_t plane = std::size_t(height) * width;
    for_each_segment(tile_cols, first, n, [&](const Segment& s) {
        float* q = work;                     // (4, 2, len): the rows of M times A
        float* top = work + 8 * kSegment;    // output row 2·tile_row, interleaved columns
        float* bottom = top + 2 * kSegment;  // output row 2·tile_row + 1
        const int y_row = 2 * s.tile_row, x_col = 2 * s.tile_col;
        const std::size_t copy = std::size_t(std::min(2 * s.len, width - x_col));
        for (int o = 0; o < plan.out_channels; ++o) {
            const float* in = mt + std::size_t(o) * n + s.offset;
            for (int a = 0; a < 4; ++a)
                row_times_a(in + std::size_t(4 * a) * stride, in + std::size_t(4 * a + 1) * stride,
                            in + std::size_t(4 * a + 2) * stride,
                            in + std::size_t(4 * a + 3) * stride, s.len,
                            q + std::size_t(2 * a) * s.len, q + std::size_t(2 * a + 1) * s.len);
            at_times_rows(q, s.len, top, bottom);
            float* channel = y + std::size_t(o) * plane + x_col;
            std::memcpy(channel + std::size_t(y_row) * width, top, copy * sizeof(float));
            if (y_row + 1 < height)
                std::memcpy(channel + std::size_t(y_row + 1) * width, bottom,
                            copy * sizeof(float));
        }
    });
}

}  // namespace

void set_conv3x3_algorithm(Conv3x3Algorithm algorithm) { selected_algorithm = algorithm; }

Conv3x3Algorithm conv3x3_algorithm() { return selected_algorithm; }

bool use_winograd(int reduced_channels, int height, int width) {
    (void)height, (void)width;
    switch (selected_algorithm.load()) {
        case Conv3x3Algorithm::direct: return false;
        case Conv3x3Algorithm::winograd: return true;
        case Conv3x3Algorithm::automatic: break;
    }
    return reduced_channels >= kMinWinogradChannels;
}

std::size_t winograd_filter_stride(int out_channels, int in_channels) {
    return padded_stride(std::size_t(out_channels) * in_channels);
}

void winograd_filter_transform(int out_channels, int in_channels, const float* weight, float* u) {
    const std::size_t stride = winograd_filter_stride(out_channels, in_channels);
    constexpr int kChunk = 128;  // channels transformed into the stack buffer at a time
#pragma omp parallel for schedule(static)
    for (int o = 0; o < out_channels; ++o)
        for (int c0 = 0; c0 < in_channels; c0 += kChunk) {
            // Staged so that the 16 destinations are written one run at a time.
            float chunk[16][kChunk];
            const int count = std::min(kChunk, in_channels - c0);
            for (int i = 0; i < count; ++i) {
                const float* g = weight + (std::size_t(o) * in_channels + c0 + i) * 9;  // (3, 3)
                double t[4][3];  // G·g
                for (int j = 0; j < 3; ++j) {
                    const double g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
                    t[0][j] = g0;
                    t[1][j] = 0.5 * (g0 + g1 + g2);
                    t[2][j] = 0.5 * (g0 - g1 + g2);
                    t[3][j] = g2;
                }
                for (int r = 0; r < 4; ++r) {  // (G·g)·Gᵀ
                    const double t0 = t[r][0], t1 = t[r][1], t2 = t[r][2];
                    chunk[r * 4 + 0][i] = static_cast<float>(t0);
                    chunk[r * 4 + 1][i] = static_cast<float>(0.5 * (t0 + t1 + t2));
                    chunk[r * 4 + 2][i] = static_cast<float>(0.5 * (t0 - t1 + t2));
                    chunk[r * 4 + 3][i] = static_cast<float>(t2);
                }
            }
            for (int xi = 0; xi < 16; ++xi)
                std::memcpy(u + xi * stride + std::size_t(o) * in_channels + c0, chunk[xi],
                            std::size_t(count) * sizeof(float));
        }
}

WinogradPlan plan_winograd(int in_channels, int out_channels, int height, int width) {
    NST_ASSERT(in_channels > 0 && out_channels > 0 && height > 0 && width > 0);
    WinogradPlan plan;
    plan.in_channels = in_channels;
    plan.out_channels = out_channels;
    plan.height = height;
    plan.width = width;
    plan.threads = std::max(1, omp_get_max_threads());
    const std::size_t tiles = std::size_t((height + 1) / 2) * std::size_t((width + 1) / 2);
    NST_ASSERT(tiles <= 0x7fffffffu);
    plan.tiles = static_cast<int>(tiles);
    const std::size_t per_tile = std::size_t(16) * (std::size_t(in_channels) + out_channels);
    const std::size_t by_budget = std::max<std::size_t>(1, kBlockBudget / per_tile);
    const std::size_t per_thread = (tiles + plan.threads - 1) / plan.threads;
    std::size_t block = std::min(by_budget, per_thread);
    // A multiple of the thread count of blocks, so that the threads finish together.
    std::size_t blocks = (tiles + block - 1) / block;
    blocks = std::min(tiles, (blocks + plan.threads - 1) / plan.threads * plan.threads);
    block = (tiles + blocks - 1) / blocks;
    plan.block_tiles = static_cast<int>(block);
    plan.blocks = static_cast<int>((tiles + block - 1) / block);
    // V and M, then the transforms' working rows.
    const std::size_t floats = 16 * padded_stride(std::size_t(in_channels) * block) +
                               16 * padded_stride(std::size_t(out_channels) * block) +
                               kWorkFloats;
    plan.thread_floats = (floats + 15) / 16 * 16;  // keeps each thread's slice 64-byte aligned
    return plan;
}

void winograd_conv3x3(const WinogradPlan& plan, const float* x, const float* u, bool backward,
                      float* y, float* scratch) {
    const int k = plan.in_channels, m = plan.out_channels;
    const std::size_t filter_stride = winograd_filter_stride(backward ? k : m, backward ? m : k);
#pragma omp parallel num_threads(plan.threads)
    {
        float* v = scratch + std::size_t(omp_get_thread_num()) * plan.thread_floats;
#pragma omp for schedule(static)
        for (int block = 0; block < plan.blocks; ++block) {
            const int first = block * plan.block_tiles;
            const int n = std::min(plan.block_tiles, plan.tiles - first);
            const std::size_t v_stride = padded_stride(std::size_t(k) * n);
            const std::size_t m_stride = padded_stride(std::size_t(m) * n);
            float* mt = v + 16 * v_stride;
            float* work = mt + 16 * m_stride;
            input_transform(plan, x, first, n, v, v_stride, work);
            for (int xi = 0; xi < 16; ++xi) {
                const float* v_xi = v + xi * v_stride;  // (K, n)
                float* m_xi = mt + xi * m_stride;       // (M, n)
                if (backward) {
                    // u (16, K, M): u[P(ξ)]ᵀ is (M, K).
                    const int mirrored = kMirror[xi / 4] * 4 + kMirror[xi % 4];
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, k, 1.0f,
                                u + std::size_t(mirrored) * filter_stride, m, v_xi, n, 0.0f,
                                m_xi, n);
                } else {
                    // u (16, M, K).
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f,
                                u + std::size_t(xi) * filter_stride, k, v_xi, n, 0.0f, m_xi, n);
                }
            }
            output_transform(plan, mt, first, n, m_stride, y, work);
        }
    }
}

}  // namespace nst::cpu
