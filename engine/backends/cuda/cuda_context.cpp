// CudaContext: handles, tracked allocations, workspace and reduction scratch.
#include "engine/backends/cuda/cuda_context.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "engine/backends/cuda/device_check.h"

namespace nst::cuda {

namespace {
std::string mebibytes(std::size_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f", double(bytes) / (1024.0 * 1024.0));
    return text;
}
}  // namespace

void* device_malloc(std::size_t bytes) {
    void* data = nullptr;
    const cudaError_t status = cudaMalloc(&data, bytes);
    if (status == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();  // clear it: an allocation failure is not sticky
        std::size_t free_bytes = 0, total_bytes = 0;
        if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
        throw OutOfMemory("out of device memory: needed " + mebibytes(bytes) + " MiB, " +
                          mebibytes(free_bytes) + " MiB free");
    }
    NST_DEVICE_CHECK(status, cudaSuccess, cudaGetErrorString);
    return data;
}

CudaContext::CudaContext(int device_index, bool tf32) : device_index_(device_index), tf32_(tf32) {
    CUDA_CHECK(cudaSetDevice(device_index));
    try {
        CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        CUBLAS_CHECK(cublasCreate(&cublas_));
        CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
        // CUBLAS_DEFAULT_MATH keeps FP32 SGEMM exact (no TF32); the TF32 mode
        // rounds the inputs to 10 mantissa bits on the tensor cores.
        CUBLAS_CHECK(cublasSetMathMode(cublas_, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                     : CUBLAS_DEFAULT_MATH));
        CUDNN_CHECK(cudnnCreate(&cudnn_));
        CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
        int multiprocessors = 0;
        CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount,
                                          device_index));
        reduction_.blocks = kernels::reduction_blocks(multiprocessors);
        reduction_.partials =
            static_cast<double*>(allocate_bytes(sizeof(double) * std::size_t(reduction_.blocks)));
        CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&staging_),
                                  sizeof(double) * kScalarStaging));
        pending_.reserve(64);
    } catch (...) {
        release_all();  // a constructor that throws runs no destructor
        throw;
    }
}

CudaContext::~CudaContext() { release_all(); }

void CudaContext::release_all() noexcept {
    if (stream_) CUDA_CHECK_LOG(cudaStreamSynchronize(stream_));
    for (auto& [data, bytes] : allocations_) CUDA_CHECK_LOG(cudaFree(data));
    allocations_.clear();
    workspace_ = nullptr;
    float_scratch_ = nullptr;
    reduction_ = {};
    if (staging_) CUDA_CHECK_LOG(cudaFreeHost(staging_));
    staging_ = nullptr;
    pending_.clear();
    staged_ = 0;
    if (cudnn_) CUDNN_CHECK_LOG(cudnnDestroy(cudnn_));
    cudnn_ = nullptr;
    if (cublas_) CUBLAS_CHECK_LOG(cublasDestroy(cublas_));
    cublas_ = nullptr;
    if (stream_) CUDA_CHECK_LOG(cudaStreamDestroy(stream_));
    stream_ = nullptr;
}

void* CudaContext::allocate_bytes(std::size_t bytes) {
    // A zero-size request still gets a distinct, valid pointer.
    void* data = device_malloc(bytes > 0 ? bytes : sizeof(float));
    allocations_.emplace(data, bytes);
    bytes_in_use_ += bytes;
    if (bytes_in_use_ > peak_bytes_) peak_bytes_ = bytes_in_use_;
    return data;
}

void CudaContext::release_bytes(void* data) noexcept {
    if (!data) return;
    const auto found = allocations_.find(data);
    if (found == allocations_.end()) {
        std::fprintf(stderr, "nst: cuda release of a pointer this backend did not allocate\n");
        return;
    }
    bytes_in_use_ -= found->second;
    allocations_.erase(found);
    CUDA_CHECK_LOG(cudaFree(data));  // cudaFree waits for the work that may still use it
}

void* CudaContext::workspace(std::size_t bytes) {
    if (bytes > workspace_bytes_) {
        release_bytes(workspace_);
        workspace_ = nullptr;
        workspace_bytes_ = 0;
        workspace_ = allocate_bytes(bytes);
        workspace_bytes_ = bytes;
    }
    return workspace_;
}

float* CudaContext::float_scratch(std::size_t count) {
    if (count > float_scratch_count_) {
        release_bytes(float_scratch_);
        float_scratch_ = nullptr;
        float_scratch_count_ = 0;
        float_scratch_ = static_cast<float*>(allocate_bytes(count * sizeof(float)));
        float_scratch_count_ = count;
    }
    return float_scratch_;
}

void CudaContext::queue_scalar_read(const double* src, std::size_t count, double* host_dst) {
    if (count == 0) return;
    if (count > kScalarStaging)
        throw Error("a scalar read of " + std::to_string(count) + " values exceeds the " +
                    std::to_string(kScalarStaging) + " the staging area holds");
    NST_ASSERT(!staging_full(count));
    CUDA_CHECK(cudaMemcpyAsync(staging_ + staged_, src, count * sizeof(double),
                               cudaMemcpyDeviceToHost, stream_));
    pending_.push_back({staged_, count, host_dst});
    staged_ += count;
}

void CudaContext::wait() {
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (const PendingRead& read : pending_)
        std::memcpy(read.host_dst, staging_ + read.offset, read.count * sizeof(double));
    pending_.clear();
    staged_ = 0;
}

}  // namespace nst::cuda
