// The consistency weights of the temporal loss (consistency.h): the
// forward-backward check, motion boundaries and points leaving the frame, each
// a 0, and the long-term weights built from them.
//
// Decisions at the frame's edge:
// - p + ŵ(p) counts as inside frame i − j on [0, W−1] × [0, H−1], the closed
//   range of pixel centres (kernels::warp_source_inside): a point beyond the last
//   centre would be sampled from the repeated edge, which is not what is there.
// - w̃ is sampled with the warp's own bilinear arithmetic (kernels::bilinear_sample),
//   so the weights and the warped frame they judge agree on every pixel.
// - The gradient in the motion-boundary test is one-sided on the frame's first and
//   last row and column (a central difference would need a pixel that does not
//   exist); a frame one pixel wide has a zero gradient along that axis.
#include "engine/video/consistency.h"

#include "engine/base/error.h"
#include "kernels/warp.h"

#include <algorithm>
#include <string>

namespace nst {

namespace {

// ∂f/∂x at (y, x) of plane (H, W): central inside, one-sided on the border.
float gradient_x(const float* plane, int width, int y, int x) {
    const float* row = plane + std::size_t(y) * width;
    if (width == 1) return 0.0f;
    if (x == 0) return row[1] - row[0];
    if (x == width - 1) return row[x] - row[x - 1];
    return 0.5f * (row[x + 1] - row[x - 1]);
}

float gradient_y(const float* plane, int height, int width, int y, int x) {
    const auto at = [&](int row) { return plane[std::size_t(row) * width + x]; };
    if (height == 1) return 0.0f;
    if (y == 0) return at(1) - at(0);
    if (y == height - 1) return at(y) - at(y - 1);
    return 0.5f * (at(y + 1) - at(y - 1));
}

void check_flow(const Flow& flow) {
    NST_ASSERT(flow.width > 0 && flow.height > 0 && flow.uv.size() == 2 * flow.plane());
}

}  // namespace

std::vector<float> consistency_weights(const Flow& to_earlier, const Flow& earlier_to_this) {
    check_flow(to_earlier);
    check_flow(earlier_to_this);
    if (to_earlier.width != earlier_to_this.width || to_earlier.height != earlier_to_this.height)
        throw UsageError("consistency weights: flows of different sizes (" + std::to_string(to_earlier.width) +
                         "x" + std::to_string(to_earlier.height) + " and " +
                         std::to_string(earlier_to_this.width) + "x" + std::to_string(earlier_to_this.height) + ")");
    const int width = to_earlier.width, height = to_earlier.height;
    const float* u_hat = to_earlier.uv.data();  // ŵ = (û, v̂), on frame i's grid
    const float* v_hat = u_hat + to_earlier.plane();
    const float* u = earlier_to_this.uv.data();  // w = (u, v), on frame i − j's grid
    const float* v = u + earlier_to_this.plane();

    std::vector<float> weights(to_earlier.plane(), 1.0f);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            const std::size_t p = std::size_t(y) * width + x;
            const float px = float(x) + u_hat[p], py = float(y) + v_hat[p];
            if (!kernels::warp_source_inside(px, py, height, width)) {
                weights[p] = 0.0f;
                continue;
            }
            // w̃(p) = w(p + ŵ(p)): where frame i − j's pixel goes back to; ŵ + w̃ ≈ 0
            // when the round trip returns to p.
            const float u_tilde = kernels::bilinear_sample(u, height, width, px, py);
            const float v_tilde = kernels::bilinear_sample(v, height, width, px, py);
            const float hat_squared = u_hat[p] * u_hat[p] + v_hat[p] * v_hat[p];
            const float tilde_squared = u_tilde * u_tilde + v_tilde * v_tilde;
            const float sum_u = u_tilde + u_hat[p], sum_v = v_tilde + v_hat[p];
            if (sum_u * sum_u + sum_v * sum_v > 0.01f * (tilde_squared + hat_squared) + 0.5f) {
                weights[p] = 0.0f;  // disoccluded: the round trip does not come back
                continue;
            }
            const float ux = gradient_x(u_hat, width, y, x), uy = gradient_y(u_hat, height, width, y, x);
            const float vx = gradient_x(v_hat, width, y, x), vy = gradient_y(v_hat, height, width, y, x);
            if (ux * ux + uy * uy + vx * vx + vy * vy > 0.01f * hat_squared + 0.002f)
                weights[p] = 0.0f;  // a motion boundary: the flow there is unreliable
        }
    return weights;
}

std::vector<std::vector<float>> long_term_weights(const std::vector<std::vector<float>>& short_weights) {
    std::vector<std::vector<float>> long_weights;
    if (short_weights.empty()) return long_weights;
    const std::size_t pixels = short_weights.front().size();
    for (const auto& weights : short_weights)
        if (weights.size() != pixels)
            throw UsageError("long-term weights: masks of different sizes (" + std::to_string(pixels) + " and " +
                             std::to_string(weights.size()) + " pixels)");
    // Σ_{k<j} c^(i−k,i), accumulated as j grows.
    std::vector<float> nearer(pixels, 0.0f);
    for (const auto& weights : short_weights) {
        std::vector<float> long_term(pixels);
        for (std::size_t p = 0; p < pixels; ++p) {
            long_term[p] = std::max(weights[p] - nearer[p], 0.0f);
            nearer[p] += weights[p];
        }
        long_weights.push_back(std::move(long_term));
    }
    return long_weights;
}

void zero_unknown(std::vector<float>& weights, const std::vector<bool>& unknown) {
    if (weights.size() != unknown.size())
        throw UsageError("zero_unknown: " + std::to_string(weights.size()) + " weights but " +
                         std::to_string(unknown.size()) + " pixels flagged");
    for (std::size_t p = 0; p < weights.size(); ++p)
        if (unknown[p]) weights[p] = 0.0f;
}

}  // namespace nst
