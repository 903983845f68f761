// The CUDA backend: engine/backends/backend.h on one GPU. Everything stays in device
// memory; convolutions go through cuDNN, the Gram matrix and the style gradient
// through cuBLAS (engine/backends/cuda/gemm.h), the rest through kernels/*.cu. All work
// is queued on one stream; scalars stay in device memory, and only download()
// and synchronize() wait for the stream (each counted in host_waits()).
#pragma once

#include <cstddef>
#include <string>

#include "engine/backends/backend.h"
#include "engine/backends/cuda/conv.h"
#include "engine/backends/cuda/cuda_context.h"

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
    std::size_t available_bytes() const override;  // cudaMemGetInfo's free bytes
    // cuDNN's workspace is chosen with the algorithms at the first pass: the plan
    // counts its cap (kConvWorkspaceCap), which no chosen algorithm exceeds. The
    // style loss's G − A has a scratch of its own (CudaContext::float_scratch).
    OwnMemory planned_conv_memory(const ConvShape& shape, bool backward) const override;
    OwnMemory planned_style_loss_memory(int n) const override;
    std::size_t max_tensor_elements() const override { return kMaxCudnnTensorElements; }

    // The compute ops of engine/backends/backend_ops.h, defined in engine/backends/cuda/cuda_backend.cpp.
    NST_BACKEND_OPS(NST_BACKEND_OVERRIDE_OP)

private:
    CudaContext context_;       // declared first: destroyed last
    ConvAlgorithms convolutions_;
};

}  // namespace nst::cuda
