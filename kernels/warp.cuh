// Warping an image by a dense optical flow, the launcher. The formula and the
// per-element arithmetic, shared with the CPU backend, are in kernels/warp.h.
#pragma once

#include <cuda_runtime.h>

namespace nst::kernels {

// src, dst (C, H, W), flow (2, H, W): dst(c, y, x) = bilinear(src_c, x + u, y + v),
// clamped to the frame; dst must not overlap src.
void warp_bilinear(int channels, int height, int width, const float* src, const float* flow,
                   float* dst, cudaStream_t stream);

}  // namespace nst::kernels
