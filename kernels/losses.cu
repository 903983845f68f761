// Content, style (G − A) and total-variation losses (formulas in losses.cuh).
// Each kernel is the first pass of a deterministic reduction whose term also
// writes that element's gradient: every element is visited exactly once.
#include "kernels/losses.cuh"
#include "kernels/reduce_kernels.cuh"

namespace nst::kernels {

// ---- kernels (reduction terms) --------------------------------------------------------

// F, P, dF (count)
struct ContentLossTerm {
    const float* features;
    const float* target;
    float weight;
    float* grad;
    __device__ double operator()(std::size_t i) const {
        const float diff = features[i] - target[i];
        grad[i] += weight * diff;
        return 0.5 * double(diff) * double(diff);
    }
};

// G, A, D (N·N)
struct StyleDifferenceTerm {
    const float* gram;
    const float* target;
    float* difference;
    __device__ double operator()(std::size_t i) const {
        const float diff = gram[i] - target[i];
        difference[i] = diff;
        return double(diff) * double(diff);
    }
};

// x, dx (C, H, W); term i = the two differences to the right of and below element i.
struct TvLossTerm {
    int height, width;
    const float* x;
    float weight;
    float* grad;
    __device__ double operator()(std::size_t e) const {
        const int col = int(e % width), row = int((e / width) % height);
        const float centre = x[e];
        double loss = 0.0;
        float g = 0.0f;  // ∂L/∂x_e
        if (col + 1 < width) {
            const float right = x[e + 1] - centre;
            loss += double(right) * double(right);
            g -= 2.0f * right;
        }
        if (row + 1 < height) {
            const float down = x[e + width] - centre;
            loss += double(down) * double(down);
            g -= 2.0f * down;
        }
        if (col > 0) g += 2.0f * (centre - x[e - 1]);
        if (row > 0) g += 2.0f * (centre - x[e - width]);
        grad[e] += weight * g;
        return loss;
    }
};

// ---- launchers ----------------------------------------------------------------------

void content_loss(std::size_t count, const float* features, const float* target, float weight,
                  float* grad, const ReductionScratch& scratch, cudaStream_t stream) {
    NVTX_RANGE("content_loss");
    NST_ASSERT(features != nullptr && target != nullptr && grad != nullptr);
    deterministic_sum(count, ContentLossTerm{features, target, weight, grad}, scratch, stream);
}

void style_difference(int n, const float* gram, const float* target, float* difference,
                      const ReductionScratch& scratch, cudaStream_t stream) {
    NVTX_RANGE("style_difference");
    NST_ASSERT(n > 0 && gram != nullptr && target != nullptr && difference != nullptr);
    deterministic_sum(std::size_t(n) * n, StyleDifferenceTerm{gram, target, difference}, scratch,
                      stream);
}

void tv_loss(int channels, int height, int width, const float* x, float weight, float* grad,
             const ReductionScratch& scratch, cudaStream_t stream) {
    NVTX_RANGE("tv_loss");
    NST_ASSERT(channels > 0 && height > 0 && width > 0 && x != nullptr && grad != nullptr);
    deterministic_sum(std::size_t(channels) * height * width,
                      TvLossTerm{height, width, x, weight, grad}, scratch, stream);
}

}  // namespace nst::kernels
