// Kernel templates of the deterministic reductions (the scheme is described in
// kernels/reduce.cuh). Included only by .cu files.
#pragma once

#include "kernels/common.cuh"
#include "kernels/reduce.cuh"

namespace nst::kernels {

// Sums shared[0..kBlockSize) into shared[0] in a fixed order.
__device__ inline void block_tree_sum(double* shared) {
    for (int stride = kBlockSize / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
        __syncthreads();
    }
}

// Term: a functor with `__device__ double operator()(std::size_t i) const`.
// It may also write element i of an output (the losses add their gradient there):
// each i is visited exactly once.
template <typename Term>
__global__ void reduce_partials_kernel(std::size_t count, Term term, double* partials) {
    __shared__ double shared[kBlockSize];
    double sum = 0.0;
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        sum += term(i);
    shared[threadIdx.x] = sum;
    __syncthreads();
    block_tree_sum(shared);
    if (threadIdx.x == 0) partials[blockIdx.x] = shared[0];
}

// Blocks of pass 1 for `count` terms: no more than there are terms to fill them.
inline int pass_one_blocks(std::size_t count, const ReductionScratch& scratch) {
    const std::size_t needed = CEIL_DIV(count, std::size_t(kBlockSize));
    return needed < 1 ? 1 : (needed < std::size_t(scratch.blocks) ? int(needed) : scratch.blocks);
}

// Launches both passes on `stream`; *out = scale · Σ term(i) (device memory).
template <typename Term>
void deterministic_sum(std::size_t count, const Term& term, const ReductionScratch& scratch,
                       double* out, double scale, cudaStream_t stream) {
    NST_ASSERT(scratch.partials != nullptr && scratch.blocks > 0 && out != nullptr);
    const int blocks = pass_one_blocks(count, scratch);
    reduce_partials_kernel<<<blocks, kBlockSize, 0, stream>>>(count, term, scratch.partials);
    CUDA_CHECK_LAUNCH();
    reduce_final(scratch.partials, blocks, scale, out, stream);
}

}  // namespace nst::kernels
