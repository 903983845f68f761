// Image pre/post-processing on the device.
//
//   preprocess:  out[c] = (pixel_scale · x[perm(c)] − mean[c]) / std[c]
//                perm = identity (RGB) or c ↦ 2 − c (BGR)             (DESIGN.md)
//   backward:    dx[perm(c)] += dout[c] · pixel_scale / std[c]
//   clamp:       x = min(hi, max(lo, x))
//   to_8bit:     out = round(clamp(x, 0, 1) · 255), halves away from zero (as
//                engine/image's to_8bit), for writing the result image
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "engine/backend.h"

namespace nst::kernels {

// x, out (3, plane)
void preprocess(const Preprocessing& pre, std::size_t plane, const float* x, float* out,
                cudaStream_t stream);

// dout, dx (3, plane); dx accumulates
void preprocess_backward(const Preprocessing& pre, std::size_t plane, const float* dout,
                         float* dx, cudaStream_t stream);

// x (count) in place
void clamp(std::size_t count, float lo, float hi, float* x, cudaStream_t stream);

// x, out (count)
void to_8bit(std::size_t count, const float* x, std::uint8_t* out, cudaStream_t stream);

}  // namespace nst::kernels
