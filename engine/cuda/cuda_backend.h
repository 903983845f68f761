// The CUDA backend: engine/backend.h on one GPU. Everything stays in device
// memory; convolutions go through cuDNN, the Gram matrix and the style gradient
// through cuBLAS (engine/cuda/gemm.h), the rest through kernels/*.cu. All work
// is queued on one stream; scalars stay in device memory, and only download()
// and synchronize() wait for the stream (each counted in host_waits()).
#pragma once

#include <cstddef>
#include <string>

#include "engine/backend.h"
#include "engine/cuda/conv.h"
#include "engine/cuda/cuda_context.h"

namespace nst::cuda {

class CudaBackend final : public Backend {
public:
    CudaBackend(int device_index, bool tf32);
    ~CudaBackend() override;

    std::string name() const override { return "cuda:" + std::to_string(context_.device_index()); }
    CudaContext& context() { return context_; }

    float* allocate(std::size_t count) override;
    void release(float* data) noexcept override;
    void upload(float* dst, const float* host_src, std::size_t count) override;
    void download(float* host_dst, const float* src, std::size_t count) override;
    std::size_t bytes_in_use() const override { return context_.bytes_in_use(); }
    std::size_t peak_bytes() const override { return context_.peak_bytes(); }
    void synchronize() override;
    void queue_scalar_read(const double* src, std::size_t count, double* host_dst) override;

    void conv3x3_forward(const ConvShape& shape, const float* x, const float* weight,
                         float* y) override;
    void conv3x3_backward_data(const ConvShape& shape, const float* dy, const float* weight,
                               float* dx) override;
    void bias_relu_forward(int channels, std::size_t plane, const float* bias, float* y) override;
    void relu_backward(std::size_t count, const float* y, float* dy) override;
    void pool_forward(PoolMode mode, int channels, int height, int width, const float* x,
                      float* y) override;
    void pool_backward(PoolMode mode, int channels, int height, int width, const float* x,
                       const float* dy, float* dx) override;

    void preprocess(const Preprocessing& pre, std::size_t plane, const float* x,
                    float* out) override;
    void preprocess_backward(const Preprocessing& pre, std::size_t plane, const float* dout,
                             float* dx) override;

    void gram(int n, std::size_t m, const float* features, float* gram_out) override;
    void content_loss_into(std::size_t count, const float* features, const float* target,
                           float weight, float* grad, double* loss) override;
    void style_loss_into(int n, std::size_t m, const float* features, const float* gram_in,
                         const float* target, float weight, float* grad, double* loss) override;
    void tv_loss_into(int channels, int height, int width, const float* x, float weight,
                      float* grad, double* loss) override;

    void dot_into(std::size_t count, const float* x, const float* y, double scale,
                  double* out) override;
    void asum_into(std::size_t count, const float* x, double* out) override;
    void amax_into(std::size_t count, const float* x, double* out) override;
    void non_finite_into(std::size_t count, const float* x, double* out) override;
    void axpy_from(std::size_t count, const double* alpha, const double* minus, double factor,
                   const float* x, float* y) override;
    void axpy(std::size_t count, float alpha, const float* x, float* y) override;
    void scale(std::size_t count, float alpha, float* x) override;
    void copy(std::size_t count, const float* src, float* dst) override;
    void fill(std::size_t count, float value, float* x) override;
    void adam_update(std::size_t count, float lr, float beta1, float beta2, float eps, int step,
                     const float* grad, float* m, float* v, float* x) override;
    void clamp(std::size_t count, float lo, float hi, float* x) override;

    void mask_channels(int channels, std::size_t plane, const float* x, const float* mask,
                       float* y) override;

private:
    CudaContext context_;       // declared first: destroyed last
    ConvAlgorithms convolutions_;
};

}  // namespace nst::cuda
