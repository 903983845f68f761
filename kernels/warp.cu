// Warping an image by a dense optical flow (formula in warp.h):
//   dst(c, y, x) = bilinear(src_c, x + u(y, x), y + v(y, x)), clamped to the frame.
#include "kernels/common.cuh"
#include "kernels/warp.cuh"
#include "kernels/warp.h"

namespace nst::kernels {

// ---- kernels ------------------------------------------------------------------------

// src, dst (C, H, W), flow (2, H, W). Grid-stride over the C·H·W outputs;
// consecutive threads take consecutive columns, so the writes and the flow reads
// coalesce (the bilinear reads gather where the flow points).
__global__ void warp_bilinear_kernel(int height, int width, std::size_t count,
                                     const float* __restrict__ src, const float* __restrict__ flow,
                                     float* __restrict__ dst) {
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    const std::size_t plane = std::size_t(height) * width;
    for (std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += stride) {
        const std::size_t within = e % plane;
        dst[e] = warp_element(src, flow, int(e / plane), int(within / width), int(within % width),
                              height, width);
    }
}

// ---- launchers ----------------------------------------------------------------------

void warp_bilinear(int channels, int height, int width, const float* src, const float* flow,
                   float* dst, cudaStream_t stream) {
    NVTX_RANGE("warp_bilinear");
    NST_ASSERT(channels > 0 && height > 0 && width > 0 && src != nullptr && flow != nullptr &&
               dst != nullptr && src != dst);
    const std::size_t count = std::size_t(channels) * height * width;
    warp_bilinear_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(height, width, count,
                                                                               src, flow, dst);
    CUDA_CHECK_LAUNCH();
}

}  // namespace nst::kernels
