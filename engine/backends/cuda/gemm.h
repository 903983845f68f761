// The one matrix-product wrapper of the CUDA backend, over cuBLAS SGEMM.
//
// Convention. Our tensors are ROW-major; cuBLAS is COLUMN-major. A row-major
// matrix X (r × c, row stride ld) occupies memory exactly as the column-major
// matrix Xᵀ (c × r, leading dimension ld). So the row-major product
//     C = α op(A) op(B) + β C          C (m × n), op(A) (m × k), op(B) (k × n)
// is computed as its transpose in column-major,
//     Cᵀ = α op(B)ᵀ op(A)ᵀ + β Cᵀ,
// i.e. cublasSgemm(opB, opA, n, m, k, α, B, ldb, A, lda, β, C, ldc): the operands
// swap places, the transpose flags stay with their operand, and every ld is the
// row-major row stride (number of columns of the stored matrix).
//
// Uses in the backend (F (N, M), G and D (N, N), all row-major):
//     Gram:            G  = F Fᵀ                      gemm(no, yes, N, N, M, 1, F, M, F, M, 0, G, N)
//     style gradient:  dF += w/(N²M²) · D F           gemm(no, no, N, M, N, c, D, N, F, M, 1, dF, M)
// The Gram matrix uses SGEMM rather than SSYRK so that no mirror pass is needed
// to fill the other triangle.
#pragma once

#include <cublas_v2.h>

namespace nst::cuda {

enum class Transpose { no, yes };

// Row-major C (m × n) = alpha · op(A) · op(B) + beta · C on the handle's stream.
// lda, ldb, ldc: row strides of the stored (untransposed) matrices.
void gemm(cublasHandle_t handle, Transpose trans_a, Transpose trans_b, int m, int n, int k,
          float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c,
          int ldc);

}  // namespace nst::cuda
