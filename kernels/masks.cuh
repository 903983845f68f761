// Spatial control: the channel-broadcast mask multiply, the launcher. The
// formula and its per-element arithmetic, shared with the CPU backend, are in
// kernels/masks.h. y may alias x (in place).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/masks.h"

namespace nst::kernels {

// x, y (C, plane); mask (plane)
void mask_channels(int channels, std::size_t plane, const float* x, const float* mask, float* y,
                   cudaStream_t stream);

}  // namespace nst::kernels
