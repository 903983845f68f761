// Vector operations for the optimisers (L-BFGS, Adam), all on the device.
//
//   dot, asum, amax, non_finite: the reductions of kernels/reductions.h (per-
//               element terms shared with the CPU), deterministic (kernels/reduce.cuh),
//               each result left in device memory (*out, a ScalarBuffer slot)
//   axpy:       y += α x;   scale: x *= α;   fill: x = v
//   adam:       m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g²
//               x −= lr · (m / c1) / (sqrt(v / c2) + ε),  c1 = 1 − β1^t, c2 = 1 − β2^t
//               (c1, c2 computed once on the host in double; the division and the
//               square root in double, as in the CPU backend)
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/reduce.cuh"

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
void scale(std::size_t count, float alpha, float* x, cudaStream_t stream);
void fill(std::size_t count, float value, float* x, cudaStream_t stream);

struct AdamStep {
    float lr, beta1, beta2, eps;
    double correction1, correction2;  // 1 − β1^t, 1 − β2^t
};
// grad, m, v, x (count)
void adam_update(std::size_t count, const AdamStep& step, const float* grad, float* m, float* v,
                 float* x, cudaStream_t stream);

}  // namespace nst::kernels
