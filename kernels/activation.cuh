// Bias + ReLU, fused, and the ReLU backward mask: the launchers. The formulas
// and their per-element arithmetic, shared with the CPU backend, are in
// kernels/activation.h.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/activation.h"

namespace nst::kernels {

// y (C, plane) in place; bias (C)
void bias_relu_forward(int channels, std::size_t plane, const float* bias, float* y,
                       cudaStream_t stream);

// y, dy (count): dy = 0 where y ≤ 0
void relu_backward(std::size_t count, const float* y, float* dy, cudaStream_t stream);

}  // namespace nst::kernels
