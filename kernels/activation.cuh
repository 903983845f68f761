// Bias + ReLU, fused, and the ReLU backward mask.
//
//   forward:  y[c, p] = max(0, y[c, p] + b[c])          (in place, after the conv)
//   backward: dy[i] = 0 where y[i] ≤ 0, else unchanged  (y is the post-ReLU output)
//
// The backward mask uses the output, not the pre-activation: y > 0 exactly where
// the pre-activation was > 0, so nothing else needs to be kept.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace nst::kernels {

// y (C, plane) in place; bias (C)
void bias_relu_forward(int channels, std::size_t plane, const float* bias, float* y,
                       cudaStream_t stream);

// y, dy (count): dy = 0 where y ≤ 0
void relu_backward(std::size_t count, const float* y, float* dy, cudaStream_t stream);

}  // namespace nst::kernels
