// Launchers of the loss terms (formulas and per-element arithmetic in
// kernels/losses.h, shared with the CPU backend). Each sum is a deterministic
// double-precision reduction (kernels/reduce.cuh) whose value is left in device
// memory (*out); each gradient is ACCUMULATED.
//
// The style loss is split: this file computes D = G − A and Σ D²; the backend
// finishes ∂E/∂F = w D F / (N² M²) with a cuBLAS SGEMM (D is symmetric).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/reduce.cuh"

namespace nst::kernels {

// F, P, dF (count). *out = ½ Σ (F − P)²; dF += weight · (F − P).
void content_loss(std::size_t count, const float* features, const float* target, float weight,
                  float* grad, const ReductionScratch& scratch, double* out, cudaStream_t stream);

// G, A, D (N, N): D = G − A; *out = scale · Σ D².
void style_difference(int n, const float* gram, const float* target, float* difference,
                      const ReductionScratch& scratch, double scale, double* out,
                      cudaStream_t stream);

// x, dx (C, H, W). *out = L_tv(x); dx += weight · ∂L_tv/∂x.
void tv_loss(int channels, int height, int width, const float* x, float weight, float* grad,
             const ReductionScratch& scratch, double* out, cudaStream_t stream);

// x, t, dx (C, plane), c (plane). *out = scale · Σ c_p (x − t)² (scale = 1/D);
// dx += coefficient · c_p (x − t) (coefficient = float(2w/D), kernels/losses.h).
void temporal_loss(int channels, std::size_t plane, const float* x, const float* target,
                   const float* pixel_weights, float coefficient, float* grad,
                   const ReductionScratch& scratch, double scale, double* out,
                   cudaStream_t stream);

}  // namespace nst::kernels
