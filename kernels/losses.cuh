// The loss terms of DESIGN.md ("The objective") and their gradients. Each sum is
// a deterministic double-precision reduction (kernels/reduce.cuh); the value is
// left in device memory (scratch.result) and each gradient is ACCUMULATED.
//
//   content:  L = ½ Σ_i (F_i − P_i)²                        dF_i += w (F_i − P_i)
//   style:    D = G − A (N, N);  Σ_ij D_ij²                  (this file)
//             E = Σ D² / (4 N² M²);  dF += w D F / (N² M²)   (the backend: cuBLAS SGEMM,
//             since D is symmetric, ∂E/∂F = (G − A) F / (N² M²))
//   TV:       L = Σ_c Σ_ij (x_{c,i,j+1} − x_{c,i,j})² + (x_{c,i+1,j} − x_{c,i,j})²
//             ∂L/∂x_{c,i,j} = 2(x_{i,j} − x_{i,j−1})[j>0] − 2(x_{i,j+1} − x_{i,j})[j<W−1]
//                           + 2(x_{i,j} − x_{i−1,j})[i>0] − 2(x_{i+1,j} − x_{i,j})[i<H−1]
//             dx += w ∂L/∂x
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/reduce.cuh"

namespace nst::kernels {

// F, P, dF (count). *scratch.result = ½ Σ (F − P)²; dF += weight · (F − P).
void content_loss(std::size_t count, const float* features, const float* target, float weight,
                  float* grad, const ReductionScratch& scratch, cudaStream_t stream);

// G, A, D (N, N): D = G − A; *scratch.result = Σ D².
void style_difference(int n, const float* gram, const float* target, float* difference,
                      const ReductionScratch& scratch, cudaStream_t stream);

// x, dx (C, H, W). *scratch.result = L_tv(x); dx += weight · ∂L_tv/∂x.
void tv_loss(int channels, int height, int width, const float* x, float weight, float* grad,
             const ReductionScratch& scratch, cudaStream_t stream);

}  // namespace nst::kernels
