// The per-run CUDA context owned by the backend: device, stream, cuBLAS and
// cuDNN handles, tracked device allocations (byte counter and peak), the one
// cuDNN workspace, and the device scratch of the deterministic reductions.
// Everything here is created once; nothing in the iteration loop allocates.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <unordered_map>

#include "kernels/reduce.cuh"

namespace nst::cuda {

// cudaMalloc that turns out-of-memory into
// DeviceError("out of device memory: needed X MiB, Y MiB free").
void* device_malloc(std::size_t bytes);

class CudaContext {
public:
    // tf32: TF32 tensor-core math in cuBLAS and cuDNN, else exact FP32.
    CudaContext(int device_index, bool tf32);
    ~CudaContext();
    CudaContext(const CudaContext&) = delete;
    CudaContext& operator=(const CudaContext&) = delete;

    int device_index() const { return device_index_; }
    bool tf32() const { return tf32_; }
    cudaStream_t stream() const { return stream_; }
    cublasHandle_t cublas() const { return cublas_; }
    cudnnHandle_t cudnn() const { return cudnn_; }

    // Tracked device memory: every byte the backend holds goes through these.
    void* allocate_bytes(std::size_t bytes);
    void release_bytes(void* data) noexcept;
    std::size_t bytes_in_use() const { return bytes_in_use_; }
    std::size_t peak_bytes() const { return peak_bytes_; }

    // The cuDNN workspace, grown to the largest request (made while the conv
    // algorithms are chosen, i.e. at the first pass over each layer shape).
    void* workspace(std::size_t bytes);
    std::size_t workspace_bytes() const { return workspace_bytes_; }

    // A float scratch grown to the largest request (the style loss's G − A).
    float* float_scratch(std::size_t count);

    const kernels::ReductionScratch& reduction() const { return reduction_; }

    // Copies *reduction().result to the host and waits for the stream. The only
    // place a scalar result synchronises with the host: the Backend interface
    // returns loss values and dot products as host doubles. Keeping these scalars
    // in device memory (so L-BFGS could run without a round trip per dot
    // product) is future work.
    double read_reduction_result();

private:
    void release_all() noexcept;

    int device_index_;
    bool tf32_;
    cudaStream_t stream_ = nullptr;
    cublasHandle_t cublas_ = nullptr;
    cudnnHandle_t cudnn_ = nullptr;

    std::unordered_map<void*, std::size_t> allocations_;
    std::size_t bytes_in_use_ = 0;
    std::size_t peak_bytes_ = 0;

    void* workspace_ = nullptr;
    std::size_t workspace_bytes_ = 0;
    float* float_scratch_ = nullptr;
    std::size_t float_scratch_count_ = 0;
    kernels::ReductionScratch reduction_;
    double* host_result_ = nullptr;  // pinned, so the copy back is a true async DMA
};

}  // namespace nst::cuda
