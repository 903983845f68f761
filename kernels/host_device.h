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
