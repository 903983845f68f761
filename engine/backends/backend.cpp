// The host-returning helpers of Backend (engine/backends/backend.h): each runs one
// scalar op into a slot of its own and waits once. Not for iteration loops,
// which batch their scalars (engine/objective/objective.cpp, engine/optim/lbfgs.cpp).
#include "engine/backends/backend.h"

namespace nst {

namespace {

// Runs `op` on a fresh one-slot ScalarBuffer and returns the slot after one wait.
template <typename Op>
double read_one(Backend& backend, Op op) {
    ScalarBuffer scalar(backend, 1);
    op(scalar.slot(0));
    scalar.queue_read();
    backend.synchronize();
    return scalar.host(0);
}

}  // namespace

double Backend::content_loss(std::size_t count, const float* features, const float* target,
                             float weight, float* grad) {
    return read_one(*this, [&](double* out) {
        content_loss_into(count, features, target, weight, grad, out);
    });
}

double Backend::style_loss(int n, std::size_t m, const float* features, const float* gram_in,
                           const float* target, float weight, float* grad) {
    return read_one(*this, [&](double* out) {
        style_loss_into(n, m, features, gram_in, target, weight, grad, out);
    });
}

double Backend::tv_loss(int channels, int height, int width, const float* x, float weight,
                        float* grad) {
    return read_one(*this, [&](double* out) {
        tv_loss_into(channels, height, width, x, weight, grad, out);
    });
}

double Backend::temporal_loss(int channels, std::size_t plane, const float* x, const float* target,
                              const float* pixel_weights, float weight, float* grad) {
    return read_one(*this, [&](double* out) {
        temporal_loss_into(channels, plane, x, target, pixel_weights, weight, grad, out);
    });
}

double Backend::dot(std::size_t count, const float* x, const float* y) {
    return read_one(*this, [&](double* out) { dot_into(count, x, y, 1.0, out); });
}

double Backend::asum(std::size_t count, const float* x) {
    return read_one(*this, [&](double* out) { asum_into(count, x, out); });
}

double Backend::amax(std::size_t count, const float* x) {
    return read_one(*this, [&](double* out) { amax_into(count, x, out); });
}

bool Backend::all_finite(std::size_t count, const float* x) {
    return read_one(*this, [&](double* out) { non_finite_into(count, x, out); }) == 0.0;
}

}  // namespace nst
