// Optical flow (engine/video/flow.h): .flo files, resizing a flow, and the two
// OpenCV methods on frames whose true flow is known (a photo panned and zoomed).
#include "engine/base/error.h"
#include "engine/io/image.h"
#include "engine/video/consistency.h"
#include "engine/video/flow.h"
#include "kernels/warp.h"
#include "tests/test_support.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

namespace {

using Bytes = std::vector<unsigned char>;
using Catch::Matchers::Contains;

nst::Flow constant_flow(int width, int height, float u, float v) {
    nst::Flow flow;
    flow.width = width;
    flow.height = height;
    flow.uv.resize(2 * flow.plane());
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            flow.at(0, y, x) = u;
            flow.at(1, y, x) = v;
        }
    return flow;
}

void put_u32(Bytes& bytes, std::uint32_t value) {
    for (int k = 0; k < 4; ++k) bytes.push_back(static_cast<unsigned char>(value >> (8 * k)));
}

void put_float(Bytes& bytes, float value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    put_u32(bytes, bits);
}

// A .flo file as the format defines it, byte by byte (little-endian).
Bytes flo_bytes(int width, int height, const std::vector<float>& interleaved_uv) {
    Bytes bytes{'P', 'I', 'E', 'H'};
    put_u32(bytes, static_cast<std::uint32_t>(width));
    put_u32(bytes, static_cast<std::uint32_t>(height));
    for (float value : interleaved_uv) put_float(bytes, value);
    return bytes;
}

void write_bytes(const std::string& path, const Bytes& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// ---- synthetic frames with a known flow -----------------------------------

// The photo (1024×768) moved by `map`: out(q) = photo(map(q)), sampled
// bilinearly at full resolution and then brought down to width × 3/4·width
// with the project's antialiased resize, so the frames' own blur is alike.
template <class Map>
nst::Image moved_photo(const nst::Image& photo, int width, Map map) {
    nst::Image moved;
    moved.width = photo.width;
    moved.height = photo.height;
    moved.pixels.resize(photo.pixels.size());
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < photo.height; ++y)
            for (int x = 0; x < photo.width; ++x) {
                const auto [px, py] = map(double(x), double(y));
                moved.at(c, y, x) = nst::kernels::bilinear_sample(photo.pixels.data() + c * photo.plane(),
                                                                  photo.height, photo.width, float(px), float(py));
            }
    return nst::resize_image(moved, width, width * photo.height / photo.width);
}

struct Scene {
    nst::Image to_grid, from;
    nst::Flow truth;  // on to_grid's grid, pointing into from
};

// A pan by (tx, ty) pixels of the small frame: from(q) = to_grid(q − t), so
// to_grid(p) = from(p + t) and the flow is t everywhere.
Scene pan(const nst::Image& photo, int width, double tx, double ty) {
    const double scale = double(photo.width) / width;  // full-resolution pixels per small one
    Scene scene;
    scene.to_grid = nst::resize_image(photo, width, width * photo.height / photo.width);
    scene.from = moved_photo(photo, width, [&](double x, double y) {
        return std::pair{x - tx * scale, y - ty * scale};
    });
    scene.truth = constant_flow(scene.to_grid.width, scene.to_grid.height, float(tx), float(ty));
    return scene;
}

// A zoom by z about the centre c: from(q) = to_grid(c + (q − c)/z), so
// to_grid(p) = from(c + z(p − c)) and the flow is (z − 1)(p − c). Pixel centres
// map affinely between the sizes, so c is the centre at either.
Scene zoom(const nst::Image& photo, int width, double z) {
    Scene scene;
    scene.to_grid = nst::resize_image(photo, width, width * photo.height / photo.width);
    const double cx = (photo.width - 1) / 2.0, cy = (photo.height - 1) / 2.0;
    scene.from = moved_photo(photo, width, [&](double x, double y) {
        return std::pair{cx + (x - cx) / z, cy + (y - cy) / z};
    });
    const int height = scene.to_grid.height;
    scene.truth = constant_flow(width, height, 0, 0);
    const double small_cx = (width - 1) / 2.0, small_cy = (height - 1) / 2.0;
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            scene.truth.at(0, y, x) = float((z - 1) * (x - small_cx));
            scene.truth.at(1, y, x) = float((z - 1) * (y - small_cy));
        }
    return scene;
}

// The mean end-point error |w − w_true| over pixels at least `margin` from the edge.
double interior_epe(const nst::Flow& flow, const nst::Flow& truth, int margin) {
    double sum = 0.0;
    long count = 0;
    for (int y = margin; y < flow.height - margin; ++y)
        for (int x = margin; x < flow.width - margin; ++x) {
            sum += std::hypot(double(flow.at(0, y, x)) - truth.at(0, y, x),
                              double(flow.at(1, y, x)) - truth.at(1, y, x));
            ++count;
        }
    return sum / double(count);
}

const char* name(nst::FlowMethod method) { return method == nst::FlowMethod::dis ? "DIS" : "DeepFlow"; }

const nst::Image& photo() {
    static const nst::Image image = nst::load_image(nst::test::shared_image_path("tubingen.jpg"));
    return image;
}

}  // namespace

// ---- .flo files -------------------------------------------------------------

TEST_CASE(".flo: the tag is the float 202021.25, stored little-endian as PIEH", "[flow][flo]") {
    const float tag = 202021.25f;
    unsigned char bytes[4];
    std::uint32_t bits;
    std::memcpy(&bits, &tag, sizeof bits);
    for (int k = 0; k < 4; ++k) bytes[k] = static_cast<unsigned char>(bits >> (8 * k));
    CHECK(std::string(reinterpret_cast<const char*>(bytes), 4) == "PIEH");
}

TEST_CASE(".flo: a written flow reads back bit for bit, in the documented layout", "[flow][flo]") {
    nst::test::TempDir dir("flo_round_trip");
    nst::Flow flow;
    flow.width = 7;
    flow.height = 5;
    flow.uv = nst::test::random_vector(2 * flow.plane(), 11, -40.0f, 40.0f);
    flow.at(0, 0, 0) = -0.0f;
    flow.at(1, 0, 0) = std::numeric_limits<float>::denorm_min();
    flow.at(0, 4, 6) = 9.9e8f;  // below Middlebury's 1e9: a known flow
    const std::string path = dir.file("flow.flo");
    nst::write_flo(path, flow);

    // The bytes are the format's: tag, width, height, then (u, v) per pixel by rows.
    std::vector<float> interleaved;
    for (int y = 0; y < flow.height; ++y)
        for (int x = 0; x < flow.width; ++x) {
            interleaved.push_back(flow.at(0, y, x));
            interleaved.push_back(flow.at(1, y, x));
        }
    const std::string written = nst::test::read_file(path);
    const Bytes expected = flo_bytes(7, 5, interleaved);
    CHECK(written == std::string(expected.begin(), expected.end()));

    std::vector<bool> unknown{true};
    const nst::Flow back = nst::read_flo(path, &unknown);
    CHECK(back.width == 7);
    CHECK(back.height == 5);
    CHECK(same_bits(back.uv, flow.uv));
    CHECK(unknown == std::vector<bool>(flow.plane(), false));

    // Written atomically: only the file itself is left in the folder, and a
    // second write replaces it.
    nst::write_flo(path, constant_flow(3, 2, 1.0f, 2.0f));
    CHECK(nst::read_flo(path).width == 3);
    int entries = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
        INFO(entry.path());
        ++entries;
    }
    CHECK(entries == 1);
    CHECK_THROWS_WITH(nst::write_flo(dir.file("missing/flow.flo"), flow),
                      "cannot write flow '" + dir.file("missing/flow.flo") + "': No such file or directory");
}

TEST_CASE(".flo: Middlebury's unknown values read as 0 and are flagged", "[flow][flo]") {
    nst::test::TempDir dir("flo_unknown");
    const std::string path = dir.file("unknown.flo");
    // Pixels: known; u = 1e10 (Middlebury's own marker); v = −1e9 (the threshold
    // itself); u just under the threshold (known, kept).
    write_bytes(path, flo_bytes(2, 2, {1.5f, -2.0f, 1e10f, 3.0f, 4.0f, -1e9f, 9.99e8f, 0.25f}));
    std::vector<bool> unknown;
    const nst::Flow flow = nst::read_flo(path, &unknown);
    CHECK(unknown == std::vector<bool>{false, true, true, false});
    CHECK(flow.uv == std::vector<float>{1.5f, 0.0f, 0.0f, 9.99e8f, -2.0f, 0.0f, 0.0f, 0.25f});
    CHECK(nst::read_flo(path).uv == flow.uv);  // the same values without the flags
}

TEST_CASE(".flo: bad files are refused with one line naming the file and the fault", "[flow][flo]") {
    nst::test::TempDir dir("flo_bad");
    const std::vector<float> four(8, 0.5f);  // a 2×2 flow
    struct Case {
        const char* label;
        Bytes bytes;
        std::string reason;
    };
    Bytes bad_tag = flo_bytes(2, 2, four);
    bad_tag[3] = 'X';
    Bytes short_file = flo_bytes(2, 2, four);
    short_file.pop_back();
    Bytes long_file = flo_bytes(2, 2, four);
    long_file.push_back(0);
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    const std::vector<Case> cases{
        {"empty", {}, "truncated header (0 bytes; the header has 12)"},
        {"header", {'P', 'I', 'E', 'H', 2, 0}, "truncated header (6 bytes; the header has 12)"},
        {"tag", bad_tag, "not a Middlebury .flo file (its tag is not 'PIEH', the float 202021.25)"},
        {"zero", flo_bytes(0, 2, {}), "non-positive size 0x2"},
        {"negative", flo_bytes(2, -3, {}), "non-positive size 2x-3"},
        // 2^31 − 1 wide: a header that would ask for 16 GiB before reading a value.
        {"absurd", flo_bytes(2147483647, 1, {}), "size 2147483647x1 too large (at most 134217728 pixels)"},
        {"huge", flo_bytes(16384, 8193, {}), "size 16384x8193 too large (at most 134217728 pixels)"},
        {"short", short_file, "truncated (43 bytes; 2x2 needs 44)"},
        {"long", long_file, "trailing data (45 bytes; 2x2 needs 44)"},
        {"nan", flo_bytes(2, 2, {0, 0, 0, 0, 0, nan, 0, 0}), "a non-finite value at (x 0, y 1)"},
        {"inf", flo_bytes(2, 2, {0, 0, 0, -inf, 0, 0, 0, 0}), "a non-finite value at (x 1, y 0)"},
    };
    for (const Case& bad : cases) {
        const std::string path = dir.file(std::string(bad.label) + ".flo");
        write_bytes(path, bad.bytes);
        INFO(bad.label);
        CHECK_THROWS_AS(nst::read_flo(path), nst::InputError);
        CHECK_THROWS_WITH(nst::read_flo(path), "cannot read flow '" + path + "': " + bad.reason);
    }
    CHECK_THROWS_WITH(nst::read_flo(dir.path()), "cannot read flow '" + dir.path() + "': a directory, not a regular file");
    CHECK_THROWS_WITH(nst::read_flo(dir.file("absent.flo")),
                      "cannot read flow '" + dir.file("absent.flo") + "': No such file or directory");
}

// ---- resize_flow --------------------------------------------------------------

TEST_CASE("resize_flow: vectors scale with the size, the same size is a copy", "[flow]") {
    const nst::Flow flow = constant_flow(32, 24, 1.5f, -0.75f);
    // Bilinear weights (1 − a) and a sum to 1 only up to rounding: a constant comes
    // back within a few ulps, not bit for bit. 1e-6 relative is ~8 ulps.
    const nst::Flow doubled = nst::resize_flow(flow, 64, 48);
    REQUIRE(doubled.width == 64);
    REQUIRE(doubled.height == 48);
    const std::vector<float> twice = constant_flow(64, 48, 3.0f, -1.5f).uv;
    const auto doubled_check = nst::test::compare(doubled.uv, twice, 0.0, 1e-6);
    INFO(doubled_check.report);
    CHECK(doubled_check.ok);
    // Per axis: only u doubles when only the width does.
    const nst::Flow wider = nst::resize_flow(flow, 64, 24);
    const auto wider_check = nst::test::compare(wider.uv, constant_flow(64, 24, 3.0f, -0.75f).uv, 0.0, 1e-6);
    INFO(wider_check.report);
    CHECK(wider_check.ok);
    // Halving halves (and averages neighbours: a ramp u = x at 8 wide becomes
    // u' = ½·(2x' + ½) at 4 wide, the mean of the two source columns, halved).
    nst::Flow ramp = constant_flow(8, 2, 0, 0);
    for (int y = 0; y < 2; ++y)
        for (int x = 0; x < 8; ++x) ramp.at(0, y, x) = float(x);
    const nst::Flow half = nst::resize_flow(ramp, 4, 2);
    for (int x = 0; x < 4; ++x) CHECK(half.at(0, 0, x) == Approx(0.5 * (2 * x + 0.5)).epsilon(1e-6));

    nst::Flow random;
    random.width = 9;
    random.height = 4;
    random.uv = nst::test::random_vector(2 * random.plane(), 3, -5.0f, 5.0f);
    CHECK(same_bits(nst::resize_flow(random, 9, 4).uv, random.uv));
    CHECK_THROWS_AS(nst::resize_flow(random, 0, 4), nst::UsageError);
}

// ---- compute_flow ---------------------------------------------------------------

TEST_CASE("compute_flow: frames of different sizes or too small are refused", "[flow]") {
    const nst::Image a = nst::test::random_image(64, 48, 1);
    const nst::Image b = nst::test::random_image(48, 64, 2);
    CHECK_THROWS_AS(nst::compute_flow(nst::FlowMethod::dis, a, b), nst::InputError);
    CHECK_THROWS_WITH(nst::compute_flow(nst::FlowMethod::dis, a, b),
                      "optical flow (DIS): frames of different sizes (64x48 and 48x64)");
    // DIS reads out of bounds on 64×15 (flow.cpp): refused for both methods.
    const nst::Image thin = nst::test::random_image(64, 15, 3);
    CHECK_THROWS_WITH(nst::compute_flow(nst::FlowMethod::deepflow, thin, thin),
                      "optical flow (DeepFlow): frames of 64x15 pixels are too small (at least 16 per side)");
    CHECK_THROWS_AS(nst::compute_flow(nst::FlowMethod::dis, nst::test::random_image(15, 15, 4),
                                      nst::test::random_image(15, 15, 5)),
                    nst::InputError);
    // The smallest accepted sizes, in both orientations, run (and give finite flow).
    for (const auto& [width, height] : {std::pair{16, 16}, std::pair{45, 16}, std::pair{16, 45}, std::pair{300, 16}}) {
        const nst::Image frame = nst::test::random_image(width, height, 6);
        for (const nst::FlowMethod method : {nst::FlowMethod::dis, nst::FlowMethod::deepflow}) {
            const nst::Flow flow = nst::compute_flow(method, frame, frame);
            CHECK(flow.width == width);
            CHECK(flow.height == height);
            bool finite = true;
            for (float value : flow.uv) finite = finite && std::isfinite(value);
            CHECK(finite);
        }
    }
}

TEST_CASE("compute_flow: the same frames give the same bits", "[flow]") {
    const Scene scene = pan(photo(), 128, 1.6, -0.7);
    for (const nst::FlowMethod method : {nst::FlowMethod::dis, nst::FlowMethod::deepflow}) {
        INFO(name(method));
        const nst::Flow first = nst::compute_flow(method, scene.to_grid, scene.from);
        const nst::Flow second = nst::compute_flow(method, scene.to_grid, scene.from);
        CHECK(same_bits(first.uv, second.uv));
    }
}

TEST_CASE("compute_flow: the known flow of a panned and a zoomed photo", "[flow][quality]") {
    // Three scenes: a pan by (1.6, −0.7) pixels, a larger one by (6.3, −2.8), and
    // a zoom by 1.02 about the centre (1.3 pixels at the edge of 128, 2.6 at 256).
    // Interior only: a margin of 1/16 of the width, past what enters or leaves the
    // frame and the methods' own edge effects.
    struct Bound {
        nst::FlowMethod method;
        int width;
        double pan, far_pan, zoom;  // the largest mean EPE accepted, in pixels
    };
    // Measured mean EPE (pixels) on the 2-core AMD EPYC VM with OpenCV 4.6.0:
    //   DIS       128: 0.0827, 0.0894, 0.1156   256: 0.0803, 0.1025, 0.1164
    //   DeepFlow  128: 0.0270, 0.0290, 0.0451   256: 0.0115, 0.0128, 0.0385
    // Each bound is 1.5× its measurement, rounded up: the methods are
    // deterministic, so the margin is for another build of OpenCV or libjpeg, not
    // for noise, and is small enough that a flow with half the accuracy, the
    // wrong direction (EPE ≈ 2|t|) or a lost scale fails.
    const std::vector<Bound> bounds{
        {nst::FlowMethod::dis, 128, 0.125, 0.135, 0.175},
        {nst::FlowMethod::dis, 256, 0.125, 0.155, 0.175},
        {nst::FlowMethod::deepflow, 128, 0.041, 0.044, 0.068},
        {nst::FlowMethod::deepflow, 256, 0.018, 0.020, 0.058},
    };
    for (const Bound& bound : bounds) {
        const int margin = bound.width / 16;
        const auto epe = [&](const Scene& scene) {
            return interior_epe(nst::compute_flow(bound.method, scene.to_grid, scene.from), scene.truth, margin);
        };
        const Scene panned = pan(photo(), bound.width, 1.6, -0.7);
        const double pan_epe = epe(panned);
        const double far_pan_epe = epe(pan(photo(), bound.width, 6.3, -2.8));
        const double zoom_epe = epe(zoom(photo(), bound.width, 1.02));
        std::printf("flow EPE %-8s %4dx%-4d pan (1.6, -0.7): %.4f px   pan (6.3, -2.8): %.4f px   zoom 1.02: %.4f px\n",
                    name(bound.method), panned.to_grid.width, panned.to_grid.height, pan_epe, far_pan_epe, zoom_epe);
        INFO(name(bound.method) << " at " << bound.width << ": pan " << pan_epe << ", far pan " << far_pan_epe
                                << ", zoom " << zoom_epe);
        CHECK(pan_epe < bound.pan);
        CHECK(far_pan_epe < bound.far_pan);
        CHECK(zoom_epe < bound.zoom);
    }
}

TEST_CASE("compute_flow: time per flow (printed, not asserted)", "[flow][timing]") {
    for (const int width : {256, 512}) {
        const Scene scene = pan(photo(), width, 1.6, -0.7);
        for (const nst::FlowMethod method : {nst::FlowMethod::dis, nst::FlowMethod::deepflow}) {
            nst::compute_flow(method, scene.to_grid, scene.from);  // warm: OpenCV's first-call set-up
            const int repeats = 3;
            double best = 1e30;
            for (int r = 0; r < repeats; ++r) {
                const auto start = std::chrono::steady_clock::now();
                nst::compute_flow(method, scene.to_grid, scene.from);
                best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
            }
            std::printf("flow time %-8s %4dx%-4d best of %d: %.1f ms\n", name(method), scene.to_grid.width,
                        scene.to_grid.height, repeats, 1e3 * best);
        }
    }
    SUCCEED();
}

TEST_CASE("compute_flow with consistency_weights: a pan is consistent away from the edge", "[flow][quality]") {
    // Measured on the 2-core AMD EPYC VM (OpenCV 4.6.0), the share of interior
    // pixels (margin 1/16 of the width) the weights zero for the pan by
    // (1.6, −0.7) at 256×192: 0 for both methods, and all 638 pixels that leave
    // the frame zeroed. Nothing is occluded in a pan, so a zero inside would be a
    // method's noise crossing the motion-boundary threshold (0.01|ŵ|² + 0.002 =
    // 0.033 px² here). Bounds: at most 1% of the interior (a flow pair that
    // disagrees, one computed the wrong way round, zeroes nearly all of it) and
    // at least 90% of the leaving pixels (which of columns 254, 255 leave depends
    // on the computed u being above 1, so a little slack at the edge).
    const Scene scene = pan(photo(), 256, 1.6, -0.7);
    for (const nst::FlowMethod method : {nst::FlowMethod::dis, nst::FlowMethod::deepflow}) {
        const nst::Flow to_earlier = nst::compute_flow(method, scene.to_grid, scene.from);
        const nst::Flow earlier_to_this = nst::compute_flow(method, scene.from, scene.to_grid);
        const std::vector<float> weights = nst::consistency_weights(to_earlier, earlier_to_this);
        const int width = scene.to_grid.width, height = scene.to_grid.height, margin = width / 16;
        long zeros = 0, interior = 0;
        for (int y = margin; y < height - margin; ++y)
            for (int x = margin; x < width - margin; ++x, ++interior)
                zeros += weights[std::size_t(y) * width + x] == 0.0f;
        // Points that leave the frame: x + 1.6 > 255 from x = 254, y − 0.7 < 0 in row 0.
        long leaving = 0;
        for (int y = 0; y < height; ++y)
            for (int x = 0; x < width; ++x)
                if ((x >= 254 || y == 0) && weights[std::size_t(y) * width + x] == 0.0f) ++leaving;
        const double share = double(zeros) / double(interior);
        const int leaving_pixels = 2 * height + width - 2;
        std::printf("consistency %-8s 256x192 pan: %.4f of the interior zeroed, %ld of %d leaving pixels zeroed\n",
                    name(method), share, leaving, leaving_pixels);
        INFO(name(method));
        CHECK(share <= 0.01);
        CHECK(double(leaving) >= 0.9 * leaving_pixels);
    }
}
