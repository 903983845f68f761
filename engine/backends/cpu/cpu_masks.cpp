// CpuBackend: the channel-broadcast mask multiply of spatial control, a loop
// over the function the CUDA kernel calls (formula: kernels/masks.h).
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/base/error.h"
#include "kernels/masks.h"

namespace nst {

void CpuBackend::mask_channels(int channels, std::size_t plane, const float* x, const float* mask,
                               float* y) {
    NST_ASSERT(channels > 0 && x != nullptr && mask != nullptr && y != nullptr);
#pragma omp parallel for schedule(static)
    for (int c = 0; c < channels; ++c) {
        const float* in = x + std::size_t(c) * plane;
        float* out = y + std::size_t(c) * plane;
        for (std::size_t p = 0; p < plane; ++p) out[p] = kernels::mask_value(in[p], mask[p]);
    }
}

}  // namespace nst
