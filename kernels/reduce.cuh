// Deterministic sums in double precision, used by every op that returns a
// scalar (dot, asum, all_finite, the three losses):
//
//   pass 1: a FIXED grid of kReduceBlocks blocks; thread t of block b sums the
//           terms i ≡ b·B + t (mod kReduceBlocks·B) in increasing i, then the
//           block combines its B threads by a fixed shared-memory tree into
//           partials[b];
//   pass 2: one block combines the kReduceBlocks partials by the same tree into
//           *result.
//
// Which term lands in which partial, and the order of every addition, depend
// only on `count`, never on scheduling; there are no floating-point atomics.
// So the same input gives the same bits on every run on the same card (and on
// any card, since the grid does not depend on the device either).
#pragma once

#include <cstddef>

#include "kernels/common.cuh"

namespace nst::kernels {

constexpr int kReduceBlocks = 256;

// Device memory the reductions write; owned by the backend, allocated once.
struct ReductionScratch {
    double* partials = nullptr;  // (kReduceBlocks)
    double* result = nullptr;    // (1)
};

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

// Pass 2: partials (kReduceBlocks) -> *result, one block (defined in reduce.cu).
void reduce_final(const double* partials, double* result, cudaStream_t stream);

// Launches both passes on `stream`; the sum is left in *scratch.result (device).
template <typename Term>
void deterministic_sum(std::size_t count, const Term& term, const ReductionScratch& scratch,
                       cudaStream_t stream) {
    NST_ASSERT(scratch.partials != nullptr && scratch.result != nullptr);
    reduce_partials_kernel<<<kReduceBlocks, kBlockSize, 0, stream>>>(count, term, scratch.partials);
    CUDA_CHECK_LAUNCH();
    reduce_final(scratch.partials, scratch.result, stream);
}

}  // namespace nst::kernels
