// Image pre/post-processing: the per-element arithmetic shared by the CPU
// backend (engine/backends/cpu/cpu_layers.cpp), engine/io/image.cpp and the CUDA kernels
// (kernels/preprocess.cu). x, out (3, plane).
//
//   preprocess:  out[c] = (pixel_scale · x[perm(c)] − mean[c]) / std[c]
//                perm = identity (RGB) or c ↦ 2 − c (BGR)             (DESIGN.md)
//   backward:    dx[perm(c)] += dout[c] · f[c],   f[c] = pixel_scale / std[c]
//   to_8bit:     round(clamp(x, 0, 1) · 255), halves up, NaN → 0: the level
//                written to an 8-bit image
//
// The products are rounded on their own (mul_rn: no FMA), and f[c] is one
// float division, so both backends give the same bits.
#pragma once

#include <cstdint>

#include "kernels/host_device.h"

namespace nst::kernels {

// The input channel read by output channel c (perm is its own inverse, so this
// is also the dx channel that output channel c's gradient goes to).
NST_HD int preprocess_source_channel(bool bgr, int c) { return bgr ? 2 - c : c; }

// v[c] for c in 0..2 by selects, not by a run-time index: a kernel parameter
// indexed at run time is copied to local memory (a stack frame).
NST_HD float channel_value(const float (&v)[3], int c) {
    return c == 0 ? v[0] : (c == 1 ? v[1] : v[2]);
}

// x = x[perm(c)]; mean, std of output channel c
NST_HD float preprocess_value(float x, float pixel_scale, float mean, float std_dev) {
    return (mul_rn(pixel_scale, x) - mean) / std_dev;
}

// f[c] of output channel c
NST_HD float preprocess_grad_factor(float pixel_scale, float std_dev) {
    return pixel_scale / std_dev;
}

// dx[perm(c)] + dout[c] · f[c]
NST_HD float preprocess_backward_value(float dx, float dout, float factor) {
    return dx + mul_rn(dout, factor);
}

// x·255 is exact in double (at most 32 significant bits), and so is the
// rounding below: x·255 + ½ can only round up to an integer n when x·255 lies
// within 2⁻⁴⁵ under n − ½, and a multiple of 2⁻³² below 255 never does. (nvcc
// fuses x·255 + ½ into one FMA: the same result, the product being exact.)
NST_HD std::uint8_t to_8bit_value(float x) {
    if (!(x > 0.0f)) return 0;  // also NaN
    if (x >= 1.0f) return 255;
    return static_cast<std::uint8_t>(static_cast<int>(static_cast<double>(x) * 255.0 + 0.5));
}

}  // namespace nst::kernels
