// 2×2 pooling, stride 2, floor (engine/backend.h): x (C, H, W) -> y (C, H/2, W/2).
//
//   average: y[c,i,j] = ¼ (x[c,2i,2j] + x[c,2i,2j+1] + x[c,2i+1,2j] + x[c,2i+1,2j+1])
//            dx[c,2i+u,2j+v] = ¼ dy[c,i,j]
//   max:     y[c,i,j] = max over the same window
//            dx[c,2i+u,2j+v] = dy[c,i,j] at the FIRST maximum of the window in
//            row-major order (u, v) = (0,0), (0,1), (1,0), (1,1); 0 elsewhere
//   A trailing odd row or column (index 2·(H/2) or 2·(W/2)) is dropped by the
//   forward pass and gets zero gradient.
//
// The backward kernels run one thread per INPUT element and write every dx
// element exactly once (no atomics, no separate zero-fill).
#pragma once

#include <cuda_runtime.h>

#include "engine/backend.h"

namespace nst::kernels {

// x (C, H, W) -> y (C, H/2, W/2)
void pool_forward(PoolMode mode, int channels, int height, int width, const float* x, float* y,
                  cudaStream_t stream);

// x (C, H, W), dy (C, H/2, W/2) -> dx (C, H, W), overwritten
void pool_backward(PoolMode mode, int channels, int height, int width, const float* x,
                   const float* dy, float* dx, cudaStream_t stream);

}  // namespace nst::kernels
