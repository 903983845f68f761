// NST_HD marks the per-element arithmetic that both backends run: the CUDA
// kernels call it on the device, the CPU backend loops over it on the host, so
// the CPU tests exercise the very formulas the GPU computes. In a build without
// CUDA (or in a host-only translation unit) the macro is empty and the
// functions are plain inline C++.
#pragma once

#if defined(__CUDACC__)
#define NST_HD __host__ __device__ __forceinline__
#else
#define NST_HD inline
#endif

namespace nst::kernels {

// a·b rounded to float on its own, never fused with a following addition into
// one FMA. nvcc contracts a·b + c into an FMA by default (one rounding); the host
// build does not (ISO C++ mode, no FMA in the baseline x86-64 target). Shared
// formulas of the form c + a·b use this so that both backends round the same way
// and give the same bits.
NST_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

}  // namespace nst::kernels
