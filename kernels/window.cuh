// Window copy between two (C, H, W) tensors, the launcher. The formula and the
// index arithmetic, shared with the CPU backend, are in kernels/window.h.
#pragma once

#include <cuda_runtime.h>

#include "kernels/window.h"

namespace nst::kernels {

// src (C, src_height, src_width) -> dst (C, dst_height, dst_width), the window only;
// src and dst must not overlap.
void copy_window(const WindowCopy& window, const float* src, float* dst, cudaStream_t stream);

}  // namespace nst::kernels
