// Optimiser vector operations (formulas in vector_ops.cuh).
#include "kernels/vector_ops.cuh"
#include "kernels/reduce_kernels.cuh"
#include "kernels/reductions.h"

namespace nst::kernels {

// ---- kernels ------------------------------------------------------------------------

struct DotTerm {
    const float* x;
    const float* y;
    __device__ double operator()(std::size_t i) const { return dot_term(x[i], y[i]); }
};

struct AsumTerm {
    const float* x;
    __device__ double operator()(std::size_t i) const { return abs_term(x[i]); }
};

struct NonFiniteTerm {
    const float* x;
    __device__ double operator()(std::size_t i) const { return non_finite_term(x[i]); }
};

struct DotHalfTerm {
    HalfFormat format;
    const std::uint16_t* a;
    const float* x;
    __device__ double operator()(std::size_t i) const { return dot_half_term(format, a[i], x[i]); }
};

struct DotHalfPairTerm {
    HalfFormat format;
    const std::uint16_t* a;
    const std::uint16_t* b;
    __device__ double operator()(std::size_t i) const {
        return dot_half_pair_term(format, a[i], b[i]);
    }
};

// max_i |x_i| in two passes over the same grid as the sums; a maximum is exact,
// so the result does not depend on the order.
__device__ inline void block_tree_max(double* shared) {
    for (int stride = kBlockSize / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) shared[threadIdx.x] = fmax(shared[threadIdx.x], shared[threadIdx.x + stride]);
        __syncthreads();
    }
}

__global__ void amax_partials_kernel(std::size_t count, const float* __restrict__ x,
                                     double* partials) {
    __shared__ double shared[kBlockSize];
    double m = 0.0;
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        m = fmax(m, fabs(double(x[i])));
    shared[threadIdx.x] = m;
    __syncthreads();
    block_tree_max(shared);
    if (threadIdx.x == 0) partials[blockIdx.x] = shared[0];
}

__global__ void amax_final_kernel(const double* partials, int blocks, double* out) {
    __shared__ double shared[kBlockSize];
    double m = 0.0;
    for (int i = threadIdx.x; i < blocks; i += kBlockSize) m = fmax(m, partials[i]);
    shared[threadIdx.x] = m;
    __syncthreads();
    block_tree_max(shared);
    if (threadIdx.x == 0) *out = shared[0];
}

__global__ void axpy_kernel(std::size_t count, float alpha, const float* __restrict__ x,
                            float* __restrict__ y) {
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        y[i] = axpy_value(y[i], alpha, x[i]);
}

// minus may be null. The coefficient is read by every thread (one cached load).
__global__ void axpy_from_kernel(std::size_t count, const double* alpha, const double* minus,
                                 double factor, const float* __restrict__ x,
                                 float* __restrict__ y) {
    const float a = axpy_from_coefficient(*alpha, minus ? *minus : 0.0, factor);
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        y[i] = axpy_value(y[i], a, x[i]);
}

// The scale is computed by every thread from the device-resident max |x|, so
// packing needs no host wait.
__global__ void pack_half_kernel(std::size_t count, HalfFormat format, const float* __restrict__ x,
                                 const double* amax, std::uint16_t* __restrict__ packed) {
    const double scale = history_half_scale(format, amax ? *amax : 0.0);
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        packed[i] = pack_half_value(format, x[i], scale);
}

__global__ void axpy_from_half_kernel(std::size_t count, const double* alpha, const double* minus,
                                      double factor, HalfFormat format,
                                      const std::uint16_t* __restrict__ x, float* __restrict__ y) {
    const float a = axpy_from_coefficient(*alpha, minus ? *minus : 0.0, factor);
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        y[i] = axpy_value(y[i], a, unpack_half_value(format, x[i]));
}

__global__ void scale_kernel(std::size_t count, float alpha, float* x) {
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        x[i] = scale_value(x[i], alpha);
}

__global__ void fill_kernel(std::size_t count, float value, float* x) {
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
        x[i] = value;
}

// grad, m, v, x (count)
__global__ void adam_update_kernel(std::size_t count, AdamStep step, const float* __restrict__ grad,
                                   float* __restrict__ m, float* __restrict__ v,
                                   float* __restrict__ x) {
    const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
    for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
        float m_i = m[i], v_i = v[i], x_i = x[i];
        adam_step(step, grad[i], m_i, v_i, x_i);
        m[i] = m_i;
        v[i] = v_i;
        x[i] = x_i;
    }
}

// ---- launchers ----------------------------------------------------------------------

void dot(std::size_t count, const float* x, const float* y, double scale,
         const ReductionScratch& scratch, double* out, cudaStream_t stream) {
    NVTX_RANGE("dot");
    NST_ASSERT(x != nullptr && y != nullptr);
    deterministic_sum(count, DotTerm{x, y}, scratch, out, scale, stream);
}

void asum(std::size_t count, const float* x, const ReductionScratch& scratch, double* out,
          cudaStream_t stream) {
    NVTX_RANGE("asum");
    NST_ASSERT(x != nullptr);
    deterministic_sum(count, AsumTerm{x}, scratch, out, 1.0, stream);
}

void amax(std::size_t count, const float* x, const ReductionScratch& scratch, double* out,
          cudaStream_t stream) {
    NVTX_RANGE("amax");
    NST_ASSERT(x != nullptr && scratch.partials != nullptr && out != nullptr);
    const int blocks = pass_one_blocks(count, scratch);
    amax_partials_kernel<<<blocks, kBlockSize, 0, stream>>>(count, x, scratch.partials);
    CUDA_CHECK_LAUNCH();
    amax_final_kernel<<<1, kBlockSize, 0, stream>>>(scratch.partials, blocks, out);
    CUDA_CHECK_LAUNCH();
}

void non_finite_count(std::size_t count, const float* x, const ReductionScratch& scratch,
                      double* out, cudaStream_t stream) {
    NVTX_RANGE("non_finite_count");
    NST_ASSERT(x != nullptr);
    deterministic_sum(count, NonFiniteTerm{x}, scratch, out, 1.0, stream);
}

void axpy(std::size_t count, float alpha, const float* x, float* y, cudaStream_t stream) {
    NVTX_RANGE("axpy");
    NST_ASSERT(x != nullptr && y != nullptr);
    if (count == 0) return;
    axpy_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(count, alpha, x, y);
    CUDA_CHECK_LAUNCH();
}

void axpy_from(std::size_t count, const double* alpha, const double* minus, double factor,
               const float* x, float* y, cudaStream_t stream) {
    NVTX_RANGE("axpy_from");
    NST_ASSERT(alpha != nullptr && x != nullptr && y != nullptr);
    if (count == 0) return;
    axpy_from_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(count, alpha, minus,
                                                                          factor, x, y);
    CUDA_CHECK_LAUNCH();
}

void pack_half(std::size_t count, HalfFormat format, const float* x, const double* amax,
               std::uint16_t* packed, cudaStream_t stream) {
    NVTX_RANGE("pack_half");
    NST_ASSERT(x != nullptr && packed != nullptr && (format == HalfFormat::bf16 || amax != nullptr));
    if (count == 0) return;
    pack_half_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(count, format, x, amax,
                                                                          packed);
    CUDA_CHECK_LAUNCH();
}

void dot_half(std::size_t count, HalfFormat format, const std::uint16_t* a, const float* x,
              double scale, const ReductionScratch& scratch, double* out, cudaStream_t stream) {
    NVTX_RANGE("dot_half");
    NST_ASSERT(a != nullptr && x != nullptr);
    deterministic_sum(count, DotHalfTerm{format, a, x}, scratch, out, scale, stream);
}

void dot_half_pair(std::size_t count, HalfFormat format, const std::uint16_t* a,
                   const std::uint16_t* b, double scale, const ReductionScratch& scratch,
                   double* out, cudaStream_t stream) {
    NVTX_RANGE("dot_half_pair");
    NST_ASSERT(a != nullptr && b != nullptr);
    deterministic_sum(count, DotHalfPairTerm{format, a, b}, scratch, out, scale, stream);
}

void axpy_from_half(std::size_t count, const double* alpha, const double* minus, double factor,
                    HalfFormat format, const std::uint16_t* x, float* y, cudaStream_t stream) {
    NVTX_RANGE("axpy_from_half");
    NST_ASSERT(alpha != nullptr && x != nullptr && y != nullptr);
    if (count == 0) return;
    axpy_from_half_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(
        count, alpha, minus, factor, format, x, y);
    CUDA_CHECK_LAUNCH();
}

void scale(std::size_t count, float alpha, float* x, cudaStream_t stream) {
    NVTX_RANGE("scale");
    NST_ASSERT(x != nullptr);
    if (count == 0) return;
    scale_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(count, alpha, x);
    CUDA_CHECK_LAUNCH();
}

void fill(std::size_t count, float value, float* x, cudaStream_t stream) {
    NVTX_RANGE("fill");
    NST_ASSERT(x != nullptr);
    if (count == 0) return;
    fill_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(count, value, x);
    CUDA_CHECK_LAUNCH();
}

void adam_update(std::size_t count, const AdamStep& step, const float* grad, float* m, float* v,
                 float* x, cudaStream_t stream) {
    NVTX_RANGE("adam_update");
    NST_ASSERT(grad != nullptr && m != nullptr && v != nullptr && x != nullptr);
    NST_ASSERT(step.correction1 > 0.0 && step.correction2 > 0.0);
    if (count == 0) return;
    adam_update_kernel<<<elementwise_blocks(count), kBlockSize, 0, stream>>>(count, step, grad, m, v,
                                                                             x);
    CUDA_CHECK_LAUNCH();
}

}  // namespace nst::kernels
