// Winograd F(2×2, 3×3) and F(4×4, 3×3) for CpuBackend's 3×3 convolutions; the
// formulas, the backward-pass identity and the error bound are in cpu_winograd.h.
//
// Work is organised in blocks of consecutive output tiles (row-major over the
// tile grid). For one block a thread transforms the input into
// V (P, K, N), runs the P = (m+2)² single-threaded SGEMMs into M (P, M, N) and
// transforms M into the output; its scratch is reused for the next block, so
// memory is bounded by the block size whatever the image size. Blocks are
// sized so that V and M stay near the thread's L2/L3 share, and come in a
// multiple of kWorkSplit, whatever the thread count (cpu_winograd.h: the result
// then does not depend on it). Layers whose filters U outweigh a thread's V and
// M (the 256- and 512-channel ones) take shared blocks instead: all threads on
// one block at a time, the transforms split over channels and the products
// over positions ξ, so each U_ξ is read once per block, by one thread, and the
// block may hold more tiles (kSharedBudgets budgets).
//
// The transforms (cpu_winograd_transforms.inc) work on a run of tiles in one
// tile row at a time, one padded input row at a time; their loops over tiles
// are compiled for each instruction set (cpu_isa.h) and picked at run time.
#include "engine/backends/cpu/cpu_winograd.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "engine/base/error.h"
#include "engine/backends/cpu/cpu_gemm.h"
#include "engine/backends/cpu/cpu_isa.h"

namespace nst::cpu {

namespace {

// Floats of V and M per thread: 2M floats = 8 MiB, the im2col path's tile. It
// lives mostly in the shared L3; the blocks it allows (128 tiles for 512
// channels in and out) keep the SGEMMs near full speed, where 64 lost 20%.
constexpr std::size_t kBlockBudget = std::size_t(2) << 20;

// Tiles per run of one tile row in the transforms, and the floats of a run's
// working rows: the input's (one padded row, at most 4 · kSegment + 2, then
// from 4 · kSegment + 8 on the patch rows times B, at most 36 · kSegment); the
// output's (M times A, 24 · kSegment, then four output rows, 16 · kSegment) fit
// in the same space.
constexpr int kSegment = 128;
constexpr std::size_t kWorkFloats = 40 * kSegment + 16;

// Winograd only pays when the channel sum is long enough for the SGEMMs to be
// efficient; below this the im2col path (K = 9·C_in) measured faster.
constexpr int kMinWinogradChannels = 16;

// Pixels from which F(4×4, 3×3) is chosen over F(2×2, 3×3) (winograd_tile).
constexpr std::size_t kMinWinograd4x4Pixels = 32 * 32;

// NST_CPU_CONV=direct|winograd2x2|winograd4x4 in the environment forces an
// algorithm from the start (for benchmarks); anything else is automatic.
Conv3x3Algorithm algorithm_from_environment() {
    const char* value = std::getenv("NST_CPU_CONV");
    if (value == nullptr) return Conv3x3Algorithm::automatic;
    if (std::strcmp(value, "direct") == 0) return Conv3x3Algorithm::direct;
    if (std::strcmp(value, "winograd2x2") == 0) return Conv3x3Algorithm::winograd;
    if (std::strcmp(value, "winograd4x4") == 0) return Conv3x3Algorithm::winograd4x4;
    return Conv3x3Algorithm::automatic;
}

std::atomic<Conv3x3Algorithm> selected_algorithm{algorithm_from_environment()};

// Distance between the 16 matrices of V, M and U: their size plus 64 bytes.
// Sizes are often powers of two, and 16 streams exactly that far apart share
// cache sets (and alias in the store buffer), which measured the transforms 2×
// slower.
std::size_t padded_stride(std::size_t floats) { return (floats + 15) / 16 * 16 + 16; }

// The backward identity G·J = D·P·G (cpu_winograd.h): the permutation P and the
// powers of two D, per tile size.
constexpr int kMirror2[4] = {3, 1, 2, 0};
constexpr int kMirror4[6] = {5, 1, 2, 4, 3, 0};
constexpr float kScale4[6] = {-1.0f, 1.0f, 1.0f, 0.25f, 4.0f, -1.0f};

}  // namespace

// The tile transforms, once per instruction-set variant (cpu_isa.h).
namespace generic {
#include "engine/backends/cpu/cpu_winograd_transforms.inc"
}  // namespace generic

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NST_WINOGRAD_VARIANTS 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "engine/backends/cpu/cpu_winograd_transforms.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")
namespace avx512 {
#include "engine/backends/cpu/cpu_winograd_transforms.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif

namespace {

using InputTransform = void (*)(const WinogradPlan&, const float*, int, int, int, int, float*,
                                std::size_t, float*);
using OutputTransform = void (*)(const WinogradPlan&, const float*, int, int, int, int,
                                 std::size_t, float*, float*);

struct Transforms {
    InputTransform input;
    OutputTransform output;
};

Transforms transforms_for(CpuIsa isa) {
#ifdef NST_WINOGRAD_VARIANTS
    switch (isa) {
        case CpuIsa::avx512: return {avx512::input_transform, avx512::output_transform};
        case CpuIsa::avx2: return {avx2::input_transform, avx2::output_transform};
        case CpuIsa::generic: break;
    }
#else
    (void)isa;
#endif
    return {generic::input_transform, generic::output_transform};
}

}  // namespace

void set_conv3x3_algorithm(Conv3x3Algorithm algorithm) { selected_algorithm = algorithm; }

Conv3x3Algorithm conv3x3_algorithm() { return selected_algorithm; }

bool use_winograd(int reduced_channels, int height, int width) {
    (void)height, (void)width;
    switch (selected_algorithm.load()) {
        case Conv3x3Algorithm::direct: return false;
        case Conv3x3Algorithm::winograd:
        case Conv3x3Algorithm::winograd4x4: return true;
        case Conv3x3Algorithm::automatic: break;
    }
    return reduced_channels >= kMinWinogradChannels;
}

int winograd_tile(int height, int width) {
    switch (selected_algorithm.load()) {
        case Conv3x3Algorithm::winograd: return 2;
        case Conv3x3Algorithm::winograd4x4: return 4;
        case Conv3x3Algorithm::direct:
        case Conv3x3Algorithm::automatic: break;
    }
    // F(4×4) on planes of at least 32×32 (64 tiles); on smaller ones (conv5_1 at
    // 256²: 16 tiles) it measured no faster than F(2×2), and its filters take
    // 36/16 of the memory.
    return std::size_t(height) * std::size_t(width) >= kMinWinograd4x4Pixels ? 4 : 2;
}

std::size_t winograd_filter_stride(int out_channels, int in_channels) {
    return padded_stride(std::size_t(out_channels) * in_channels);
}

namespace {

// G (cpu_winograd.h) per tile size, in double: (tile + 2, 3).
constexpr double kG2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
constexpr double kG4[6][3] = {{-1, 0, 0},
                              {-1, -1, -1},
                              {1.0 / 9, -1.0 / 9, 1.0 / 9},
                              {1.0 / 9, 2.0 / 9, 4.0 / 9},
                              {16.0 / 9, 8.0 / 9, 4.0 / 9},
                              {0, 0, 1}};

}  // namespace

void winograd_filter_transform(int tile, int out_channels, int in_channels, const float* weight,
                               float* u) {
    NST_ASSERT(tile == 2 || tile == 4);
    const int patch = tile + 2, positions = patch * patch;
    const std::size_t stride = winograd_filter_stride(out_channels, in_channels);
    constexpr int kChunk = 64;  // channels transformed into the stack buffer at a time
#pragma omp parallel for schedule(static)
    for (int o = 0; o < out_channels; ++o)
        for (int c0 = 0; c0 < in_channels; c0 += kChunk) {
            // Staged so that the destinations are written one run at a time.
            float chunk[36][kChunk];
            const int count = std::min(kChunk, in_channels - c0);
            for (int i = 0; i < count; ++i) {
                const float* g = weight + (std::size_t(o) * in_channels + c0 + i) * 9;  // (3, 3)
                double t[6][3];  // G·g
                for (int a = 0; a < patch; ++a)
                    for (int j = 0; j < 3; ++j) {
                        const double* row = tile == 2 ? kG2[a] : kG4[a];
                        t[a][j] = row[0] * g[j] + row[1] * g[3 + j] + row[2] * g[6 + j];
                    }
                for (int a = 0; a < patch; ++a)  // (G·g)·Gᵀ
                    for (int b = 0; b < patch; ++b) {
                        const double* row = tile == 2 ? kG2[b] : kG4[b];
                        chunk[a * patch + b][i] = static_cast<float>(
                            t[a][0] * row[0] + t[a][1] * row[1] + t[a][2] * row[2]);
                    }
            }
            for (int xi = 0; xi < positions; ++xi)
                std::memcpy(u + xi * stride + std::size_t(o) * in_channels + c0, chunk[xi],
                            std::size_t(count) * sizeof(float));
        }
}

WinogradPlan plan_winograd(int tile, int in_channels, int out_channels, int height, int width) {
    NST_ASSERT(in_channels > 0 && out_channels > 0 && height > 0 && width > 0);
    NST_ASSERT(tile == 2 || tile == 4);
    WinogradPlan plan;
    plan.in_channels = in_channels;
    plan.out_channels = out_channels;
    plan.height = height;
    plan.width = width;
    plan.tile = tile;
    plan.positions = (tile + 2) * (tile + 2);
    plan.threads = std::max(1, omp_get_max_threads());
    const std::size_t tiles =
        std::size_t((height + tile - 1) / tile) * std::size_t((width + tile - 1) / tile);
    NST_ASSERT(tiles <= 0x7fffffffu);
    plan.tiles = static_cast<int>(tiles);
    const std::size_t per_tile = std::size_t(plan.positions) * (std::size_t(in_channels) + out_channels);
    const std::size_t by_budget = std::max<std::size_t>(1, kBlockBudget / per_tile);
    // Shared blocks when the filters U (P·K·M floats) outweigh one thread's V and
    // M (P·(K + M)·block): each thread streaming all of U through the caches for
    // each of its own blocks would cost more than the blocks' data.
    const double km = double(in_channels) * out_channels / (double(in_channels) + out_channels);
    plan.shared = km >= double(by_budget);
    std::size_t block = 0;
    if (plan.shared) {
        block = std::min(tiles, by_budget * kSharedBudgets);
        block = (tiles + (tiles + block - 1) / block - 1) / ((tiles + block - 1) / block);  // even blocks
    } else {
        const std::size_t per_part = (tiles + kWorkSplit - 1) / kWorkSplit;
        block = std::min(by_budget, per_part);
        // A multiple of kWorkSplit blocks (cpu_winograd.h).
        std::size_t blocks = (tiles + block - 1) / block;
        blocks = std::min(tiles, (blocks + kWorkSplit - 1) / kWorkSplit * kWorkSplit);
        block = (tiles + blocks - 1) / blocks;
    }
    plan.block_tiles = static_cast<int>(block);
    plan.blocks = static_cast<int>((tiles + block - 1) / block);
    // V and M, then the transforms' working rows: per thread, or (shared) one V
    // and M for all and working rows per thread, spread evenly over the slices.
    const std::size_t vm = plan.positions * padded_stride(std::size_t(in_channels) * block) +
                           plan.positions * padded_stride(std::size_t(out_channels) * block);
    const std::size_t floats =
        plan.shared ? (vm + 15) / 16 * 16 / plan.threads + 16 + kWorkFloats : vm + kWorkFloats;
    plan.thread_floats = (floats + 15) / 16 * 16;  // keeps each thread's slice 64-byte aligned
    return plan;
}

namespace {

// The P = (tile + 2)² products of one block: M_ξ (M, n) = U_ξ · V_ξ forward,
// d_i d_j · U_{P(ξ)}ᵀ · V_ξ backward (cpu_winograd.h), for ξ ∈ [xi_begin, xi_end).
// OpenBLAS, or the register-tiled kernel (cpu_gemm.h) on AVX-512 where it
// measured faster. V_ξ may be read up to 31 floats past its last row: the next
// matrix or M follows it in the scratch (padded_stride), never the end of the buffer.
void block_products(const WinogradPlan& plan, CpuIsa isa, const float* u, bool backward,
                    const float* v, std::size_t v_stride, float* mt, std::size_t m_stride, int n,
                    int xi_begin, int xi_end) {
    const int k = plan.in_channels, m = plan.out_channels, patch = plan.tile + 2;
    const std::size_t filter_stride = winograd_filter_stride(backward ? k : m, backward ? m : k);
    // The kernel where OpenBLAS loses most: the forward products of shared blocks,
    // whose large U_ξ OpenBLAS packs anew for few columns. Backward, the kernel
    // reads U_ξᵀ a cache line per k and measured slower than OpenBLAS.
    const bool use_kernel = isa == CpuIsa::avx512 && plan.shared && !backward;
    for (int xi = xi_begin; xi < xi_end; ++xi) {
        const float* v_xi = v + xi * v_stride;  // (K, n)
        float* m_xi = mt + xi * m_stride;       // (M, n)
        // Forward: u (P, M, K), A = u[ξ] (M, K). Backward: u (P, K, M),
        // A = d_i d_j · u[P(ξ)]ᵀ (M, K), the scale a power of two.
        int position = xi;
        float scale = 1.0f;
        if (backward) {
            const int i = xi / patch, j = xi % patch;
            position = plan.tile == 2 ? kMirror2[i] * patch + kMirror2[j]
                                      : kMirror4[i] * patch + kMirror4[j];
            scale = plan.tile == 2 ? 1.0f : kScale4[i] * kScale4[j];
        }
        const float* a = u + std::size_t(position) * filter_stride;
        const std::size_t a_row = backward ? 1 : std::size_t(k), a_col = backward ? std::size_t(m) : 1;
        if (use_kernel)
            gemm_avx512(m, n, k, scale, a, a_row, a_col, v_xi, n, m_xi, n);
        else
            cblas_sgemm(CblasRowMajor, backward ? CblasTrans : CblasNoTrans, CblasNoTrans, m, n, k,
                        scale, a, backward ? m : k, v_xi, n, 0.0f, m_xi, n);
    }
}

// [begin, end) of `count` items for part `part` of `parts`, evenly.
void split_range(int count, int part, int parts, int& begin, int& end) {
    begin = int(std::int64_t(count) * part / parts);
    end = int(std::int64_t(count) * (part + 1) / parts);
}

}  // namespace

void winograd_conv3x3(const WinogradPlan& plan, const float* x, const float* u, bool backward,
                      float* y, float* scratch) {
    const int k = plan.in_channels, m = plan.out_channels, positions = plan.positions;
    const CpuIsa isa = cpu_isa();
    const Transforms transforms = transforms_for(isa);
    if (plan.shared) {
        // All threads on one block at a time: the input transform split over
        // channels, the products over positions ξ (each U_ξ read by one thread),
        // the output transform over output channels. The result is the same for
        // any thread count: every value is computed by the same operations.
        const std::size_t work_offset =
            std::size_t(plan.threads) * plan.thread_floats - std::size_t(plan.threads) * kWorkFloats;
        for (int block = 0; block < plan.blocks; ++block) {
            const int first = block * plan.block_tiles;
            const int n = std::min(plan.block_tiles, plan.tiles - first);
            const std::size_t v_stride = padded_stride(std::size_t(k) * n);
            const std::size_t m_stride = padded_stride(std::size_t(m) * n);
            float* v = scratch;
            float* mt = v + positions * v_stride;
#pragma omp parallel num_threads(plan.threads)
            {
                const int thread = omp_get_thread_num(), threads = omp_get_num_threads();
                float* work = scratch + work_offset + std::size_t(thread) * kWorkFloats;
                int begin = 0, end = 0;
                split_range(k, thread, threads, begin, end);
                transforms.input(plan, x, first, n, begin, end, v, v_stride, work);
#pragma omp barrier
                split_range(positions, thread, threads, begin, end);
                block_products(plan, isa, u, backward, v, v_stride, mt, m_stride, n, begin, end);
#pragma omp barrier
                split_range(m, thread, threads, begin, end);
                transforms.output(plan, mt, first, n, begin, end, m_stride, y, work);
            }
        }
        return;
    }
#pragma omp parallel num_threads(plan.threads)
    {
        float* v = scratch + std::size_t(omp_get_thread_num()) * plan.thread_floats;
#pragma omp for schedule(static)
        for (int block = 0; block < plan.blocks; ++block) {
            const int first = block * plan.block_tiles;
            const int n = std::min(plan.block_tiles, plan.tiles - first);
            const std::size_t v_stride = padded_stride(std::size_t(k) * n);
            const std::size_t m_stride = padded_stride(std::size_t(m) * n);
            float* mt = v + positions * v_stride;
            float* work = mt + positions * m_stride;
            transforms.input(plan, x, first, n, 0, k, v, v_stride, work);
            block_products(plan, isa, u, backward, v, v_stride, mt, m_stride, n, 0, positions);
            transforms.output(plan, mt, first, n, 0, m, m_stride, y, work);
        }
    }
}

}  // namespace nst::cpu
