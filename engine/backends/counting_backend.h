// A backend that allocates nothing and computes nothing: it counts what
// another backend (the target) would hold if the same calls ran there. The
// memory plan (engine/run/memory_plan.h) runs a transfer's real set-up and first
// evaluation on it, as ggml-alloc's measuring pass runs a graph, so the plan
// is the engine's allocations themselves rather than a description of them.
//
// What it counts:
//   - every allocate(), filed under the MemoryUse in scope (engine/base/memory_use.h);
//   - what the target keeps of its own for each op (Backend::planned_conv_memory,
//     planned_style_loss_memory): its scratch buffers grown to the largest need,
//     and data cached per weight buffer until that buffer is released or written;
//   - the largest tensor a convolution or the preprocessing sees.
// Its memory is addresses only: ops do nothing, download() writes zeros, and
// scalars read back are 0, so the optimisers stop after their first evaluation
// (a zero gradient has converged), with every vector allocated.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "engine/backends/backend.h"
#include "engine/base/memory_use.h"

namespace nst {

class CountingBackend final : public Backend {
public:
    explicit CountingBackend(const Backend& target) : target_(target) {}

    // Bytes by use: what allocate() gave out, and the target's own memory.
    struct Held {
        std::array<std::size_t, kMemoryUses> by_use{};
        std::size_t weight_cache = 0;  // the target's data kept per weight buffer
        std::size_t scratch = 0;       // the target's scratch buffers
        std::size_t total() const;
    };
    // Starts a new window for peak() and held_at_peak().
    void reset_peak();
    std::size_t peak() const { return peak_; }
    const Held& held_at_peak() const { return at_peak_; }
    const Held& held() const { return held_; }

    // The largest tensor seen: elements, and where (the weight buffer of the
    // convolution, null for the preprocessed input; its input height × width).
    struct Tensor {
        std::size_t elements = 0;
        const float* weight = nullptr;
        int height = 0, width = 0;
    };
    const Tensor& largest_tensor() const { return largest_; }
    void reset_largest_tensor() { largest_ = {}; }

    std::string name() const override { return target_.name(); }
    float* allocate(std::size_t count) override;
    void release(float* data) noexcept override;
    void upload(float* dst, const float* host_src, std::size_t count) override;
    void download(float* host_dst, const float* src, std::size_t count) override;
    std::size_t bytes_in_use() const override { return held_.total(); }
    std::size_t peak_bytes() const override { return peak_; }
    void synchronize() override { count_host_wait(); }
    void queue_scalar_read(const double* src, std::size_t count, double* host_dst) override;
    std::size_t available_bytes() const override { return target_.available_bytes(); }
    OwnMemory planned_conv_memory(const ConvShape& shape, bool backward) const override {
        return target_.planned_conv_memory(shape, backward);
    }
    OwnMemory planned_style_loss_memory(int n) const override { return target_.planned_style_loss_memory(n); }
    std::size_t max_tensor_elements() const override { return target_.max_tensor_elements(); }

#define NST_COUNTING_OP(phase, name, parameters, arguments) void name parameters override;
    NST_BACKEND_OPS(NST_COUNTING_OP)
#undef NST_COUNTING_OP

private:
    // What the ops are seen for. Each op's definition (generated from the list)
    // calls observe() with its arguments: the overloads below pick the ones that
    // make the target keep memory or that write a weight buffer; the rest do
    // nothing, as a new op will unless it keeps memory of its own.
    template <typename... Arguments>
    void observe(const char*, const Arguments&...) {}
    void observe(const char* op, const ConvShape& shape, const float* in, const float* weight, float* out);
    void observe(const char* op, const Preprocessing& pre, std::size_t plane, const float* in, float* out);
    void observe(const char* op, int n, std::size_t m, const float* features, const float* gram_in,
                 const float* target, float weight, float* grad, double* loss);
    void observe(const char* op, std::size_t count, const float* src, float* dst);  // copy, relu_backward
    void observe(const char* op, std::size_t count, float value, float* x);         // fill, scale

    // The target's own memory for an op; `weight` keys its cache (may be null).
    void hold_own(const OwnMemory& own, const float* weight);
    void written(const float* data);  // a weight buffer written: its cache goes
    void see_tensor(std::size_t elements, const float* weight, int height, int width);
    void update_peak();

    const Backend& target_;
    struct Block {
        std::size_t bytes;
        MemoryUse use;
    };
    std::map<const float*, Block> blocks_;
    std::map<const float*, std::size_t> weight_cache_;  // by weight buffer
    std::size_t scratch_ = 0, loss_scratch_ = 0;
    std::uintptr_t next_address_ = std::uintptr_t(1) << 20;
    Held held_, at_peak_;
    std::size_t peak_ = 0;
    Tensor largest_;
};

}  // namespace nst
