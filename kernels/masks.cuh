// Spatial control: the channel-broadcast mask multiply of guided Gram matrices
// (Gatys et al. 2017, §4) and of the masked content loss.
//
//   forward:  y[c, p] = x[c, p] · m[p]      m (plane) broadcast over the C channels
//   backward: dx[c, p] = dy[c, p] · m[p]    (the same op on the incoming gradient)
//
// One multiply per element, the same single rounding as the CPU backend, so the
// two agree bit for bit. y may alias x (in place).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace nst::kernels {

// x, y (C, plane); mask (plane)
void mask_channels(int channels, std::size_t plane, const float* x, const float* mask, float* y,
                   cudaStream_t stream);

}  // namespace nst::kernels
