// Bias + ReLU forward and ReLU backward (formulas in activation.h).
#include "kernels/activation.cuh"
#include "kernels/common.cuh"

namespace nst::kernels {

// ---- kernels ------------------------------------------------------------------------

// y (C, plane); bias (C). Grid-stride over all C·plane elements.
__global__ void bias_relu_forward_kernel(std::size_t count, std::size_t plane,
                                         const float* __restrict__ bias, float* __restrict__ y) {
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        y[i] = bias_relu(y[i], bias[i / plane]);
}

// y, dy (count)
__global__ void relu_backward_kernel(std::size_t count, const float* __restrict__ y,
                                     float* __restrict__ dy) {
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        dy[i] = relu_backward_value(y[i], dy[i]);
}

// ---- launchers ----------------------------------------------------------------------

void bias_relu_forward(int channels, std::size_t plane, const float* bias, float* y,
                       cudaStream_t stream) {
    NVTX_RANGE("bias_relu_forward");
    NST_ASSERT(channels > 0 && plane > 0 && bias != nullptr && y != nullptr);
    const std::size_t count = std::size_t(channels) * plane;
    bias_relu_forward_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(count, plane,
                                                                                   bias, y);
    CUDA_CHECK_LAUNCH();
}

void relu_backward(std::size_t count, const float* y, float* dy, cudaStream_t stream) {
    NVTX_RANGE("relu_backward");
    NST_ASSERT(y != nullptr && dy != nullptr);
    if (count == 0) return;
    relu_backward_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(count, y, dy);
    CUDA_CHECK_LAUNCH();
}

}  // namespace nst::kernels
