// Content, style (G − A), total-variation and temporal losses. Each kernel is the first
// pass of a deterministic reduction whose term is the shared per-element
// function of kernels/losses.h, which also writes that element's gradient:
// every element is visited exactly once.
#include "kernels/losses.cuh"
#include "kernels/losses.h"
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
        return content_term(features[i], target[i], weight, grad[i]);
    }
};

// G, A, D (N·N)
struct StyleDifferenceTerm {
    const float* gram;
    const float* target;
    float* difference;
    __device__ double operator()(std::size_t i) const {
        return style_difference_term(gram[i], target[i], difference[i]);
    }
};

// x, dx (C, H, W)
struct TvLossTerm {
    int height, width;
    const float* x;
    float weight;
    float* grad;
    __device__ double operator()(std::size_t e) const {
        const int col = int(e % width), row = int((e / width) % height);
        return tv_term(x, e, row, col, height, width, weight, grad);
    }
};

// x, t, dx (C, plane), c (plane)
struct TemporalLossTerm {
    std::size_t plane;
    const float* x;
    const float* target;
    const float* pixel_weights;
    float coefficient;
    float* grad;
    __device__ double operator()(std::size_t i) const {
        return temporal_term(x[i], target[i], pixel_weights[i % plane], coefficient, grad[i]);
    }
};

// ---- launchers ----------------------------------------------------------------------

void content_loss(std::size_t count, const float* features, const float* target, float weight,
                  float* grad, const ReductionScratch& scratch, double* out, cudaStream_t stream) {
    NVTX_RANGE("content_loss");
    NST_ASSERT(features != nullptr && target != nullptr && grad != nullptr);
    deterministic_sum(count, ContentLossTerm{features, target, weight, grad}, scratch, out, 1.0,
                      stream);
}

void style_difference(int n, const float* gram, const float* target, float* difference,
                      const ReductionScratch& scratch, double scale, double* out,
                      cudaStream_t stream) {
    NVTX_RANGE("style_difference");
    NST_ASSERT(n > 0 && gram != nullptr && target != nullptr && difference != nullptr);
    deterministic_sum(std::size_t(n) * n, StyleDifferenceTerm{gram, target, difference}, scratch,
                      out, scale, stream);
}

void tv_loss(int channels, int height, int width, const float* x, float weight, float* grad,
             const ReductionScratch& scratch, double* out, cudaStream_t stream) {
    NVTX_RANGE("tv_loss");
    NST_ASSERT(channels > 0 && height > 0 && width > 0 && x != nullptr && grad != nullptr);
    deterministic_sum(std::size_t(channels) * height * width,
                      TvLossTerm{height, width, x, weight, grad}, scratch, out, 1.0, stream);
}

void temporal_loss(int channels, std::size_t plane, const float* x, const float* target,
                   const float* pixel_weights, float coefficient, float* grad,
                   const ReductionScratch& scratch, double scale, double* out,
                   cudaStream_t stream) {
    NVTX_RANGE("temporal_loss");
    NST_ASSERT(channels > 0 && plane > 0 && x != nullptr && target != nullptr &&
               pixel_weights != nullptr && grad != nullptr);
    deterministic_sum(std::size_t(channels) * plane,
                      TemporalLossTerm{plane, x, target, pixel_weights, coefficient, grad}, scratch,
                      out, scale, stream);
}

}  // namespace nst::kernels
