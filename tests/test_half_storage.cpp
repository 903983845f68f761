// 16-bit storage of the L-BFGS history (kernels/half.h and the backend ops
// pack_half, dot_half_into, dot_half_pair_into, axpy_from_half): the
// conversions against independent oracles, and the CPU ops against naive
// double loops, on odd sizes.
//
// Oracles: bf16 rounding by the distance, in double, to the two bf16 neighbours
// of a float (the neighbours found by truncating its bits), ties to the even
// one; fp16 by the nearest of all 63 488 finite fp16 values decoded with
// std::ldexp, ties to the even one, and ±∞ from 65520 (65504 plus half an ulp)
// on. Neither shares code with the integer rounding of kernels/half.h.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/backends/cpu/cpu_backend.h"
#include "kernels/half.h"
#include "tests/test_support.h"

using namespace nst;

namespace {

float float_of(std::uint32_t bits) {
    float x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}

std::uint32_t bits_of(float x) {
    std::uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
}

std::string hex(std::uint32_t v) {
    std::ostringstream text;
    text << "0x" << std::hex << v;
    return text.str();
}

// ---- oracles -------------------------------------------------------------------------

// bf16 of a finite or infinite float: the two candidates are the float's top 16
// bits (towards zero) and the next bf16 away from zero; the nearer one in
// double arithmetic wins, a tie goes to the even one. NaN is checked apart.
std::uint16_t bf16_oracle(float x) {
    const std::uint32_t u = bits_of(x);
    const std::uint16_t toward_zero = static_cast<std::uint16_t>(u >> 16);
    if ((u & 0xFFFFu) == 0) return toward_zero;
    const std::uint16_t away = static_cast<std::uint16_t>(toward_zero + 1);  // may become ±∞
    const double v = std::fabs(double(x));
    const double low = std::fabs(double(float_of(std::uint32_t(toward_zero) << 16)));
    // Past the largest bf16 the next value is 2^128 with an unbounded exponent
    // (IEEE 754's overflow rule); it stands for ∞.
    const double high = (away & 0x7FFFu) == 0x7F80u
                            ? std::ldexp(1.0, 128)
                            : std::fabs(double(float_of(std::uint32_t(away) << 16)));
    const double below = v - low, above = high - v;  // exact: 8-bit neighbours of a 24-bit value
    if (below < above) return toward_zero;
    if (above < below) return away;
    return (toward_zero & 1u) ? away : toward_zero;
}

// Every finite fp16 magnitude (bits 0x0000 … 0x7BFF) decoded in double, by index = bits.
const std::vector<double>& fp16_magnitudes() {
    static const std::vector<double> values = [] {
        std::vector<double> v;
        for (int e = 0; e < 31; ++e)
            for (int f = 0; f < 1024; ++f)
                v.push_back(e == 0 ? std::ldexp(double(f), -24)
                                   : std::ldexp(1.0 + f / 1024.0, e - 15));
        return v;
    }();
    return values;
}

std::uint16_t fp16_oracle(double v) {
    const std::uint16_t sign = std::signbit(v) ? 0x8000u : 0u;
    const double a = std::fabs(v);
    if (a >= 65520.0) return sign | 0x7C00u;
    const auto& table = fp16_magnitudes();  // increasing
    const auto above = std::lower_bound(table.begin(), table.end(), a);
    if (above == table.end()) return sign | 0x7BFFu;  // (65504, 65520): rounds down to 65504
    std::size_t hi = std::size_t(above - table.begin());
    if (table[hi] == a || hi == 0) return static_cast<std::uint16_t>(sign | hi);
    const std::size_t lo = hi - 1;
    const double down = a - table[lo], up = table[hi] - a;  // exact: both within 2^-24·2^k
    const std::size_t pick = down < up ? lo : (up < down ? hi : ((lo & 1u) ? hi : lo));
    return static_cast<std::uint16_t>(sign | pick);
}

bool is_bf16_nan(std::uint16_t h) { return (h & 0x7F80u) == 0x7F80u && (h & 0x7Fu) != 0; }
bool is_fp16_nan(std::uint16_t h) { return (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0; }

}  // namespace

TEST_CASE("bf16: round to nearest even against a distance oracle, ties, subnormals, inf, NaN", "[half]") {
    SECTION("a table of hand-checked values") {
        struct Row {
            std::uint32_t in;
            std::uint16_t out;
            const char* why;
        };
        const Row table[] = {
            {0x3F800000u, 0x3F80u, "1 is exact"},
            {0x3F808000u, 0x3F80u, "1 + 2^-8: a tie, to the even 1"},
            {0x3F818000u, 0x3F82u, "1 + 3·2^-8: a tie, to the even 1 + 2^-6"},
            {0x3F808001u, 0x3F81u, "just above the tie: up"},
            {0x3F807FFFu, 0x3F80u, "just below the tie: down"},
            {0x3FFF8000u, 0x4000u, "a tie whose rounding carries into the exponent"},
            {0x7F7F7FFFu, 0x7F7Fu, "below the overflow threshold: the largest bf16"},
            {0x7F7F8000u, 0x7F80u, "largest bf16 + half an ulp: a tie, to the even ∞"},
            {0x7F7FFFFFu, 0x7F80u, "the largest float overflows to ∞"},
            {0xFF7FFFFFu, 0xFF80u, "and the most negative to −∞"},
            {0x00008000u, 0x0000u, "a subnormal tie, to the even 0"},
            {0x00018000u, 0x0002u, "a subnormal tie, to the even 2·2^-133"},
            {0x00007FFFu, 0x0000u, "the smallest subnormals round to 0"},
            {0x007FFFFFu, 0x0080u, "the largest subnormal rounds up to the smallest normal"},
            {0x80000000u, 0x8000u, "−0 keeps its sign"},
            {0x7F800000u, 0x7F80u, "∞"},
            {0xFF800000u, 0xFF80u, "−∞"},
        };
        for (const Row& row : table) {
            INFO(row.why << ": in " << hex(row.in) << ", got " << hex(kernels::float_to_bf16(float_of(row.in)))
                         << ", want " << hex(row.out));
            CHECK(kernels::float_to_bf16(float_of(row.in)) == row.out);
            CHECK(bf16_oracle(float_of(row.in)) == row.out);  // the oracle agrees with the table
        }
    }
    SECTION("NaN stays NaN, with its sign") {
        for (std::uint32_t nan : {0x7F800001u, 0x7FC00000u, 0xFFFFFFFFu, 0x7F810000u, 0x7FFF8000u}) {
            const std::uint16_t h = kernels::float_to_bf16(float_of(nan));
            INFO(hex(nan) << " -> " << hex(h));
            CHECK(is_bf16_nan(h));
            CHECK((h >> 15) == (nan >> 31));
            CHECK(std::isnan(kernels::bf16_to_float(h)));
        }
    }
    SECTION("every upper half with the low halves around the tie and random ones") {
        std::mt19937 rng(41);
        int mismatches = 0;
        for (std::uint32_t top = 0; top < 0x10000u; ++top) {
            if ((top & 0x7F80u) == 0x7F80u && top != 0x7F80u && top != 0xFF80u) continue;  // NaN
            for (std::uint32_t low : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu,
                                      std::uint32_t(rng() & 0xFFFFu)}) {
                const std::uint32_t in = (top << 16) | low;
                if ((in & 0x7FFFFFFFu) > 0x7F800000u) continue;  // NaN: above
                const std::uint16_t got = kernels::float_to_bf16(float_of(in));
                const std::uint16_t want = bf16_oracle(float_of(in));
                if (got != want && ++mismatches <= 5)
                    FAIL_CHECK("bf16 of " << hex(in) << ": got " << hex(got) << ", want " << hex(want));
                // Widening is exact: the bits move back up.
                if (kernels::bf16_to_float(got) != float_of(std::uint32_t(got) << 16))
                    FAIL_CHECK("bf16_to_float of " << hex(got));
            }
        }
        CHECK(mismatches == 0);
    }
}

TEST_CASE("fp16: round to nearest even against the nearest of all fp16 values", "[half]") {
    const auto& table = fp16_magnitudes();
    SECTION("decoding every finite fp16 value is exact, ±∞ and NaN too") {
        for (std::uint32_t bits = 0; bits < 0x7C00u; ++bits) {
            const float got = kernels::fp16_to_float(std::uint16_t(bits));
            const float negative = kernels::fp16_to_float(std::uint16_t(bits | 0x8000u));
            if (double(got) != table[bits] || double(negative) != -table[bits] ||
                !std::signbit(negative))
                FAIL("fp16 " << hex(bits) << " decodes to " << got << ", want " << table[bits]);
        }
        CHECK(kernels::fp16_to_float(0x7C00u) == std::numeric_limits<float>::infinity());
        CHECK(kernels::fp16_to_float(0xFC00u) == -std::numeric_limits<float>::infinity());
        CHECK(std::isnan(kernels::fp16_to_float(0x7E00u)));
        CHECK(std::isnan(kernels::fp16_to_float(0x7C01u)));
    }
    SECTION("hand-checked values: overflow, ties, subnormals, underflow") {
        struct Row {
            double in;
            std::uint16_t out;
            const char* why;
        };
        const Row rows[] = {
            {1.0, 0x3C00u, "1"},
            {1.0 + std::ldexp(1.0, -11), 0x3C00u, "1 + 2^-11: a tie, to the even 1"},
            {1.0 + 3 * std::ldexp(1.0, -11), 0x3C02u, "1 + 3·2^-11: a tie, up to the even"},
            {65504.0, 0x7BFFu, "the largest finite fp16"},
            {65519.999, 0x7BFFu, "just below the overflow threshold"},
            {65520.0, 0x7C00u, "65504 + half an ulp: a tie, to the even ∞"},
            {1e6, 0x7C00u, "overflow to ∞"},
            {-1e300, 0xFC00u, "to −∞"},
            {std::ldexp(1.0, -14), 0x0400u, "the smallest normal"},
            {std::ldexp(1.0, -24), 0x0001u, "the smallest subnormal"},
            {std::ldexp(1.0, -25), 0x0000u, "half of it: a tie, to the even 0"},
            {std::ldexp(1.5, -25), 0x0001u, "above half of it: up"},
            {std::ldexp(3.0, -25), 0x0002u, "1.5 subnormal ulps: a tie, to the even 2"},
            {std::ldexp(1.0, -14) - std::ldexp(1.0, -25), 0x0400u, "a subnormal tie into the smallest normal"},
            {1e-30, 0x0000u, "underflow to 0"},
            {-1e-30, 0x8000u, "to −0"},
            {std::numeric_limits<double>::denorm_min(), 0x0000u, "a double subnormal"},
            {std::numeric_limits<double>::infinity(), 0x7C00u, "∞"},
        };
        for (const Row& row : rows) {
            const std::uint16_t got = kernels::double_to_fp16(row.in);
            INFO(row.why << ": " << row.in << " -> " << hex(got) << ", want " << hex(row.out));
            CHECK(got == row.out);
            CHECK(fp16_oracle(row.in) == row.out);
        }
        const std::uint16_t nan = kernels::double_to_fp16(std::numeric_limits<double>::quiet_NaN());
        CHECK(is_fp16_nan(nan));
        CHECK(is_fp16_nan(kernels::double_to_fp16(-std::numeric_limits<double>::quiet_NaN())));
    }
    SECTION("every value, every midpoint and its neighbours, and random doubles") {
        std::vector<double> inputs;
        for (std::size_t i = 0; i < table.size(); ++i) {
            inputs.push_back(table[i]);
            const double mid = i + 1 < table.size() ? 0.5 * (table[i] + table[i + 1]) : 65520.0;
            inputs.push_back(mid);
            inputs.push_back(std::nextafter(mid, 0.0));
            inputs.push_back(std::nextafter(mid, 1e300));
        }
        std::mt19937_64 rng(43);
        std::uniform_real_distribution<double> mantissa(1.0, 2.0);
        std::uniform_int_distribution<int> exponent(-30, 17);
        for (int k = 0; k < 200000; ++k) inputs.push_back(std::ldexp(mantissa(rng), exponent(rng)));
        int mismatches = 0;
        for (double v : inputs)
            for (double s : {v, -v}) {
                const std::uint16_t got = kernels::double_to_fp16(s), want = fp16_oracle(s);
                if (got != want && ++mismatches <= 5)
                    FAIL_CHECK("fp16 of " << s << ": got " << hex(got) << ", want " << hex(want));
            }
        CHECK(mismatches == 0);
    }
}

TEST_CASE("fp16 history scale: a power of two that puts max |x| in [2^14, 2^15)", "[half]") {
    for (double amax : {1.0, 65504.0, 65520.0, 1e6, 3.4e38, 1e-3, 6e-8, 1e-45, 1.5, 32767.0, 16384.0}) {
        const double c = kernels::history_half_scale(HalfFormat::fp16, double(float(amax)));
        INFO("max |x| " << amax << ", scale " << c);
        int exponent = 0;
        CHECK(std::frexp(c, &exponent) == 0.5);  // a power of two
        const double scaled = double(float(amax)) * c;
        CHECK(scaled >= 16384.0);
        CHECK(scaled < 32768.0);
        // So the largest element packs finite, within fp16's relative rounding.
        const float back = kernels::fp16_to_float(kernels::pack_half_value(HalfFormat::fp16, float(amax), c));
        CHECK(std::isfinite(back));
        CHECK(std::fabs(double(back) / c - double(float(amax))) <= std::ldexp(double(float(amax)), -11));
    }
    for (double amax : {0.0, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()})
        CHECK(kernels::history_half_scale(HalfFormat::fp16, amax) == 1.0);
    CHECK(kernels::history_half_scale(HalfFormat::bf16, 1e6) == 1.0);
}

// ---- the CPU ops against double loops -------------------------------------------------

namespace {

// Values spread over many binades, as gradients and steps are: m · 10^e,
// e ∈ [−6, 6], with exact zeros, so subnormal fp16 results and cancellation occur.
std::vector<float> spread_vector(std::size_t n, unsigned seed, double magnitude) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> unit(-1.0, 1.0);
    std::uniform_int_distribution<int> decade(-6, 6);
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i)
        v[i] = i % 97 == 3 ? 0.0f : float(magnitude * unit(rng) * std::pow(10.0, decade(rng)));
    return v;
}

std::vector<std::uint16_t> packed_on_backend(CpuBackend& backend, HalfFormat format,
                                             const std::vector<float>& x, double* scale) {
    Buffer bx(backend, x.size()), packed(backend, (x.size() + 1) / 2), amax(backend, 2);
    backend.upload(bx.data(), x.data(), x.size());
    double* amax_slot = reinterpret_cast<double*>(amax.data());
    backend.amax_into(x.size(), bx.data(), amax_slot);
    backend.pack_half(x.size(), format, bx.data(), amax_slot,
                      reinterpret_cast<std::uint16_t*>(packed.data()));
    *scale = kernels::history_half_scale(format, *amax_slot);
    const auto* p = reinterpret_cast<const std::uint16_t*>(packed.data());
    return std::vector<std::uint16_t>(p, p + x.size());
}

double decoded(HalfFormat format, std::uint16_t h) {
    if (format == HalfFormat::fp16 && (h & 0x7C00u) == 0x7C00u)
        return (h & 0x3FFu) ? std::numeric_limits<double>::quiet_NaN()
                            : ((h & 0x8000u) ? -1.0 : 1.0) * std::numeric_limits<double>::infinity();
    return format == HalfFormat::bf16 ? double(float_of(std::uint32_t(h) << 16))
                                      : ((h & 0x8000u) ? -1.0 : 1.0) * fp16_magnitudes()[h & 0x7FFFu];
}

}  // namespace

TEST_CASE("pack_half, dot_half, dot_half_pair and axpy_from_half against double loops", "[half]") {
    CpuBackend backend(2);
    // 100003: several reduction chunks (engine/backends/cpu/cpu_reduce.h, 16384) and odd.
    for (std::size_t n : {std::size_t(1), std::size_t(17), std::size_t(100003)})
        for (HalfFormat format : {HalfFormat::bf16, HalfFormat::fp16})
            for (double magnitude : {1.0, 1e6}) {  // 1e6 · 10^6: far beyond fp16's 65504
                const char* name = format == HalfFormat::bf16 ? "bf16" : "fp16";
                INFO(name << ", n = " << n << ", magnitude " << magnitude);
                const auto x = spread_vector(n, 51 + unsigned(n), magnitude);
                const auto z = spread_vector(n, 52 + unsigned(n), 1.0);
                double c = 0.0, cz = 0.0;
                const auto packed = packed_on_backend(backend, format, x, &c);
                const auto packed_z = packed_on_backend(backend, format, z, &cz);

                // pack: each element is the oracle's rounding of x·c.
                int mismatches = 0;
                for (std::size_t i = 0; i < n; ++i) {
                    const std::uint16_t want = format == HalfFormat::bf16
                                                   ? bf16_oracle(x[i])
                                                   : fp16_oracle(double(x[i]) * c);
                    if (packed[i] != want && ++mismatches <= 5)
                        FAIL_CHECK("pack at " << i << ": x = " << x[i] << ", got " << hex(packed[i])
                                              << ", want " << hex(want));
                    if (!std::isfinite(decoded(format, packed[i])) && ++mismatches <= 5)
                        FAIL_CHECK("pack at " << i << " overflowed: x = " << x[i]);
                }
                CHECK(mismatches == 0);

                // The ops on the packed vectors against the same sums in double.
                Buffer px(backend, (n + 1) / 2), pz(backend, (n + 1) / 2), bz(backend, n),
                    by(backend, n), slots(backend, 8);
                auto* hx = reinterpret_cast<std::uint16_t*>(px.data());
                auto* hz = reinterpret_cast<std::uint16_t*>(pz.data());
                std::copy(packed.begin(), packed.end(), hx);
                std::copy(packed_z.begin(), packed_z.end(), hz);
                backend.upload(bz.data(), z.data(), n);
                const auto y0 = spread_vector(n, 53 + unsigned(n), 1.0);
                backend.upload(by.data(), y0.data(), n);
                double* slot = reinterpret_cast<double*>(slots.data());
                const double scale = 0.75 / c;  // as L-BFGS passes ρ/c
                backend.dot_half_into(n, format, hx, bz.data(), scale, &slot[0]);
                backend.dot_half_pair_into(n, format, hx, hz, scale, &slot[1]);
                double dot = 0.0, pair = 0.0, dot_abs = 0.0, pair_abs = 0.0;
                for (std::size_t i = 0; i < n; ++i) {
                    dot += decoded(format, hx[i]) * double(z[i]);
                    dot_abs += std::fabs(decoded(format, hx[i]) * double(z[i]));
                    pair += decoded(format, hx[i]) * decoded(format, hz[i]);
                    pair_abs += std::fabs(decoded(format, hx[i]) * decoded(format, hz[i]));
                }
                // Both sum exact products in double, in different orders: at most
                // n·2^-53 of Σ|terms| apart (the standard summation bound).
                CHECK(std::fabs(slot[0] - scale * dot) <= double(n) * 0x1p-53 * scale * dot_abs);
                CHECK(std::fabs(slot[1] - scale * pair) <= double(n) * 0x1p-53 * scale * pair_abs);

                // axpy_from_half: y += float(factor·(α − β)) · x̂ with factor = 1/c.
                slot[2] = 0.3;
                slot[3] = -0.2;
                backend.axpy_from_half(n, &slot[2], &slot[3], 1.0 / c, format, hx, by.data());
                std::vector<float> y(n);
                backend.download(y.data(), by.data(), n);
                const float a = static_cast<float>((1.0 / c) * (0.3 - -0.2));
                mismatches = 0;
                for (std::size_t i = 0; i < n; ++i) {
                    const double product = double(a) * decoded(format, hx[i]);
                    const double want = double(y0[i]) + product;
                    // Two float roundings (the product, the sum), each at most half an
                    // ulp of a value ≤ |y0| + |a·x̂|: 2^-23 of that in all.
                    const double bound = 0x1p-23 * (std::fabs(double(y0[i])) + std::fabs(product));
                    if (std::fabs(double(y[i]) - want) > bound && ++mismatches <= 5)
                        FAIL_CHECK("axpy_from_half at " << i << ": got " << y[i] << ", want " << want);
                }
                CHECK(mismatches == 0);
            }
}

TEST_CASE("pack_half: bf16 needs no max, fp16 keeps a vector of 1e30 finite", "[half]") {
    CpuBackend backend(1);
    const std::vector<float> x = {1e30f, -3e29f, 7.0f, 0.0f, -1e-30f};
    double c = 0.0;
    const auto packed = packed_on_backend(backend, HalfFormat::fp16, x, &c);
    CHECK(c == std::ldexp(1.0, 14 - 99));  // 2^99 ≤ 1e30 < 2^100
    CHECK(std::fabs(decoded(HalfFormat::fp16, packed[0]) / c - 1e30) <= 1e30 * 0x1p-11);
    CHECK(std::fabs(decoded(HalfFormat::fp16, packed[1]) / c + 3e29) <= 3e29 * 0x1p-11);
    CHECK(packed[2] == 0);  // 7 ≪ 1e30·2^-38: below fp16's subnormals once scaled
    CHECK(packed[3] == 0);

    Buffer bx(backend, x.size()), out(backend, 3);
    backend.upload(bx.data(), x.data(), x.size());
    auto* h = reinterpret_cast<std::uint16_t*>(out.data());
    backend.pack_half(x.size(), HalfFormat::bf16, bx.data(), nullptr, h);
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(h[i] == bf16_oracle(x[i]));
}
