// The channel-broadcast mask multiply (formulas in masks.h).
#include "kernels/common.cuh"
#include "kernels/masks.cuh"

namespace nst::kernels {

// ---- kernels ------------------------------------------------------------------------

// x, y (C, plane); mask (plane). Grid-stride over all C·plane elements. No
// __restrict__ on x and y: the op runs in place.
__global__ void mask_channels_kernel(std::size_t count, std::size_t plane, const float* x,
                                     const float* __restrict__ mask, float* y) {
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        y[i] = mask_value(x[i], mask[i % plane]);
}

// ---- launchers ----------------------------------------------------------------------

void mask_channels(int channels, std::size_t plane, const float* x, const float* mask, float* y,
                   cudaStream_t stream) {
    NVTX_RANGE("mask_channels");
    NST_ASSERT(channels > 0 && x != nullptr && mask != nullptr && y != nullptr);
    const std::size_t count = std::size_t(channels) * plane;
    if (count == 0) return;
    mask_channels_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(count, plane, x,
                                                                               mask, y);
    CUDA_CHECK_LAUNCH();
}

}  // namespace nst::kernels
