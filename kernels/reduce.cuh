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
//
// This header is host-safe (the backend includes it); the kernel templates are
// in kernels/reduce_kernels.cuh, included only by the .cu files.
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

namespace nst::kernels {

constexpr int kReduceBlocks = 256;

// Device memory the reductions write; owned by the backend, allocated once.
struct ReductionScratch {
    double* partials = nullptr;  // (kReduceBlocks)
    double* result = nullptr;    // (1)
};

// Pass 2: partials (kReduceBlocks) -> *result, one block (defined in reduce.cu).
void reduce_final(const double* partials, double* result, cudaStream_t stream);

}  // namespace nst::kernels
