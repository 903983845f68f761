// The register-tiled product of the Winograd path (cpu_gemm.h), compiled for
// AVX-512 with per-function target attributes; only called where cpu_isa()
// says the CPU has it.
#include "engine/backends/cpu/cpu_gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

namespace nst::cpu {

namespace {

constexpr int kRows = 8;   // rows of C per register tile
constexpr int kCols = 32;  // columns of C per register tile: two 16-float vectors

// One 8 × 32 tile of C over the whole K: 16 accumulators, and per k two loads of
// B's row, eight broadcasts of A's column and sixteen FMAs. B is always loaded
// in full 32-float rows (masked loads measured 2.7× slower on Zen 4 in this
// loop); the columns past n are read but never stored (masks m0, m1), and
// nothing else depends on them.
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))) void tile_avx512(
    int k, float alpha, const float* const rows[kRows], std::size_t a_col, const float* b,
    std::size_t ldb, float* c, std::size_t ldc, int valid_rows, __mmask16 m0, __mmask16 m1) {
    __m512 acc[kRows][2];
    for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int p = 0; p < k; ++p) {
        const float* bp = b + std::size_t(p) * ldb;
        const __m512 b0 = _mm512_loadu_ps(bp);
        const __m512 b1 = _mm512_loadu_ps(bp + 16);
        const std::size_t at = std::size_t(p) * a_col;
        for (int r = 0; r < kRows; ++r) {
            const __m512 av = _mm512_set1_ps(rows[r][at]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    const __m512 scale = _mm512_set1_ps(alpha);
    for (int r = 0; r < valid_rows; ++r) {
        _mm512_mask_storeu_ps(c + std::size_t(r) * ldc, m0, _mm512_mul_ps(acc[r][0], scale));
        _mm512_mask_storeu_ps(c + std::size_t(r) * ldc + 16, m1, _mm512_mul_ps(acc[r][1], scale));
    }
}

}  // namespace

// Row tiles outside, column panels inside: A's 8 rows (8·K floats) stay in L1
// while they meet every panel of B.
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))) void gemm_avx512(
    int m, int n, int k, float alpha, const float* a, std::size_t a_row, std::size_t a_col,
    const float* b, std::size_t ldb, float* c, std::size_t ldc) {
    for (int i0 = 0; i0 < m; i0 += kRows) {
        // Rows past m repeat the last valid row: computed, never stored.
        const float* rows[kRows];
        for (int r = 0; r < kRows; ++r) rows[r] = a + std::size_t(i0 + r < m ? i0 + r : m - 1) * a_row;
        const int valid_rows = m - i0 < kRows ? m - i0 : kRows;
        for (int j0 = 0; j0 < n; j0 += kCols) {
            const int cols = n - j0 < kCols ? n - j0 : kCols;
            const __mmask16 m0 = cols >= 16 ? __mmask16(0xffff) : __mmask16((1u << cols) - 1);
            const __mmask16 m1 = cols >= 32   ? __mmask16(0xffff)
                                 : cols > 16 ? __mmask16((1u << (cols - 16)) - 1)
                                             : __mmask16(0);
            tile_avx512(k, alpha, rows, a_col, b + j0, ldb, c + std::size_t(i0) * ldc + j0, ldc,
                        valid_rows, m0, m1);
        }
    }
}

}  // namespace nst::cpu

#else  // not x86-64 GCC/Clang: never called (cpu_isa() is generic there)

#include "engine/base/error.h"

namespace nst::cpu {

void gemm_avx512(int, int, int, float, const float*, std::size_t, std::size_t, const float*,
                 std::size_t, float*, std::size_t) {
    NST_ASSERT(false);
}

}  // namespace nst::cpu
#endif
