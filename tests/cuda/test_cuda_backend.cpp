// The device backend's own contracts, written against the Backend interface and
// run on the device under test (device_under_test.h: the CUDA backend on a GPU,
// the CPU stand-in elsewhere): memory accounting and out-of-memory errors, the
// row-major gemm wrapper against a naive double-precision product, bitwise
// reproducibility, and the TF32 mode's accuracy.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/backends/counting_backend.h"
#include "engine/base/error.h"
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cuda_api.h"
#include "tests/cuda/cuda_test_support.h"
#include "tests/cuda/device_under_test.h"

using namespace nst;
using namespace nst::test;

TEST_CASE("device discovery and naming", "[cuda][device]") {
    const auto backend = make_backend_under_test();
    if (test_device() == TestDevice::cuda) {
        REQUIRE(cuda_device_count() >= 1);
        CHECK(cuda_device_description(0).find("sm_") != std::string::npos);
        CHECK(backend->name() == "cuda:0");
    } else {
        CHECK(backend->name().rfind("cpu", 0) == 0);
    }
    // A device index past the last is refused by the factory the CLI uses, with
    // or without a GPU (without one, every index is past the last); a build
    // without CUDA refuses every CUDA device as a usage error instead.
    DeviceChoice past_the_last;
    past_the_last.kind = DeviceChoice::cuda;
    past_the_last.cuda_index = cuda_device_count();
#ifdef NST_HAVE_CUDA
    CHECK_THROWS_AS(make_backend(past_the_last, 0, false), DeviceError);
#else
    CHECK_THROWS_AS(make_backend(past_the_last, 0, false), UsageError);
#endif
}

TEST_CASE("allocation is counted and out-of-memory names the sizes", "[cuda][memory][oom]") {
    auto backend = make_backend_under_test();
    const std::size_t base = backend->bytes_in_use();  // the reductions' scratch
    {
        Buffer a(*backend, 1000), b(*backend, 3);
        CHECK(backend->bytes_in_use() == base + 1003 * sizeof(float));
    }
    CHECK(backend->bytes_in_use() == base);
    CHECK(backend->peak_bytes() >= base + 1003 * sizeof(float));
    // 2^40 floats = 4 TiB: more than any card or this machine has. Both backends
    // throw OutOfMemory (exit code 4, MemoryError in Python), which is not a
    // DeviceError: each names the size asked for.
    try {
        Buffer huge(*backend, std::size_t(1) << 40);
        FAIL("allocating 4 TiB did not throw");
    } catch (const OutOfMemory& error) {
        const std::string message = error.what();
        INFO(message);
        CHECK(message.find("4194304") != std::string::npos);
        if (test_device() == TestDevice::cuda) {
            CHECK(message.find("out of device memory: needed 4194304.0 MiB") != std::string::npos);
            CHECK(message.find("MiB free") != std::string::npos);
        } else {
            CHECK(message.find("out of host memory") != std::string::npos);
        }
    }
    // The failure is not sticky: the backend still works.
    Buffer after = to_backend(*backend, {1.0f, 2.0f});
    CHECK(to_host(*backend, after) == std::vector<float>{1.0f, 2.0f});
}

TEST_CASE("gemm wrapper computes row-major products on odd, non-square shapes", "[cuda][gemm]") {
    // On CUDA, cuda::gemm (engine/backends/cuda/gemm.h: the row-major/column-major swap);
    // on the CPU stand-in, cblas_sgemm with the same arguments.
    const auto device = make_backend_under_test();
    Backend& backend = *device;
    const int m = 7, n = 5, k = 11;
    for (bool ta : {false, true}) {
        for (bool tb : {false, true}) {
            // Stored shapes: A is m×k (no) or k×m (yes); B is k×n or n×k. Row
            // strides one wider than needed, to check that ld is honoured.
            const int a_rows = ta ? k : m, a_cols = ta ? m : k;
            const int b_rows = tb ? n : k, b_cols = tb ? k : n;
            const int lda = a_cols + 1, ldb = b_cols + 1, ldc = n + 1;
            const auto a = random_vector(std::size_t(a_rows) * lda, 31);
            const auto b = random_vector(std::size_t(b_rows) * ldb, 32);
            const auto c0 = random_vector(std::size_t(m) * ldc, 33);
            const float alpha = 0.75f, beta = -0.5f;
            // Oracle: naive loops in double.
            std::vector<double> expected(c0.begin(), c0.end());
            for (int i = 0; i < m; ++i)
                for (int j = 0; j < n; ++j) {
                    double sum = 0.0;
                    for (int p = 0; p < k; ++p) {
                        const double av = ta ? a[p * lda + i] : a[i * lda + p];
                        const double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                        sum += av * bv;
                    }
                    expected[i * ldc + j] = alpha * sum + beta * double(c0[i * ldc + j]);
                }
            Buffer da = to_backend(backend, a), db = to_backend(backend, b),
                   dc = to_backend(backend, c0);
            gemm_under_test(backend, ta, tb, m, n, k, alpha, da.data(), lda, db.data(), ldb, beta,
                            dc.data(), ldc);
            const auto actual = to_host(backend, dc);
            // 11-term FP32 sums of values ≤ 1: absolute error ≤ 11·2·u·max|term| ≈
            // 1.3e-6; 1e-5 absolute plus 1e-5 relative covers it. The padding
            // columns (j = n) must be untouched, which the same bound checks.
            const Comparison c = compare(actual, expected, 1e-5, 1e-5);
            INFO("trans_a " << ta << ", trans_b " << tb
                            << "\n" << c.report);
            CHECK(c.ok);
        }
    }
}

namespace {

// One pass of every reducing and library-backed op, downloaded for comparison.
struct Snapshot {
    std::vector<float> conv, dconv, gram, style_grad;
    double dot = 0, style = 0, content = 0, tv = 0;
};

Snapshot run_once(Backend& backend) {
    const ConvShape s{32, 48, 19, 23};
    const std::size_t in = std::size_t(s.in_channels) * s.height * s.width;
    const std::size_t out = std::size_t(s.out_channels) * s.height * s.width;
    Buffer x = to_backend(backend, random_vector(in, 41));
    Buffer w = to_backend(backend, random_vector(std::size_t(s.out_channels) * s.in_channels * 9, 42));
    Buffer dy = to_backend(backend, random_vector(out, 43));
    Buffer y(backend, out), dx(backend, in), g(backend, std::size_t(48) * 48);
    Buffer target = to_backend(backend, random_vector(std::size_t(48) * 48, 44, 0.0f, 50.0f));
    Buffer grad = to_backend(backend, random_vector(out, 45));
    Snapshot r;
    backend.conv3x3_forward(s, x.data(), w.data(), y.data());
    backend.conv3x3_backward_data(s, dy.data(), w.data(), dx.data());
    backend.gram(48, std::size_t(19) * 23, y.data(), g.data());
    r.style = backend.style_loss(48, std::size_t(19) * 23, y.data(), g.data(), target.data(), 3.0f,
                                 grad.data());
    r.content = backend.content_loss(out, y.data(), dy.data(), 0.5f, grad.data());
    r.tv = backend.tv_loss(48, 19, 23, y.data(), 0.25f, grad.data());
    r.dot = backend.dot(out, y.data(), grad.data());
    r.conv = to_host(backend, y);
    r.dconv = to_host(backend, dx);
    r.gram = to_host(backend, g);
    r.style_grad = to_host(backend, grad);
    return r;
}

}  // namespace

TEST_CASE("results are bit-identical across runs and backends on the same card", "[cuda][determinism]") {
    for (bool tf32 : {false, true}) {
        INFO("tf32 " << tf32);
        // Two separate backends: handles, algorithm choice and workspace are all
        // made afresh, as in two runs of the program.
        const Snapshot first = run_once(*make_backend_under_test(tf32));
        const Snapshot second = run_once(*make_backend_under_test(tf32));
        CHECK(same_bits(first.conv, second.conv));
        CHECK(same_bits(first.dconv, second.dconv));
        CHECK(same_bits(first.gram, second.gram));
        CHECK(same_bits(first.style_grad, second.style_grad));
        CHECK(std::memcmp(&first.dot, &second.dot, sizeof(double)) == 0);
        CHECK(std::memcmp(&first.style, &second.style, sizeof(double)) == 0);
        CHECK(std::memcmp(&first.content, &second.content, sizeof(double)) == 0);
        CHECK(std::memcmp(&first.tv, &second.tv, sizeof(double)) == 0);
    }
}

TEST_CASE("the byte counter stays flat after the first pass", "[cuda][memory]") {
    auto backend = make_backend_under_test();
    run_once(*backend);  // chooses the conv algorithms, sizes the workspace and scratch
    const std::size_t settled = backend->bytes_in_use();
    const std::size_t peak = backend->peak_bytes();
    run_once(*backend);
    CHECK(backend->bytes_in_use() == settled);
    CHECK(backend->peak_bytes() == peak);
}

TEST_CASE("the counted own memory bounds what the backend holds of its own after VGG-like passes", "[cuda][memory][plan]") {
    // The memory plan counts the backend's own memory through a counting
    // backend (engine/backends/counting_backend.h) that asks it per op
    // (planned_conv_memory): the CPU's im2col scratch and Winograd filters, the
    // CUDA backend's cuDNN workspace (its cap, which no chosen algorithm
    // exceeds). After the same forward and backward passes over VGG-19's first
    // layers at an odd size on both, what the backend holds beyond the tensors
    // allocated here must be within what was counted.
    auto backend = make_backend_under_test();
    CountingBackend counting(*backend);
    const std::vector<ConvShape> shapes = {
        {3, 64, 45, 37}, {64, 64, 45, 37}, {64, 128, 22, 18}, {128, 128, 22, 18}, {128, 256, 11, 9}};
    const std::size_t base = backend->bytes_in_use();
    std::size_t tensors = 0;
    std::vector<Buffer> buffers, counted_buffers;
    const auto make = [&](std::size_t count, unsigned seed) -> float* {
        buffers.push_back(to_backend(*backend, random_vector(count, seed)));
        tensors += count * sizeof(float);
        return buffers.back().data();
    };
    for (const ConvShape& s : shapes) {
        const std::size_t plane = std::size_t(s.height) * s.width;
        float* x = make(s.in_channels * plane, 81);
        float* w = make(std::size_t(s.out_channels) * s.in_channels * 9, 82);
        float* y = make(s.out_channels * plane, 83);
        backend->conv3x3_forward(s, x, w, y);
        backend->conv3x3_backward_data(s, y, w, x);
        for (std::size_t count : {s.in_channels * plane, std::size_t(s.out_channels) * s.in_channels * 9,
                                  s.out_channels * plane})
            counted_buffers.emplace_back(counting, count);
        const std::size_t k = counted_buffers.size();
        counting.conv3x3_forward(s, counted_buffers[k - 3].data(), counted_buffers[k - 2].data(),
                                 counted_buffers[k - 1].data());
        counting.conv3x3_backward_data(s, counted_buffers[k - 1].data(), counted_buffers[k - 2].data(),
                                       counted_buffers[k - 3].data());
    }
    backend->synchronize();
    const std::size_t own = backend->peak_bytes() - base - tensors;
    const std::size_t counted = counting.held().weight_cache + counting.held().scratch;
    CHECK(counting.peak() == tensors + counted);
    INFO("held of its own " << own << " B, counted " << counted << " B");
    CHECK(own <= counted);
}

TEST_CASE("TF32 mode stays within TF32's rounding of the FP32 reference", "[cuda][tf32]") {
    // TF32 keeps 10 mantissa bits of each input (relative rounding 2⁻¹¹ ≈ 4.9e-4
    // per factor, ~1e-3 per product). In a sum of K products of mixed sign the
    // errors add like a random walk, so relative to the RMS output the error is
    // about 1e-3·(RMS term·√K)/(RMS output) ≈ 1e-3. We allow 5e-3: a mistake
    // (wrong algorithm, wrong layout) gives errors of order 1.
    constexpr double kTf32RelativeL2 = 5e-3;
    // (The CPU stand-in has no TF32: it computes in FP32, well inside the bound.)
    CpuBackend cpu(0);
    auto gpu = make_backend_under_test(/*tf32=*/true);
    const ConvShape s{64, 32, 21, 17};
    const std::size_t in = std::size_t(s.in_channels) * s.height * s.width;
    const std::size_t out = std::size_t(s.out_channels) * s.height * s.width;
    const auto x = random_vector(in, 51), w = random_vector(std::size_t(32) * 64 * 9, 52),
               dy = random_vector(out, 53);
    std::vector<float> y[2], dx[2], g[2];
    int k = 0;
    for (Backend* backend : {static_cast<Backend*>(&cpu), gpu.get()}) {
        Buffer bx = to_backend(*backend, x), bw = to_backend(*backend, w),
               bdy = to_backend(*backend, dy);
        Buffer by(*backend, out), bdx(*backend, in), bg(*backend, std::size_t(32) * 32);
        backend->conv3x3_forward(s, bx.data(), bw.data(), by.data());
        backend->conv3x3_backward_data(s, bdy.data(), bw.data(), bdx.data());
        backend->gram(32, std::size_t(21) * 17, bx.data(), bg.data());
        y[k] = to_host(*backend, by);
        dx[k] = to_host(*backend, bdx);
        g[k++] = to_host(*backend, bg);
    }
    require_close(y[1], y[0], "tf32 conv3x3_forward", kTf32RelativeL2);
    require_close(dx[1], dx[0], "tf32 conv3x3_backward_data", kTf32RelativeL2);
    require_close(g[1], g[0], "tf32 gram", kTf32RelativeL2);
}
