// The loss terms of DESIGN.md ("The objective") element by element, shared by
// the CPU backend (engine/backends/cpu/cpu_losses.cpp loops over them) and the CUDA
// kernels (kernels/losses.cu calls them as reduction terms), so both backends
// run the same arithmetic. Each returns the element's share of the loss in
// double and ACCUMULATES the element's gradient in float.
//
//   content:  L = ½ Σ_i (F_i − P_i)²                       dF_i += w (F_i − P_i)
//   style:    D = G − A (N, N);  Σ_ij D_ij²                 (the backends finish it:
//             E = Σ D² / (4 N² M²);  dF += w D F / (N² M²)   a GEMM, since D is symmetric)
//   TV:       L = Σ_c Σ_ij (x_{c,i,j+1} − x_{c,i,j})² + (x_{c,i+1,j} − x_{c,i,j})²
//             ∂L/∂x_{c,i,j} = 2(x_{i,j} − x_{i,j−1})[j>0] − 2(x_{i,j+1} − x_{i,j})[j<W−1]
//                           + 2(x_{i,j} − x_{i−1,j})[i>0] − 2(x_{i+1,j} − x_{i,j})[i<H−1]
//             element (c,i,j) owns the squared differences to its right and lower
//             neighbours, and gathers its own gradient from all four.
//   temporal: x, t (C, plane), c (plane) broadcast over channels, D = C·plane:
//             L = (1/D) Σ_{ch,p} c_p (x − t)²       dx += (2w/D) c_p (x − t)
//             the element returns c_p (x − t)² (the reduction applies 1/D) and
//             takes k = float(2w/D), rounded once on the host, for its gradient.
// Differences are taken in double for the loss (no cancellation error in the
// value) and in float for the gradient (the gradient is float anyway).
#pragma once

#include <cstddef>

#include "kernels/host_device.h"

namespace nst::kernels {

// F_i, P_i; dF_i += w (F_i − P_i). Returns ½ (F_i − P_i)².
NST_HD double content_term(float feature, float target, float weight, float& grad) {
    grad += mul_rn(weight, feature - target);  // two roundings on both backends, never an FMA
    const double d = double(feature) - double(target);
    return 0.5 * d * d;
}

// G_ij, A_ij; writes D_ij = G_ij − A_ij. Returns D_ij².
NST_HD double style_difference_term(float gram, float target, float& difference) {
    difference = gram - target;
    const double d = double(gram) - double(target);
    return d * d;
}

// x (C, H, W); `index` = (c·H + row)·W + col. dx[index] += w ∂L/∂x[index].
// Returns the squared differences to the right and lower neighbours.
NST_HD double tv_term(const float* x, std::size_t index, int row, int col, int height, int width,
                      float weight, float* grad) {
    const float value = x[index];
    double loss = 0.0;
    float g = 0.0f;  // ½ ∂L/∂x[index]
    if (col + 1 < width) {
        const float right = x[index + 1];
        const double d = double(right) - double(value);
        loss += d * d;
        g -= right - value;
    }
    if (row + 1 < height) {
        const float down = x[index + width];
        const double d = double(down) - double(value);
        loss += d * d;
        g -= down - value;
    }
    if (col > 0) g += value - x[index - 1];
    if (row > 0) g += value - x[index - width];
    grad[index] += mul_rn(2.0f * weight, g);
    return loss;
}

// x, t, c_p; dx += k · (c_p · (x − t)), k = float(2w/D). Returns c_p (x − t)².
NST_HD double temporal_term(float x, float target, float pixel_weight, float coefficient,
                            float& grad) {
    // Products rounded on their own, in this order on both backends (never an FMA).
    grad += mul_rn(coefficient, mul_rn(pixel_weight, x - target));
    const double d = double(x) - double(target);
    return double(pixel_weight) * d * d;
}

}  // namespace nst::kernels
