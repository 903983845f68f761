// 2×2 pooling, stride 2, floor: x (C, H, W) -> y (C, H/2, W/2). The per-window
// arithmetic shared by the CPU backend (engine/backends/cpu/cpu_layers.cpp) and the CUDA
// kernels (kernels/pooling.cu). Each function takes the window's four values
//
//   a = x[c, 2i, 2j]      b = x[c, 2i, 2j+1]
//   c = x[c, 2i+1, 2j]    d = x[c, 2i+1, 2j+1]
//
// as scalars: no window array, so a kernel keeps them in registers (a local
// array indexed at run time would live in local memory, a stack frame).
//
//   average: y[c,i,j] = ¼ ((a + b) + (c + d))
//            dx = ¼ dy[c,i,j] on each of the four
//   max:     y[c,i,j] = the FIRST maximum of the window in row-major order
//            a, b, c, d (position 0, 1, 2, 3); dx = dy[c,i,j] at that position,
//            0 at the other three. A NaN at a wins (nothing compares greater);
//            a NaN elsewhere is never selected.
//   A trailing odd row or column (index 2·(H/2) or 2·(W/2)) belongs to no
//   window: the forward pass drops it and it gets zero gradient.
#pragma once

#include "kernels/host_device.h"

namespace nst::kernels {

NST_HD float pool_average(float a, float b, float c, float d) {
    return 0.25f * ((a + b) + (c + d));
}

NST_HD float pool_average_grad(float dy) { return 0.25f * dy; }

// Position 0..3 of the first maximum of the window.
NST_HD int pool_first_max(float a, float b, float c, float d) {
    int position = 0;
    float best = a;
    if (b > best) { best = b; position = 1; }
    if (c > best) { best = c; position = 2; }
    if (d > best) { position = 3; }
    return position;
}

// The value at pool_first_max: the same comparisons, so the same element.
NST_HD float pool_max(float a, float b, float c, float d) {
    float best = a;
    best = b > best ? b : best;
    best = c > best ? c : best;
    return d > best ? d : best;
}

// The gradient of the element at `position` (0..3) of a window whose first
// maximum is at `first_max`.
NST_HD float pool_max_grad(int first_max, int position, float dy) {
    return first_max == position ? dy : 0.0f;
}

}  // namespace nst::kernels
