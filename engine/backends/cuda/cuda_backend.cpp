// CudaBackend: each method forwards to cuDNN, cuBLAS or a kernel launcher on the
// context's stream.
#include "engine/backends/cuda/cuda_backend.h"

#include <climits>
#include <cmath>

#include "engine/backends/cuda/device_check.h"
#include "engine/backends/cuda/gemm.h"
#include "kernels/activation.cuh"
#include "kernels/losses.cuh"
#include "kernels/masks.cuh"
#include "kernels/pooling.cuh"
#include "kernels/preprocess.cuh"
#include "kernels/vector_ops.cuh"
#include "kernels/warp.cuh"
#include "kernels/window.cuh"

namespace nst::cuda {

CudaBackend::CudaBackend(int device_index, bool tf32)
    : context_(device_index, tf32), convolutions_(context_) {}

CudaBackend::~CudaBackend() = default;

// ---- memory -----------------------------------------------------------------------------

float* CudaBackend::allocate(std::size_t count) {
    return static_cast<float*>(context_.allocate_bytes(count * sizeof(float)));
}

void CudaBackend::release(float* data) noexcept { context_.release_bytes(data); }

void CudaBackend::upload(float* dst, const float* host_src, std::size_t count) {
    NVTX_RANGE("upload");
    // From pageable memory the call returns once host_src has been staged, so the
    // caller may reuse it at once without waiting for the stream. An empty copy
    // (whose host pointer may be null) is no call at all, as on the CPU.
    if (count == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, host_src, count * sizeof(float), cudaMemcpyHostToDevice,
                               context_.stream()));
}

void CudaBackend::download(float* host_dst, const float* src, std::size_t count) {
    NVTX_RANGE("download");
    count_host_wait();
    if (count > 0)
        CUDA_CHECK(cudaMemcpyAsync(host_dst, src, count * sizeof(float), cudaMemcpyDeviceToHost,
                                   context_.stream()));
    context_.wait();  // also completes the scalar reads queued before the copy
}

void CudaBackend::synchronize() {
    NVTX_RANGE("synchronize");
    count_host_wait();
    context_.wait();
}

std::size_t CudaBackend::available_bytes() const {
    std::size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    return free_bytes;
}

Backend::OwnMemory CudaBackend::planned_conv_memory(const ConvShape& shape, bool backward) const {
    (void)shape, (void)backward;
    OwnMemory own;
    own.scratch = kConvWorkspaceCap;
    return own;
}

Backend::OwnMemory CudaBackend::planned_style_loss_memory(int n) const {
    OwnMemory own;
    own.loss_scratch = std::size_t(n) * n * sizeof(float);
    return own;
}

void CudaBackend::queue_scalar_read(const double* src, std::size_t count, double* host_dst) {
    if (context_.staging_full(count)) synchronize();
    context_.queue_scalar_read(src, count, host_dst);
}

// ---- network layers ------------------------------------------------------------------------

void CudaBackend::conv3x3_forward(const ConvShape& shape, const float* x, const float* weight,
                                  float* y) {
    convolutions_.forward(shape, x, weight, y);
}

void CudaBackend::conv3x3_backward_data(const ConvShape& shape, const float* dy,
                                        const float* weight, float* dx) {
    convolutions_.backward_data(shape, dy, weight, dx);
}

void CudaBackend::bias_relu_forward(int channels, std::size_t plane, const float* bias, float* y) {
    kernels::bias_relu_forward(channels, plane, bias, y, context_.stream());
}

void CudaBackend::relu_backward(std::size_t count, const float* y, float* dy) {
    kernels::relu_backward(count, y, dy, context_.stream());
}

void CudaBackend::pool_forward(PoolMode mode, int channels, int height, int width, const float* x,
                               float* y) {
    kernels::pool_forward(mode, channels, height, width, x, y, context_.stream());
}

void CudaBackend::pool_backward(PoolMode mode, int channels, int height, int width,
                                const float* x, const float* dy, float* dx) {
    kernels::pool_backward(mode, channels, height, width, x, dy, dx, context_.stream());
}

// ---- preprocessing ---------------------------------------------------------------------------

void CudaBackend::preprocess(const Preprocessing& pre, std::size_t plane, const float* x,
                             float* out) {
    kernels::preprocess(pre, plane, x, out, context_.stream());
}

void CudaBackend::preprocess_backward(const Preprocessing& pre, std::size_t plane,
                                      const float* dout, float* dx) {
    kernels::preprocess_backward(pre, plane, dout, dx, context_.stream());
}

// ---- Gram matrices and losses ------------------------------------------------------------------

void CudaBackend::gram(int n, std::size_t m, const float* features, float* gram_out) {
    NVTX_RANGE("gram");
    NST_ASSERT(n > 0 && m > 0 && m <= std::size_t(INT_MAX));
    const int k = static_cast<int>(m);
    // G (N, N) = F Fᵀ, F (N, M) row-major.
    gemm(context_.cublas(), Transpose::no, Transpose::yes, n, n, k, 1.0f, features, k, features,
         k, 0.0f, gram_out, n);
}

void CudaBackend::content_loss_into(std::size_t count, const float* features,
                                    const float* target, float weight, float* grad,
                                    double* loss) {
    kernels::content_loss(count, features, target, weight, grad, context_.reduction(), loss,
                          context_.stream());
}

void CudaBackend::style_loss_into(int n, std::size_t m, const float* features,
                                  const float* gram_in, const float* target, float weight,
                                  float* grad, double* loss) {
    NVTX_RANGE("style_loss");
    NST_ASSERT(n > 0 && m > 0 && m <= std::size_t(INT_MAX));
    const int k = static_cast<int>(m);
    const double nm = double(n) * double(m);
    const double norm = nm * nm;  // N² M²
    // D = G − A (N, N), grown once to the largest style layer; *loss = Σ D² / (4 N² M²).
    float* difference = context_.float_scratch(std::size_t(n) * n);
    kernels::style_difference(n, gram_in, target, difference, context_.reduction(),
                              1.0 / (4.0 * norm), loss, context_.stream());
    // dF (N, M) += weight/(N²M²) · D F: D is symmetric, so ∂E/∂F = (G − A) F / (N² M²).
    gemm(context_.cublas(), Transpose::no, Transpose::no, n, k, n,
         static_cast<float>(double(weight) / norm), difference, n, features, k, 1.0f, grad, k);
}

void CudaBackend::tv_loss_into(int channels, int height, int width, const float* x, float weight,
                               float* grad, double* loss) {
    kernels::tv_loss(channels, height, width, x, weight, grad, context_.reduction(), loss,
                     context_.stream());
}

void CudaBackend::temporal_loss_into(int channels, std::size_t plane, const float* x,
                                     const float* target, const float* pixel_weights, float weight,
                                     float* grad, double* loss) {
    NST_ASSERT(channels > 0 && plane > 0);
    const double inverse_d = 1.0 / (double(channels) * double(plane));
    // 2w/D rounded to float once, on the host, as the CPU backend does.
    const float coefficient = static_cast<float>(2.0 * double(weight) * inverse_d);
    kernels::temporal_loss(channels, plane, x, target, pixel_weights, coefficient, grad,
                           context_.reduction(), inverse_d, loss, context_.stream());
}

void CudaBackend::warp_bilinear(int channels, int height, int width, const float* src,
                                const float* flow, float* dst) {
    kernels::warp_bilinear(channels, height, width, src, flow, dst, context_.stream());
}

// ---- vector ops for the optimisers ----------------------------------------------------------------

void CudaBackend::dot_into(std::size_t count, const float* x, const float* y, double scale,
                           double* out) {
    kernels::dot(count, x, y, scale, context_.reduction(), out, context_.stream());
}

void CudaBackend::asum_into(std::size_t count, const float* x, double* out) {
    kernels::asum(count, x, context_.reduction(), out, context_.stream());
}

void CudaBackend::amax_into(std::size_t count, const float* x, double* out) {
    kernels::amax(count, x, context_.reduction(), out, context_.stream());
}

void CudaBackend::non_finite_into(std::size_t count, const float* x, double* out) {
    kernels::non_finite_count(count, x, context_.reduction(), out, context_.stream());
}

void CudaBackend::axpy_from(std::size_t count, const double* alpha, const double* minus,
                            double factor, const float* x, float* y) {
    kernels::axpy_from(count, alpha, minus, factor, x, y, context_.stream());
}

void CudaBackend::pack_half(std::size_t count, HalfFormat format, const float* x,
                            const double* amax, std::uint16_t* packed) {
    kernels::pack_half(count, format, x, amax, packed, context_.stream());
}

void CudaBackend::dot_half_into(std::size_t count, HalfFormat format, const std::uint16_t* a,
                                const float* x, double scale, double* out) {
    kernels::dot_half(count, format, a, x, scale, context_.reduction(), out, context_.stream());
}

void CudaBackend::dot_half_pair_into(std::size_t count, HalfFormat format, const std::uint16_t* a,
                                     const std::uint16_t* b, double scale, double* out) {
    kernels::dot_half_pair(count, format, a, b, scale, context_.reduction(), out,
                           context_.stream());
}

void CudaBackend::axpy_from_half(std::size_t count, const double* alpha, const double* minus,
                                 double factor, HalfFormat format, const std::uint16_t* x,
                                 float* y) {
    kernels::axpy_from_half(count, alpha, minus, factor, format, x, y, context_.stream());
}

void CudaBackend::axpy(std::size_t count, float alpha, const float* x, float* y) {
    kernels::axpy(count, alpha, x, y, context_.stream());
}

void CudaBackend::scale(std::size_t count, float alpha, float* x) {
    kernels::scale(count, alpha, x, context_.stream());
}

void CudaBackend::copy(std::size_t count, const float* src, float* dst) {
    if (src == dst || count == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyDeviceToDevice,
                               context_.stream()));
}

void CudaBackend::fill(std::size_t count, float value, float* x) {
    kernels::fill(count, value, x, context_.stream());
}

void CudaBackend::adam_update(std::size_t count, float lr, float beta1, float beta2, float eps,
                              int step, const float* grad, float* m, float* v, float* x) {
    NST_ASSERT(step >= 1);
    const kernels::AdamStep adam{lr, beta1, beta2, eps, 1.0 - std::pow(double(beta1), step),
                                 1.0 - std::pow(double(beta2), step)};
    kernels::adam_update(count, adam, grad, m, v, x, context_.stream());
}

void CudaBackend::clamp(std::size_t count, float lo, float hi, float* x) {
    kernels::clamp(count, lo, hi, x, context_.stream());
}

// ---- spatial control ------------------------------------------------------------------------

void CudaBackend::mask_channels(int channels, std::size_t plane, const float* x, const float* mask,
                                float* y) {
    kernels::mask_channels(channels, plane, x, mask, y, context_.stream());
}

void CudaBackend::copy_window(const WindowCopy& window, const float* src, float* dst) {
    kernels::copy_window(window, src, dst, context_.stream());
}

}  // namespace nst::cuda
