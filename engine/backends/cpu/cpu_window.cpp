// CpuBackend: the window copy of tiled evaluation, a loop over the index
// arithmetic the CUDA kernel uses (formula: kernels/window.h).
#include "engine/base/error.h"
#include "engine/backends/cpu/cpu_backend.h"
#include "kernels/window.h"

namespace nst {

void CpuBackend::copy_window(const WindowCopy& window, const float* src, float* dst) {
    NST_ASSERT(kernels::window_fits(window) && src != nullptr && dst != nullptr);
    if (window.channels == 0 || window.rows == 0 || window.cols == 0) return;
    const int lines = window.channels * window.rows;
    // One window row per iteration: its elements are contiguous on both sides,
    // so the offsets of its first element place the whole row.
#pragma omp parallel for schedule(static)
    for (int line = 0; line < lines; ++line) {
        const std::size_t first = std::size_t(line) * window.cols;
        const float* in = src + kernels::window_source(window, first);
        float* out = dst + kernels::window_destination(window, first);
        for (int j = 0; j < window.cols; ++j) out[j] = in[j];
    }
}

}  // namespace nst
