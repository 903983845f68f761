// Every op of engine/backends/backend_ops.h on the device under test (device_under_test.h)
// against the CPU backend (the reference), in the manner of ggml's
// test-backend-ops: one test case per op, generated from NST_BACKEND_OPS, each
// running that op's cases (odd and even shapes, every pooling mode, half format
// and preprocessing the op takes). An op added to the list without a case here
// does not link (`<op>_cases` is declared for every op and must be defined).
//
// Outputs the op overwrites are poisoned with NaN first, so an element the
// device never writes cannot pass. Two kinds of agreement:
//  - same bits, where both backends call the same per-element function of
//    kernels/*.h (one rounding per operation, no FMA contraction: see
//    kernels/host_device.h, and build.kernel_fma_contraction, which reads the
//    compiled kernels): ReLU, pooling, preprocessing, the loss gradients of
//    content, TV and the temporal loss, masks, windows, the bilinear warp, the
//    optimisers' element-wise updates and the 16-bit packing;
//  - close, where the backends sum in different orders (convolutions, Gram
//    matrices, the style gradient's SGEMM, every reduction): the bounds are
//    argued at kFp32RelativeL2 (cuda_test_support.h) and kDoubleSumRelative.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/backends/cpu/cpu_backend.h"
#include "tests/cuda/cuda_test_support.h"
#include "tests/cuda/device_under_test.h"

using namespace nst;
using namespace nst::test;

namespace {

// Double accumulation of float terms (exact products or |x|) on both sides:
// only the summation order differs, ~K·2⁻⁵³ ≈ 1e-11 relative at most for the
// 10⁵ terms here, ~1e-16 typically; 1e-12 is met with margin by the typical
// case and a mistake (a dropped or doubled block) is off by ≥ 1e-5.
constexpr double kDoubleSumRelative = 1e-12;

enum class Agreement { same_bits, close };

struct TensorOutput {
    std::string name;
    std::vector<float> values;
    Agreement agreement;
    double relative;
};

struct ScalarOutput {
    std::string name;
    double value;
    double relative;  // 0: exact
};

struct OpOutputs {
    std::vector<TensorOutput> tensors;
    std::vector<ScalarOutput> scalars;
};

// One op call (or a short sequence) on one backend: inputs uploaded, outputs
// poisoned, everything downloaded at the end.
class OpRun {
public:
    explicit OpRun(Backend& backend) : backend_(backend), scalars_(backend, kScalarSlots) {
        // Poison the slots too: a reduction that writes nothing must not pass.
        const double nan = std::numeric_limits<double>::quiet_NaN();
        for (std::size_t i = 0; i < kScalarSlots; ++i)
            backend_.upload(reinterpret_cast<float*>(scalars_.slot(i)),
                            reinterpret_cast<const float*>(&nan), 2);
    }
    Backend& backend() { return backend_; }

    float* input(const std::vector<float>& host) {
        buffers_.push_back(to_backend(backend_, host));
        return buffers_.back().data();
    }
    // An output the op overwrites: every element NaN until written.
    float* output(std::size_t count) {
        return input(std::vector<float>(count, std::numeric_limits<float>::quiet_NaN()));
    }
    double* slot(std::size_t i) {
        NST_ASSERT(i < kScalarSlots);
        return scalars_.slot(i);
    }
    // Uploads a double coefficient into a slot, the same on every backend.
    double* coefficient(std::size_t i, double value) {
        backend_.upload(reinterpret_cast<float*>(slot(i)), reinterpret_cast<const float*>(&value), 2);
        return slot(i);
    }

    void keep(const std::string& name, const float* data, std::size_t count, Agreement agreement,
              double relative = kFp32RelativeL2) {
        kept_.push_back({name, data, count, agreement, relative});
    }
    void keep_scalar(const std::string& name, std::size_t i, double relative) {
        kept_scalars_.push_back({name, i, relative});
    }

    OpOutputs finish() {
        OpOutputs outputs;
        scalars_.queue_read();
        backend_.synchronize();
        for (const auto& s : kept_scalars_)
            outputs.scalars.push_back({s.name, scalars_.host(s.slot), s.relative});
        for (const auto& k : kept_) {
            std::vector<float> host(k.count);
            backend_.download(host.data(), k.data, k.count);
            outputs.tensors.push_back({k.name, std::move(host), k.agreement, k.relative});
        }
        return outputs;
    }

private:
    static constexpr std::size_t kScalarSlots = 8;
    struct Kept {
        std::string name;
        const float* data;
        std::size_t count;
        Agreement agreement;
        double relative;
    };
    struct KeptScalar {
        std::string name;
        std::size_t slot;
        double relative;
    };
    Backend& backend_;
    ScalarBuffer scalars_;
    std::deque<Buffer> buffers_;
    std::vector<Kept> kept_;
    std::vector<KeptScalar> kept_scalars_;
};

struct OpCase {
    std::string label;  // shape and variant
    std::function<void(OpRun&)> run;
};

std::string first_bit_mismatch(const std::vector<float>& actual, const std::vector<float>& reference) {
    if (actual.size() != reference.size())
        return "size " + std::to_string(actual.size()) + " vs " + std::to_string(reference.size());
    for (std::size_t i = 0; i < actual.size(); ++i)
        if (std::memcmp(&actual[i], &reference[i], sizeof(float)) != 0)
            return "first at [" + std::to_string(i) + "]: " + std::to_string(actual[i]) +
                   " vs reference " + std::to_string(reference[i]);
    return "none";
}

void check_op_cases(const char* op, const std::vector<OpCase>& cases) {
    REQUIRE_FALSE(cases.empty());
    CpuBackend reference(0);
    const auto device = make_backend_under_test();
    for (const OpCase& c : cases) {
        OpRun on_reference(reference), on_device(*device);
        c.run(on_reference);
        c.run(on_device);
        const OpOutputs want = on_reference.finish(), got = on_device.finish();
        REQUIRE(want.tensors.size() == got.tensors.size());
        REQUIRE(want.scalars.size() == got.scalars.size());
        REQUIRE(want.tensors.size() + want.scalars.size() > 0);
        for (std::size_t t = 0; t < want.tensors.size(); ++t) {
            const TensorOutput &w = want.tensors[t], &g = got.tensors[t];
            const std::string what = std::string(op) + " " + c.label + ": " + w.name;
            if (w.agreement == Agreement::same_bits) {
                INFO(what << ": bits differ, " << first_bit_mismatch(g.values, w.values));
                CHECK(same_bits(g.values, w.values));
            } else {
                require_close(g.values, w.values, what, w.relative);
            }
        }
        for (std::size_t s = 0; s < want.scalars.size(); ++s) {
            const ScalarOutput &w = want.scalars[s], &g = got.scalars[s];
            const std::string what = std::string(op) + " " + c.label + ": " + w.name;
            if (w.relative == 0.0) {
                INFO(what << ": actual " << g.value << ", reference " << w.value);
                CHECK(g.value == w.value);
            } else {
                require_close(g.value, w.value, what, w.relative);
            }
        }
    }
}

std::string shape_label(std::initializer_list<long long> dims) {
    std::string text;
    for (long long d : dims) text += (text.empty() ? "" : "x") + std::to_string(d);
    return text;
}

const char* pool_name(PoolMode mode) { return mode == PoolMode::max ? "max" : "avg"; }
const char* half_name(HalfFormat format) { return format == HalfFormat::bf16 ? "bf16" : "fp16"; }

// ---- shapes ----------------------------------------------------------------------------------

// Convolutions: odd and even planes; narrow layers (the direct path on the CPU
// reference), wide ones on small planes (its Winograd F(2×2)) and on a 32×32
// plane (its F(4×4)), and the longest sums (K = 9·576) in kFp32RelativeL2's argument.
const ConvShape kConvShapes[] = {
    {3, 5, 7, 9}, {4, 6, 8, 10}, {16, 8, 13, 11}, {64, 64, 17, 15}, {32, 16, 32, 32}, {576, 8, 5, 3},
};

struct PlaneShape { int channels, height, width; };
// Odd sides, even sides, a single trailing row or column for the pooling floor.
const PlaneShape kPlaneShapes[] = {{3, 7, 9}, {4, 8, 6}, {2, 5, 2}, {1, 1, 3}};

// Vector lengths: one element, odd, a power of two, and one that is not a
// multiple of any block or grid size.
const std::size_t kCounts[] = {1, 7, 65536, 100003};

const HalfFormat kHalfFormats[] = {HalfFormat::bf16, HalfFormat::fp16};
const PoolMode kPoolModes[] = {PoolMode::average, PoolMode::max};

Preprocessing caffe_preprocessing() {  // BGR, 0..255, mean subtracted
    Preprocessing p;
    p.bgr = true;
    p.pixel_scale = 255.0f;
    p.mean[0] = 103.939f, p.mean[1] = 116.779f, p.mean[2] = 123.68f;
    return p;
}

Preprocessing torchvision_preprocessing() {  // RGB, 0..1, mean and std
    Preprocessing p;
    p.mean[0] = 0.485f, p.mean[1] = 0.456f, p.mean[2] = 0.406f;
    p.std[0] = 0.229f, p.std[1] = 0.224f, p.std[2] = 0.225f;
    return p;
}

// Values with NaN and ±∞ at the start, in the middle and at the end.
std::vector<float> with_non_finite(std::size_t count, unsigned seed) {
    auto x = random_vector(count, seed);
    const float inf = std::numeric_limits<float>::infinity();
    x[0] = std::numeric_limits<float>::quiet_NaN();
    if (count > 4097) x[4097] = -inf;
    if (count > 1) x[count - 1] = inf;
    return x;
}

// Large values every 7th element (beyond fp16's range unless scaled) and an exact zero.
std::vector<float> history_vector(std::size_t count, unsigned seed) {
    auto x = random_vector(count, seed);
    for (std::size_t i = 0; i < count; i += 7) x[i] *= 1e6f;
    if (count > 5) x[5] = 0.0f;
    return x;
}

std::uint16_t* half_output(OpRun& r, std::size_t count) {
    return reinterpret_cast<std::uint16_t*>(r.output((count + 1) / 2));
}

// A history vector (history_vector) packed in `format` with its own amax scale.
std::uint16_t* packed_history(OpRun& r, HalfFormat format, std::size_t count, unsigned seed,
                              std::size_t amax_slot) {
    const float* x = r.input(history_vector(count, seed));
    r.backend().amax_into(count, x, r.slot(amax_slot));
    std::uint16_t* packed = half_output(r, count);
    r.backend().pack_half(count, format, x, r.slot(amax_slot), packed);
    return packed;
}

// One case per vector length of kCounts: run(r, count).
template <typename Run>
std::vector<OpCase> per_count(Run run) {
    std::vector<OpCase> cases;
    for (std::size_t count : kCounts)
        cases.push_back({shape_label({(long long)count}), [run, count](OpRun& r) { run(r, count); }});
    return cases;
}

// One case per half format and vector length: run(r, format, count).
template <typename Run>
std::vector<OpCase> per_half_count(Run run) {
    std::vector<OpCase> cases;
    for (HalfFormat format : kHalfFormats)
        for (std::size_t count : kCounts)
            cases.push_back({std::string(half_name(format)) + " " + shape_label({(long long)count}),
                             [run, format, count](OpRun& r) { run(r, format, count); }});
    return cases;
}

}  // namespace

// Declared for every op of the list: an op without a definition below does not link.
#define NST_DECLARE_OP_CASES(phase, name, parameters, arguments) std::vector<OpCase> name##_cases();
NST_BACKEND_OPS(NST_DECLARE_OP_CASES)
#undef NST_DECLARE_OP_CASES

// ---- network layers --------------------------------------------------------------------------

std::vector<OpCase> conv3x3_forward_cases() {
    std::vector<OpCase> cases;
    for (const ConvShape& s : kConvShapes)
        cases.push_back({shape_label({s.in_channels, s.out_channels, s.height, s.width}), [s](OpRun& r) {
            const std::size_t plane = std::size_t(s.height) * s.width;
            const float* x = r.input(random_vector(s.in_channels * plane, 1));
            const float* w = r.input(random_vector(std::size_t(s.out_channels) * s.in_channels * 9, 2));
            float* y = r.output(s.out_channels * plane);
            r.backend().conv3x3_forward(s, x, w, y);
            r.keep("y", y, s.out_channels * plane, Agreement::close);
        }});
    return cases;
}

std::vector<OpCase> conv3x3_backward_data_cases() {
    std::vector<OpCase> cases;
    for (const ConvShape& s : kConvShapes)
        cases.push_back({shape_label({s.in_channels, s.out_channels, s.height, s.width}), [s](OpRun& r) {
            const std::size_t plane = std::size_t(s.height) * s.width;
            const float* dy = r.input(random_vector(s.out_channels * plane, 3));
            const float* w = r.input(random_vector(std::size_t(s.out_channels) * s.in_channels * 9, 2));
            float* dx = r.output(s.in_channels * plane);  // overwritten, not accumulated
            r.backend().conv3x3_backward_data(s, dy, w, dx);
            r.keep("dx", dx, s.in_channels * plane, Agreement::close);
        }});
    return cases;
}

std::vector<OpCase> bias_relu_forward_cases() {
    std::vector<OpCase> cases;
    for (const PlaneShape& s : kPlaneShapes)
        cases.push_back({shape_label({s.channels, s.height, s.width}), [s](OpRun& r) {
            const std::size_t plane = std::size_t(s.height) * s.width;
            float* y = r.input(random_vector(s.channels * plane, 5));
            r.backend().bias_relu_forward(s.channels, plane, r.input(random_vector(s.channels, 6)), y);
            r.keep("y", y, s.channels * plane, Agreement::same_bits);
        }});
    return cases;
}

std::vector<OpCase> relu_backward_cases() {
    return per_count([](OpRun& r, std::size_t count) {
        auto y = random_vector(count, 7);
        for (float& v : y) v = std::max(v, 0.0f);  // post-ReLU: about half exact zeros
        float* dy = r.input(random_vector(count, 8));
        r.backend().relu_backward(count, r.input(y), dy);
        r.keep("dy", dy, count, Agreement::same_bits);
    });
}

std::vector<OpCase> pool_forward_cases() {
    std::vector<OpCase> cases;
    for (PoolMode mode : kPoolModes)
        for (const PlaneShape& s : kPlaneShapes)
            cases.push_back({std::string(pool_name(mode)) + " " + shape_label({s.channels, s.height, s.width}),
                             [mode, s](OpRun& r) {
                // Values on a coarse grid: max windows hold ties.
                auto x = random_vector(std::size_t(s.channels) * s.height * s.width, 9);
                for (float& v : x) v = std::round(v * 2.0f) / 2.0f;
                const std::size_t out = std::size_t(s.channels) * (s.height / 2) * (s.width / 2);
                float* y = r.output(out);
                r.backend().pool_forward(mode, s.channels, s.height, s.width, r.input(x), y);
                r.keep("y", y, out, Agreement::same_bits);
            }});
    return cases;
}

std::vector<OpCase> pool_backward_cases() {
    std::vector<OpCase> cases;
    for (PoolMode mode : kPoolModes)
        for (const PlaneShape& s : kPlaneShapes)
            cases.push_back({std::string(pool_name(mode)) + " " + shape_label({s.channels, s.height, s.width}),
                             [mode, s](OpRun& r) {
                // Ties: the gradient goes to the first maximum in row-major order.
                const std::size_t in = std::size_t(s.channels) * s.height * s.width;
                auto x = random_vector(in, 10);
                for (float& v : x) v = std::round(v * 2.0f) / 2.0f;
                const float* dy = r.input(random_vector(std::size_t(s.channels) * (s.height / 2) * (s.width / 2), 11));
                float* dx = r.output(in);  // overwritten, a trailing odd row or column with zeros
                r.backend().pool_backward(mode, s.channels, s.height, s.width, r.input(x), dy, dx);
                r.keep("dx", dx, in, Agreement::same_bits);
            }});
    return cases;
}

// ---- preprocessing ---------------------------------------------------------------------------

std::vector<OpCase> preprocess_cases() {
    std::vector<OpCase> cases;
    for (bool caffe : {true, false})
        for (std::size_t plane : {std::size_t(77), std::size_t(64)})
            cases.push_back({std::string(caffe ? "caffe " : "torchvision ") + shape_label({3, (long long)plane}),
                             [caffe, plane](OpRun& r) {
                const Preprocessing pre = caffe ? caffe_preprocessing() : torchvision_preprocessing();
                float* out = r.output(3 * plane);
                r.backend().preprocess(pre, plane, r.input(random_vector(3 * plane, 12, 0.0f, 1.0f)), out);
                r.keep("p(x)", out, 3 * plane, Agreement::same_bits);
            }});
    return cases;
}

std::vector<OpCase> preprocess_backward_cases() {
    std::vector<OpCase> cases;
    for (bool caffe : {true, false})
        for (std::size_t plane : {std::size_t(77), std::size_t(64)})
            cases.push_back({std::string(caffe ? "caffe " : "torchvision ") + shape_label({3, (long long)plane}),
                             [caffe, plane](OpRun& r) {
                const Preprocessing pre = caffe ? caffe_preprocessing() : torchvision_preprocessing();
                float* dx = r.input(random_vector(3 * plane, 13));  // accumulated into
                r.backend().preprocess_backward(pre, plane, r.input(random_vector(3 * plane, 14)), dx);
                r.keep("dx", dx, 3 * plane, Agreement::same_bits);
            }});
    return cases;
}

// ---- Gram matrices and losses ------------------------------------------------------------------

struct GramShape { int n; std::size_t m; };
const GramShape kGramShapes[] = {{3, 5}, {13, 77}, {8, 64}, {64, 1001}};

std::vector<OpCase> gram_cases() {
    std::vector<OpCase> cases;
    for (const GramShape& s : kGramShapes)
        cases.push_back({shape_label({s.n, (long long)s.m}), [s](OpRun& r) {
            float* g = r.output(std::size_t(s.n) * s.n);
            r.backend().gram(s.n, s.m, r.input(random_vector(s.n * s.m, 15)), g);
            r.keep("G", g, std::size_t(s.n) * s.n, Agreement::close);
        }});
    return cases;
}

std::vector<OpCase> content_loss_into_cases() {
    return per_count([](OpRun& r, std::size_t count) {
        float* grad = r.input(random_vector(count, 17));
        r.backend().content_loss_into(count, r.input(random_vector(count, 15)),
                                      r.input(random_vector(count, 16)), 0.7f, grad, r.slot(0));
        // grad += w·(F − P): one rounded product and one addition on both sides.
        r.keep("gradient", grad, count, Agreement::same_bits);
        r.keep_scalar("loss", 0, kDoubleSumRelative);
    });
}

std::vector<OpCase> style_loss_into_cases() {
    std::vector<OpCase> cases;
    for (const GramShape& s : kGramShapes)
        cases.push_back({shape_label({s.n, (long long)s.m}), [s](OpRun& r) {
            const std::size_t nn = std::size_t(s.n) * s.n;
            // A symmetric target, as a Gram matrix is; G from each backend's own
            // gram (the gram cases hold the two close).
            auto a = random_vector(nn, 20, 0.0f, 30.0f);
            for (int i = 0; i < s.n; ++i)
                for (int j = 0; j < i; ++j) a[std::size_t(i) * s.n + j] = a[std::size_t(j) * s.n + i];
            const float* f = r.input(random_vector(s.n * s.m, 18));
            float* g = r.output(nn);
            r.backend().gram(s.n, s.m, f, g);
            float* grad = r.input(random_vector(s.n * s.m, 19));
            r.backend().style_loss_into(s.n, s.m, f, g, r.input(a), 1e3f, grad, r.slot(0));
            r.keep("gradient", grad, s.n * s.m, Agreement::close);
            // E sums (G − A)² in double, G from FP32 sums in different orders.
            r.keep_scalar("loss", 0, kFp32RelativeL2);
        }});
    return cases;
}

std::vector<OpCase> tv_loss_into_cases() {
    std::vector<OpCase> cases;
    for (const PlaneShape& s : kPlaneShapes)
        cases.push_back({shape_label({s.channels, s.height, s.width}), [s](OpRun& r) {
            const std::size_t count = std::size_t(s.channels) * s.height * s.width;
            float* grad = r.input(random_vector(count, 22));
            r.backend().tv_loss_into(s.channels, s.height, s.width, r.input(random_vector(count, 21)),
                                     0.3f, grad, r.slot(0));
            // Each element gathers its four differences in the same order on both
            // sides, then one rounded product (kernels/losses.h).
            r.keep("gradient", grad, count, Agreement::same_bits);
            r.keep_scalar("loss", 0, kDoubleSumRelative);
        }});
    return cases;
}

// The temporal loss: the plane shapes, and a 3 × 317 × 319 frame whose sum spans
// many reduction blocks.
std::vector<OpCase> temporal_loss_into_cases() {
    std::vector<PlaneShape> shapes(std::begin(kPlaneShapes), std::end(kPlaneShapes));
    shapes.push_back({3, 317, 319});
    std::vector<OpCase> cases;
    for (const PlaneShape& s : shapes)
        cases.push_back({shape_label({s.channels, s.height, s.width}), [s](OpRun& r) {
            const std::size_t plane = std::size_t(s.height) * s.width, count = s.channels * plane;
            auto pixel_weights = random_vector(plane, 57, 0.0f, 1.0f);
            for (std::size_t p = 0; p < plane; p += 3) pixel_weights[p] = 0.0f;  // occluded
            float* grad = r.input(random_vector(count, 58));
            r.backend().temporal_loss_into(s.channels, plane, r.input(random_vector(count, 55)),
                                           r.input(random_vector(count, 56)), r.input(pixel_weights), 0.9f,
                                           grad, r.slot(0));
            // k = float(2w/D) from the same host expression, then c·(x − t), the
            // product with k and the addition, each rounded once (kernels/losses.h).
            r.keep("gradient", grad, count, Agreement::same_bits);
            r.keep_scalar("loss", 0, kDoubleSumRelative);
        }});
    return cases;
}

// The warp: the plane shapes and a wider frame, flows of up to ±3 px (points
// leaving the frame), with NaN and ±∞ entries.
std::vector<OpCase> warp_bilinear_cases() {
    std::vector<PlaneShape> shapes(std::begin(kPlaneShapes), std::end(kPlaneShapes));
    shapes.push_back({3, 48, 64});
    std::vector<OpCase> cases;
    for (const PlaneShape& s : shapes)
        cases.push_back({shape_label({s.channels, s.height, s.width}), [s](OpRun& r) {
            const std::size_t plane = std::size_t(s.height) * s.width, count = s.channels * plane;
            auto flow = random_vector(2 * plane, 60, -3.0f, 3.0f);
            for (std::size_t p = 0; p < 2 * plane; p += 7) flow[p] = std::round(flow[p]);  // whole pixels
            if (plane > 2) {
                flow[1] = std::numeric_limits<float>::quiet_NaN();
                flow[plane + 2] = -std::numeric_limits<float>::infinity();
                flow[2 * plane - 1] = std::numeric_limits<float>::infinity();
            }
            float* dst = r.output(count);
            r.backend().warp_bilinear(s.channels, s.height, s.width, r.input(random_vector(count, 59)),
                                      r.input(flow), dst);
            // The same clamp, floor and weights, six products rounded on their own
            // and three additions in the same order (kernels/warp.h).
            r.keep("dst", dst, count, Agreement::same_bits);
        }});
    return cases;
}

// ---- vector ops --------------------------------------------------------------------------------

std::vector<OpCase> dot_into_cases() {
    return per_count([](OpRun& r, std::size_t count) {
        const float* x = r.input(random_vector(count, 23));
        r.backend().dot_into(count, x, r.input(random_vector(count, 24)), 0.5, r.slot(0));
        r.backend().dot_into(count, x, x, 1.0, r.slot(1));
        r.keep_scalar("0.5·x·y", 0, kDoubleSumRelative);
        r.keep_scalar("x·x", 1, kDoubleSumRelative);
    });
}

std::vector<OpCase> asum_into_cases() {
    return per_count([](OpRun& r, std::size_t count) {
        r.backend().asum_into(count, r.input(random_vector(count, 25)), r.slot(0));
        r.keep_scalar("Σ|x|", 0, kDoubleSumRelative);
    });
}

std::vector<OpCase> amax_into_cases() {
    return per_count([](OpRun& r, std::size_t count) {
        r.backend().amax_into(count, r.input(random_vector(count, 26)), r.slot(0));
        r.backend().amax_into(0, r.input({1.0f}), r.slot(1));  // empty: 0
        r.keep_scalar("max|x|", 0, 0.0);  // a maximum is exact
        r.keep_scalar("max of nothing", 1, 0.0);
    });
}

std::vector<OpCase> non_finite_into_cases() {
    return per_count([](OpRun& r, std::size_t count) {
        r.backend().non_finite_into(count, r.input(with_non_finite(count, 27)), r.slot(0));
        r.backend().non_finite_into(count, r.input(random_vector(count, 28)), r.slot(1));
        r.keep_scalar("non-finite count", 0, 0.0);
        r.keep_scalar("non-finite count of finite values", 1, 0.0);
        // The host helper on top of it, on this backend alone.
        CHECK_FALSE(r.backend().all_finite(count, r.input(with_non_finite(count, 29))));
        CHECK(r.backend().all_finite(count, r.input(random_vector(count, 30))));
    });
}

std::vector<OpCase> axpy_from_cases() {
    return per_count([](OpRun& r, std::size_t count) {
        const float* x = r.input(random_vector(count, 31));
        float* y = r.input(random_vector(count, 32));
        float* z = r.input(random_vector(count, 33));
        // The same coefficients on both: one rounded product and one addition.
        r.backend().axpy_from(count, r.coefficient(0, 0.3), r.coefficient(1, 0.05), -0.25, x, y);
        r.backend().axpy_from(count, r.coefficient(2, 1.5), nullptr, 1.0, x, z);
        r.keep("y (alpha − minus)", y, count, Agreement::same_bits);
        r.keep("z (alpha)", z, count, Agreement::same_bits);
        // Coefficients from reductions, as L-BFGS makes them: ~1e-16 apart, then
        // one float multiply-add per element.
        float* w = r.input(random_vector(count, 34));
        r.backend().dot_into(count, x, y, 0.5, r.slot(3));
        r.backend().dot_into(count, x, x, 1e-5, r.slot(4));
        r.backend().axpy_from(count, r.slot(3), r.slot(4), -0.25, x, w);
        r.keep("w (reduced coefficients)", w, count, Agreement::close);
    });
}

std::vector<OpCase> pack_half_cases() {
    return per_half_count([](OpRun& r, HalfFormat format, std::size_t count) {
        const float* x = r.input(history_vector(count, 35));
        r.backend().amax_into(count, x, r.slot(0));
        std::uint16_t* packed = half_output(r, count);
        r.backend().pack_half(count, format, x, r.slot(0), packed);
        // Integer rounding of the same scaled floats: identical words. An odd
        // count's last float holds one word and half of the NaN poison, which
        // neither backend touches.
        r.keep("packed", reinterpret_cast<float*>(packed), (count + 1) / 2, Agreement::same_bits);
    });
}

std::vector<OpCase> dot_half_into_cases() {
    return per_half_count([](OpRun& r, HalfFormat format, std::size_t count) {
        std::uint16_t* packed = packed_history(r, format, count, 36, 0);
        r.backend().dot_half_into(count, format, packed, r.input(random_vector(count, 37)), 0.5, r.slot(1));
        r.keep_scalar("0.5·unpack(a)·x", 1, kDoubleSumRelative);
    });
}

std::vector<OpCase> dot_half_pair_into_cases() {
    return per_half_count([](OpRun& r, HalfFormat format, std::size_t count) {
        std::uint16_t* a = packed_history(r, format, count, 38, 0);
        std::uint16_t* b = packed_history(r, format, count, 39, 1);
        r.backend().dot_half_pair_into(count, format, a, b, 1e-5, r.slot(2));
        r.keep_scalar("1e-5·unpack(a)·unpack(b)", 2, kDoubleSumRelative);
    });
}

std::vector<OpCase> axpy_from_half_cases() {
    return per_half_count([](OpRun& r, HalfFormat format, std::size_t count) {
        std::uint16_t* packed = packed_history(r, format, count, 40, 0);
        float* y = r.input(random_vector(count, 41));
        // The same coefficient on both: exact widening, one rounded product, one addition.
        r.backend().axpy_from_half(count, r.coefficient(1, 0.3), r.coefficient(2, 0.1),
                                   1.0 / 1024, format, packed, y);
        r.keep("y", y, count, Agreement::same_bits);
    });
}

std::vector<OpCase> axpy_cases() {
    return per_count([](OpRun& r, std::size_t count) {
        float* y = r.input(random_vector(count, 42));
        r.backend().axpy(count, -0.3f, r.input(random_vector(count, 43)), y);
        r.keep("y", y, count, Agreement::same_bits);  // product rounded on its own (no FMA)
    });
}

std::vector<OpCase> scale_cases() {
    return per_count([](OpRun& r, std::size_t count) {
        float* x = r.input(random_vector(count, 44));
        r.backend().scale(count, 1.7f, x);
        r.keep("x", x, count, Agreement::same_bits);
    });
}

std::vector<OpCase> copy_cases() {
    return per_count([](OpRun& r, std::size_t count) {
        float* dst = r.output(count);
        r.backend().copy(count, r.input(with_non_finite(count, 45)), dst);
        r.keep("dst", dst, count, Agreement::same_bits);
    });
}

std::vector<OpCase> fill_cases() {
    return per_count([](OpRun& r, std::size_t count) {
        float* x = r.output(count);
        r.backend().fill(count, 0.125f, x);
        r.keep("x", x, count, Agreement::same_bits);
    });
}

std::vector<OpCase> adam_update_cases() {
    return per_count([](OpRun& r, std::size_t count) {
        const float* g = r.input(random_vector(count, 46));
        float* m = r.input(random_vector(count, 47, -0.1f, 0.1f));
        float* v = r.input(random_vector(count, 48, 0.0f, 0.01f));
        float* x = r.input(random_vector(count, 49));
        for (int step = 1; step <= 3; ++step)
            r.backend().adam_update(count, 1e-2f, 0.9f, 0.999f, 1e-8f, step, g, m, v, x);
        // The same adam_step on both (kernels/vector_ops.h): products rounded on
        // their own, IEEE division and square root in double.
        r.keep("m", m, count, Agreement::same_bits);
        r.keep("v", v, count, Agreement::same_bits);
        r.keep("x", x, count, Agreement::same_bits);
    });
}

std::vector<OpCase> clamp_cases() {
    return per_count([](OpRun& r, std::size_t count) {
        float* x = r.input(random_vector(count, 50));
        r.backend().clamp(count, -0.25f, 0.5f, x);
        r.keep("x", x, count, Agreement::same_bits);
    });
}

// ---- spatial control and tiles ---------------------------------------------------------------

std::vector<OpCase> mask_channels_cases() {
    std::vector<OpCase> cases;
    for (const PlaneShape& s : kPlaneShapes)
        cases.push_back({shape_label({s.channels, s.height, s.width}), [s](OpRun& r) {
            const std::size_t plane = std::size_t(s.height) * s.width;
            // Odd planes: the broadcast index p = i mod plane wraps unevenly.
            float* x = r.input(random_vector(s.channels * plane, 51));
            const float* mask = r.input(random_vector(plane, 52, 0.0f, 1.0f));
            float* y = r.output(s.channels * plane);
            r.backend().mask_channels(s.channels, plane, x, mask, y);
            r.backend().mask_channels(s.channels, plane, x, mask, x);  // in place
            r.keep("y", y, s.channels * plane, Agreement::same_bits);
            r.keep("x in place", x, s.channels * plane, Agreement::same_bits);
        }});
    return cases;
}

std::vector<OpCase> copy_window_cases() {
    // A crop of 5 channels of a 13×17 tensor (window 6×9 at (4, 7)), and a paste of
    // it into a prefilled 11×19 tensor at (3, 2); also windows touching the borders.
    struct Window { int rows, cols, src_h, src_w, src_y, src_x, dst_h, dst_w, dst_y, dst_x; };
    const Window windows[] = {
        {6, 9, 13, 17, 4, 7, 11, 19, 3, 2},
        {4, 4, 8, 6, 4, 2, 4, 4, 0, 0},
        {7, 3, 7, 3, 0, 0, 9, 5, 2, 2},
    };
    std::vector<OpCase> cases;
    for (const Window& w : windows)
        cases.push_back({shape_label({w.rows, w.cols}) + " of " + shape_label({w.src_h, w.src_w}) +
                             " into " + shape_label({w.dst_h, w.dst_w}),
                         [w](OpRun& r) {
            const int channels = 5;
            WindowCopy window;
            window.channels = channels;
            window.rows = w.rows, window.cols = w.cols;
            window.src_height = w.src_h, window.src_width = w.src_w;
            window.src_y = w.src_y, window.src_x = w.src_x;
            window.dst_height = w.dst_h, window.dst_width = w.dst_w;
            window.dst_y = w.dst_y, window.dst_x = w.dst_x;
            const std::size_t dst_count = std::size_t(channels) * w.dst_h * w.dst_w;
            // Prefilled: what lies outside the window must keep its values.
            float* dst = r.input(random_vector(dst_count, 54));
            r.backend().copy_window(window, r.input(random_vector(std::size_t(channels) * w.src_h * w.src_w, 53)), dst);
            r.keep("dst", dst, dst_count, Agreement::same_bits);
        }});
    return cases;
}

// One test case per op of the list.
#define NST_OP_TEST(phase, name, parameters, arguments)                                            \
    TEST_CASE("backend op " #name ": the device under test matches the CPU reference",            \
              "[op][" #phase "][" #name "]") {                                                     \
        check_op_cases(#name, name##_cases());                                                     \
    }
NST_BACKEND_OPS(NST_OP_TEST)
#undef NST_OP_TEST

TEST_CASE("copy_window on the CPU reference matches its definition", "[op][window]") {
    // The reference itself against the definition, independently of the shared
    // index code of kernels/window.h: a crop, then a paste into a prefilled tensor.
    CpuBackend cpu(0);
    const int channels = 5;
    const auto src = random_vector(std::size_t(channels) * 13 * 17, 70);
    const auto prefilled = random_vector(std::size_t(channels) * 11 * 19, 71);
    WindowCopy crop;
    crop.channels = channels;
    crop.rows = 6, crop.cols = 9;
    crop.src_height = 13, crop.src_width = 17, crop.src_y = 4, crop.src_x = 7;
    crop.dst_height = 6, crop.dst_width = 9;
    WindowCopy paste = crop;
    paste.src_height = 6, paste.src_width = 9, paste.src_y = paste.src_x = 0;
    paste.dst_height = 11, paste.dst_width = 19, paste.dst_y = 3, paste.dst_x = 2;
    Buffer bs = to_backend(cpu, src), bc(cpu, std::size_t(channels) * 6 * 9),
           bp = to_backend(cpu, prefilled);
    cpu.copy_window(crop, bs.data(), bc.data());
    cpu.copy_window(paste, bc.data(), bp.data());
    const auto cropped = to_host(cpu, bc), pasted = to_host(cpu, bp);
    for (int c = 0; c < channels; ++c)
        for (int i = 0; i < 6; ++i)
            for (int j = 0; j < 9; ++j)
                REQUIRE(cropped[(std::size_t(c) * 6 + i) * 9 + j] ==
                        src[(std::size_t(c) * 13 + 4 + i) * 17 + 7 + j]);
    std::size_t untouched = 0, pasted_right = 0;
    for (int c = 0; c < channels; ++c)
        for (int y = 0; y < 11; ++y)
            for (int x = 0; x < 19; ++x) {
                const std::size_t at = (std::size_t(c) * 11 + y) * 19 + x;
                const bool inside = y >= 3 && y < 9 && x >= 2 && x < 11;
                if (!inside && pasted[at] == prefilled[at]) ++untouched;
                if (inside && pasted[at] == cropped[(std::size_t(c) * 6 + y - 3) * 9 + x - 2]) ++pasted_right;
            }
    CHECK(untouched == std::size_t(channels) * (11 * 19 - 6 * 9));
    CHECK(pasted_right == std::size_t(channels) * 6 * 9);
}
