// The second pass of the deterministic reductions (kernels/reduce.cuh).
#include "kernels/reduce_kernels.cuh"

namespace nst::kernels {

int reduction_blocks(int multiprocessors) {
    const int blocks = kReduceBlocksPerSm * (multiprocessors > 0 ? multiprocessors : 1);
    return blocks < kMaxReduceBlocks ? blocks : kMaxReduceBlocks;
}

// partials (blocks) -> *out = scale · Σ partials
__global__ void reduce_final_kernel(const double* partials, int blocks, double scale,
                                    double* out) {
    __shared__ double shared[kBlockSize];
    double sum = 0.0;
    for (int i = threadIdx.x; i < blocks; i += kBlockSize) sum += partials[i];
    shared[threadIdx.x] = sum;
    __syncthreads();
    block_tree_sum(shared);
    if (threadIdx.x == 0) *out = scale * shared[0];
}

void reduce_final(const double* partials, int blocks, double scale, double* out,
                  cudaStream_t stream) {
    NST_ASSERT(blocks > 0 && blocks <= kMaxReduceBlocks);
    reduce_final_kernel<<<1, kBlockSize, 0, stream>>>(partials, blocks, scale, out);
    CUDA_CHECK_LAUNCH();
}

}  // namespace nst::kernels
