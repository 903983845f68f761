// Image pre/post-processing on the device: the launchers. The formulas and
// their per-element arithmetic, shared with the CPU backend and engine/image's
// to_8bit, are in kernels/preprocess.h (clamp: kernels/vector_ops.h).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "engine/base/types.h"
#include "kernels/preprocess.h"
#include "kernels/vector_ops.h"

namespace nst::kernels {

// x, out (3, plane)
void preprocess(const Preprocessing& pre, std::size_t plane, const float* x, float* out,
                cudaStream_t stream);

// dout, dx (3, plane); dx accumulates
void preprocess_backward(const Preprocessing& pre, std::size_t plane, const float* dout,
                         float* dx, cudaStream_t stream);

// x (count) in place
void clamp(std::size_t count, float lo, float hi, float* x, cudaStream_t stream);

// x, out (count)
void to_8bit(std::size_t count, const float* x, std::uint8_t* out, cudaStream_t stream);

}  // namespace nst::kernels
