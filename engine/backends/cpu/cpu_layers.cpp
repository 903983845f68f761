// CpuBackend: bias + ReLU, 2×2 pooling and the input preprocessing: loops over
// the per-element functions that the CUDA kernels call too, so the two backends
// run the same arithmetic. Formulas: kernels/activation.h, kernels/pooling.h,
// kernels/preprocess.h.
#include <cstring>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/base/error.h"
#include "kernels/activation.h"
#include "kernels/pooling.h"
#include "kernels/preprocess.h"

namespace nst {

void CpuBackend::bias_relu_forward(int channels, std::size_t plane, const float* bias,
                                   float* y) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < channels; ++c) {
        float* row = y + std::size_t(c) * plane;
        const float b = bias[c];
        // relu keeps a NaN, so divergence stays visible.
        for (std::size_t p = 0; p < plane; ++p) row[p] = kernels::bias_relu(row[p], b);
    }
}

void CpuBackend::relu_backward(std::size_t count, const float* y, float* dy) {
#pragma omp parallel for schedule(static)
    for (std::size_t i = 0; i < count; ++i) dy[i] = kernels::relu_backward_value(y[i], dy[i]);
}

void CpuBackend::pool_forward(PoolMode mode, int channels, int height, int width, const float* x,
                              float* y) {
    NST_ASSERT(channels > 0 && height > 0 && width > 0);
    const int out_h = height / 2, out_w = width / 2;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < channels; ++c)
        for (int i = 0; i < out_h; ++i) {
            const float* top = x + (std::size_t(c) * height + 2 * i) * width;
            const float* bottom = top + width;
            float* out = y + (std::size_t(c) * out_h + i) * out_w;
            if (mode == PoolMode::average) {
                for (int j = 0; j < out_w; ++j)
                    out[j] = kernels::pool_average(top[2 * j], top[2 * j + 1], bottom[2 * j],
                                                   bottom[2 * j + 1]);
            } else {
                for (int j = 0; j < out_w; ++j)
                    out[j] = kernels::pool_max(top[2 * j], top[2 * j + 1], bottom[2 * j],
                                               bottom[2 * j + 1]);
            }
        }
}

void CpuBackend::pool_backward(PoolMode mode, int channels, int height, int width,
                               const float* x, const float* dy, float* dx) {
    NST_ASSERT(channels > 0 && height > 0 && width > 0);
    const int out_h = height / 2, out_w = width / 2;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < channels; ++c) {
        float* plane = dx + std::size_t(c) * height * width;
        // The odd trailing row and column get no gradient.
        if (height % 2) std::memset(plane + std::size_t(height - 1) * width, 0, sizeof(float) * width);
        for (int i = 0; i < out_h; ++i) {
            const float* top = x + (std::size_t(c) * height + 2 * i) * width;
            const float* bottom = top + width;
            const float* grad = dy + (std::size_t(c) * out_h + i) * out_w;
            float* dtop = plane + std::size_t(2 * i) * width;
            float* dbottom = dtop + width;
            if (mode == PoolMode::average) {
                for (int j = 0; j < out_w; ++j) {
                    const float g = kernels::pool_average_grad(grad[j]);
                    dtop[2 * j] = g;
                    dtop[2 * j + 1] = g;
                    dbottom[2 * j] = g;
                    dbottom[2 * j + 1] = g;
                }
            } else {
                for (int j = 0; j < out_w; ++j) {
                    const int first = kernels::pool_first_max(top[2 * j], top[2 * j + 1],
                                                              bottom[2 * j], bottom[2 * j + 1]);
                    dtop[2 * j] = kernels::pool_max_grad(first, 0, grad[j]);
                    dtop[2 * j + 1] = kernels::pool_max_grad(first, 1, grad[j]);
                    dbottom[2 * j] = kernels::pool_max_grad(first, 2, grad[j]);
                    dbottom[2 * j + 1] = kernels::pool_max_grad(first, 3, grad[j]);
                }
            }
            if (width % 2) {
                dtop[width - 1] = 0.0f;
                dbottom[width - 1] = 0.0f;
            }
        }
    }
}

void CpuBackend::preprocess(const Preprocessing& pre, std::size_t plane, const float* x,
                            float* out) {
    for (int c = 0; c < 3; ++c) {
        const float* source = x + std::size_t(kernels::preprocess_source_channel(pre.bgr, c)) * plane;
        float* dst = out + std::size_t(c) * plane;
        const float mean = pre.mean[c], std_dev = pre.std[c], s = pre.pixel_scale;
#pragma omp parallel for schedule(static)
        for (std::size_t p = 0; p < plane; ++p)
            dst[p] = kernels::preprocess_value(source[p], s, mean, std_dev);
    }
}

void CpuBackend::preprocess_backward(const Preprocessing& pre, std::size_t plane,
                                     const float* dout, float* dx) {
    for (int c = 0; c < 3; ++c) {
        const float* grad = dout + std::size_t(c) * plane;
        float* dst = dx + std::size_t(kernels::preprocess_source_channel(pre.bgr, c)) * plane;
        const float factor = kernels::preprocess_grad_factor(pre.pixel_scale, pre.std[c]);
#pragma omp parallel for schedule(static)
        for (std::size_t p = 0; p < plane; ++p)
            dst[p] = kernels::preprocess_backward_value(dst[p], grad[p], factor);
    }
}

}  // namespace nst
