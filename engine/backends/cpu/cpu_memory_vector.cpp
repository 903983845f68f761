// CpuBackend: memory and the optimisers' vector operations.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cpu/cpu_reduce.h"
#include "engine/base/error.h"
#include "kernels/half.h"
#include "kernels/reductions.h"
#include "kernels/vector_ops.h"

namespace nst {

namespace {
// The allocation size is kept in front of each block so release() can count it.
constexpr std::size_t kHeader = 64;  // keeps the payload 64-byte aligned
}

namespace {

// The thread count of CpuBackend(0): OMP_NUM_THREADS when it is a positive
// number, else the processors. Not omp_get_max_threads(): a library loaded
// earlier (torch, for one) may have changed it for the process.
int all_cores() {
    if (const char* text = std::getenv("OMP_NUM_THREADS")) {
        char* end = nullptr;
        const long n = std::strtol(text, &end, 10);
        if (end != text && n > 0 && n <= 4096) return int(n);
    }
    return std::max(1, omp_get_num_procs());
}

// Memory the system can give without swapping: MemAvailable from /proc/meminfo,
// else the physical memory. Linux overcommits: without this check a run too
// large for the machine would be killed by the kernel halfway instead of
// failing at set-up with a message.
std::size_t available_host_bytes() {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    std::size_t kib = 0;
    while (meminfo >> key >> kib) {
        if (key == "MemAvailable:") return kib * 1024;
        meminfo.ignore(256, '\n');
    }
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? std::size_t(pages) * std::size_t(page) : SIZE_MAX;
}

}  // namespace

// OpenBLAS always runs single-threaded: the backend calls it from inside its own
// OpenMP regions (one GEMM per thread, see cpu_conv.cpp), so `threads` OpenMP
// threads are the only pool. Two busy-waiting pools on the same cores slow the
// convolutions 2–3×.
CpuBackend::CpuBackend(int threads)
    : memory_limit_(available_host_bytes()), threads_(threads > 0 ? threads : all_cores()),
      previous_omp_threads_(omp_get_max_threads()), previous_blas_threads_(openblas_get_num_threads()) {
    omp_set_num_threads(threads_);
    openblas_set_num_threads(1);
}

CpuBackend::~CpuBackend() {
    for (auto& entry : winograd_filters_) release(entry.second.filters);
    release(columns_);
    omp_set_num_threads(previous_omp_threads_);
    openblas_set_num_threads(previous_blas_threads_);
}

float* CpuBackend::allocate(std::size_t count) {
    const std::size_t bytes = count * sizeof(float);
    if (count > memory_limit_ / sizeof(float) || bytes > memory_limit_ - std::min(memory_limit_, bytes_in_use_))
        throw OutOfMemory("out of host memory: this run needs more than the " +
                             std::to_string(memory_limit_ >> 20) + " MiB available (" +
                             std::to_string(bytes_in_use_ >> 20) + " MiB held, " +
                             std::to_string(bytes >> 20) + " MiB more asked); try a smaller --size");
    void* block = std::aligned_alloc(64, kHeader + ((bytes + 63) / 64) * 64);
    if (!block)
        throw OutOfMemory("out of host memory: could not allocate " +
                             std::to_string(bytes >> 20) + " MiB");
    std::memcpy(block, &bytes, sizeof bytes);
    bytes_in_use_ += bytes;
    if (bytes_in_use_ > peak_bytes_) peak_bytes_ = bytes_in_use_;
    return reinterpret_cast<float*>(static_cast<char*>(block) + kHeader);
}

void CpuBackend::release(float* data) noexcept {
    if (!data) return;
    if (!winograd_filters_.empty()) {
        // A weight buffer going away takes its transformed filters with it.
        auto it = winograd_filters_.find(data);
        if (it != winograd_filters_.end()) {
            float* filters = it->second.filters;
            winograd_filters_.erase(it);
            release(filters);
        }
    }
    char* block = reinterpret_cast<char*>(data) - kHeader;
    std::size_t bytes = 0;
    std::memcpy(&bytes, block, sizeof bytes);
    bytes_in_use_ -= bytes;
    std::free(block);
}

void CpuBackend::upload(float* dst, const float* host_src, std::size_t count) {
    if (!winograd_filters_.empty()) forget_filters(dst, count);
    if (count > 0) std::memcpy(dst, host_src, count * sizeof(float));  // an empty vector's data() may be null
}

void CpuBackend::download(float* host_dst, const float* src, std::size_t count) {
    count_host_wait();  // a GPU waits for its queue here
    if (count > 0) std::memcpy(host_dst, src, count * sizeof(float));
}

void CpuBackend::queue_scalar_read(const double* src, std::size_t count, double* host_dst) {
    if (count > 0) std::memcpy(host_dst, src, count * sizeof(double));
}

float* CpuBackend::column_scratch(std::size_t count) {
    if (count > columns_count_) {
        release(columns_);
        columns_ = nullptr;
        columns_count_ = 0;  // stays consistent if the allocation below throws
        columns_ = allocate(count);
        columns_count_ = count;
    }
    return columns_;
}

using cpu::chunked_sum;

void CpuBackend::dot_into(std::size_t count, const float* x, const float* y, double scale,
                          double* out) {
    *out = scale * chunked_sum(count, [&](std::size_t i) { return kernels::dot_term(x[i], y[i]); });
}

void CpuBackend::axpy_from(std::size_t count, const double* alpha, const double* minus,
                           double factor, const float* x, float* y) {
    axpy(count, kernels::axpy_from_coefficient(*alpha, minus ? *minus : 0.0, factor), x, y);
}

void CpuBackend::pack_half(std::size_t count, HalfFormat format, const float* x,
                           const double* amax, std::uint16_t* packed) {
    NST_ASSERT(format == HalfFormat::bf16 || amax != nullptr);
    const double scale = kernels::history_half_scale(format, amax ? *amax : 0.0);
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < count; ++i) packed[i] = kernels::pack_half_value(format, x[i], scale);
}

void CpuBackend::dot_half_into(std::size_t count, HalfFormat format, const std::uint16_t* a,
                               const float* x, double scale, double* out) {
    *out = scale * chunked_sum(count, [&](std::size_t i) {
        return kernels::dot_half_term(format, a[i], x[i]);
    });
}

void CpuBackend::dot_half_pair_into(std::size_t count, HalfFormat format, const std::uint16_t* a,
                                    const std::uint16_t* b, double scale, double* out) {
    *out = scale * chunked_sum(count, [&](std::size_t i) {
        return kernels::dot_half_pair_term(format, a[i], b[i]);
    });
}

void CpuBackend::axpy_from_half(std::size_t count, const double* alpha, const double* minus,
                                double factor, HalfFormat format, const std::uint16_t* x,
                                float* y) {
    const float a = kernels::axpy_from_coefficient(*alpha, minus ? *minus : 0.0, factor);
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < count; ++i)
        y[i] = kernels::axpy_value(y[i], a, kernels::unpack_half_value(format, x[i]));
}

void CpuBackend::amax_into(std::size_t count, const float* x, double* out) {
    float m = 0.0f;
#pragma omp parallel for schedule(static) reduction(max : m)
    for (std::size_t i = 0; i < count; ++i) m = std::max(m, std::fabs(x[i]));
    *out = m;  // a maximum is exact: the thread count cannot change it
}

void CpuBackend::asum_into(std::size_t count, const float* x, double* out) {
    *out = chunked_sum(count, [&](std::size_t i) { return kernels::abs_term(x[i]); });
}

void CpuBackend::axpy(std::size_t count, float alpha, const float* x, float* y) {
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < count; ++i) y[i] = kernels::axpy_value(y[i], alpha, x[i]);
}

void CpuBackend::scale(std::size_t count, float alpha, float* x) {
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < count; ++i) x[i] = kernels::scale_value(x[i], alpha);
}

void CpuBackend::copy(std::size_t count, const float* src, float* dst) {
    if (!winograd_filters_.empty()) forget_filters(dst, count);
    if (src != dst) std::memcpy(dst, src, count * sizeof(float));
}

void CpuBackend::fill(std::size_t count, float value, float* x) {
    if (!winograd_filters_.empty()) forget_filters(x, count);
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < count; ++i) x[i] = value;
}

void CpuBackend::non_finite_into(std::size_t count, const float* x, double* out) {
    *out = chunked_sum(count, [&](std::size_t i) { return kernels::non_finite_term(x[i]); });
}

void CpuBackend::adam_update(std::size_t count, float lr, float beta1, float beta2, float eps,
                             int step, const float* grad, float* m, float* v, float* x) {
    NST_ASSERT(step >= 1);
    const kernels::AdamStep adam{lr, beta1, beta2, eps, 1.0 - std::pow(double(beta1), step),
                                 1.0 - std::pow(double(beta2), step)};
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < count; ++i) kernels::adam_step(adam, grad[i], m[i], v[i], x[i]);
}

void CpuBackend::clamp(std::size_t count, float lo, float hi, float* x) {
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < count; ++i) x[i] = kernels::clamp_value(x[i], lo, hi);
}

}  // namespace nst
