// Helpers for the device tests (the device under test against the CPU
// reference): moving host vectors in and out of a backend, and the comparison
// every per-op test uses.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "tests/test_support.h"

namespace nst::test {

inline Buffer to_backend(Backend& backend, const std::vector<float>& host) {
    Buffer buffer(backend, host.size());
    backend.upload(buffer.data(), host.data(), host.size());
    return buffer;
}

inline std::vector<float> to_host(Backend& backend, const Buffer& buffer) {
    std::vector<float> host(buffer.size());
    backend.download(host.data(), buffer.data(), buffer.size());
    return host;
}

inline double max_abs(const std::vector<float>& v) {
    double m = 0.0;
    for (float x : v) m = std::max(m, std::fabs(double(x)));
    return m;
}

// FP32 CUDA against the FP32 CPU backend. Both compute the same formulas in
// single precision but sum in different orders (cuDNN's and OpenBLAS's tilings,
// our reductions versus theirs). Rounding errors of a K-term sum then differ by
// about √K·u relative to the terms' magnitude (u = 2⁻²⁴ ≈ 6e-8, errors of mixed
// sign add like a random walk): ≤ 72·6e-8 ≈ 4e-6 for the largest sums here
// (K = 9·576 for a 3×3 conv over 576 channels). 1e-5 bounds that with margin
// and is still ~100× below the error of TF32 or of any indexing mistake. The
// reference itself takes Winograd on wide layers (engine/backends/cpu/cpu_winograd.h),
// whose rounding differs from a direct sum's: measured against the direct
// convolutions of the CPU stand-in (test_backend_ops, NST_TEST_DEVICE=cpu),
// 2.7e-7 to 1.1e-6 relative L2 with F(2×2) and 2.2e-6 (forward) / 1.7e-6
// (backward) with F(4×4) on a 32×32 plane: inside 1e-5 by 4.5×. The
// elementwise bound adds an absolute floor of 1e-5·max|ref| because outputs
// near zero (cancellation) carry the sum's absolute, not relative, error.
constexpr double kFp32RelativeL2 = 1e-5;

inline void require_close(const std::vector<float>& actual, const std::vector<float>& reference,
                          const std::string& what, double relative_l2 = kFp32RelativeL2) {
    const Comparison c = compare(actual, reference, relative_l2 * max_abs(reference), relative_l2);
    INFO(what << ":\n" << c.report);
    CHECK(c.ok);
    CHECK(c.relative_l2 <= relative_l2);
}

inline void require_close(double actual, double reference, const std::string& what,
                          double relative = kFp32RelativeL2) {
    INFO(what << ": actual " << actual << ", reference " << reference);
    CHECK(std::fabs(actual - reference) <= relative * std::fabs(reference));
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace nst::test
