// Image files in and out: PNG through libpng, JPEG through libjpeg-turbo.
//
// Decisions (files are untrusted input, so each is a refusal or a defined result):
// - The format comes from the file's signature (PNG: the 8-byte PNG signature;
//   JPEG: FF D8 FF), never from its name. The whole file is read into memory first
//   (at most 1 GiB), so both decoders read from a buffer and a short file is seen
//   as "truncated" rather than as a stdio error.
// - Size limits: at least 2x2 pixels (a 1x1 image is refused as too small), at most
//   32768 pixels per side and kMaxImagePixels (2^27) in all. They are checked from
//   the header before either library allocates anything that grows with the image:
//   for PNG from the IHDR bytes before libpng is called (libpng's own user limits are
//   set to the same values as a second guard), for JPEG after jpeg_read_header and
//   before jpeg_start_decompress (whose buffers are also capped by max_memory_to_use).
// - Only regular files are read: a FIFO, device or directory is refused from stat()
//   before it is opened, and the file is opened O_NONBLOCK and checked again with
//   fstat(), so a FIFO swapped in between cannot block the reader.
// - Both libraries report errors by longjmp. Each setjmp lives in a small function
//   whose own locals are trivially destructible; everything that owns memory (the
//   library structs, the pixel buffers) is held by RAII guards in the caller, so a
//   longjmp skips no destructor and the error path leaks nothing.
// - PNG: palettes and low bit depths are expanded, grayscale becomes RGB, tRNS
//   becomes alpha, 16-bit samples keep their precision (value / 65535). A CRC error
//   in any chunk (critical or ancillary) refuses the file; so does a file that ends
//   before IEND. libpng's warnings (e.g. about colour profiles) are ignored: they
//   never concern the pixel data. gAMA/iCCP are not applied: samples are taken as
//   the sRGB-encoded values they almost always are.
// - JPEG: every libjpeg warning about the data ("Premature end of JPEG file",
//   "Corrupt JPEG data: ...") is an error, because libjpeg would otherwise fill the
//   rest of the image with gray and carry on; only the two metadata-only warnings
//   (unknown JFIF revision, unknown Adobe transform code) are tolerated. Progressive
//   files with more than 1000 scans are refused (a known decoder denial of service).
// - CMYK and YCCK JPEGs are converted, not refused: R = (1 − C)(1 − K) and so on,
//   without a colour profile (approximate, like most viewers). Files carrying an
//   Adobe APP14 marker store inverted CMYK (Photoshop's convention, followed by
//   libjpeg-based viewers), so their samples are used as (1 − C) directly.
// - EXIF orientation (tag 0x0112 of IFD0 in the APP1 "Exif" segment, either byte
//   order) is applied for all 8 values. Malformed EXIF (bad offsets, wrong type,
//   out-of-range value) is ignored, never fatal: the orientation is then 1.
// - Alpha is composited over white in the encoded (sRGB) space, c·a + (1 − a), the
//   way viewers show a transparent image on a white page; the result has no alpha.
// - Saving writes RGB (PNG of 8 or 16 bits per sample, or JPEG, by default at quality
//   95, with 4:4:4 chroma, since stylised images have fine colour detail that 4:2:0
//   would smear), to a temporary file in the target's directory that is fsync'ed and
//   renamed over the target. The temporary is flock()ed while it exists, so
//   remove_stale_temporaries() can tell one a killed process left (unlocked) from
//   one being written.
#include "engine/io/image.h"

#include "engine/base/error.h"
#include "engine/io/files.h"
#include "kernels/preprocess.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>
// jpeglib.h needs FILE and size_t declared first.
#include <cstdio>
#include <jerror.h>
#include <jpeglib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <limits>
#include <memory>

namespace nst {

namespace {

constexpr int kMinSide = 2;
constexpr long long kMaxSide = 32768;
constexpr long long kMaxPixels = kMaxImagePixels;
constexpr std::size_t kMaxFileBytes = std::size_t(1) << 30;
constexpr int kMaxJpegScans = 1000;
constexpr long kMaxJpegWorkBytes = 1L << 30;
constexpr const char* kTruncatedPngHeader = "truncated PNG data";

[[noreturn]] void refuse(const std::string& path, const std::string& reason) {
    throw InputError("cannot read image '" + path + "': " + reason);
}

void check_dimensions(const std::string& path, long long width, long long height) {
    const std::string size = std::to_string(width) + "x" + std::to_string(height);
    if (width < kMinSide || height < kMinSide)
        refuse(path, "image too small (" + size + " pixels; at least 2x2 required)");
    if (width > kMaxSide || height > kMaxSide || width * height > kMaxPixels)
        refuse(path, "image too large (" + size + " pixels; at most 32768 per side and " +
                         std::to_string(kMaxPixels) + " in all)");
}

// The PNG's size from its IHDR, which the format requires to be the first chunk:
// signature (8), length (4), "IHDR" (4), width (4, big-endian), height (4). Checked
// here, before libpng sees the file, so that no header can make it allocate.
void check_png_header_dimensions(const std::string& path, const std::vector<unsigned char>& bytes) {
    if (bytes.size() < 8 + 8 + 8) refuse(path, kTruncatedPngHeader);
    if (std::memcmp(bytes.data() + 12, "IHDR", 4) != 0)
        refuse(path, "corrupt PNG (IHDR is not the first chunk)");
    const auto be32 = [&](std::size_t at) {
        return (std::uint32_t(bytes[at]) << 24) | (std::uint32_t(bytes[at + 1]) << 16) |
               (std::uint32_t(bytes[at + 2]) << 8) | std::uint32_t(bytes[at + 3]);
    };
    check_dimensions(path, be32(16), be32(20));
}

struct FileCloser {
    void operator()(std::FILE* file) const { std::fclose(file); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

std::vector<unsigned char> read_whole_file(const std::string& path) {
    std::string reason;
    FileDescriptor descriptor = open_regular_file(path, reason);
    if (!descriptor) refuse(path, reason);
    struct stat status {};
    if (::fstat(descriptor.get(), &status) != 0) refuse(path, std::strerror(errno));
    if (std::uint64_t(status.st_size) > kMaxFileBytes) refuse(path, "file larger than 1 GiB");
    FilePtr file(::fdopen(descriptor.get(), "rb"));
    if (!file) refuse(path, std::strerror(errno));
    descriptor.release();  // the stream owns it now
    std::vector<unsigned char> bytes;
    constexpr std::size_t chunk = std::size_t(1) << 20;
    for (;;) {
        const std::size_t old_size = bytes.size();
        bytes.resize(old_size + chunk);
        const std::size_t got = std::fread(bytes.data() + old_size, 1, chunk, file.get());
        bytes.resize(old_size + got);
        if (got < chunk) break;
        if (bytes.size() > kMaxFileBytes) refuse(path, "file larger than 1 GiB");
    }
    if (std::ferror(file.get())) refuse(path, std::strerror(errno));
    return bytes;
}

// ---------------------------------------------------------------------------------
// PNG

struct PngSource {
    const unsigned char* data;
    std::size_t size;
    std::size_t position;
};

constexpr const char* kTruncatedPng = "truncated PNG data";

struct PngReadContext {
    png_structp png = nullptr;
    png_infop info = nullptr;
    PngSource source{};
    char message[256] = {};

    ~PngReadContext() {
        if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    }
};

void png_error_to_longjmp(png_structp png, png_const_charp message) {
    auto* context = static_cast<PngReadContext*>(png_get_error_ptr(png));
    std::snprintf(context->message, sizeof context->message, "%s", message);
    png_longjmp(png, 1);
}

void png_ignore_warning(png_structp, png_const_charp) {}

void png_read_from_memory(png_structp png, png_bytep out, png_size_t length) {
    auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
    if (source->size - source->position < length) png_error(png, kTruncatedPng);
    std::memcpy(out, source->data + source->position, length);
    source->position += length;
}

// Reads the header and sets up the transforms to 8- or 16-bit RGB or RGBA.
// Returns false after a libpng error (the reason is in context.message).
bool png_read_header(PngReadContext& context) {
    if (setjmp(png_jmpbuf(context.png))) return false;
    // The caller checked the IHDR's size with a clearer message; libpng's limits
    // are the same, as a second guard.
    png_set_user_limits(context.png, kMaxSide, kMaxSide);
    png_set_crc_action(context.png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    png_set_read_fn(context.png, &context.source, png_read_from_memory);
    png_read_info(context.png, context.info);

    const png_byte color_type = png_get_color_type(context.png, context.info);
    const png_byte bit_depth = png_get_bit_depth(context.png, context.info);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(context.png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
        png_set_expand_gray_1_2_4_to_8(context.png);
    if (png_get_valid(context.png, context.info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(context.png);
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(context.png);
    png_set_interlace_handling(context.png);
    png_read_update_info(context.png, context.info);
    return true;
}

// Decodes all rows into `rows` and reads to IEND (checking the remaining CRCs).
bool png_read_pixels(PngReadContext& context, png_bytepp rows) {
    if (setjmp(png_jmpbuf(context.png))) return false;
    png_read_image(context.png, rows);
    png_read_end(context.png, nullptr);
    return true;
}

Image decode_png(const std::string& path, const std::vector<unsigned char>& bytes) {
    check_png_header_dimensions(path, bytes);
    PngReadContext context;
    context.source = PngSource{bytes.data(), bytes.size(), 0};
    context.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, png_error_to_longjmp,
                                         png_ignore_warning);
    if (!context.png) throw RuntimeFailure("cannot read image '" + path + "': out of memory");
    context.info = png_create_info_struct(context.png);
    if (!context.info) throw RuntimeFailure("cannot read image '" + path + "': out of memory");

    auto fail = [&]() {
        if (std::strcmp(context.message, kTruncatedPng) == 0) refuse(path, kTruncatedPng);
        refuse(path, std::string("corrupt PNG (") + context.message + ")");
    };
    if (!png_read_header(context)) fail();

    const png_uint_32 width = png_get_image_width(context.png, context.info);
    const png_uint_32 height = png_get_image_height(context.png, context.info);
    check_dimensions(path, width, height);
    const int channels = png_get_channels(context.png, context.info);
    const int bit_depth = png_get_bit_depth(context.png, context.info);
    NST_ASSERT((channels == 3 || channels == 4) && (bit_depth == 8 || bit_depth == 16));
    const std::size_t row_bytes = png_get_rowbytes(context.png, context.info);
    NST_ASSERT(row_bytes == std::size_t(width) * channels * (bit_depth / 8));

    std::vector<png_byte> interleaved(row_bytes * height);  // (H, W, channels), big-endian if 16-bit
    std::vector<png_bytep> rows(height);
    for (png_uint_32 y = 0; y < height; ++y) rows[y] = interleaved.data() + y * row_bytes;
    if (!png_read_pixels(context, rows.data())) fail();

    Image image;
    image.width = static_cast<int>(width);
    image.height = static_cast<int>(height);
    image.pixels.resize(3 * image.plane());
    const float max_value = bit_depth == 16 ? 65535.0f : 255.0f;
    const std::size_t plane = image.plane();
    for (std::size_t i = 0; i < plane; ++i) {
        float sample[4];
        for (int c = 0; c < channels; ++c) {
            const std::size_t k = i * channels + c;
            const unsigned value = bit_depth == 16
                                       ? (unsigned(interleaved[2 * k]) << 8) | interleaved[2 * k + 1]
                                       : interleaved[k];
            sample[c] = static_cast<float>(value) / max_value;
        }
        const float alpha = channels == 4 ? sample[3] : 1.0f;
        for (int c = 0; c < 3; ++c) image.pixels[c * plane + i] = sample[c] * alpha + (1.0f - alpha);
    }
    return image;
}

// ---------------------------------------------------------------------------------
// JPEG

struct JpegErrorManager {
    jpeg_error_mgr base;  // first member: libjpeg hands us a pointer to it
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX + 64];
};

void jpeg_error_to_longjmp(j_common_ptr cinfo) {
    auto* manager = reinterpret_cast<JpegErrorManager*>(cinfo->err);
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    // Most data warnings read "Corrupt JPEG data: <what>"; say it once.
    static const char prefix[] = "Corrupt JPEG data: ";
    if (std::strncmp(text, prefix, sizeof prefix - 1) == 0)
        std::snprintf(manager->message, sizeof manager->message, "corrupt JPEG data (%s)",
                      text + sizeof prefix - 1);
    else
        std::snprintf(manager->message, sizeof manager->message, "corrupt JPEG (%s)", text);
    std::longjmp(manager->jump, 1);
}

// Warnings (level −1) about the data stop decoding: libjpeg would otherwise
// substitute gray for what it could not read. Trace messages (level ≥ 0) are dropped.
void jpeg_warning_to_longjmp(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    const int code = cinfo->err->msg_code;
    if (code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM) return;
    auto* manager = reinterpret_cast<JpegErrorManager*>(cinfo->err);
    if (code == JWRN_JPEG_EOF) {
        std::snprintf(manager->message, sizeof manager->message, "truncated JPEG data");
        std::longjmp(manager->jump, 1);
    }
    jpeg_error_to_longjmp(cinfo);
}

void jpeg_ignore_output(j_common_ptr) {}

void jpeg_limit_scans(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    if (reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number <= kMaxJpegScans) return;
    auto* manager = reinterpret_cast<JpegErrorManager*>(cinfo->err);
    std::snprintf(manager->message, sizeof manager->message,
                  "corrupt JPEG (more than %d progressive scans)", kMaxJpegScans);
    std::longjmp(manager->jump, 1);
}

struct JpegDecoder {
    jpeg_decompress_struct cinfo{};
    JpegErrorManager error{};
    jpeg_progress_mgr progress{};
    bool created = false;

    JpegDecoder() {
        cinfo.err = jpeg_std_error(&error.base);
        error.base.error_exit = jpeg_error_to_longjmp;
        error.base.emit_message = jpeg_warning_to_longjmp;
        error.base.output_message = jpeg_ignore_output;
        progress.progress_monitor = jpeg_limit_scans;
    }
    ~JpegDecoder() {
        if (created) jpeg_destroy_decompress(&cinfo);
    }
    JpegDecoder(const JpegDecoder&) = delete;
    JpegDecoder& operator=(const JpegDecoder&) = delete;
};

// Reads the header (keeping APP1 segments for EXIF) and chooses the output colour
// space: RGB, or CMYK for CMYK/YCCK files (converted by the caller).
bool jpeg_read_header_into(JpegDecoder& decoder, const unsigned char* data, std::size_t size) {
    if (setjmp(decoder.error.jump)) return false;
    jpeg_create_decompress(&decoder.cinfo);
    decoder.created = true;
    decoder.cinfo.progress = &decoder.progress;
    jpeg_mem_src(&decoder.cinfo, data, static_cast<unsigned long>(size));
    jpeg_save_markers(&decoder.cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&decoder.cinfo, TRUE);
    const J_COLOR_SPACE space = decoder.cinfo.jpeg_color_space;
    decoder.cinfo.out_color_space = space == JCS_CMYK || space == JCS_YCCK ? JCS_CMYK : JCS_RGB;
    // libjpeg's own working memory (not the output rows, which the caller owns):
    // a progressive file keeps every coefficient, 64 16-bit coefficients per 8x8
    // block = 2 bytes per pixel per component, so the largest accepted image
    // (2^27 pixels, 3 components without subsampling) needs 768 MiB; the cap of
    // 1 GiB leaves room for the rest and refuses anything a header could add.
    decoder.cinfo.mem->max_memory_to_use = kMaxJpegWorkBytes;
    return true;
}

// Decodes into `out` (H, W, components) and reads to EOI, so a file cut after the
// last scanline is noticed too.
bool jpeg_read_pixels(JpegDecoder& decoder, unsigned char* out, std::size_t row_stride) {
    if (setjmp(decoder.error.jump)) return false;
    jpeg_start_decompress(&decoder.cinfo);
    while (decoder.cinfo.output_scanline < decoder.cinfo.output_height) {
        JSAMPROW row = out + decoder.cinfo.output_scanline * row_stride;
        jpeg_read_scanlines(&decoder.cinfo, &row, 1);
    }
    jpeg_finish_decompress(&decoder.cinfo);
    return true;
}

// Bounds-checked reads from the TIFF structure inside an Exif segment.
class TiffReader {
public:
    TiffReader(const unsigned char* data, std::size_t size, bool big_endian)
        : data_(data), size_(size), big_endian_(big_endian) {}
    bool u16(std::size_t offset, unsigned& value) const {
        if (offset > size_ || size_ - offset < 2) return false;
        const unsigned a = data_[offset], b = data_[offset + 1];
        value = big_endian_ ? (a << 8) | b : (b << 8) | a;
        return true;
    }
    bool u32(std::size_t offset, std::uint32_t& value) const {
        unsigned first = 0, second = 0;
        if (!u16(offset, first) || !u16(offset + 2, second)) return false;
        value = big_endian_ ? (std::uint32_t(first) << 16) | second
                            : (std::uint32_t(second) << 16) | first;
        return true;
    }

private:
    const unsigned char* data_;
    std::size_t size_;
    bool big_endian_;
};

// Orientation 1-8 from an APP1 segment, or 0 when it is not Exif, malformed or has
// no valid orientation tag.
int exif_orientation(const unsigned char* data, std::size_t size) {
    static const unsigned char exif_header[6] = {'E', 'x', 'i', 'f', 0, 0};
    if (size < 6 + 8 || std::memcmp(data, exif_header, 6) != 0) return 0;
    const unsigned char* tiff = data + 6;
    const std::size_t tiff_size = size - 6;
    bool big_endian = false;
    if (tiff[0] == 'I' && tiff[1] == 'I') big_endian = false;
    else if (tiff[0] == 'M' && tiff[1] == 'M') big_endian = true;
    else return 0;
    const TiffReader reader(tiff, tiff_size, big_endian);
    unsigned magic = 0, entries = 0;
    std::uint32_t ifd0 = 0;
    if (!reader.u16(2, magic) || magic != 42 || !reader.u32(4, ifd0)) return 0;
    if (!reader.u16(ifd0, entries)) return 0;
    constexpr unsigned kOrientationTag = 0x0112, kTypeShort = 3;
    for (unsigned i = 0; i < entries; ++i) {
        const std::size_t entry = std::size_t(ifd0) + 2 + std::size_t(i) * 12;
        unsigned tag = 0, type = 0, value = 0;
        std::uint32_t count = 0;
        if (!reader.u16(entry, tag)) return 0;  // the IFD runs past the segment
        if (tag != kOrientationTag) continue;
        if (!reader.u16(entry + 2, type) || !reader.u32(entry + 4, count) ||
            !reader.u16(entry + 8, value))
            return 0;
        if (type != kTypeShort || count != 1 || value < 1 || value > 8) return 0;
        return static_cast<int>(value);
    }
    return 0;
}

int jpeg_orientation(const jpeg_decompress_struct& cinfo) {
    for (jpeg_saved_marker_ptr marker = cinfo.marker_list; marker; marker = marker->next) {
        if (marker->marker != JPEG_APP0 + 1) continue;
        if (marker->data_length < 6 || std::memcmp(marker->data, "Exif\0\0", 6) != 0) continue;
        // Only the first Exif segment counts, as in every reader of the format.
        const int orientation = exif_orientation(marker->data, marker->data_length);
        return orientation == 0 ? 1 : orientation;
    }
    return 1;
}

// Displayed image from the stored one for EXIF orientation 1-8. The source pixel of
// displayed (x, y), with stored size w × h:
//   1 (x, y)  2 (w−1−x, y)  3 (w−1−x, h−1−y)  4 (x, h−1−y)          (size w × h)
//   5 (y, x)  6 (y, h−1−x)  7 (w−1−y, h−1−x)  8 (w−1−y, x)          (size h × w)
Image apply_orientation(const Image& stored, int orientation) {
    if (orientation <= 1 || orientation > 8) return stored;
    const int w = stored.width, h = stored.height;
    const bool swaps = orientation >= 5;
    Image shown;
    shown.width = swaps ? h : w;
    shown.height = swaps ? w : h;
    shown.pixels.resize(stored.pixels.size());
    for (int y = 0; y < shown.height; ++y) {
        for (int x = 0; x < shown.width; ++x) {
            int sx = x, sy = y;
            switch (orientation) {
                case 2: sx = w - 1 - x; sy = y; break;
                case 3: sx = w - 1 - x; sy = h - 1 - y; break;
                case 4: sx = x; sy = h - 1 - y; break;
                case 5: sx = y; sy = x; break;
                case 6: sx = y; sy = h - 1 - x; break;
                case 7: sx = w - 1 - y; sy = h - 1 - x; break;
                case 8: sx = w - 1 - y; sy = x; break;
                default: break;
            }
            for (int c = 0; c < 3; ++c) shown.at(c, y, x) = stored.at(c, sy, sx);
        }
    }
    return shown;
}

Image decode_jpeg(const std::string& path, const std::vector<unsigned char>& bytes) {
    JpegDecoder decoder;
    if (!jpeg_read_header_into(decoder, bytes.data(), bytes.size()))
        refuse(path, decoder.error.message);
    const jpeg_decompress_struct& cinfo = decoder.cinfo;
    check_dimensions(path, cinfo.image_width, cinfo.image_height);
    // Now: the saved markers live in libjpeg's image pool, which
    // jpeg_finish_decompress() frees.
    const int orientation = jpeg_orientation(cinfo);

    const bool cmyk = cinfo.out_color_space == JCS_CMYK;
    const int components = cmyk ? 4 : 3;
    const std::size_t width = cinfo.image_width, height = cinfo.image_height;
    std::vector<unsigned char> interleaved(width * height * components);  // (H, W, components)
    if (!jpeg_read_pixels(decoder, interleaved.data(), width * components))
        refuse(path, decoder.error.message);
    NST_ASSERT(cinfo.output_width == width && cinfo.output_height == height &&
               cinfo.output_components == components);

    Image stored;
    stored.width = static_cast<int>(width);
    stored.height = static_cast<int>(height);
    stored.pixels.resize(3 * stored.plane());
    const std::size_t plane = stored.plane();
    const bool inverted = cinfo.saw_Adobe_marker;
    for (std::size_t i = 0; i < plane; ++i) {
        const unsigned char* sample = &interleaved[i * components];
        if (!cmyk) {
            for (int c = 0; c < 3; ++c) stored.pixels[c * plane + i] = sample[c] / 255.0f;
            continue;
        }
        auto ink_free = [&](int c) {  // 1 − ink, in [0,1]
            return (inverted ? sample[c] : 255 - sample[c]) / 255.0f;
        };
        for (int c = 0; c < 3; ++c) stored.pixels[c * plane + i] = ink_free(c) * ink_free(3);
    }
    return apply_orientation(stored, orientation);
}

// ---------------------------------------------------------------------------------
// Saving

std::string lower_extension(const std::string& path) {
    const std::size_t slash = path.find_last_of('/');
    const std::size_t dot = path.find_last_of('.');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
    std::string extension = path.substr(dot + 1);
    for (char& ch : extension) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return extension;
}

enum class OutputFormat { none, png, jpeg };

OutputFormat output_format(const std::string& path) {
    const std::string extension = lower_extension(path);
    if (extension == "png") return OutputFormat::png;
    if (extension == "jpg" || extension == "jpeg") return OutputFormat::jpeg;
    return OutputFormat::none;
}

// (H, W, 3) 8-bit from the planar float image.
std::vector<unsigned char> interleave_8bit(const Image& image) {
    const std::size_t plane = image.plane();
    std::vector<unsigned char> out(plane * 3);
    for (std::size_t i = 0; i < plane; ++i)
        for (int c = 0; c < 3; ++c) out[i * 3 + c] = to_8bit(image.pixels[c * plane + i]);
    return out;
}

// (H, W, 3) samples of 16 bits, big-endian (PNG's byte order: libpng writes the
// bytes as given unless told to swap them).
std::vector<unsigned char> interleave_16bit(const Image& image) {
    const std::size_t plane = image.plane();
    std::vector<unsigned char> out(plane * 6);
    for (std::size_t i = 0; i < plane; ++i)
        for (int c = 0; c < 3; ++c) {
            const std::uint16_t sample = to_16bit(image.pixels[c * plane + i]);
            out[(i * 3 + c) * 2] = static_cast<unsigned char>(sample >> 8);
            out[(i * 3 + c) * 2 + 1] = static_cast<unsigned char>(sample & 0xff);
        }
    return out;
}

struct PngWriteContext {
    png_structp png = nullptr;
    png_infop info = nullptr;
    char message[256] = {};
    ~PngWriteContext() {
        if (png) png_destroy_write_struct(&png, info ? &info : nullptr);
    }
};

void png_write_error_to_longjmp(png_structp png, png_const_charp message) {
    auto* context = static_cast<PngWriteContext*>(png_get_error_ptr(png));
    std::snprintf(context->message, sizeof context->message, "%s", message);
    png_longjmp(png, 1);
}

bool png_write_rows(PngWriteContext& context, std::FILE* file, int width, int height,
                    int bit_depth, png_bytepp rows) {
    if (setjmp(png_jmpbuf(context.png))) return false;
    png_init_io(context.png, file);
    png_set_IHDR(context.png, context.info, static_cast<png_uint_32>(width),
                 static_cast<png_uint_32>(height), bit_depth, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(context.png, context.info);
    png_write_image(context.png, rows);
    png_write_end(context.png, nullptr);
    return true;
}

// Returns an empty string on success, else the reason.
std::string write_png(std::FILE* file, const Image& image, int bit_depth) {
    std::vector<unsigned char> interleaved =
        bit_depth == 16 ? interleave_16bit(image) : interleave_8bit(image);
    const std::size_t row_bytes = std::size_t(image.width) * 3 * std::size_t(bit_depth / 8);
    std::vector<png_bytep> rows(image.height);
    for (int y = 0; y < image.height; ++y) rows[y] = interleaved.data() + y * row_bytes;
    PngWriteContext context;
    context.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &context,
                                          png_write_error_to_longjmp, png_ignore_warning);
    if (!context.png) return "out of memory";
    context.info = png_create_info_struct(context.png);
    if (!context.info) return "out of memory";
    if (!png_write_rows(context, file, image.width, image.height, bit_depth, rows.data()))
        return errno != 0 ? std::strerror(errno) : context.message;
    return "";
}

struct JpegEncoder {
    jpeg_compress_struct cinfo{};
    JpegErrorManager error{};
    bool created = false;
    JpegEncoder() {
        cinfo.err = jpeg_std_error(&error.base);
        error.base.error_exit = jpeg_error_to_longjmp;
        error.base.output_message = jpeg_ignore_output;
    }
    ~JpegEncoder() {
        if (created) jpeg_destroy_compress(&cinfo);
    }
    JpegEncoder(const JpegEncoder&) = delete;
    JpegEncoder& operator=(const JpegEncoder&) = delete;
};

bool jpeg_write_rows(JpegEncoder& encoder, std::FILE* file, int width, int height, int quality,
                     unsigned char* interleaved) {
    if (setjmp(encoder.error.jump)) return false;
    jpeg_create_compress(&encoder.cinfo);
    encoder.created = true;
    jpeg_stdio_dest(&encoder.cinfo, file);
    encoder.cinfo.image_width = static_cast<JDIMENSION>(width);
    encoder.cinfo.image_height = static_cast<JDIMENSION>(height);
    encoder.cinfo.input_components = 3;
    encoder.cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&encoder.cinfo);
    jpeg_set_quality(&encoder.cinfo, quality, TRUE);
    for (int c = 0; c < 3; ++c) {
        encoder.cinfo.comp_info[c].h_samp_factor = 1;
        encoder.cinfo.comp_info[c].v_samp_factor = 1;
    }
    jpeg_start_compress(&encoder.cinfo, TRUE);
    const std::size_t row_bytes = std::size_t(width) * 3;
    while (encoder.cinfo.next_scanline < encoder.cinfo.image_height) {
        JSAMPROW row = interleaved + encoder.cinfo.next_scanline * row_bytes;
        jpeg_write_scanlines(&encoder.cinfo, &row, 1);
    }
    jpeg_finish_compress(&encoder.cinfo);
    return true;
}

std::string write_jpeg(std::FILE* file, const Image& image, int quality) {
    std::vector<unsigned char> interleaved = interleave_8bit(image);
    JpegEncoder encoder;
    if (!jpeg_write_rows(encoder, file, image.width, image.height, quality, interleaved.data()))
        return errno != 0 ? std::strerror(errno) : encoder.error.message;
    return "";
}

// The temporary file of an atomic save: removed unless committed.
// Whether `entry` is a temporary of save_image() for `name` or one of its numbered
// snapshots: "." + stem + ("" or "_<label>") + extension + ".tmp-" + 6 characters.
bool is_temporary_name(const std::string& entry, const std::string& name) {
    const std::string suffix = ".tmp-";
    constexpr std::size_t kRandom = 6;  // mkstemp's XXXXXX
    if (entry.size() < 1 + name.size() + suffix.size() + kRandom || entry[0] != '.') return false;
    const std::string target = entry.substr(1, entry.size() - 1 - suffix.size() - kRandom);
    if (entry.compare(entry.size() - kRandom - suffix.size(), suffix.size(), suffix) != 0) return false;
    if (target == name) return true;
    const std::size_t dot = name.find_last_of('.');
    const std::string stem = dot == std::string::npos ? name : name.substr(0, dot);
    const std::string extension = dot == std::string::npos ? "" : name.substr(dot);
    return target.size() > stem.size() + 1 + extension.size() && target.compare(0, stem.size() + 1, stem + "_") == 0 &&
           target.compare(target.size() - extension.size(), extension.size(), extension) == 0;
}

}  // namespace

int remove_stale_temporaries(const std::string& path) {
    const std::size_t slash = path.find_last_of('/');
    const std::string directory = slash == std::string::npos ? "." : path.substr(0, slash + 1);
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    DIR* folder = ::opendir(directory.c_str());
    if (!folder) return 0;
    int removed = 0;
    while (const dirent* entry = ::readdir(folder)) {
        const std::string entry_name = entry->d_name;
        if (!is_temporary_name(entry_name, name)) continue;
        const std::string entry_path = (slash == std::string::npos ? std::string() : directory) + entry_name;
        const int descriptor = ::open(entry_path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        if (descriptor < 0) continue;
        struct stat status {};
        // Not locked: its writer is gone. Unlinked while we hold the lock, so a
        // writer that locks it after us sees a link count of 0 and makes another.
        if (::fstat(descriptor, &status) == 0 && S_ISREG(status.st_mode) &&
            ::flock(descriptor, LOCK_EX | LOCK_NB) == 0 && ::unlink(entry_path.c_str()) == 0)
            ++removed;
        ::close(descriptor);
    }
    ::closedir(folder);
    return removed;
}

// The formula is shared with the CUDA backend's to_8bit (kernels/preprocess.h).
std::uint8_t to_8bit(float value) { return kernels::to_8bit_value(value); }

// As to_8bit: x·65535 is exact in double (at most 40 significant bits), and so is
// x·65535 + ½ (at most 41 where x ≥ 2⁻²²; below that the sum stays under 1).
std::uint16_t to_16bit(float value) {
    if (!(value > 0.0f)) return 0;  // also NaN
    if (value >= 1.0f) return 65535;
    return static_cast<std::uint16_t>(static_cast<int>(static_cast<double>(value) * 65535.0 + 0.5));
}

bool is_supported_output_path(const std::string& path) {
    return output_format(path) != OutputFormat::none;
}

Image load_image(const std::string& path) {
    const std::vector<unsigned char> bytes = read_whole_file(path);
    if (bytes.empty()) refuse(path, "empty file");
    static const unsigned char png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (bytes.size() >= 8 && std::memcmp(bytes.data(), png_signature, 8) == 0)
        return decode_png(path, bytes);
    if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
        return decode_jpeg(path, bytes);
    refuse(path, "not a PNG or JPEG image");
}

void save_image(const std::string& path, const Image& image) { save_image(path, image, SaveOptions{}); }

void save_image(const std::string& path, const Image& image, const SaveOptions& options) {
    const OutputFormat format = output_format(path);
    if (format == OutputFormat::none)
        throw UsageError("cannot write '" + path +
                         "': unsupported image format (use .png, .jpg or .jpeg)");
    if (options.png_bit_depth != 8 && options.png_bit_depth != 16)
        throw UsageError("cannot write '" + path + "': a PNG bit depth of " +
                         std::to_string(options.png_bit_depth) + " (8 or 16)");
    if (options.jpeg_quality < 1 || options.jpeg_quality > 100)
        throw UsageError("cannot write '" + path + "': a JPEG quality of " +
                         std::to_string(options.jpeg_quality) + " (1 to 100)");
    NST_ASSERT(image.width > 0 && image.height > 0 && image.pixels.size() == 3 * image.plane());
    TemporaryFile temporary(path);
    const std::string reason = format == OutputFormat::png
                                   ? write_png(temporary.stream(), image, options.png_bit_depth)
                                   : write_jpeg(temporary.stream(), image, options.jpeg_quality);
    if (!reason.empty()) throw RuntimeFailure("cannot write '" + path + "': " + reason);
    temporary.commit();
}

}  // namespace nst
