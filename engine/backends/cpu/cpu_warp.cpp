// CpuBackend: warping an image by a dense optical flow, a loop over the
// function the CUDA kernel calls (formula: kernels/warp.h).
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/base/error.h"
#include "kernels/warp.h"

namespace nst {

void CpuBackend::warp_bilinear(int channels, int height, int width, const float* src,
                               const float* flow, float* dst) {
    NST_ASSERT(channels > 0 && height > 0 && width > 0 && src != nullptr && flow != nullptr &&
               dst != nullptr && src != dst);
    const int rows = channels * height;
    // One output row per iteration; each element is computed on its own, so the
    // split does not change a bit.
#pragma omp parallel for schedule(static)
    for (int row = 0; row < rows; ++row) {
        const int c = row / height, y = row % height;
        float* out = dst + (std::size_t(c) * height + y) * width;
        for (int x = 0; x < width; ++x)
            out[x] = kernels::warp_element(src, flow, c, y, x, height, width);
    }
}

}  // namespace nst
