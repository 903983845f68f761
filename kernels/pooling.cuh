// 2×2 pooling, stride 2, floor: the launchers. The formulas and the per-window
// arithmetic, shared with the CPU backend, are in kernels/pooling.h.
//
// The backward kernels run one thread per INPUT element and write every dx
// element exactly once (no atomics, no separate zero-fill).
#pragma once

#include <cuda_runtime.h>

#include "engine/base/types.h"
#include "kernels/pooling.h"

namespace nst::kernels {

// x (C, H, W) -> y (C, H/2, W/2)
void pool_forward(PoolMode mode, int channels, int height, int width, const float* x, float* y,
                  cudaStream_t stream);

// x (C, H, W), dy (C, H/2, W/2) -> dx (C, H, W), overwritten
void pool_backward(PoolMode mode, int channels, int height, int width, const float* x,
                   const float* dy, float* dx, cudaStream_t stream);

}  // namespace nst::kernels
