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
#include <vector>

#include "kernels/reduce.cuh"

namespace nst::cuda {

// cudaMalloc that turns out-of-memory into
// OutOfMemory("out of device memory: needed X MiB, Y MiB free").
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

    // Scalar reads (Backend::queue_scalar_read): each queues an async copy of
    // device doubles into pinned staging memory; wait() synchronises the stream
    // once and hands every queued value to its host destination. The staging
    // area holds kScalarStaging doubles; a read that would overflow it must
    // wait for the reads already queued (no iteration of nst comes close).
    static constexpr std::size_t kScalarStaging = 4096;
    // The caller waits first (and counts it) when staging_full(count).
    bool staging_full(std::size_t count) const { return staged_ + count > kScalarStaging; }
    void queue_scalar_read(const double* src, std::size_t count, double* host_dst);
    void wait();

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
    double* staging_ = nullptr;  // (kScalarStaging) pinned: the copies back are true async DMAs
    std::size_t staged_ = 0;     // doubles of staging_ in use by queued reads
    struct PendingRead {
        std::size_t offset, count;
        double* host_dst;
    };
    std::vector<PendingRead> pending_;
};

}  // namespace nst::cuda
