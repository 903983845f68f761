// 16-bit storage of fp32 vectors (the L-BFGS history, engine/optim/lbfgs.cpp): the
// conversions and the per-element terms shared by the CPU backend
// (engine/backends/cpu/cpu_memory_vector.cpp) and the CUDA kernels (kernels/vector_ops.cu).
// Storage only: every value is widened to float (exactly) before any
// arithmetic, and sums run in double.
//
//   bf16:  1 sign, 8 exponent, 7 mantissa bits: fp32's range, 8 significant bits.
//          pack: round to nearest, ties to even, of the fp32 value; NaN stays NaN
//          (quiet), values beyond the largest bf16 (3.39e38) round to ±∞ as IEEE
//          says. No scale: the range is fp32's.
//   fp16:  1 sign, 5 exponent, 10 mantissa bits: 11 significant bits, largest
//          finite 65504, smallest normal 2^-14, subnormals down to 2^-24.
//          pack: h = fp16(x · c), one rounding (nearest, ties to even) of the
//          exact double x · c, where c = 2^k is a per-vector scale chosen from the
//          vector's max |x| (history_half_scale) so that max |x·c| ∈ [2^14, 2^15):
//          nothing overflows (the largest stored magnitude is at most 2^15 after
//          rounding, half of 65504), and elements down to max|x|·2^-28 stay normal
//          (11 significant bits); smaller ones become subnormal and then 0,
//          which is below what any dot product with the vector can resolve.
//          The stored vector stands for x̂ = h / c (exact in double: c is a power of 2).
//
//   dot_half_term:       unpack(a)·x     in double (exact: 11 × 24 bits fit in 53)
//   dot_half_pair_term:  unpack(a)·unpack(b) in double (exact)
//   axpy_from_half:      y += a · unpack(h), a = float(factor · (α − minus)) as
//                        axpy_from (kernels/vector_ops.h): the caller folds 1/c
//                        into factor.
//
// Formats are given as raw bits in std::uint16_t; the conversions are integer
// manipulations, so host and device give the same bits.
#pragma once

#include <cstdint>
#include <cstring>

#include "engine/base/types.h"
#include "kernels/host_device.h"

namespace nst::kernels {

NST_HD std::uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(x);
#else
    std::uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
#endif
}

NST_HD float bits_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
#endif
}

NST_HD std::uint64_t double_bits(double x) {
#if defined(__CUDA_ARCH__)
    return static_cast<std::uint64_t>(__double_as_longlong(x));
#else
    std::uint64_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
#endif
}

NST_HD double bits_double(std::uint64_t u) {
#if defined(__CUDA_ARCH__)
    return __longlong_as_double(static_cast<long long>(u));
#else
    double x;
    std::memcpy(&x, &u, sizeof x);
    return x;
#endif
}

// fp32 -> bf16, round to nearest, ties to even: add 0x7FFF plus the lowest kept
// bit, then truncate. The carry runs into the exponent as it should (and from
// the largest finite values into ∞). NaN keeps its sign and becomes quiet.
NST_HD std::uint16_t float_to_bf16(float x) {
    const std::uint32_t u = float_bits(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
    return static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

NST_HD float bf16_to_float(std::uint16_t h) { return bits_float(std::uint32_t(h) << 16); }

// double -> fp16, round to nearest, ties to even, in one rounding. With v =
// m·2^(e−52) (m the 53-bit significand), the kept part is m >> shift where
// shift = 42 for normal results (e ≥ −14: 11 bits kept) and 28 − e for
// subnormal ones (multiples of 2^-24); the remainder decides the rounding. The
// bits of a normal result are ((e + 14) << 10) + q, q ∈ [2^10, 2^11]: the
// implicit bit of q adds the exponent's last 1, and q = 2^11 after rounding
// carries into the exponent. |v| ≥ 65520 (65504 plus half its ulp, a tie that
// goes to the even ∞) gives ±∞; |v| ≤ 2^-25 gives ±0.
NST_HD std::uint16_t double_to_fp16(double v) {
    std::uint64_t u = double_bits(v);
    const std::uint16_t sign = static_cast<std::uint16_t>((u >> 48) & 0x8000u);
    u &= 0x7FFFFFFFFFFFFFFFull;
    if (u > 0x7FF0000000000000ull) return static_cast<std::uint16_t>(sign | 0x7E00u);  // NaN
    const int e = int(u >> 52) - 1023;  // −1023 for 0 and double subnormals (all → 0 here)
    if (e >= 16) return static_cast<std::uint16_t>(sign | 0x7C00u);  // includes ∞
    if (e < -25) return sign;
    const std::uint64_t m = (u & 0x000FFFFFFFFFFFFFull) | 0x0010000000000000ull;
    const int shift = e >= -14 ? 42 : 28 - e;  // 42 … 53
    std::uint64_t q = m >> shift;
    const std::uint64_t rest = m & ((std::uint64_t(1) << shift) - 1);
    const std::uint64_t half = std::uint64_t(1) << (shift - 1);
    if (rest > half || (rest == half && (q & 1u))) ++q;
    const std::uint64_t bits = e >= -14 ? (std::uint64_t(e + 14) << 10) + q : q;
    return static_cast<std::uint16_t>(sign | (bits >= 0x7C00u ? 0x7C00u : bits));
}

// fp16 -> float, exact (every fp16 value is a float).
NST_HD float fp16_to_float(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1Fu, fraction = h & 0x3FFu;
    if (exponent == 0) {  // zero or subnormal: fraction · 2^-24, exact in float
        const float magnitude = float(fraction) * 5.9604644775390625e-8f;
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 31) return bits_float(sign | 0x7F800000u | (fraction << 13));
    return bits_float(sign | ((exponent + 112u) << 23) | (fraction << 13));
}

// The per-vector scale c of a packed vector from its max |x_i| (kernels/half.h's
// header): 1 for bf16; for fp16 2^(14 − ⌊log2 amax⌋), so amax·c ∈ [2^14, 2^15);
// 1 when amax is 0 or not finite (the vector then holds no information, or
// packs to non-finite values that make its curvature non-finite and the pair
// refused). ⌊log2 amax⌋ is read from the double's exponent field, so host and
// device agree; amax comes from a float vector, so it is a normal double and
// k ∈ [−113, 163].
NST_HD double history_half_scale(HalfFormat format, double amax) {
    if (format == HalfFormat::bf16) return 1.0;
    const std::uint64_t u = double_bits(amax) & 0x7FFFFFFFFFFFFFFFull;
    const int biased = int(u >> 52);
    if (u == 0 || biased == 0x7FF || biased == 0) return 1.0;
    const int k = 14 - (biased - 1023);
    return bits_double(std::uint64_t(k + 1023) << 52);
}

NST_HD std::uint16_t pack_half_value(HalfFormat format, float x, double scale) {
    return format == HalfFormat::bf16 ? float_to_bf16(x) : double_to_fp16(double(x) * scale);
}

NST_HD float unpack_half_value(HalfFormat format, std::uint16_t h) {
    return format == HalfFormat::bf16 ? bf16_to_float(h) : fp16_to_float(h);
}

NST_HD double dot_half_term(HalfFormat format, std::uint16_t a, float x) {
    return double(unpack_half_value(format, a)) * double(x);
}

NST_HD double dot_half_pair_term(HalfFormat format, std::uint16_t a, std::uint16_t b) {
    return double(unpack_half_value(format, a)) * double(unpack_half_value(format, b));
}

}  // namespace nst::kernels
