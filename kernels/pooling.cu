// 2×2 average and max pooling, forward and backward (formulas in pooling.h).
#include "kernels/common.cuh"
#include "kernels/pooling.cuh"

namespace nst::kernels {

// ---- kernels ------------------------------------------------------------------------

// x (C, H, W) -> y (C, H/2, W/2); one thread per output element.
__global__ void avg_pool_forward_kernel(int channels, int height, int width,
                                        const float* __restrict__ x, float* __restrict__ y) {
    const int out_h = height / 2, out_w = width / 2;
    const std::size_t count = std::size_t(channels) * out_h * out_w;
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t o = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; o < count; o += stride) {
        const int j = int(o % out_w), i = int((o / out_w) % out_h);
        const std::size_t c = o / (std::size_t(out_w) * out_h);
        const float* window = x + (c * height + 2 * i) * width + 2 * j;
        y[o] = pool_average(window[0], window[1], window[width], window[width + 1]);
    }
}

__global__ void max_pool_forward_kernel(int channels, int height, int width,
                                        const float* __restrict__ x, float* __restrict__ y) {
    const int out_h = height / 2, out_w = width / 2;
    const std::size_t count = std::size_t(channels) * out_h * out_w;
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t o = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; o < count; o += stride) {
        const int j = int(o % out_w), i = int((o / out_w) % out_h);
        const std::size_t c = o / (std::size_t(out_w) * out_h);
        const float* window = x + (c * height + 2 * i) * width + 2 * j;
        y[o] = pool_max(window[0], window[1], window[width], window[width + 1]);
    }
}

// x (C, H, W), dy (C, H/2, W/2) -> dx (C, H, W); one thread per input element.
__global__ void pool_backward_kernel(bool max_mode, int channels, int height, int width,
                                     const float* __restrict__ x, const float* __restrict__ dy,
                                     float* __restrict__ dx) {
    const int out_h = height / 2, out_w = width / 2;
    const std::size_t count = std::size_t(channels) * height * width;
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += stride) {
        const int col = int(e % width), row = int((e / width) % height);
        const std::size_t c = e / (std::size_t(width) * height);
        const int i = row / 2, j = col / 2;
        float grad = 0.0f;
        if (i < out_h && j < out_w) {  // else: a dropped trailing row or column
            const float g = dy[(c * out_h + i) * out_w + j];
            if (!max_mode) {
                grad = pool_average_grad(g);
            } else {
                const float* window = x + (c * height + 2 * i) * width + 2 * j;
                const int first_max =
                    pool_first_max(window[0], window[1], window[width], window[width + 1]);
                grad = pool_max_grad(first_max, (row % 2) * 2 + (col % 2), g);
            }
        }
        dx[e] = grad;
    }
}

// ---- launchers ----------------------------------------------------------------------

void pool_forward(PoolMode mode, int channels, int height, int width, const float* x, float* y,
                  cudaStream_t stream) {
    NVTX_RANGE(mode == PoolMode::max ? "max_pool_forward" : "avg_pool_forward");
    NST_ASSERT(channels > 0 && height > 0 && width > 0 && x != nullptr && y != nullptr);
    const std::size_t count = std::size_t(channels) * (height / 2) * (width / 2);
    if (count == 0) return;  // a 1-pixel side pools to nothing
    const unsigned blocks = elementwise_blocks(count);
    if (mode == PoolMode::max)
        max_pool_forward_kernel<<<blocks, kBlockSize, 0, stream>>>(channels, height, width, x, y);
    else
        avg_pool_forward_kernel<<<blocks, kBlockSize, 0, stream>>>(channels, height, width, x, y);
    CUDA_CHECK_LAUNCH();
}

void pool_backward(PoolMode mode, int channels, int height, int width, const float* x,
                   const float* dy, float* dx, cudaStream_t stream) {
    NVTX_RANGE(mode == PoolMode::max ? "max_pool_backward" : "avg_pool_backward");
    NST_ASSERT(channels > 0 && height > 0 && width > 0 && dy != nullptr && dx != nullptr);
    NST_ASSERT(mode != PoolMode::max || x != nullptr);
    const std::size_t count = std::size_t(channels) * height * width;
    pool_backward_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(
        mode == PoolMode::max, channels, height, width, x, dy, dx);
    CUDA_CHECK_LAUNCH();
}

}  // namespace nst::kernels
