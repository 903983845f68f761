// Per-element terms of the optimisers' reductions, shared by the CPU backend
// (engine/backends/cpu/cpu_memory_vector.cpp) and the CUDA kernels (kernels/vector_ops.cu).
// The sums run in double in a fixed order on each backend (engine/backends/cpu/cpu_reduce.h,
// kernels/reduce.cuh), so a result is reproducible bit for bit on one backend.
//
//   dot:        Σ x_i y_i          term x_i·y_i in double (exact: 24 × 24 bits fit in 53)
//   asum:       Σ |x_i|
//   amax:       max_i |x_i|        exact, so any order gives the same bits
//   non_finite: Σ [x_i is NaN or ±∞]   (all finite ⇔ 0)
#pragma once

#include "kernels/host_device.h"

namespace nst::kernels {

NST_HD double dot_term(float x, float y) { return double(x) * double(y); }

NST_HD double abs_term(float x) { return x < 0.0f ? -double(x) : double(x); }

// x − x is 0 for every finite x and NaN for NaN and ±∞; no library call, so the
// host and device agree without <cmath> differences.
NST_HD double non_finite_term(float x) { return (x - x) == 0.0f ? 0.0 : 1.0; }

}  // namespace nst::kernels
