// Image files in and out. Pixels are RGB float in [0,1], planar (3, H, W).
// Decoding uses libpng and libjpeg-turbo; files are untrusted input: every
// failure throws nst::InputError naming the file and the reason.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nst {

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
// 2×2 or larger than 32768 on a side are refused.
Image load_image(const std::string& path);

// Writes 8-bit RGB, format chosen by the extension (.png, .jpg, .jpeg; case
// insensitive; JPEG quality 95). Values are clamped to [0,1] and rounded to the
// nearest 8-bit level. The file is written to a temporary name in the same
// directory and renamed, so a failure leaves no partial file and never replaces
// an existing good one. Throws UsageError for an unknown extension and
// RuntimeFailure when the file cannot be written.
void save_image(const std::string& path, const Image& image);

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

}  // namespace nst
