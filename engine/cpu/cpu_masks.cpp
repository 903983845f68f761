// CpuBackend: the channel-broadcast mask multiply of spatial control.
//
//   mask_channels: y[c,p] = x[c,p] · m[p]   (m broadcast over the C channels; y may be x)
//   Its backward is the same product applied to the incoming gradient.
#include "engine/cpu/cpu_backend.h"
#include "engine/error.h"

namespace nst {

void CpuBackend::mask_channels(int channels, std::size_t plane, const float* x, const float* mask,
                               float* y) {
    NST_ASSERT(channels > 0 && x != nullptr && mask != nullptr && y != nullptr);
#pragma omp parallel for schedule(static)
    for (int c = 0; c < channels; ++c) {
        const float* in = x + std::size_t(c) * plane;
        float* out = y + std::size_t(c) * plane;
        for (std::size_t p = 0; p < plane; ++p) out[p] = in[p] * mask[p];
    }
}

}  // namespace nst
