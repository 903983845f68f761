// The element-wise vector operations of the optimisers (L-BFGS, Adam): the
// per-element arithmetic shared by the CPU backend
// (engine/backends/cpu/cpu_memory_vector.cpp) and the CUDA kernels (kernels/vector_ops.cu,
// kernels/preprocess.cu for clamp). x, y, g, m, v (count).
//
//   axpy:      y += α x                      axpy_value
//   axpy_from: y += a x,  a = float(factor · (α − minus))   (α, minus in double,
//              in backend memory; minus = 0 when absent)   axpy_from_coefficient
//   scale:     x *= α                        scale_value
//   fill:      x = v                         (no arithmetic)
//   clamp:     x = min(hi, max(lo, x)) as std::min/std::max: NaN → lo
//   adam:      m = β1 m + (1−β1) g;  v = β2 v + (1−β2) g g
//              x −= float(lr · (m / c1) / (sqrt(v / c2) + ε)),  c1 = 1 − β1^t,
//              c2 = 1 − β2^t (computed once on the host in double; the division
//              and the square root in double)
//
// Products followed by an addition use mul_rn (no FMA), so the two backends
// round the same way and agree bit for bit.
#pragma once

#include <cmath>

#include "kernels/host_device.h"

namespace nst::kernels {

NST_HD float axpy_value(float y, float alpha, float x) { return y + mul_rn(alpha, x); }

NST_HD float axpy_from_coefficient(double alpha, double minus, double factor) {
    return static_cast<float>(factor * (alpha - minus));
}

NST_HD float scale_value(float x, float alpha) { return x * alpha; }

NST_HD float clamp_value(float x, float lo, float hi) {
    const float low = lo < x ? x : lo;  // std::max(lo, x)
    return low < hi ? low : hi;         // std::min(hi, low)
}

struct AdamStep {
    float lr, beta1, beta2, eps;
    double correction1, correction2;  // 1 − β1^t, 1 − β2^t
};

// One element: updates m, v and x in place.
NST_HD void adam_step(const AdamStep& step, float g, float& m, float& v, float& x) {
    m = mul_rn(step.beta1, m) + mul_rn(1.0f - step.beta1, g);
    v = mul_rn(step.beta2, v) + mul_rn(mul_rn(1.0f - step.beta2, g), g);
    const double m_hat = m / step.correction1;
    const double v_hat = v / step.correction2;
    x -= static_cast<float>(step.lr * m_hat / (sqrt(v_hat) + step.eps));
}

}  // namespace nst::kernels
