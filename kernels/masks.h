// Spatial control: the channel-broadcast mask multiply of guided Gram matrices
// (Gatys et al. 2017, §4) and of the masked content loss. Per-element arithmetic
// shared by the CPU backend (engine/backends/cpu/cpu_masks.cpp) and the CUDA kernel
// (kernels/masks.cu).
//
//   forward:  y[c, p] = x[c, p] · m[p]      x, y (C, plane), m (plane) broadcast
//                                           over the C channels; y may alias x
//   backward: dx[c, p] = dy[c, p] · m[p]    (the same op on the incoming gradient)
//
// One multiply per element, one rounding: both backends give the same bits.
#pragma once

#include "kernels/host_device.h"

namespace nst::kernels {

NST_HD float mask_value(float x, float m) { return x * m; }

}  // namespace nst::kernels
