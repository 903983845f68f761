// The matrix products of the Winograd path (cpu_winograd.cpp), written for its
// shapes: M and K are channel counts (64–512), N the tiles of one block (often
// only 16–64 on the small late layers, where OpenBLAS spends as long packing
// the large A = U_ξ operand as multiplying).
//
//   C (M, N) = alpha · A · B,   A(i, k) = a[i·a_row + k·a_col],   B (K, N), C (M, N) row-major
//
// A is read in place, never packed: forward U_ξ (M, K) row-major has
// (a_row, a_col) = (K, 1); backward U_{P(ξ)}ᵀ has (1, M_layer). Register tiles of
// 8 rows × 32 columns (AVX-512) run over the whole K, B's panel
// staying in L2 while A's 8 rows stream once per panel. Measured alone on the
// Zen 4 core here (1 thread): 113 GFLOP/s at 512×64×512, where OpenBLAS's SGEMM
// reaches 97 (and 90 at N = 32), the peak being about 117.
//
// Every element is a sequence of fused multiply-adds over k = 0 … K−1 from
// zero, then one multiplication by alpha (a power of two here, exact). The
// other variants (cpu_isa.h) use OpenBLAS: other bits, the same bound. (An
// AVX2 version of this kernel, 8 × 16 tiles, measured 42 GFLOP/s on this core
// against OpenBLAS's 97, and was dropped.)
//
// B's rows are read 32 floats at a time: up to 31 floats past column n of
// every row (and of the last) must be readable; their values never reach C.
#pragma once

#include <cstddef>

namespace nst::cpu {

void gemm_avx512(int m, int n, int k, float alpha, const float* a, std::size_t a_row,
                 std::size_t a_col, const float* b, std::size_t ldb, float* c, std::size_t ldc);

}  // namespace nst::cpu
