// Warping by a dense optical flow (Ruder, Dosovitskiy, Brox 2016, §3: ω), per
// element, shared by the CPU backend, the CUDA kernel (kernels/warp.cu) and the
// host code that checks flows for consistency (engine/video/consistency.cpp).
//
//   flow (2, H, W): u = flow[0] (x, columns), v = flow[1] (y, rows), in pixels,
//   on the grid of the image being made: pixel (y, x) is taken from the source
//   at (x + u(y, x), y + v(y, x)).
//
//   ω(src)(c, y, x) = bilinear(src_c, x + u, y + v), the sample point clamped to
//   [0, W−1] × [0, H−1] (the edge repeated beyond it: a point that leaves the
//   frame has no source, and the consistency weights are 0 there, so what is
//   sampled only has to be finite and smooth).
//
//   bilinear(s, px, py) with x0 = ⌊px⌋, y0 = ⌊py⌋, ax = px − x0, ay = py − y0:
//     (1−ay)·((1−ax)·s[y0][x0] + ax·s[y0][x0+1]) + ay·((1−ax)·s[y0+1][x0] + ax·s[y0+1][x0+1])
//   (a neighbour past the last row or column is the edge itself; its weight is 0
//   when the point lies on that edge). Each product is rounded on its own
//   (mul_rn), so both backends give the same bits.
#pragma once

#include "kernels/host_device.h"

namespace nst::kernels {

// Whether (x + u, y + v) lies inside the source frame [0, W−1] × [0, H−1].
NST_HD bool warp_source_inside(float px, float py, int height, int width) {
    return px >= 0.0f && py >= 0.0f && px <= float(width - 1) && py <= float(height - 1);
}

// The bilinear sample of plane (H, W) at (px, py), clamped to the frame.
NST_HD float bilinear_sample(const float* plane, int height, int width, float px, float py) {
    px = px < 0.0f ? 0.0f : (px > float(width - 1) ? float(width - 1) : px);
    py = py < 0.0f ? 0.0f : (py > float(height - 1) ? float(height - 1) : py);
    // NaN flows land on the corner (0, 0): the comparisons above fail for NaN.
    if (!(px == px)) px = 0.0f;
    if (!(py == py)) py = 0.0f;
    const int x0 = int(px), y0 = int(py);  // floor: px, py >= 0
    const int x1 = x0 + 1 < width ? x0 + 1 : x0, y1 = y0 + 1 < height ? y0 + 1 : y0;
    const float ax = px - float(x0), ay = py - float(y0);
    const float* row0 = plane + y0 * width;
    const float* row1 = plane + y1 * width;
    const float top = mul_rn(1.0f - ax, row0[x0]) + mul_rn(ax, row0[x1]);
    const float bottom = mul_rn(1.0f - ax, row1[x0]) + mul_rn(ax, row1[x1]);
    return mul_rn(1.0f - ay, top) + mul_rn(ay, bottom);
}

// ω(src)(c, y, x) for one element; src (C, H, W), flow (2, H, W).
NST_HD float warp_element(const float* src, const float* flow, int c, int y, int x, int height, int width) {
    const int plane = height * width, p = y * width + x;
    const float px = float(x) + flow[p], py = float(y) + flow[plane + p];
    return bilinear_sample(src + c * plane, height, width, px, py);
}

}  // namespace nst::kernels
