// Dense optical flow through OpenCV, Middlebury .flo files, and resampling a flow.
//
// Decisions:
// - Both methods see 8-bit grey: Y = 0.299 R + 0.587 G + 0.114 B (BT.601 luma),
//   rounded, round(clamp(Y)·255). DIS asserts CV_8UC1; DeepFlow takes any one
//   channel but converts to float itself, so 8-bit loses it nothing it would use.
// - Direction: DenseOpticalFlow::calc(prev, next, flow) gives
//   prev(y, x) ≈ next(y + flow.y, x + flow.x), so prev = to_grid, next = from,
//   and the result is on to_grid's grid pointing into from (flow.h).
// - DIS, PRESET_MEDIUM (OpenCV 4.6, video/src/dis_flow.cpp): patch size 8, stride 3,
//   finest pyramid level 1 (half resolution, the result upscaled bilinearly and
//   doubled), 25 gradient-descent iterations per patch, 5 fixed-point iterations
//   of variational refinement per level (5 SOR iterations each; α = 20, γ = 10,
//   δ = 5, the class defaults), mean-normalised patches and spatial propagation.
// - "DeepFlow" is OpenCV contrib's optflow::createOptFlow_DeepFlow: DeepFlow's
//   variational energy (σ = 0.6 pre-smoothing, a 0.95 pyramid down to 25 pixels,
//   5 fixed-point × 25 SOR iterations per level) without DeepMatching's matches,
//   so large motions are found only as far as the coarse-to-fine scheme reaches.
// - Smallest frame: 16 pixels on each side, for both methods. DIS's pyramid
//   depth is min(round(log2(max side / 32)), ⌊log2(⌊min side / 8⌋)⌋); when that
//   is below the preset's finest level (1), OpenCV picks new levels from the
//   width alone, and a frame under 16 rows then has a level shorter than a patch:
//   64×15 reads out of bounds (a crash, measured), 16×16, 45×16, 16×45, 1000×16
//   run. DeepFlow runs at any size but does not refine below 26 pixels; one
//   bound for both keeps a video's validity independent of the method.
// - Threads: the result does not depend on OpenCV's thread count. DIS splits its
//   patch search into a fixed 8 stripes when spatial propagation is on (OpenCV's
//   comment: "to make inverse search with spatial propagation reproducible"); its
//   densification and both methods' variational refinement (red-black SOR) give
//   each pixel a value that no other stripe writes. Measured: setNumThreads(1), 2
//   and 16 give the same bits for both methods at 64×48, 256×192, 333×251, 512×384.
//   A fresh instance per call: DIS rewrites its own levels for small frames, so
//   a shared one would remember the last frame's size.
// - .flo files are untrusted input: the header is checked (tag, a positive size of
//   at most kMaxImagePixels) and the file's length compared with 12 + 8·W·H before
//   anything of the claimed size is allocated. Writing follows save_image (a
//   temporary ".name.tmp-XXXXXX" in the target's folder, flock()ed, fsync'ed and
//   renamed), named so that remove_stale_temporaries() cleans up after it too.
#include "engine/video/flow.h"

#include "engine/base/error.h"
#include "engine/io/files.h"
#include "kernels/warp.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <opencv2/core.hpp>
#include <opencv2/optflow.hpp>
#include <opencv2/video/tracking.hpp>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace nst {

namespace {

constexpr int kMinFlowSide = 16;
// Middlebury's convention: a component this large means "no flow known here".
constexpr float kUnknownFlow = 1e9f;
constexpr std::size_t kFloHeaderBytes = 12;
const char kFloTag[4] = {'P', 'I', 'E', 'H'};  // 202021.25 as a little-endian float

const char* method_name(FlowMethod method) {
    return method == FlowMethod::dis ? "DIS" : "DeepFlow";
}

cv::Mat grey_8bit(const Image& image) {
    cv::Mat grey(image.height, image.width, CV_8UC1);
    const std::size_t plane = image.plane();
    const float* r = image.pixels.data();
    const float* g = r + plane;
    const float* b = g + plane;
    for (std::size_t i = 0; i < plane; ++i) {
        const double luma = 0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i];
        const double clamped = luma > 0.0 ? (luma < 1.0 ? luma : 1.0) : 0.0;  // NaN → 0
        grey.data[i] = static_cast<std::uint8_t>(static_cast<int>(clamped * 255.0 + 0.5));
    }
    return grey;
}

cv::Ptr<cv::DenseOpticalFlow> make_method(FlowMethod method) {
    if (method == FlowMethod::dis) return cv::DISOpticalFlow::create(cv::DISOpticalFlow::PRESET_MEDIUM);
    return cv::optflow::createOptFlow_DeepFlow();
}

// ---- .flo reading ---------------------------------------------------------

[[noreturn]] void refuse_flo(const std::string& path, const std::string& reason) {
    throw InputError("cannot read flow '" + path + "': " + reason);
}

std::uint32_t little_endian_u32(const unsigned char* bytes) {
    return std::uint32_t(bytes[0]) | (std::uint32_t(bytes[1]) << 8) | (std::uint32_t(bytes[2]) << 16) |
           (std::uint32_t(bytes[3]) << 24);
}

float little_endian_float(const unsigned char* bytes) {
    const std::uint32_t bits = little_endian_u32(bytes);
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

void put_little_endian_u32(unsigned char* bytes, std::uint32_t value) {
    for (int k = 0; k < 4; ++k) bytes[k] = static_cast<unsigned char>(value >> (8 * k));
}

struct FileCloser {
    void operator()(std::FILE* file) const { std::fclose(file); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

}  // namespace

Flow compute_flow(FlowMethod method, const Image& to_grid, const Image& from) {
    NST_ASSERT(to_grid.pixels.size() == 3 * to_grid.plane() && from.pixels.size() == 3 * from.plane());
    const auto size = [](const Image& image) {
        return std::to_string(image.width) + "x" + std::to_string(image.height);
    };
    if (to_grid.width != from.width || to_grid.height != from.height)
        throw InputError(std::string("optical flow (") + method_name(method) + "): frames of different sizes (" +
                         size(to_grid) + " and " + size(from) + ")");
    if (to_grid.width < kMinFlowSide || to_grid.height < kMinFlowSide)
        throw InputError(std::string("optical flow (") + method_name(method) + "): frames of " + size(to_grid) +
                         " pixels are too small (at least " + std::to_string(kMinFlowSide) + " per side)");

    const cv::Mat previous = grey_8bit(to_grid);
    const cv::Mat next = grey_8bit(from);
    cv::Mat interleaved;  // (H, W) of (u, v)
    try {
        make_method(method)->calc(previous, next, interleaved);
    } catch (const cv::Exception& error) {
        throw RuntimeFailure(std::string("optical flow (") + method_name(method) + "): OpenCV failed: " +
                             error.what());
    }
    NST_ASSERT(interleaved.type() == CV_32FC2 && interleaved.rows == to_grid.height &&
               interleaved.cols == to_grid.width);

    Flow flow;
    flow.width = to_grid.width;
    flow.height = to_grid.height;
    flow.uv.resize(2 * flow.plane());
    for (int y = 0; y < flow.height; ++y) {
        const cv::Vec2f* row = interleaved.ptr<cv::Vec2f>(y);
        for (int x = 0; x < flow.width; ++x) {
            flow.at(0, y, x) = row[x][0];
            flow.at(1, y, x) = row[x][1];
        }
    }
    return flow;
}

Flow read_flo(const std::string& path, std::vector<bool>* unknown) {
    std::string reason;
    FileDescriptor descriptor = open_regular_file(path, reason);  // not a FIFO, device or folder
    if (!descriptor) refuse_flo(path, reason);
    FilePtr file(::fdopen(descriptor.get(), "rb"));
    if (!file) refuse_flo(path, std::strerror(errno));
    struct stat status {};
    if (::fstat(descriptor.get(), &status) != 0) refuse_flo(path, std::strerror(errno));
    descriptor.release();  // the stream owns it now

    unsigned char header[kFloHeaderBytes];
    if (std::fread(header, 1, kFloHeaderBytes, file.get()) != kFloHeaderBytes)
        refuse_flo(path, "truncated header (" + std::to_string(status.st_size) + " bytes; the header has 12)");
    if (std::memcmp(header, kFloTag, 4) != 0)
        refuse_flo(path, "not a Middlebury .flo file (its tag is not 'PIEH', the float 202021.25)");
    const auto width = static_cast<std::int32_t>(little_endian_u32(header + 4));
    const auto height = static_cast<std::int32_t>(little_endian_u32(header + 8));
    const std::string size = std::to_string(width) + "x" + std::to_string(height);
    if (width <= 0 || height <= 0) refuse_flo(path, "non-positive size " + size);
    if (static_cast<long long>(width) * height > kMaxImagePixels)
        refuse_flo(path, "size " + size + " too large (at most " + std::to_string(kMaxImagePixels) + " pixels)");
    const long long pixels = static_cast<long long>(width) * height;
    const long long expected = static_cast<long long>(kFloHeaderBytes) + 8 * pixels;
    if (static_cast<long long>(status.st_size) < expected)
        refuse_flo(path, "truncated (" + std::to_string(status.st_size) + " bytes; " + size + " needs " +
                             std::to_string(expected) + ")");
    if (static_cast<long long>(status.st_size) > expected)
        refuse_flo(path, "trailing data (" + std::to_string(status.st_size) + " bytes; " + size + " needs " +
                             std::to_string(expected) + ")");

    std::vector<unsigned char> body(static_cast<std::size_t>(8 * pixels));
    if (std::fread(body.data(), 1, body.size(), file.get()) != body.size())
        refuse_flo(path, "truncated while reading");
    if (std::fgetc(file.get()) != EOF) refuse_flo(path, "trailing data (the file grew while read)");

    Flow flow;
    flow.width = width;
    flow.height = height;
    flow.uv.resize(2 * flow.plane());
    if (unknown) unknown->assign(flow.plane(), false);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            const std::size_t p = std::size_t(y) * width + x;
            float u = little_endian_float(&body[8 * p]);
            float v = little_endian_float(&body[8 * p + 4]);
            if (!std::isfinite(u) || !std::isfinite(v))
                refuse_flo(path, "a non-finite value at (x " + std::to_string(x) + ", y " + std::to_string(y) + ")");
            if (std::fabs(u) >= kUnknownFlow || std::fabs(v) >= kUnknownFlow) {
                u = v = 0.0f;
                if (unknown) (*unknown)[p] = true;
            }
            flow.at(0, y, x) = u;
            flow.at(1, y, x) = v;
        }
    return flow;
}

void write_flo(const std::string& path, const Flow& flow) {
    NST_ASSERT(flow.width > 0 && flow.height > 0 && flow.uv.size() == 2 * flow.plane());
    auto fail = [&](const std::string& reason) -> void {
        throw RuntimeFailure("cannot write flow '" + path + "': " + reason);
    };
    for (float value : flow.uv)
        if (!std::isfinite(value))
            throw UsageError("cannot write flow '" + path + "': a non-finite value (no reader would accept it)");

    std::vector<unsigned char> bytes(kFloHeaderBytes + 8 * flow.plane());
    std::memcpy(bytes.data(), kFloTag, 4);
    put_little_endian_u32(bytes.data() + 4, static_cast<std::uint32_t>(flow.width));
    put_little_endian_u32(bytes.data() + 8, static_cast<std::uint32_t>(flow.height));
    for (int y = 0; y < flow.height; ++y)
        for (int x = 0; x < flow.width; ++x) {
            unsigned char* out = bytes.data() + kFloHeaderBytes + 8 * (std::size_t(y) * flow.width + x);
            for (int k = 0; k < 2; ++k) {
                std::uint32_t bits;
                const float value = flow.at(k, y, x);
                std::memcpy(&bits, &value, sizeof bits);
                put_little_endian_u32(out + 4 * k, bits);
            }
        }

    // As save_image: a locked temporary renamed into place (engine/io/files.h).
    try {
        TemporaryFile temporary(path);
        errno = 0;
        if (std::fwrite(bytes.data(), 1, bytes.size(), temporary.stream()) != bytes.size())
            fail(std::strerror(errno));
        temporary.commit();
    } catch (const RuntimeFailure& e) {
        const std::string what = e.what(), prefix = "cannot write '" + path + "': ";
        if (what.rfind(prefix, 0) == 0) fail(what.substr(prefix.size()));
        throw;
    }
}

// Pixel centres aligned, as OpenCV's and most resizers' bilinear mode:
// source x = (x + ½)·W/w − ½, clamped to the frame by bilinear_sample; the
// vectors are lengths in pixels, so u scales by w/W and v by h/H.
Flow resize_flow(const Flow& flow, int width, int height) {
    NST_ASSERT(flow.width > 0 && flow.height > 0 && flow.uv.size() == 2 * flow.plane());
    if (width < 1 || height < 1)
        throw UsageError("resize_flow: a target size of " + std::to_string(width) + "x" + std::to_string(height));
    if (width == flow.width && height == flow.height) return flow;
    Flow resized;
    resized.width = width;
    resized.height = height;
    resized.uv.resize(2 * resized.plane());
    const double step_x = double(flow.width) / width, step_y = double(flow.height) / height;
    const float scale[2] = {float(double(width) / flow.width), float(double(height) / flow.height)};
    for (int k = 0; k < 2; ++k) {
        const float* plane = flow.uv.data() + k * flow.plane();
        for (int y = 0; y < height; ++y) {
            const float source_y = float((y + 0.5) * step_y - 0.5);
            for (int x = 0; x < width; ++x) {
                const float source_x = float((x + 0.5) * step_x - 0.5);
                resized.at(k, y, x) =
                    scale[k] * kernels::bilinear_sample(plane, flow.height, flow.width, source_x, source_y);
            }
        }
    }
    return resized;
}

}  // namespace nst
