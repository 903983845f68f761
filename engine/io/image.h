// Image files in and out. Pixels are RGB float in [0,1], planar (3, H, W).
// Decoding uses libpng and libjpeg-turbo; files are untrusted input: every
// failure throws nst::InputError naming the file and the reason.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nst {

// The most pixels load_image() accepts: 2^27 ≈ 134 M (e.g. 16384 × 8192, a
// 134-megapixel photo; the largest camera sensors sold today have about 100 M).
// Decoding one costs at most 28 bytes per pixel at the peak (a rotated JPEG:
// 4 for the decoded rows, 12 for the float planes, 12 for the rotated copy;
// a 16-bit RGBA PNG needs 8 + 12), 3.5 GiB, plus the file itself (≤ 1 GiB) and
// libjpeg's coefficients (≤ 1 GiB): below what an 8 GiB machine holds. It refuses
// a square image above 11585², which --size (≤ 16384) alone would allow, but a
// run at that size could not proceed anyway: VGG-19's conv1_1 output alone is
// 64 channels · 2^27 pixels · 4 bytes = 32 GiB. A header claiming more is
// refused before anything of its size is allocated.
constexpr long long kMaxImagePixels = 1LL << 27;

struct Image {
    int width = 0;
    int height = 0;
    std::vector<float> pixels;  // (3, H, W), R plane then G then B, values in [0,1]

    std::size_t plane() const { return static_cast<std::size_t>(width) * height; }
    float& at(int c, int y, int x) { return pixels[c * plane() + static_cast<std::size_t>(y) * width + x]; }
    float at(int c, int y, int x) const { return pixels[c * plane() + static_cast<std::size_t>(y) * width + x]; }
};

// Loads a PNG or JPEG (detected from the file's signature, not its name).
// Grayscale becomes RGB; alpha is composited over white; 16-bit PNGs keep their
// precision; JPEG EXIF orientation (tags 1-8) is applied. Images smaller than
// 2×2, larger than 32768 on a side or than kMaxImagePixels in all are refused
// (InputError, from the header, before decoding), and so is a path that is not
// a regular file (a FIFO, a device, a directory), without opening it.
Image load_image(const std::string& path);

// How save_image() encodes an image.
struct SaveOptions {
    int png_bit_depth = 8;  // 8 or 16 bits per PNG sample (JPEG is always 8-bit)
    int jpeg_quality = 95;  // libjpeg's quality scale, 1 to 100
};

// Writes RGB, format chosen by the extension (.png, .jpg, .jpeg; case
// insensitive): 8-bit PNG or JPEG (4:4:4) at quality 95 unless `options` say
// otherwise. Values are clamped to [0,1] and rounded to the nearest level:
// round(v·255), or round(v·65535) for 16-bit PNG samples (stored big-endian, as
// PNG requires). The file is written to a temporary name in the same directory
// and renamed, so a failure leaves no partial file and never replaces an existing
// good one. Throws UsageError for an unknown extension or an option out of range,
// and RuntimeFailure when the file cannot be written.
void save_image(const std::string& path, const Image& image);
void save_image(const std::string& path, const Image& image, const SaveOptions& options);

// Removes the temporaries that save_image() calls for `path` and for its numbered
// snapshots ("out.png": ".out.png.tmp-XXXXXX" and ".out_*.png.tmp-XXXXXX" in the
// same directory) left behind by a process that was killed while saving. A
// temporary is removed only when no process holds it: save_image() keeps an
// exclusive flock() on its temporary until the rename, so one being written by a
// live process is never touched. Returns how many were removed; errors (an
// unreadable directory) are ignored, since a stale temporary does no harm beyond
// its space: every save makes a fresh name with mkstemp().
int remove_stale_temporaries(const std::string& path);

// True when save_image() accepts the path's extension.
bool is_supported_output_path(const std::string& path);

// Resamples to width × height with a separable Lanczos-3 filter whose support is
// widened by the scale factor when downscaling (antialiased). Same size: a copy.
Image resize_image(const Image& image, int width, int height);

// Resizes so the longest side is `longest` pixels (aspect ratio kept, each side
// at least 1). An image whose longest side already equals `longest` is returned
// unchanged (not resampled).
Image resize_longest_side(const Image& image, int longest);

// Float [0,1] to 8-bit with clamping and round-to-nearest: round(clamp(v)·255).
std::uint8_t to_8bit(float value);
// Float [0,1] to 16-bit: round(clamp(v)·65535); NaN gives 0, as to_8bit.
std::uint16_t to_16bit(float value);

}  // namespace nst
