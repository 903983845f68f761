// Preprocessing, its backward, clamping and 8-bit conversion (formulas in
// preprocess.h and vector_ops.h).
#include "kernels/common.cuh"
#include "kernels/preprocess.cuh"

namespace nst::kernels {

// ---- kernels ------------------------------------------------------------------------

// x, out (3, plane); one thread per output element.
__global__ void preprocess_kernel(Preprocessing pre, std::size_t plane, const float* __restrict__ x,
                                  float* __restrict__ out) {
    const std::size_t count = 3 * plane;
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
        const int c = int(i / plane);
        const std::size_t p = i % plane;
        const float value = x[std::size_t(preprocess_source_channel(pre.bgr, c)) * plane + p];
        out[i] = preprocess_value(value, pre.pixel_scale, channel_value(pre.mean, c),
                                  channel_value(pre.std, c));
    }
}

// dout, dx (3, plane); one thread per dx element (perm is its own inverse).
__global__ void preprocess_backward_kernel(Preprocessing pre, std::size_t plane,
                                           const float* __restrict__ dout, float* __restrict__ dx) {
    const std::size_t count = 3 * plane;
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
        const int k = int(i / plane);
        const int c = preprocess_source_channel(pre.bgr, k);  // the output channel that read k
        const float factor = preprocess_grad_factor(pre.pixel_scale, channel_value(pre.std, c));
        dx[i] = preprocess_backward_value(dx[i], dout[std::size_t(c) * plane + i % plane], factor);
    }
}

__global__ void clamp_kernel(std::size_t count, float lo, float hi, float* x) {
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        x[i] = clamp_value(x[i], lo, hi);
}

__global__ void to_8bit_kernel(std::size_t count, const float* __restrict__ x,
                               std::uint8_t* __restrict__ out) {
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        out[i] = to_8bit_value(x[i]);
}

// ---- launchers ----------------------------------------------------------------------

void preprocess(const Preprocessing& pre, std::size_t plane, const float* x, float* out,
                cudaStream_t stream) {
    NVTX_RANGE("preprocess");
    NST_ASSERT(plane > 0 && x != nullptr && out != nullptr && x != out);
    preprocess_kernel<<<elementwise_blocks(3 * plane), kBlockSize, 0, stream>>>(pre, plane, x, out);
    CUDA_CHECK_LAUNCH();
}

void preprocess_backward(const Preprocessing& pre, std::size_t plane, const float* dout,
                         float* dx, cudaStream_t stream) {
    NVTX_RANGE("preprocess_backward");
    NST_ASSERT(plane > 0 && dout != nullptr && dx != nullptr && dout != dx);
    preprocess_backward_kernel<<<elementwise_blocks(3 * plane), kBlockSize, 0, stream>>>(
        pre, plane, dout, dx);
    CUDA_CHECK_LAUNCH();
}

void clamp(std::size_t count, float lo, float hi, float* x, cudaStream_t stream) {
    NVTX_RANGE("clamp");
    NST_ASSERT(x != nullptr && lo <= hi);
    if (count == 0) return;
    clamp_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(count, lo, hi, x);
    CUDA_CHECK_LAUNCH();
}

void to_8bit(std::size_t count, const float* x, std::uint8_t* out, cudaStream_t stream) {
    NVTX_RANGE("to_8bit");
    NST_ASSERT(x != nullptr && out != nullptr);
    if (count == 0) return;
    to_8bit_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(count, x, out);
    CUDA_CHECK_LAUNCH();
}

}  // namespace nst::kernels
