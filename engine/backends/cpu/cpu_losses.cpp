// CpuBackend: Gram matrices and the loss terms with their gradients.
//
//   gram:     G (N, N) = F Fᵀ,  F (N, M)
//   content, style (G − A), TV and temporal: the per-element terms of kernels/losses.h,
//   which the CUDA kernels run too; the style gradient w · (G − A) F / (N² M²)
//   is an OpenBLAS SGEMM here and a cuBLAS one there.
// Loss values are summed in double with a fixed chunking (cpu_reduce.h), so they do
// not depend on the thread count; gradients are accumulated, never overwritten.
#include <cblas.h>

#include <algorithm>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cpu/cpu_reduce.h"
#include "engine/base/error.h"
#include "kernels/losses.h"

namespace nst {

void CpuBackend::gram(int n, std::size_t m, const float* features, float* gram_out) {
    NST_ASSERT(n > 0 && m > 0 && m <= 0x7fffffffu);
    const int mi = static_cast<int>(m);
    // OpenBLAS runs single-threaded (cpu_memory_vector.cpp), so the upper triangle
    // is split into row blocks, one task each: SYRK for the diagonal block, GEMM
    // for the rest of its rows. The blocking depends only on N, so the result
    // does not depend on the thread count; the lower triangle is mirrored, so G
    // is exactly symmetric.
    const int block = n <= 128 ? 16 : 64;
    const int blocks = (n + block - 1) / block;
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < blocks; ++b) {
        const int r0 = b * block, r1 = std::min(n, r0 + block);
        const float* rows = features + std::size_t(r0) * m;
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, r1 - r0, mi, 1.0f, rows, mi, 0.0f,
                    gram_out + std::size_t(r0) * n + r0, n);
        if (r1 < n)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, n - r1, mi, 1.0f, rows,
                        mi, features + std::size_t(r1) * m, mi, 0.0f,
                        gram_out + std::size_t(r0) * n + r1, n);
    }
#pragma omp parallel for schedule(static)
    for (int i = 1; i < n; ++i)
        for (int j = 0; j < i; ++j)
            gram_out[std::size_t(i) * n + j] = gram_out[std::size_t(j) * n + i];
}

void CpuBackend::content_loss_into(std::size_t count, const float* features,
                                   const float* target, float weight, float* grad,
                                   double* loss) {
    *loss = cpu::chunked_sum(count, [&](std::size_t i) {
        return kernels::content_term(features[i], target[i], weight, grad[i]);
    });
}

void CpuBackend::style_loss_into(int n, std::size_t m, const float* features,
                                 const float* gram_in, const float* target, float weight,
                                 float* grad, double* loss) {
    NST_ASSERT(n > 0 && m > 0 && m <= 0x7fffffffu);
    const std::size_t entries = std::size_t(n) * n;
    float* difference = column_scratch(entries);  // (N, N) = G − A
    const double sum_sq = cpu::chunked_sum(entries, [&](std::size_t i) {
        return kernels::style_difference_term(gram_in[i], target[i], difference[i]);
    });
    const double nm = double(n) * double(m);
    const float alpha = static_cast<float>(double(weight) / (nm * nm));
    const int mi = static_cast<int>(m);
    // dF (N, M) += α (G − A) F, one single-threaded GEMM per fixed slice of columns.
    constexpr int kSlice = 2048;
    const int slices = (mi + kSlice - 1) / kSlice;
#pragma omp parallel for schedule(static)
    for (int s = 0; s < slices; ++s) {
        const int c0 = s * kSlice, width = std::min(kSlice, mi - c0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, width, n, alpha, difference, n,
                    features + c0, mi, 1.0f, grad + c0, mi);
    }
    *loss = sum_sq / (4.0 * nm * nm);
}

void CpuBackend::tv_loss_into(int channels, int height, int width, const float* x, float weight,
                              float* grad, double* loss) {
    NST_ASSERT(channels > 0 && height > 0 && width > 0);
    const std::size_t plane = std::size_t(height) * width;
    *loss = cpu::chunked_sum(std::size_t(channels) * plane, [&](std::size_t index) {
        const std::size_t within = index % plane;
        return kernels::tv_term(x, index, static_cast<int>(within / width),
                                static_cast<int>(within % width), height, width, weight, grad);
    });
}

void CpuBackend::temporal_loss_into(int channels, std::size_t plane, const float* x,
                                    const float* target, const float* pixel_weights, float weight,
                                    float* grad, double* loss) {
    NST_ASSERT(channels > 0 && plane > 0);
    const std::size_t count = std::size_t(channels) * plane;
    const double inverse_d = 1.0 / double(count);
    // 2w/D rounded to float once, here and in the CUDA backend alike.
    const float coefficient = static_cast<float>(2.0 * double(weight) * inverse_d);
    *loss = inverse_d * cpu::chunked_sum(count, [&](std::size_t i) {
        return kernels::temporal_term(x[i], target[i], pixel_weights[i % plane], coefficient, grad[i]);
    });
}

}  // namespace nst
