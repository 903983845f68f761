// The CPU backend: the reference implementation of engine/backends/backend.h. Plain
// loops first; OpenMP over channels/rows and OpenBLAS SGEMM where it pays.
// Accumulations that produce a loss or a dot product are done in double.
#pragma once

#include <atomic>
#include <cstddef>
#include <unordered_map>

#include "engine/backends/backend.h"

namespace nst {

// Not final: tests derive from it to perturb single ops (tests/trajectory_check.h).
class CpuBackend : public Backend {
public:
    // threads: OpenMP threads; 0: all cores (OMP_NUM_THREADS when set, else the
    // processors, whatever another library set the thread count to). OpenBLAS
    // runs single-threaded inside them: two spinning pools on the same cores
    // measured 2–3× slower than one. The settings are scoped to the backend:
    // the creating thread's OpenMP thread count and OpenBLAS's (process-wide)
    // are set while it lives and restored when it is destroyed. Results do not
    // depend on the thread count (the work is split the same way for any count).
    explicit CpuBackend(int threads = 0);
    ~CpuBackend() override;
    int threads() const { return threads_; }

    std::string name() const override { return "cpu"; }

    float* allocate(std::size_t count) override;
    void release(float* data) noexcept override;
    void upload(float* dst, const float* host_src, std::size_t count) override;
    void download(float* host_dst, const float* src, std::size_t count) override;
    std::size_t bytes_in_use() const override { return bytes_in_use_; }
    std::size_t peak_bytes() const override { return peak_bytes_; }
    // The CPU's work is done when each call returns: synchronize() only counts
    // the wait a GPU would make, and a queued scalar read copies at once.
    void synchronize() override { count_host_wait(); }
    void queue_scalar_read(const double* src, std::size_t count, double* host_dst) override;

    std::size_t available_bytes() const override {
        return memory_limit_ > bytes_in_use_ ? memory_limit_ - bytes_in_use_ : 0;
    }
    OwnMemory planned_conv_memory(const ConvShape& shape, bool backward) const override;
    OwnMemory planned_style_loss_memory(int n) const override;

    // The compute ops of engine/backends/backend_ops.h, defined in engine/backends/cpu/cpu_*.cpp.
    NST_BACKEND_OPS(NST_BACKEND_OVERRIDE_OP)

private:
    // im2col scratch for the convolutions, grown on demand and kept.
    float* column_scratch(std::size_t count);
    // Floats of that scratch one convolution needs (cpu_conv.cpp).
    std::size_t conv_scratch_floats(const ConvShape& shape, bool backward) const;
    // Winograd-transformed filters of a weight buffer, cached (cpu_conv.cpp).
    const float* winograd_filters(const ConvShape& shape, int tile, const float* weight);
    // Drops cached filters of weight buffers overlapping [begin, begin + count).
    void forget_filters(const float* begin, std::size_t count);
    struct WinogradFilters {
        int out_channels = 0, in_channels = 0;
        int tile = 0;                  // Winograd's output tile: 2 or 4
        std::size_t weight_count = 0;  // floats of the weight buffer they came from
        float* filters = nullptr;      // ((tile + 2)², C_out, C_in), backend memory
    };
    std::unordered_map<const float*, WinogradFilters> winograd_filters_;

    std::size_t memory_limit_;  // host memory available at construction (MemAvailable)
    int threads_;
    int previous_omp_threads_, previous_blas_threads_;  // restored on destruction
    std::size_t bytes_in_use_ = 0;
    std::size_t peak_bytes_ = 0;
    float* columns_ = nullptr;
    std::size_t columns_count_ = 0;
};

}  // namespace nst
