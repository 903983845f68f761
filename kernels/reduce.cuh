// Deterministic sums in double precision, used by every op that produces a
// scalar (dot, asum, the non-finite count, the three losses):
//
//   pass 1: a grid of G = min(scratch.blocks, ⌈count / B⌉) blocks of B threads;
//           thread t of block b sums the terms i ≡ b·B + t (mod G·B) in
//           increasing i, then the block combines its B threads by a fixed
//           shared-memory tree into partials[b];
//   pass 2: one block combines the G partials by the same tree and writes
//           scale · sum to *out, a double in device memory (a ScalarBuffer slot).
//
// scratch.blocks is sized to the device once (a few blocks per multiprocessor:
// enough to fill the card on a large tensor, without a 256-block grid on a
// tiny one). Which term lands in which partial, and the order of every
// addition, depend only on `count` and scratch.blocks, never on scheduling;
// there are no floating-point atomics. So the same input gives the same bits
// on every run on the same card.
//
// This header is host-safe (the backend includes it); the kernel templates are
// in kernels/reduce_kernels.cuh, included only by the .cu files.
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

namespace nst::kernels {

// Blocks of pass 1 per multiprocessor, and the most partials any device gets.
constexpr int kReduceBlocksPerSm = 4;
constexpr int kMaxReduceBlocks = 2048;

// Device memory the reductions write; owned by the backend, allocated once.
struct ReductionScratch {
    double* partials = nullptr;  // (blocks)
    int blocks = 0;              // pass-1 grid on a large input
};

// The pass-1 grid for `multiprocessors` SMs: kReduceBlocksPerSm each, at most kMaxReduceBlocks.
int reduction_blocks(int multiprocessors);

// Pass 2: partials (blocks) -> *out = scale · Σ partials, one block (reduce.cu).
void reduce_final(const double* partials, int blocks, double scale, double* out,
                  cudaStream_t stream);

}  // namespace nst::kernels
