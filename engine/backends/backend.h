// The narrow backend interface. The CPU backend (engine/cpu) is the reference
// implementation and the spec; the CUDA backend (engine/cuda) re-implements it.
// Everything above this interface (VGG-19, the objective, L-BFGS, Adam) is
// written once against it.
//
// Memory: every float* passed to a backend method points into that backend's
// memory (host memory for the CPU backend, device memory for CUDA), obtained
// through a Buffer. Tensors are dense row-major; shapes are given in the
// comments as (C, H, W) = channels × height × width, one image at a time.
//
// Conventions of the ops (formulas in DESIGN.md, "The objective"):
//   conv3x3:  y[o,i,j] = Σ_c Σ_{u,v∈0..2} w[o,c,u,v] · x[c, i+u−1, j+v−1]   (zero padding 1,
//             cross-correlation, no bias); backward_data: dx = ∂(Σ dy·y)/∂x.
//   element-wise and per-window ops (bias_relu, pooling, preprocessing, masks,
//             the optimisers' axpy, scale, clamp, Adam): formulas and arithmetic
//             in kernels/activation.h, pooling.h, preprocess.h, masks.h and
//             vector_ops.h, one function per op that both backends call.
//   gram:     G = F Fᵀ for F (N, M).
//   losses write their (unweighted) value into a double in backend memory and
//   ACCUMULATE weight · ∂loss/∂input into the gradient buffer (never overwrite).
//
// Scalars stay in backend memory. Every op that produces a scalar (the losses,
// dot, asum, amax, the non-finite count) writes it into a slot of a ScalarBuffer
// and returns at once; queue_scalar_read() queues its copy to the host, and one
// synchronize() waits for everything queued. So an objective evaluation reads
// all its loss terms in one wait, and L-BFGS batches its scalars (engine/optim/lbfgs.cpp)
// instead of waiting for the device after each one. host_waits() counts the
// waits (synchronize() and download()); the CPU backend counts the same calls,
// so tests without a GPU check how often the GPU would wait. The host-returning
// helpers at the end of the class (content_loss, dot, all_finite, ...) queue,
// wait once and return: for tests and set-up, never for an iteration loop.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/base/error.h"
#include "engine/base/types.h"
#include "engine/backends/backend_ops.h"

namespace nst {

class Backend {
public:
    virtual ~Backend() = default;
    Backend() = default;
    Backend(const Backend&) = delete;
    Backend& operator=(const Backend&) = delete;

    virtual std::string name() const = 0;  // "cpu", "cuda:0"

    // ---- memory -------------------------------------------------------------------
    virtual float* allocate(std::size_t count) = 0;      // uninitialised; throws on failure
    virtual void release(float* data) noexcept = 0;
    virtual void upload(float* dst, const float* host_src, std::size_t count) = 0;
    virtual void download(float* host_dst, const float* src, std::size_t count) = 0;
    // Bytes currently held through allocate(), and the peak since construction.
    virtual std::size_t bytes_in_use() const = 0;
    virtual std::size_t peak_bytes() const = 0;
    // Waits until all queued work is done, including the scalar reads queued
    // since the last wait; counts one host wait.
    virtual void synchronize() = 0;
    // Queues a copy of `count` doubles from backend memory (ScalarBuffer slots) to
    // host memory; host_dst holds them after the next synchronize().
    virtual void queue_scalar_read(const double* src, std::size_t count, double* host_dst) = 0;
    // Host waits so far: synchronize() and download() calls.
    std::size_t host_waits() const { return host_waits_; }

    // ---- planning (engine/run/memory_plan.h) ----------------------------------------------
    // Bytes this backend can still allocate: host memory available at set-up
    // less what it holds (CPU), the device's free memory (CUDA).
    virtual std::size_t available_bytes() const = 0;
    // What the backend holds of its own for one op, for the memory plan's
    // counting pass (engine/backends/counting_backend.h): `scratch`, one buffer
    // grown to the largest need and kept; `loss_scratch`, a second such buffer
    // where the backend keeps one for the losses (CUDA); `weight_cache`, data
    // kept per weight buffer until that buffer is released or written (0: this
    // op keeps none). Where a backend cannot know before running (cuDNN's
    // workspace, chosen with the algorithms at the first pass), the bound it
    // never exceeds.
    struct OwnMemory {
        std::size_t scratch = 0, loss_scratch = 0, weight_cache = 0;
    };
    virtual OwnMemory planned_conv_memory(const ConvShape& shape, bool backward) const {
        (void)shape, (void)backward;
        return {};
    }
    // style_loss_into for an n × n Gram matrix.
    virtual OwnMemory planned_style_loss_memory(int n) const {
        (void)n;
        return {};
    }
    // The most elements one activation tensor may hold on this backend (cuDNN's
    // tensor descriptors index with int: 2³¹ − 1). The plan refuses a run whose
    // network would exceed it, naming the tile size that does not; --tile auto
    // picks one.
    virtual std::size_t max_tensor_elements() const { return static_cast<std::size_t>(-1); }

    // ---- the compute ops: engine/backends/backend_ops.h lists them with their contracts ---------
    NST_BACKEND_OPS(NST_BACKEND_PURE_OP)

    // ---- host-returning helpers (engine/backends/backend.cpp) ---------------------------------
    // Each runs the op above into a scalar of its own, then waits once (one host
    // wait, and a small allocation): for tests, tools and set-up only.
    double content_loss(std::size_t count, const float* features, const float* target,
                        float weight, float* grad);
    double style_loss(int n, std::size_t m, const float* features, const float* gram_in,
                      const float* target, float weight, float* grad);
    double tv_loss(int channels, int height, int width, const float* x, float weight,
                   float* grad);
    double temporal_loss(int channels, std::size_t plane, const float* x, const float* target,
                         const float* pixel_weights, float weight, float* grad);
    double dot(std::size_t count, const float* x, const float* y);
    double asum(std::size_t count, const float* x);  // Σ |x_i|
    double amax(std::size_t count, const float* x);  // max_i |x_i| (0 when empty)
    bool all_finite(std::size_t count, const float* x);

protected:
    void count_host_wait() { ++host_waits_; }

private:
    std::size_t host_waits_ = 0;
};

// A move-only block of backend memory, released on destruction.
class Buffer {
public:
    Buffer() = default;
    Buffer(Backend& backend, std::size_t count)
        : backend_(&backend), data_(backend.allocate(count)), count_(count) {}
    ~Buffer() { reset(); }
    Buffer(Buffer&& other) noexcept
        : backend_(std::exchange(other.backend_, nullptr)),
          data_(std::exchange(other.data_, nullptr)),
          count_(std::exchange(other.count_, 0)) {}
    Buffer& operator=(Buffer&& other) noexcept {
        if (this != &other) {
            reset();
            backend_ = std::exchange(other.backend_, nullptr);
            data_ = std::exchange(other.data_, nullptr);
            count_ = std::exchange(other.count_, 0);
        }
        return *this;
    }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    float* data() { return data_; }
    const float* data() const { return data_; }
    std::size_t size() const { return count_; }
    bool empty() const { return count_ == 0; }

private:
    void reset() noexcept {
        if (backend_ && data_) backend_->release(data_);
        data_ = nullptr;
        count_ = 0;
    }
    Backend* backend_ = nullptr;
    float* data_ = nullptr;
    std::size_t count_ = 0;
};

// `count` doubles in backend memory (the slots the scalar ops write) and their
// host copy. queue_read() queues the copy of slots [first, first + count);
// host(i) holds slot i after the backend's next synchronize().
class ScalarBuffer {
public:
    ScalarBuffer() = default;
    ScalarBuffer(Backend& backend, std::size_t count)
        : backend_(&backend), floats_(backend, 2 * count), host_(count, 0.0) {}
    double* slot(std::size_t i) { return reinterpret_cast<double*>(floats_.data()) + i; }
    std::size_t size() const { return host_.size(); }
    void queue_read(std::size_t first, std::size_t count) {
        NST_ASSERT(first + count <= host_.size());
        if (count > 0) backend_->queue_scalar_read(slot(first), count, host_.data() + first);
    }
    void queue_read() { queue_read(0, host_.size()); }
    double host(std::size_t i) const { return host_[i]; }

private:
    Backend* backend_ = nullptr;
    Buffer floats_;  // allocations are at least 64-byte aligned on every backend
    std::vector<double> host_;
};

// Names the backends that can be created on this machine: "cpu", and
// "cuda:N" when built with CUDA and a GPU is present.
struct DeviceChoice {
    enum Kind { automatic, cpu, cuda } kind = automatic;
    int cuda_index = 0;
};

// Parses "auto", "cpu", "cuda", "cuda:N"; throws UsageError otherwise.
DeviceChoice parse_device(const std::string& text);

// Creates a backend. `automatic` picks CUDA when a GPU is usable, else the CPU.
// cpu_threads: 0 keeps the OpenMP default. tf32: allow TF32 tensor cores (CUDA only).
// Throws UsageError when CUDA is asked for but not built in, DeviceError when no GPU.
std::unique_ptr<Backend> make_backend(const DeviceChoice& choice, int cpu_threads, bool tf32);

}  // namespace nst
