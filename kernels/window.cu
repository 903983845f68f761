// Window copy between two (C, H, W) tensors (formula in window.h).
#include "kernels/common.cuh"
#include "kernels/window.cuh"

namespace nst::kernels {

// ---- kernels ------------------------------------------------------------------------

// Grid-stride over the C·rows·cols elements of the window; consecutive threads
// take consecutive columns, so reads and writes of a row coalesce.
__global__ void copy_window_kernel(WindowCopy window, std::size_t count,
                                   const float* __restrict__ src, float* __restrict__ dst) {
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t k = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; k < count; k += stride)
        dst[window_destination(window, k)] = src[window_source(window, k)];
}

// ---- launchers ----------------------------------------------------------------------

void copy_window(const WindowCopy& window, const float* src, float* dst, cudaStream_t stream) {
    NVTX_RANGE("copy_window");
    NST_ASSERT(window_fits(window) && src != nullptr && dst != nullptr);
    const std::size_t count = std::size_t(window.channels) * window.rows * window.cols;
    if (count == 0) return;
    copy_window_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(window, count, src, dst);
    CUDA_CHECK_LAUNCH();
}

}  // namespace nst::kernels
