// The backend's compute ops, listed once. engine/backends/backend.h declares them pure
// virtual from this list, the CPU and CUDA backends declare their overrides from
// it, and nst-bench's timing decorator forwards and times them from it, so an
// op is added or changed in one place (and the compiler finds every backend
// that lacks it). Memory and scalar-transfer methods (allocate, upload,
// synchronize, ...) are not in the list: backends differ in them.
//
// Each entry: X(phase, name, (parameters), (arguments)); every op returns void.
// phase groups the ops in nst-bench's breakdown: forward, backward, loss, vector.
// Shapes: (C, H, W) = channels × height × width, dense, row-major, one image.
// Formulas of the per-element ops: the kernels/*.h headers their arithmetic
// comes from (activation.h, pooling.h, preprocess.h, losses.h, reductions.h,
// vector_ops.h, masks.h, window.h, warp.h, half.h).
#pragma once

#include <cstdint>

// clang-format off
#define NST_BACKEND_OPS(X)                                                                         \
    /* ---- network layers ---- */                                                               \
    /* x (C_in, H, W), weight (C_out, C_in, 3, 3) -> y (C_out, H, W): zero padding 1,           \
       cross-correlation, no bias. A backend may keep data derived from a weight buffer (the    \
       CPU's Winograd filters): weights change only through upload, copy or fill, or by         \
       releasing the buffer. */                                                                  \
    X(forward, conv3x3_forward,                                                                  \
      (const ConvShape& shape, const float* x, const float* weight, float* y),                  \
      (shape, x, weight, y))                                                                     \
    /* dy (C_out, H, W), weight (C_out, C_in, 3, 3) -> dx (C_in, H, W) = ∂(Σ dy·y)/∂x,         \
       overwritten */                                                                            \
    X(backward, conv3x3_backward_data,                                                           \
      (const ConvShape& shape, const float* dy, const float* weight, float* dx),                \
      (shape, dy, weight, dx))                                                                   \
    /* y (C, plane) in place: y = max(0, y + bias[c]), NaN kept; bias (C) */                    \
    X(forward, bias_relu_forward,                                                                \
      (int channels, std::size_t plane, const float* bias, float* y),                           \
      (channels, plane, bias, y))                                                                \
    /* y, dy (count): dy = 0 where y <= 0 (y is the post-ReLU activation) */                    \
    X(backward, relu_backward, (std::size_t count, const float* y, float* dy), (count, y, dy))  \
    /* x (C, H, W) -> y (C, H/2, W/2): 2×2, stride 2, floor; max pooling picks the first       \
       maximum in row-major window order */                                                      \
    X(forward, pool_forward,                                                                     \
      (PoolMode mode, int channels, int height, int width, const float* x, float* y),           \
      (mode, channels, height, width, x, y))                                                     \
    /* x (C, H, W), dy (C, H/2, W/2) -> dx (C, H, W), overwritten; a trailing odd row or       \
       column gets zero gradient */                                                              \
    X(backward, pool_backward,                                                                   \
      (PoolMode mode, int channels, int height, int width, const float* x, const float* dy,     \
       float* dx),                                                                               \
      (mode, channels, height, width, x, dy, dx))                                                \
    /* ---- preprocessing ---- */                                                                \
    /* x (3, H, W) in [0,1] -> out (3, H, W) = p(x) (DESIGN.md) */                              \
    X(forward, preprocess,                                                                       \
      (const Preprocessing& pre, std::size_t plane, const float* x, float* out),                \
      (pre, plane, x, out))                                                                      \
    /* dout (3, H, W) = ∂L/∂p(x) -> dx (3, H, W) += ∂L/∂x */                                   \
    X(backward, preprocess_backward,                                                             \
      (const Preprocessing& pre, std::size_t plane, const float* dout, float* dx),              \
      (pre, plane, dout, dx))                                                                    \
    /* ---- Gram matrices and losses: values into backend memory, gradients accumulated ---- */ \
    /* F (N, M) -> G (N, N) = F Fᵀ */                                                           \
    X(loss, gram, (int n, std::size_t m, const float* features, float* gram_out),               \
      (n, m, features, gram_out))                                                                \
    /* F, P, dF (count): *loss = ½ Σ (F − P)²; dF += weight · (F − P) */                       \
    X(loss, content_loss_into,                                                                   \
      (std::size_t count, const float* features, const float* target, float weight,             \
       float* grad, double* loss),                                                               \
      (count, features, target, weight, grad, loss))                                             \
    /* G = F Fᵀ (N, N) already computed, A (N, N) target: *loss = E = Σ (G − A)² / (4 N² M²);  \
       dF (N, M) += weight · (G − A) F / (N² M²) */                                             \
    X(loss, style_loss_into,                                                                     \
      (int n, std::size_t m, const float* features, const float* gram_in, const float* target, \
       float weight, float* grad, double* loss),                                                 \
      (n, m, features, gram_in, target, weight, grad, loss))                                     \
    /* x, dx (C, H, W): *loss = squared total variation (DESIGN.md); dx += weight · ∂L_tv/∂x */ \
    X(loss, tv_loss_into,                                                                        \
      (int channels, int height, int width, const float* x, float weight, float* grad,          \
       double* loss),                                                                            \
      (channels, height, width, x, weight, grad, loss))                                          \
    /* x, t, dx (C, plane), c (plane) broadcast over channels, D = C·plane: *loss =             \
       (1/D) Σ_{ch,p} c_p (x − t)²; dx += weight · (2/D) c_p (x − t) (the temporal loss) */    \
    X(loss, temporal_loss_into,                                                                  \
      (int channels, std::size_t plane, const float* x, const float* target,                    \
       const float* pixel_weights, float weight, float* grad, double* loss),                    \
      (channels, plane, x, target, pixel_weights, weight, grad, loss))                           \
    /* src, dst (C, H, W), flow (2, H, W) (u plane, then v): dst(c,y,x) = bilinear sample of   \
       src_c at (x + u, y + v), clamped to the frame (kernels/warp.h); dst does not overlap    \
       src */                                                                                    \
    X(loss, warp_bilinear,                                                                       \
      (int channels, int height, int width, const float* src, const float* flow, float* dst),   \
      (channels, height, width, src, flow, dst))                                                 \
    /* ---- vector ops of the optimisers; reductions into backend memory (`out`, a             \
       ScalarBuffer slot), so L-BFGS queues them without waiting ---- */                        \
    /* *out = scale · Σ x_i y_i */                                                              \
    X(vector, dot_into,                                                                          \
      (std::size_t count, const float* x, const float* y, double scale, double* out),          \
      (count, x, y, scale, out))                                                                 \
    /* *out = Σ |x_i| */                                                                        \
    X(vector, asum_into, (std::size_t count, const float* x, double* out), (count, x, out))     \
    /* *out = max_i |x_i| (0 when empty) */                                                     \
    X(vector, amax_into, (std::size_t count, const float* x, double* out), (count, x, out))     \
    /* *out = number of elements that are NaN or ±∞ */                                         \
    X(vector, non_finite_into, (std::size_t count, const float* x, double* out),               \
      (count, x, out))                                                                           \
    /* y += float(factor · (*alpha − (minus ? *minus : 0))) · x, coefficients in backend       \
       memory */                                                                                 \
    X(vector, axpy_from,                                                                         \
      (std::size_t count, const double* alpha, const double* minus, double factor,              \
       const float* x, float* y),                                                                \
      (count, alpha, minus, factor, x, y))                                                       \
    /* ---- 16-bit storage of vectors (the L-BFGS history; kernels/half.h), arithmetic in      \
       float and double ---- */                                                                  \
    /* x (count) -> packed (count): packed_i = format(x_i · c), round to nearest even,          \
       c = history_half_scale(format, *amax) (1 for bf16, where amax may be null) */            \
    X(vector, pack_half,                                                                         \
      (std::size_t count, HalfFormat format, const float* x, const double* amax,                \
       std::uint16_t* packed),                                                                   \
      (count, format, x, amax, packed))                                                          \
    /* *out = scale · Σ unpack(a_i) x_i */                                                      \
    X(vector, dot_half_into,                                                                     \
      (std::size_t count, HalfFormat format, const std::uint16_t* a, const float* x,            \
       double scale, double* out),                                                               \
      (count, format, a, x, scale, out))                                                         \
    /* *out = scale · Σ unpack(a_i) unpack(b_i) */                                              \
    X(vector, dot_half_pair_into,                                                                \
      (std::size_t count, HalfFormat format, const std::uint16_t* a, const std::uint16_t* b,    \
       double scale, double* out),                                                               \
      (count, format, a, b, scale, out))                                                         \
    /* y += float(factor · (*alpha − (minus ? *minus : 0))) · unpack(x_i), as axpy_from */      \
    X(vector, axpy_from_half,                                                                    \
      (std::size_t count, const double* alpha, const double* minus, double factor,              \
       HalfFormat format, const std::uint16_t* x, float* y),                                     \
      (count, alpha, minus, factor, format, x, y))                                               \
    /* y += αx */                                                                               \
    X(vector, axpy, (std::size_t count, float alpha, const float* x, float* y),                 \
      (count, alpha, x, y))                                                                      \
    /* x *= α */                                                                                \
    X(vector, scale, (std::size_t count, float alpha, float* x), (count, alpha, x))             \
    X(vector, copy, (std::size_t count, const float* src, float* dst), (count, src, dst))       \
    X(vector, fill, (std::size_t count, float value, float* x), (count, value, x))              \
    /* Adam, elementwise, bias-corrected with step >= 1: m = β1 m + (1−β1) g;                  \
       v = β2 v + (1−β2) g²; x −= lr · (m / (1−β1^step)) / (sqrt(v / (1−β2^step)) + ε) */     \
    X(vector, adam_update,                                                                       \
      (std::size_t count, float lr, float beta1, float beta2, float eps, int step,              \
       const float* grad, float* m, float* v, float* x),                                        \
      (count, lr, beta1, beta2, eps, step, grad, m, v, x))                                       \
    /* x = min(hi, max(lo, x)) elementwise */                                                   \
    X(vector, clamp, (std::size_t count, float lo, float hi, float* x), (count, lo, hi, x))     \
    /* ---- spatial control (guided Gram matrices, masked content) ---- */                       \
    /* x, y (C, plane), mask (plane): y[c,p] = x[c,p] · mask[p]; y may be x. Its own          \
       backward: ∂(Σ dy·y)/∂x = dy ⊙ mask, the same op applied to dy. */                       \
    X(loss, mask_channels,                                                                       \
      (int channels, std::size_t plane, const float* x, const float* mask, float* y),           \
      (channels, plane, x, mask, y))                                                             \
    /* ---- tiled evaluation ---- */                                                             \
    /* src (C, src_height, src_width) -> dst (C, dst_height, dst_width): a rows × cols window   \
       of every channel (WindowCopy, engine/base/types.h); src and dst do not overlap */        \
    X(vector, copy_window, (const WindowCopy& window, const float* src, float* dst),            \
      (window, src, dst))
// clang-format on

// Declarations generated from the list, for engine/backends/backend.h and the backends.
#define NST_BACKEND_PURE_OP(phase, name, parameters, arguments) virtual void name parameters = 0;
#define NST_BACKEND_OVERRIDE_OP(phase, name, parameters, arguments) void name parameters override;
