// The temporal loss of video frames (engine/objective/temporal_term.h for the formulas).
#include "engine/objective/temporal_term.h"

#include <cmath>
#include <string>

#include "engine/base/error.h"
#include "engine/base/memory_use.h"
#include "engine/base/nvtx.h"

namespace nst {

namespace {

// Throws InputError naming the first thing wrong with target k.
void check_target(const TemporalTarget& target, std::size_t k, int width, int height) {
    const std::string name = "temporal target " + std::to_string(k);
    const Image& warped = target.warped;
    if (warped.width != width || warped.height != height ||
        warped.pixels.size() != 3 * std::size_t(width) * height)
        throw InputError(name + ": the warped frame is " + std::to_string(warped.width) + "x" +
                         std::to_string(warped.height) + ", expected the output's " +
                         std::to_string(width) + "x" + std::to_string(height));
    const std::size_t plane = std::size_t(width) * height;
    if (target.weights.size() != plane)
        throw InputError(name + ": " + std::to_string(target.weights.size()) +
                         " consistency weights, expected one per pixel (" + std::to_string(plane) + ")");
    for (std::size_t i = 0; i < warped.pixels.size(); ++i)
        if (!std::isfinite(warped.pixels[i]))
            throw InputError(name + ": the warped frame has a non-finite value at channel " +
                             std::to_string(i / plane) + ", pixel (" + std::to_string(i % plane % width) +
                             ", " + std::to_string(i % plane / width) + ")");
    for (std::size_t p = 0; p < plane; ++p)
        if (!(target.weights[p] >= 0.0f && target.weights[p] <= 1.0f))  // NaN fails too
            throw InputError(name + ": consistency weight " + std::to_string(target.weights[p]) +
                             " at pixel (" + std::to_string(p % width) + ", " + std::to_string(p / width) +
                             ") is not in [0, 1]");
}

}  // namespace

std::unique_ptr<LossTerm> make_temporal_term(LossContext& context) {
    return std::make_unique<TemporalTerm>(context);
}

void TemporalTerm::set_targets(const std::vector<TemporalTarget>& targets) {
    const int width = context_.width, height = context_.height;
    // All checked before any is taken: a bad target leaves the term as it was.
    for (std::size_t k = 0; k < targets.size(); ++k) check_target(targets[k], k, width, height);
    const std::size_t plane = std::size_t(width) * height;
    Backend& backend = context_.backend;
    MemoryUseScope use(MemoryUse::loss_targets);
    targets_.resize(targets.size());
    for (std::size_t k = 0; k < targets.size(); ++k) {
        Target& held = targets_[k];
        if (held.warped.empty()) held.warped = Buffer(backend, 3 * plane);
        if (held.weights.empty()) held.weights = Buffer(backend, plane);
        backend.upload(held.warped.data(), targets[k].warped.pixels.data(), 3 * plane);
        backend.upload(held.weights.data(), targets[k].weights.data(), plane);
    }
}

std::size_t TemporalTerm::held_bytes() const {
    std::size_t bytes = 0;
    for (const Target& target : targets_) bytes += bytes_of(target.warped) + bytes_of(target.weights);
    return bytes;
}

void TemporalTerm::add_image_gradient(const float* x, float* grad) {
    if (targets_.empty()) return;
    NVTX_RANGE("temporal loss");
    const std::size_t plane = std::size_t(context_.width) * context_.height;
    const float weight = static_cast<float>(context_.config.temporal_weight);
    for (std::size_t k = 0; k < targets_.size(); ++k)
        context_.backend.temporal_loss_into(3, plane, x, targets_[k].warped.data(),
                                            targets_[k].weights.data(), weight, grad, slot(k));
}

double TemporalTerm::read_value() {
    double value = 0.0;
    for (std::size_t k = 0; k < targets_.size(); ++k) value += host_slot(k);
    return value;
}

}  // namespace nst
