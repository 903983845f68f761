// Window copy between two (C, H, W) tensors: the crop and paste of tiled
// evaluation (engine/objective/objective.cpp). Index arithmetic shared by the CPU backend
// (engine/backends/cpu/cpu_window.cpp) and the CUDA kernel (kernels/window.cu).
//
//   dst[c, dst_y + i, dst_x + j] = src[c, src_y + i, src_x + j],  i < rows, j < cols
//
// Element k of the window (k < C·rows·cols, row-major over (c, i, j)) sits at
// window_source(w, k) in src and window_destination(w, k) in dst. A copy, no
// arithmetic on the values: both backends give the same bits.
#pragma once

#include <cstddef>

#include "engine/base/types.h"
#include "kernels/host_device.h"

namespace nst::kernels {

// Offset of element (c, y, x) in a (C, height, width) tensor.
NST_HD std::size_t tensor_offset(int c, int y, int x, int height, int width) {
    return (std::size_t(c) * height + y) * width + x;
}

NST_HD std::size_t window_source(const WindowCopy& w, std::size_t k) {
    const int j = int(k % std::size_t(w.cols));
    const std::size_t rest = k / std::size_t(w.cols);
    const int i = int(rest % std::size_t(w.rows));
    const int c = int(rest / std::size_t(w.rows));
    return tensor_offset(c, w.src_y + i, w.src_x + j, w.src_height, w.src_width);
}

NST_HD std::size_t window_destination(const WindowCopy& w, std::size_t k) {
    const int j = int(k % std::size_t(w.cols));
    const std::size_t rest = k / std::size_t(w.cols);
    const int i = int(rest % std::size_t(w.rows));
    const int c = int(rest / std::size_t(w.rows));
    return tensor_offset(c, w.dst_y + i, w.dst_x + j, w.dst_height, w.dst_width);
}

// Both windows inside their tensors (the launchers assert it).
NST_HD bool window_fits(const WindowCopy& w) {
    return w.channels >= 0 && w.rows >= 0 && w.cols >= 0 && w.src_y >= 0 && w.src_x >= 0 &&
           w.dst_y >= 0 && w.dst_x >= 0 && w.src_y + w.rows <= w.src_height &&
           w.src_x + w.cols <= w.src_width && w.dst_y + w.rows <= w.dst_height &&
           w.dst_x + w.cols <= w.dst_width;
}

}  // namespace nst::kernels
