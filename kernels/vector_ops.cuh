// Vector operations for the optimisers (L-BFGS, Adam), all on the device.
//
//   dot, asum, amax, non_finite: the reductions of kernels/reductions.h (per-
//               element terms shared with the CPU), deterministic (kernels/reduce.cuh),
//               each result left in device memory (*out, a ScalarBuffer slot)
//   axpy, axpy_from, scale, fill, adam: element-wise, formulas and arithmetic
//               shared with the CPU backend in kernels/vector_ops.h
//   pack_half, dot_half, dot_half_pair, axpy_from_half: 16-bit storage (bf16,
//               fp16) with float/double arithmetic, conversions and terms shared
//               with the CPU backend in kernels/half.h
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/half.h"
#include "kernels/reduce.cuh"
#include "kernels/vector_ops.h"

namespace nst::kernels {

// x, y (count) -> *out (device): scale · Σ x_i y_i, Σ |x_i|, max |x_i|, #non-finite
void dot(std::size_t count, const float* x, const float* y, double scale,
         const ReductionScratch& scratch, double* out, cudaStream_t stream);
void asum(std::size_t count, const float* x, const ReductionScratch& scratch, double* out,
          cudaStream_t stream);
void amax(std::size_t count, const float* x, const ReductionScratch& scratch, double* out,
          cudaStream_t stream);
void non_finite_count(std::size_t count, const float* x, const ReductionScratch& scratch,
                      double* out, cudaStream_t stream);

void axpy(std::size_t count, float alpha, const float* x, float* y, cudaStream_t stream);
// Device-resident coefficient (Backend::axpy_from): y += float(factor · (*alpha − *minus)) · x
void axpy_from(std::size_t count, const double* alpha, const double* minus, double factor,
               const float* x, float* y, cudaStream_t stream);
// x (count) -> packed (count); c = history_half_scale(format, *amax) read on the device
void pack_half(std::size_t count, HalfFormat format, const float* x, const double* amax,
               std::uint16_t* packed, cudaStream_t stream);
// *out (device) = scale · Σ unpack(a_i) x_i, and scale · Σ unpack(a_i) unpack(b_i)
void dot_half(std::size_t count, HalfFormat format, const std::uint16_t* a, const float* x,
              double scale, const ReductionScratch& scratch, double* out, cudaStream_t stream);
void dot_half_pair(std::size_t count, HalfFormat format, const std::uint16_t* a,
                   const std::uint16_t* b, double scale, const ReductionScratch& scratch,
                   double* out, cudaStream_t stream);
// y += float(factor · (*alpha − *minus)) · unpack(x_i)
void axpy_from_half(std::size_t count, const double* alpha, const double* minus, double factor,
                    HalfFormat format, const std::uint16_t* x, float* y, cudaStream_t stream);
void scale(std::size_t count, float alpha, float* x, cudaStream_t stream);
void fill(std::size_t count, float value, float* x, cudaStream_t stream);

// AdamStep: kernels/vector_ops.h. grad, m, v, x (count)
void adam_update(std::size_t count, const AdamStep& step, const float* grad, float* m, float* v,
                 float* x, cudaStream_t stream);

}  // namespace nst::kernels
