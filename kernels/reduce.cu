// The second pass of the deterministic reductions (kernels/reduce.cuh).
#include "kernels/reduce_kernels.cuh"

namespace nst::kernels {

static_assert(kReduceBlocks % kBlockSize == 0, "pass 2 folds the partials evenly");

__global__ void reduce_final_kernel(const double* partials, double* result) {
    __shared__ double shared[kBlockSize];
    double sum = 0.0;
    for (int i = threadIdx.x; i < kReduceBlocks; i += kBlockSize) sum += partials[i];
    shared[threadIdx.x] = sum;
    __syncthreads();
    block_tree_sum(shared);
    if (threadIdx.x == 0) *result = shared[0];
}

void reduce_final(const double* partials, double* result, cudaStream_t stream) {
    reduce_final_kernel<<<1, kBlockSize, 0, stream>>>(partials, result);
    CUDA_CHECK_LAUNCH();
}

}  // namespace nst::kernels
