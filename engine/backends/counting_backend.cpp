// CountingBackend (engine/backends/counting_backend.h): allocations as addresses
// and byte counts, ops as the memory the target would keep for them.
#include "engine/backends/counting_backend.h"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace nst {

std::size_t CountingBackend::Held::total() const {
    std::size_t bytes = weight_cache + scratch;
    for (std::size_t b : by_use) bytes += b;
    return bytes;
}

void CountingBackend::reset_peak() {
    peak_ = held_.total();
    at_peak_ = held_;
}

void CountingBackend::update_peak() {
    const std::size_t total = held_.total();
    if (total > peak_) {
        peak_ = total;
        at_peak_ = held_;
    }
}

float* CountingBackend::allocate(std::size_t count) {
    if (count == 0) return nullptr;
    // Addresses only, 64-byte aligned and never reused, so a released weight
    // buffer's cache cannot be mistaken for a later buffer's.
    float* data = reinterpret_cast<float*>(next_address_);
    const std::size_t bytes = count * sizeof(float);
    next_address_ += ((bytes + 63) / 64) * 64 + 64;
    const MemoryUse use = current_memory_use();
    blocks_[data] = {bytes, use};
    held_.by_use[std::size_t(use)] += bytes;
    update_peak();
    return data;
}

void CountingBackend::release(float* data) noexcept {
    const auto block = blocks_.find(data);
    if (block == blocks_.end()) return;
    held_.by_use[std::size_t(block->second.use)] -= block->second.bytes;
    blocks_.erase(block);
    written(data);
}

void CountingBackend::written(const float* data) {
    const auto cached = weight_cache_.find(data);
    if (cached == weight_cache_.end()) return;
    held_.weight_cache -= cached->second;
    weight_cache_.erase(cached);
}

void CountingBackend::upload(float* dst, const float* host_src, std::size_t count) {
    (void)host_src, (void)count;
    written(dst);
}

void CountingBackend::download(float* host_dst, const float* src, std::size_t count) {
    (void)src;
    count_host_wait();
    if (count > 0) std::memset(host_dst, 0, count * sizeof(float));
}

void CountingBackend::queue_scalar_read(const double* src, std::size_t count, double* host_dst) {
    (void)src;
    std::fill(host_dst, host_dst + count, 0.0);
}

void CountingBackend::hold_own(const OwnMemory& own, const float* weight) {
    // Each scratch is one buffer grown to the largest need; a weight buffer's
    // cached data is replaced when an op needs it in another form.
    if (own.scratch > scratch_ || own.loss_scratch > loss_scratch_) {
        scratch_ = std::max(scratch_, own.scratch);
        loss_scratch_ = std::max(loss_scratch_, own.loss_scratch);
        held_.scratch = scratch_ + loss_scratch_;
    }
    if (own.weight_cache > 0 && weight) {
        std::size_t& cached = weight_cache_[weight];
        held_.weight_cache += own.weight_cache - cached;
        cached = own.weight_cache;
    }
    update_peak();
}

void CountingBackend::see_tensor(std::size_t elements, const float* weight, int height, int width) {
    if (elements > largest_.elements) largest_ = {elements, weight, height, width};
}

void CountingBackend::observe(const char* op, const ConvShape& shape, const float* in, const float* weight,
                              float* out) {
    (void)in, (void)out;
    const bool backward = std::string_view(op) == "conv3x3_backward_data";
    see_tensor(std::size_t(std::max(shape.in_channels, shape.out_channels)) * shape.height * shape.width,
               weight, shape.height, shape.width);
    hold_own(target_.planned_conv_memory(shape, backward), weight);
}

void CountingBackend::observe(const char* op, const Preprocessing& pre, std::size_t plane, const float* in,
                              float* out) {
    (void)op, (void)pre, (void)in, (void)out;
    see_tensor(3 * plane, nullptr, 0, 0);
}

void CountingBackend::observe(const char* op, int n, std::size_t m, const float* features, const float* gram_in,
                              const float* target, float weight, float* grad, double* loss) {
    (void)op, (void)m, (void)features, (void)gram_in, (void)target, (void)weight, (void)grad, (void)loss;
    hold_own(target_.planned_style_loss_memory(n), nullptr);
}

void CountingBackend::observe(const char* op, std::size_t count, const float* src, float* dst) {
    (void)count, (void)src;
    if (std::string_view(op) == "copy") written(dst);  // relu_backward has the same arguments
}

void CountingBackend::observe(const char* op, std::size_t count, float value, float* x) {
    (void)count, (void)value;
    if (std::string_view(op) == "fill") written(x);  // and scale
}

#define NST_COUNTING_OP(phase, name, parameters, arguments) \
    void CountingBackend::name parameters { observe(#name, NST_UNPAREN arguments); }
#define NST_UNPAREN(...) __VA_ARGS__
NST_BACKEND_OPS(NST_COUNTING_OP)
#undef NST_UNPAREN
#undef NST_COUNTING_OP

}  // namespace nst
