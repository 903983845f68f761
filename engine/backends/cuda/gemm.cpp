// Row-major SGEMM over column-major cuBLAS (convention in gemm.h).
#include "engine/backends/cuda/gemm.h"

#include "engine/backends/cuda/device_check.h"

namespace nst::cuda {

void gemm(cublasHandle_t handle, Transpose trans_a, Transpose trans_b, int m, int n, int k,
          float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c,
          int ldc) {
    NVTX_RANGE("gemm");
    NST_ASSERT(m > 0 && n > 0 && k > 0 && a != nullptr && b != nullptr && c != nullptr);
    // Row strides of the stored matrices: op(A) is m × k, so A is m × k (no) or k × m (yes).
    NST_ASSERT(lda >= (trans_a == Transpose::no ? k : m));
    NST_ASSERT(ldb >= (trans_b == Transpose::no ? n : k));
    NST_ASSERT(ldc >= n);
    const cublasOperation_t op_a = trans_a == Transpose::no ? CUBLAS_OP_N : CUBLAS_OP_T;
    const cublasOperation_t op_b = trans_b == Transpose::no ? CUBLAS_OP_N : CUBLAS_OP_T;
    CUBLAS_CHECK(cublasSgemm(handle, op_b, op_a, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
}

}  // namespace nst::cuda
