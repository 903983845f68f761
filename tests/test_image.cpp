// Image I/O and resampling. The files under test are written here with libpng and
// libjpeg directly (not through save_image), so the decoder is checked against
// data whose meaning the test fixes itself.
#include "engine/base/error.h"
#include "engine/io/image.h"
#include "tests/test_support.h"

#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <png.h>
// jpeglib.h needs FILE and size_t declared first.
#include <cstdio>
#include <jpeglib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <csetjmp>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Bytes = std::vector<unsigned char>;
namespace fs = std::filesystem;

void write_bytes(const std::string& path, const Bytes& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
}

Bytes read_bytes(const std::string& path) {
    const std::string text = nst::test::read_file(path);
    return Bytes(text.begin(), text.end());
}

nst::Image make_image(int width, int height, const std::function<float(int, int, int)>& value) {
    nst::Image image;
    image.width = width;
    image.height = height;
    image.pixels.resize(3 * image.plane());
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < height; ++y)
            for (int x = 0; x < width; ++x) image.at(c, y, x) = value(c, y, x);
    return image;
}

nst::Image random_image(int width, int height, unsigned seed, float lo = 0.0f, float hi = 1.0f) {
    const std::vector<float> values =
        nst::test::random_vector(3 * static_cast<std::size_t>(width) * height, seed, lo, hi);
    nst::Image image;
    image.width = width;
    image.height = height;
    image.pixels = values;
    return image;
}

// Expects load_image(path) to throw InputError naming the file and saying `reason`.
void require_refused(const std::string& path, const std::string& reason) {
    try {
        nst::load_image(path);
        FAIL("load_image('" << path << "') did not throw");
    } catch (const nst::InputError& error) {
        const std::string message = error.what();
        INFO("message: " << message);
        CHECK(message.find("'" + path + "'") != std::string::npos);
        CHECK(message.find(reason) != std::string::npos);
        CHECK(message.find('\n') == std::string::npos);
    }
}

// Names in a folder, for checking that no temporary file is left behind.
std::vector<std::string> folder_entries(const std::string& folder) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(folder))
        names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

// ---------------------------------------------------------------------------------
// PNG writing with libpng

struct PngSpec {
    int width = 0;
    int height = 0;
    int color_type = PNG_COLOR_TYPE_RGB;
    int bit_depth = 8;
    bool interlaced = false;
    std::vector<png_color> palette;
    std::vector<png_byte> transparency;  // tRNS: one alpha per palette entry
    Bytes rows;                          // (H, row bytes), packed as in the file
    int compression_level = -1;          // zlib level; −1: libpng's default
    std::size_t idat_bytes = 0;          // largest IDAT chunk; 0: libpng's default
};

bool png_write_all(png_structp png, png_infop info, std::FILE* file, const PngSpec& spec,
                   png_bytepp rows) {
    if (setjmp(png_jmpbuf(png))) return false;
    png_init_io(png, file);
    png_set_IHDR(png, info, static_cast<png_uint_32>(spec.width),
                 static_cast<png_uint_32>(spec.height), spec.bit_depth, spec.color_type,
                 spec.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (spec.compression_level >= 0) png_set_compression_level(png, spec.compression_level);
    if (spec.idat_bytes > 0) png_set_compression_buffer_size(png, spec.idat_bytes);
    if (!spec.palette.empty())
        png_set_PLTE(png, info, spec.palette.data(), static_cast<int>(spec.palette.size()));
    if (!spec.transparency.empty())
        png_set_tRNS(png, info, spec.transparency.data(), static_cast<int>(spec.transparency.size()),
                     nullptr);
    png_write_info(png, info);
    if (spec.interlaced) png_set_interlace_handling(png);
    png_write_image(png, rows);
    png_write_end(png, nullptr);
    return true;
}

void write_png(const std::string& path, const PngSpec& spec) {
    const int channels = spec.color_type == PNG_COLOR_TYPE_RGB          ? 3
                         : spec.color_type == PNG_COLOR_TYPE_RGB_ALPHA  ? 4
                         : spec.color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                                                                        : 1;
    const std::size_t row_bytes = (std::size_t(spec.width) * channels * spec.bit_depth + 7) / 8;
    REQUIRE(spec.rows.size() == row_bytes * spec.height);
    std::vector<png_bytep> rows(spec.height);
    for (int y = 0; y < spec.height; ++y)
        rows[y] = const_cast<png_bytep>(spec.rows.data()) + y * row_bytes;
    std::FILE* file = std::fopen(path.c_str(), "wb");
    REQUIRE(file);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png_create_info_struct(png);
    const bool ok = png_write_all(png, info, file, spec, rows.data());
    png_destroy_write_struct(&png, &info);
    std::fclose(file);
    REQUIRE(ok);
}

// A well-formed RGB PNG of the given size (8-bit, mid gray).
void write_gray_rgb_png(const std::string& path, int width, int height) {
    PngSpec spec;
    spec.width = width;
    spec.height = height;
    spec.rows.assign(std::size_t(width) * height * 3, 128);
    write_png(path, spec);
}

// CRC-32 as the PNG specification defines it (bitwise, polynomial 0xEDB88320).
std::uint32_t png_crc(const unsigned char* data, std::size_t size) {
    std::uint32_t crc = 0xFFFFFFFFu;
    for (std::size_t i = 0; i < size; ++i) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc ^ 0xFFFFFFFFu;
}

void append_be32(Bytes& out, std::uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<unsigned char>(value >> shift));
}

void append_chunk(Bytes& out, const char type[4], const Bytes& data) {
    append_be32(out, static_cast<std::uint32_t>(data.size()));
    Bytes typed(type, type + 4);
    typed.insert(typed.end(), data.begin(), data.end());
    out.insert(out.end(), typed.begin(), typed.end());
    append_be32(out, png_crc(typed.data(), typed.size()));
}

// A PNG whose IHDR declares width × height, followed by an empty IDAT: enough for a
// decoder to read the size, without the pixel data a huge image would need.
Bytes png_header_only(std::uint32_t width, std::uint32_t height) {
    Bytes out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    Bytes ihdr;
    append_be32(ihdr, width);
    append_be32(ihdr, height);
    ihdr.insert(ihdr.end(), {8, 0, 0, 0, 0});  // 8-bit gray, deflate, no filter, no interlace
    append_chunk(out, "IHDR", ihdr);
    append_chunk(out, "IDAT", {});
    return out;
}

// ---------------------------------------------------------------------------------
// JPEG writing with libjpeg

struct JpegSpec {
    int width = 0;
    int height = 0;
    int components = 3;
    J_COLOR_SPACE color_space = JCS_RGB;
    int quality = 95;
    Bytes samples;  // (H, W, components)
    Bytes app1;     // an APP1 segment body written right after SOI; empty: none (JFIF)
};

Bytes encode_jpeg(const JpegSpec& spec) {
    REQUIRE(spec.samples.size() == std::size_t(spec.width) * spec.height * spec.components);
    jpeg_compress_struct cinfo{};
    jpeg_error_mgr error{};
    cinfo.err = jpeg_std_error(&error);  // the data here is valid; libjpeg's default exit is fine
    jpeg_create_compress(&cinfo);
    unsigned char* buffer = nullptr;
    unsigned long size = 0;
    jpeg_mem_dest(&cinfo, &buffer, &size);
    cinfo.image_width = static_cast<JDIMENSION>(spec.width);
    cinfo.image_height = static_cast<JDIMENSION>(spec.height);
    cinfo.input_components = spec.components;
    cinfo.in_color_space = spec.color_space;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, spec.quality, TRUE);
    for (int c = 0; c < cinfo.num_components; ++c)
        cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
    if (!spec.app1.empty()) cinfo.write_JFIF_header = FALSE;  // Exif files start with APP1
    jpeg_start_compress(&cinfo, TRUE);
    if (!spec.app1.empty())
        jpeg_write_marker(&cinfo, JPEG_APP0 + 1, spec.app1.data(),
                          static_cast<unsigned>(spec.app1.size()));
    const std::size_t stride = std::size_t(spec.width) * spec.components;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = const_cast<unsigned char*>(spec.samples.data()) + cinfo.next_scanline * stride;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    Bytes out(buffer, buffer + size);
    std::free(buffer);
    return out;
}

Bytes random_samples(std::size_t count, unsigned seed) {
    const std::vector<float> values = nst::test::random_vector(count, seed, 0.0f, 256.0f);
    Bytes out(count);
    for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<unsigned char>(std::min(values[i], 255.0f));
    return out;
}

// A TIFF IFD entry as Exif stores it: tag, type, count, and the value field (a
// SHORT is left-justified in the 4-byte field).
struct IfdEntry {
    std::uint16_t tag;
    std::uint16_t type;
    std::uint32_t count;
    std::uint32_t value;
};
constexpr std::uint16_t kShort = 3, kLong = 4;

// "Exif\0\0" + TIFF header + IFD0 with `entries` (count field `declared_count`, by
// default the real count) + next-IFD offset 0.
Bytes exif_segment(bool big_endian, const std::vector<IfdEntry>& entries,
                   std::uint32_t ifd_offset = 8, int declared_count = -1) {
    Bytes out = {'E', 'x', 'i', 'f', 0, 0};
    auto put16 = [&](std::uint32_t v) {
        const unsigned char hi = static_cast<unsigned char>(v >> 8), lo = static_cast<unsigned char>(v);
        if (big_endian) out.insert(out.end(), {hi, lo});
        else out.insert(out.end(), {lo, hi});
    };
    auto put32 = [&](std::uint32_t v) {
        if (big_endian) { put16(v >> 16); put16(v & 0xFFFF); }
        else { put16(v & 0xFFFF); put16(v >> 16); }
    };
    if (big_endian) out.insert(out.end(), {'M', 'M'});
    else out.insert(out.end(), {'I', 'I'});
    put16(42);
    put32(ifd_offset);
    put16(declared_count >= 0 ? static_cast<std::uint32_t>(declared_count)
                              : static_cast<std::uint32_t>(entries.size()));
    for (const IfdEntry& entry : entries) {
        put16(entry.tag);
        put16(entry.type);
        put32(entry.count);
        if (entry.type == kShort) { put16(entry.value); put16(0); }
        else put32(entry.value);
    }
    put32(0);
    return out;
}

Bytes exif_with_orientation(bool big_endian, int orientation, int width) {
    // The orientation entry sits between two others, as in camera files.
    return exif_segment(big_endian, {{0x0100, kLong, 1, static_cast<std::uint32_t>(width)},
                                     {0x0112, kShort, 1, static_cast<std::uint32_t>(orientation)},
                                     {0x0128, kShort, 1, 2}});
}

// Where the EXIF specification puts the stored image's row 0 and column 0 on the
// displayed image, for orientations 1-8 (its table, word for word).
enum Side { top, bottom, left, right };
struct OrientationMeaning {
    Side row0;
    Side column0;
};
constexpr std::array<OrientationMeaning, 9> kOrientationMeaning = {{
    {top, left},      // (unused)
    {top, left},      // 1
    {top, right},     // 2
    {bottom, right},  // 3
    {bottom, left},   // 4
    {left, top},      // 5
    {right, top},     // 6
    {right, bottom},  // 7
    {left, bottom},   // 8
}};

// The displayed image: each stored pixel is sent to its place (scatter), following
// the table above.
nst::Image displayed_from_stored(const nst::Image& stored, int orientation) {
    const OrientationMeaning meaning = kOrientationMeaning[orientation];
    const int w = stored.width, h = stored.height;
    const bool rows_become_columns = meaning.row0 == left || meaning.row0 == right;
    nst::Image shown;
    shown.width = rows_become_columns ? h : w;
    shown.height = rows_become_columns ? w : h;
    shown.pixels.assign(stored.pixels.size(), -1.0f);
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            int dx, dy;
            if (!rows_become_columns) {
                dy = meaning.row0 == top ? y : h - 1 - y;
                dx = meaning.column0 == left ? x : w - 1 - x;
            } else {
                dx = meaning.row0 == left ? y : h - 1 - y;
                dy = meaning.column0 == top ? x : w - 1 - x;
            }
            for (int c = 0; c < 3; ++c) shown.at(c, dy, dx) = stored.at(c, y, x);
        }
    }
    return shown;
}

}  // namespace

// ---------------------------------------------------------------------------------

TEST_CASE("to_8bit rounds to the nearest level and clamps", "[image]") {
    CHECK(nst::to_8bit(0.0f) == 0);
    CHECK(nst::to_8bit(1.0f) == 255);
    CHECK(nst::to_8bit(-0.25f) == 0);
    CHECK(nst::to_8bit(1.75f) == 255);
    CHECK(nst::to_8bit(std::numeric_limits<float>::infinity()) == 255);
    CHECK(nst::to_8bit(-std::numeric_limits<float>::infinity()) == 0);
    CHECK(nst::to_8bit(std::numeric_limits<float>::quiet_NaN()) == 0);
    CHECK(nst::to_8bit(-std::numeric_limits<float>::quiet_NaN()) == 0);
    // 0.5 · 255 = 127.5 exactly (0.5 is a float): a tie, which rounds up.
    CHECK(nst::to_8bit(0.5f) == 128);
    // Exact levels k/255 map to k.
    for (int k = 0; k <= 255; ++k) CHECK(nst::to_8bit(static_cast<float>(k / 255.0)) == k);
    // The boundary between k and k + 1 is (k + ½)/255; the float nearest to it has
    // neighbours strictly on each side, which must round down and up respectively.
    for (int k = 0; k < 255; ++k) {
        const float boundary = static_cast<float>((k + 0.5) / 255.0);
        const float below = std::nextafter(boundary, 0.0f);
        const float above = std::nextafter(boundary, 1.0f);
        INFO("k = " << k);
        CHECK(nst::to_8bit(below) == k);
        CHECK(nst::to_8bit(above) == k + 1);
    }
}

TEST_CASE("PNG save and load round trip exactly at 8 bits", "[image]") {
    nst::test::TempDir folder("image-png");
    // Values beyond [0,1] and NaN test the clamping on the way out.
    nst::Image image = random_image(37, 23, 11, -0.2f, 1.2f);
    image.at(1, 4, 5) = std::numeric_limits<float>::quiet_NaN();
    std::vector<double> expected(image.pixels.size());
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = nst::to_8bit(image.pixels[i]) / 255.0;

    for (const std::string name : {"out.png", "OUT.PNG", "mixed.Png"}) {
        const std::string path = folder.file(name);
        nst::save_image(path, image);
        const nst::Image loaded = nst::load_image(path);
        REQUIRE(loaded.width == 37);
        REQUIRE(loaded.height == 23);
        // Both sides are k/255 computed once in float and once in double: 1e-7 covers
        // float rounding and is far below one level (1/255).
        const nst::test::Comparison result = nst::test::compare(loaded.pixels, expected, 1e-7, 0.0);
        INFO(name << "\n" << result.report);
        CHECK(result.ok);
    }
    CHECK(folder_entries(folder.path()) == std::vector<std::string>{"OUT.PNG", "mixed.Png", "out.png"});
}

TEST_CASE("to_16bit rounds to the nearest level and clamps", "[image]") {
    CHECK(nst::to_16bit(0.0f) == 0);
    CHECK(nst::to_16bit(1.0f) == 65535);
    CHECK(nst::to_16bit(-0.25f) == 0);
    CHECK(nst::to_16bit(1.75f) == 65535);
    CHECK(nst::to_16bit(std::numeric_limits<float>::infinity()) == 65535);
    CHECK(nst::to_16bit(std::numeric_limits<float>::quiet_NaN()) == 0);
    CHECK(nst::to_16bit(0.5f) == 32768);  // 32767.5 exactly: a tie, which rounds up
    // Exact levels k/65535 map to k; the floats on each side of (k + ½)/65535 round
    // down and up. Counted, not checked one by one: 65536 levels.
    int wrong_levels = 0, wrong_boundaries = 0;
    for (int k = 0; k <= 65535; ++k) {
        wrong_levels += nst::to_16bit(static_cast<float>(k / 65535.0)) != k;
        if (k == 65535) continue;
        const float boundary = static_cast<float>((k + 0.5) / 65535.0);
        wrong_boundaries += nst::to_16bit(std::nextafter(boundary, 0.0f)) != k;
        wrong_boundaries += nst::to_16bit(std::nextafter(boundary, 1.0f)) != k + 1;
    }
    CHECK(wrong_levels == 0);
    CHECK(wrong_boundaries == 0);
}

TEST_CASE("16-bit PNG: the samples an independent decoder reads, and load_image's", "[image]") {
    nst::test::TempDir folder("image-png16");
    // Values beyond [0,1] and NaN test the clamping; random values fill both bytes.
    nst::Image image = random_image(37, 23, 12, -0.2f, 1.2f);
    image.at(1, 4, 5) = std::numeric_limits<float>::quiet_NaN();
    image.at(0, 0, 0) = static_cast<float>(0x0102 / 65535.0);  // high byte 1, low byte 2
    const std::string path = folder.file("out.png");
    nst::SaveOptions options;
    options.png_bit_depth = 16;
    nst::save_image(path, image, options);

    // IHDR: the bit depth (byte 24) and colour type 2, RGB (byte 25).
    const Bytes bytes = read_bytes(path);
    REQUIRE(bytes.size() > 26);
    CHECK(int(bytes[24]) == 16);
    CHECK(int(bytes[25]) == 2);

    // tests/png_samples.py decodes with zlib and the PNG filters alone.
    auto decoded = [&](const std::string& file) {
        const auto r = nst::test::run_command("/usr/bin/python3 '" + nst::test::source_dir() +
                                              "/tests/png_samples.py' '" + file + "'");
        INFO("png_samples.py: " << r.err);
        REQUIRE(r.exit_code == 0);
        std::istringstream numbers(r.out);
        std::vector<long> values;
        for (long value; numbers >> value;) values.push_back(value);
        return values;
    };
    const std::vector<long> samples = decoded(path);
    REQUIRE(samples.size() == 4 + 3 * image.plane());
    CHECK(samples[0] == 37);
    CHECK(samples[1] == 23);
    CHECK(samples[2] == 16);
    const std::size_t plane = image.plane();
    int mismatches = 0;
    for (std::size_t i = 0; i < plane; ++i)
        for (int c = 0; c < 3; ++c) {
            const long expected = nst::to_16bit(image.pixels[c * plane + i]);
            const long got = samples[4 + i * 3 + c];
            if (got != expected && ++mismatches <= 5)
                UNSCOPED_INFO("pixel " << i << " channel " << c << ": " << got << ", expected " << expected);
        }
    CHECK(mismatches == 0);
    CHECK(samples[4] == 0x0102);

    // load_image keeps the 16 bits: k/65535 computed in float (≤ 6e-8 from the
    // double), far below one 16-bit step (1.5e-5).
    const nst::Image loaded = nst::load_image(path);
    REQUIRE(loaded.width == 37);
    REQUIRE(loaded.height == 23);
    std::vector<double> expected(image.pixels.size());
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = nst::to_16bit(image.pixels[i]) / 65535.0;
    const nst::test::Comparison result = nst::test::compare(loaded.pixels, expected, 1e-7, 0.0);
    INFO(result.report);
    CHECK(result.ok);

    // The default stays 8 bits, the same samples the decoder reads there too.
    nst::save_image(folder.file("out8.png"), image);
    CHECK(int(read_bytes(folder.file("out8.png"))[24]) == 8);
    const std::vector<long> samples8 = decoded(folder.file("out8.png"));
    REQUIRE(samples8.size() == 4 + 3 * plane);
    int mismatches8 = 0;
    for (std::size_t i = 0; i < plane; ++i)
        for (int c = 0; c < 3; ++c) mismatches8 += samples8[4 + i * 3 + c] != nst::to_8bit(image.pixels[c * plane + i]);
    CHECK(mismatches8 == 0);
}

TEST_CASE("JPEG quality: the file grows with it, 95 by default, 1 to 100", "[image]") {
    nst::test::TempDir folder("image-jpeg-quality");
    const nst::Image image = random_image(64, 48, 13);
    std::vector<std::size_t> sizes;
    for (int quality : {1, 10, 30, 50, 75, 90, 95, 100}) {
        nst::SaveOptions options;
        options.jpeg_quality = quality;
        const std::string path = folder.file("q" + std::to_string(quality) + ".jpg");
        nst::save_image(path, image, options);
        sizes.push_back(read_bytes(path).size());
        CHECK(nst::load_image(path).width == 64);
    }
    for (std::size_t k = 1; k < sizes.size(); ++k) {
        INFO("quality step " << k << ": " << sizes[k - 1] << " -> " << sizes[k] << " bytes");
        CHECK(sizes[k] > sizes[k - 1]);
    }
    nst::save_image(folder.file("default.jpg"), image);
    CHECK(read_bytes(folder.file("default.jpg")) == read_bytes(folder.file("q95.jpg")));

    for (int quality : {0, 101, -5}) {
        nst::SaveOptions options;
        options.jpeg_quality = quality;
        CHECK_THROWS_AS(nst::save_image(folder.file("bad.jpg"), image, options), nst::UsageError);
    }
    nst::SaveOptions depth;
    depth.png_bit_depth = 12;
    CHECK_THROWS_AS(nst::save_image(folder.file("bad.png"), image, depth), nst::UsageError);
    CHECK_FALSE(fs::exists(folder.file("bad.jpg")));
    CHECK_FALSE(fs::exists(folder.file("bad.png")));
}

TEST_CASE("JPEG save and load round trip closely", "[image]") {
    nst::test::TempDir folder("image-jpeg");
    // A smooth image, like the photographs and paintings the engine writes.
    const nst::Image image = make_image(64, 48, [](int c, int y, int x) {
        return static_cast<float>(0.5 + 0.4 * std::sin(0.11 * x + 0.7 * c) * std::cos(0.09 * y - 0.3 * c));
    });
    std::vector<double> expected(image.pixels.size());
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = nst::to_8bit(image.pixels[i]) / 255.0;
    for (const std::string name : {"out.jpg", "out.JPEG"}) {
        const std::string path = folder.file(name);
        nst::save_image(path, image);
        const nst::Image loaded = nst::load_image(path);
        REQUIRE(loaded.width == 64);
        REQUIRE(loaded.height == 48);
        // Quality 95 (full-resolution chroma) keeps a smooth image at about 45 dB
        // PSNR: an RMS error of 1-2 levels, the largest pixel errors a few times
        // that, where the errors of several quantised DCT coefficients add up. A
        // codec bug (a wrong quality, chroma subsampling, a colour-conversion error)
        // would exceed both bounds.
        double sum_squares = 0.0;
        for (std::size_t i = 0; i < expected.size(); ++i) {
            const double levels = (loaded.pixels[i] - expected[i]) * 255.0;
            sum_squares += levels * levels;
        }
        const double rms_levels = std::sqrt(sum_squares / static_cast<double>(expected.size()));
        INFO(name << ": RMS error " << rms_levels << " levels");
        CHECK(rms_levels < 2.0);
        const nst::test::Comparison result = nst::test::compare(loaded.pixels, expected, 6.0 / 255, 0.0);
        INFO(result.report);
        CHECK(result.ok);
    }
}

TEST_CASE("save_image picks the format by extension and refuses others", "[image]") {
    CHECK(nst::is_supported_output_path("a.png"));
    CHECK(nst::is_supported_output_path("dir.x/a.PNG"));
    CHECK(nst::is_supported_output_path("a.jpg"));
    CHECK(nst::is_supported_output_path("a.JpEg"));
    CHECK_FALSE(nst::is_supported_output_path("a.bmp"));
    CHECK_FALSE(nst::is_supported_output_path("png"));
    CHECK_FALSE(nst::is_supported_output_path("dir.png/a"));
    CHECK_FALSE(nst::is_supported_output_path("a.png.txt"));

    nst::test::TempDir folder("image-ext");
    const nst::Image image = random_image(4, 4, 3);
    CHECK_THROWS_AS(nst::save_image(folder.file("out.bmp"), image), nst::UsageError);
    CHECK(folder_entries(folder.path()).empty());

    // The signature decides, so PNG bytes under a .jpg name are a PNG.
    nst::save_image(folder.file("really-png.png"), image);
    fs::rename(folder.file("really-png.png"), folder.file("named.jpg"));
    CHECK(read_bytes(folder.file("named.jpg"))[1] == 'P');
    const nst::Image loaded = nst::load_image(folder.file("named.jpg"));
    CHECK(loaded.width == 4);
}

TEST_CASE("save_image writes atomically", "[image]") {
    nst::test::TempDir folder("image-atomic");
    const nst::Image first = random_image(16, 16, 5);
    const nst::Image second = random_image(16, 16, 6);

    SECTION("a missing folder fails and leaves nothing") {
        const std::string path = folder.file("missing/out.png");
        try {
            nst::save_image(path, first);
            FAIL("save_image did not throw");
        } catch (const nst::RuntimeFailure& error) {
            const std::string message = error.what();
            INFO(message);
            CHECK(message.find("'" + path + "'") != std::string::npos);
            CHECK(message.find("No such file or directory") != std::string::npos);
        }
        CHECK_FALSE(nst::test::file_exists(path));
        CHECK(folder_entries(folder.path()).empty());
    }

    SECTION("a successful save replaces the file and leaves no temporary") {
        const std::string path = folder.file("out.png");
        nst::save_image(path, first);
        const Bytes first_bytes = read_bytes(path);
        nst::save_image(path, second);
        CHECK(read_bytes(path) != first_bytes);
        const nst::Image loaded = nst::load_image(path);
        for (std::size_t i = 0; i < loaded.pixels.size(); ++i)
            REQUIRE(nst::to_8bit(loaded.pixels[i]) == nst::to_8bit(second.pixels[i]));
        CHECK(folder_entries(folder.path()) == std::vector<std::string>{"out.png"});
    }

    SECTION("a write that fails midway keeps the old file") {
        // Root ignores permissions, so the failure comes from a file-size limit:
        // writes past it fail with EFBIG (SIGXFSZ ignored so the process survives).
        const std::string path = folder.file("out.png");
        nst::save_image(path, first);
        const Bytes good = read_bytes(path);
        const nst::Image large = random_image(128, 128, 7);  // ~50 kB of noise as PNG
        rlimit saved{};
        REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
        auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);
        rlimit limited = saved;
        limited.rlim_cur = 4096;
        REQUIRE(setrlimit(RLIMIT_FSIZE, &limited) == 0);
        std::string message;
        try {
            nst::save_image(path, large);
        } catch (const nst::RuntimeFailure& error) {
            message = error.what();
        }
        setrlimit(RLIMIT_FSIZE, &saved);
        std::signal(SIGXFSZ, old_handler);
        INFO(message);
        CHECK(message.find("'" + path + "'") != std::string::npos);
        CHECK(message.find("File too large") != std::string::npos);
        CHECK(read_bytes(path) == good);
        CHECK(folder_entries(folder.path()) == std::vector<std::string>{"out.png"});
    }

    SECTION("a target that is a folder fails and the folder stays") {
        const std::string path = folder.file("taken.png");
        fs::create_directory(path);
        CHECK_THROWS_AS(nst::save_image(path, first), nst::RuntimeFailure);
        CHECK(fs::is_directory(path));
        CHECK(folder_entries(folder.path()) == std::vector<std::string>{"taken.png"});
    }
}

TEST_CASE("EXIF orientation is applied for all 8 values in both byte orders", "[image]") {
    nst::test::TempDir folder("image-exif");
    // Stored image 24 × 16 (not square, so a transpose shows in the size) of noise
    // (asymmetric under every flip and rotation).
    JpegSpec spec;
    spec.width = 24;
    spec.height = 16;
    spec.samples = random_samples(24 * 16 * 3, 21);
    write_bytes(folder.file("plain.jpg"), encode_jpeg(spec));
    // The scan data is identical in every file below (only APP1 differs), so the
    // decoded stored image is the same and the comparison can be exact.
    const nst::Image stored = nst::load_image(folder.file("plain.jpg"));
    REQUIRE(stored.width == 24);
    REQUIRE(stored.height == 16);

    for (const bool big_endian : {false, true}) {
        for (int orientation = 1; orientation <= 8; ++orientation) {
            spec.app1 = exif_with_orientation(big_endian, orientation, spec.width);
            const std::string path =
                folder.file("o" + std::to_string(orientation) + (big_endian ? "-mm.jpg" : "-ii.jpg"));
            write_bytes(path, encode_jpeg(spec));
            const nst::Image loaded = nst::load_image(path);
            const nst::Image expected = displayed_from_stored(stored, orientation);
            INFO("orientation " << orientation << (big_endian ? " (MM)" : " (II)"));
            REQUIRE(loaded.width == expected.width);
            REQUIRE(loaded.height == expected.height);
            const nst::test::Comparison result = nst::test::compare(loaded.pixels, expected.pixels, 0.0, 0.0);
            INFO(result.report);
            CHECK(result.ok);
        }
    }
}

TEST_CASE("malformed EXIF is ignored", "[image]") {
    nst::test::TempDir folder("image-bad-exif");
    JpegSpec spec;
    spec.width = 24;
    spec.height = 16;
    spec.samples = random_samples(24 * 16 * 3, 22);
    write_bytes(folder.file("plain.jpg"), encode_jpeg(spec));
    const nst::Image stored = nst::load_image(folder.file("plain.jpg"));

    const Bytes good = exif_with_orientation(false, 6, spec.width);
    std::vector<std::pair<std::string, Bytes>> cases;
    cases.push_back({"IFD offset past the end", exif_segment(false, {{0x0112, kShort, 1, 6}}, 0xFFFFFF00u)});
    cases.push_back({"IFD offset just inside", exif_segment(true, {{0x0112, kShort, 1, 6}}, 20)});
    cases.push_back({"entry count past the end", exif_segment(false, {{0x0100, kLong, 1, 24}}, 8, 0xFFFF)});
    cases.push_back({"orientation 0", exif_segment(true, {{0x0112, kShort, 1, 0}})});
    cases.push_back({"orientation 9", exif_segment(false, {{0x0112, kShort, 1, 9}})});
    cases.push_back({"orientation as LONG", exif_segment(false, {{0x0112, kLong, 1, 6}})});
    cases.push_back({"orientation with count 2", exif_segment(true, {{0x0112, kShort, 2, 6}})});
    cases.push_back({"bad byte order", [&] { Bytes b = good; b[6] = 'X'; b[7] = 'Y'; return b; }()});
    cases.push_back({"bad TIFF magic", [&] { Bytes b = good; b[8] = 43; return b; }()});
    cases.push_back({"header only", Bytes{'E', 'x', 'i', 'f', 0, 0, 'I', 'I'}});
    cases.push_back({"cut inside the orientation entry", Bytes(good.begin(), good.begin() + 6 + 8 + 2 + 12 + 9)});
    cases.push_back({"not Exif", [&] { Bytes b = good; b[0] = 'e'; return b; }()});

    for (const auto& [label, segment] : cases) {
        INFO(label);
        spec.app1 = segment;
        const std::string path = folder.file("bad.jpg");
        write_bytes(path, encode_jpeg(spec));
        const nst::Image loaded = nst::load_image(path);
        REQUIRE(loaded.width == stored.width);
        REQUIRE(loaded.height == stored.height);
        CHECK(loaded.pixels == stored.pixels);
    }
}

TEST_CASE("PNG colour types are converted to RGB", "[image]") {
    nst::test::TempDir folder("image-png-types");
    const int w = 5, h = 3;

    SECTION("8-bit grayscale, interlaced") {
        PngSpec spec{w, h, PNG_COLOR_TYPE_GRAY, 8, true, {}, {}, random_samples(w * h, 31)};
        write_png(folder.file("gray.png"), spec);
        const nst::Image image = nst::load_image(folder.file("gray.png"));
        REQUIRE((image.width == w && image.height == h));
        std::vector<double> expected(3 * w * h);
        for (int c = 0; c < 3; ++c)
            for (int i = 0; i < w * h; ++i) expected[c * w * h + i] = spec.rows[i] / 255.0;
        // k/255 in float against double: float rounding only.
        const auto result = nst::test::compare(image.pixels, expected, 1e-7, 0.0);
        INFO(result.report);
        CHECK(result.ok);
    }

    SECTION("4-bit grayscale") {
        // Row bytes: 5 pixels × 4 bits → 3 bytes; samples 0..15 mean v/15.
        const std::array<int, 15> levels = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15};
        Bytes rows;
        for (int y = 0; y < h; ++y) {
            for (int x = 0; x < w; x += 2) {
                const int a = levels[y * w + x], b = x + 1 < w ? levels[y * w + x + 1] : 0;
                rows.push_back(static_cast<unsigned char>((a << 4) | b));
            }
        }
        write_png(folder.file("gray4.png"), PngSpec{w, h, PNG_COLOR_TYPE_GRAY, 4, false, {}, {}, rows});
        const nst::Image image = nst::load_image(folder.file("gray4.png"));
        std::vector<double> expected(3 * w * h);
        for (int c = 0; c < 3; ++c)
            for (int i = 0; i < w * h; ++i) expected[c * w * h + i] = levels[i] / 15.0;
        const auto result = nst::test::compare(image.pixels, expected, 1e-7, 0.0);  // float rounding
        INFO(result.report);
        CHECK(result.ok);
    }

    SECTION("RGBA is composited over white") {
        Bytes rows = random_samples(w * h * 4, 32);
        rows[3] = 0;     // fully transparent: white
        rows[7] = 255;   // opaque: the colour itself
        write_png(folder.file("rgba.png"), PngSpec{w, h, PNG_COLOR_TYPE_RGB_ALPHA, 8, false, {}, {}, rows});
        const nst::Image image = nst::load_image(folder.file("rgba.png"));
        std::vector<double> expected(3 * w * h);
        for (int i = 0; i < w * h; ++i) {
            const double alpha = rows[4 * i + 3] / 255.0;
            for (int c = 0; c < 3; ++c)
                expected[c * w * h + i] = rows[4 * i + c] / 255.0 * alpha + (1.0 - alpha);
        }
        // A product and a sum of float values in [0,1]: a few float ulps.
        const auto result = nst::test::compare(image.pixels, expected, 1e-6, 0.0);
        INFO(result.report);
        CHECK(result.ok);
        CHECK(image.at(0, 0, 0) == 1.0f);
        CHECK(image.at(1, 0, 0) == 1.0f);
    }

    SECTION("16-bit RGB keeps its precision") {
        Bytes rows = random_samples(w * h * 6, 33);
        // Two samples that differ only in the low byte must stay distinct.
        rows[0] = 0x12; rows[1] = 0x34;
        rows[2] = 0x12; rows[3] = 0x35;
        write_png(folder.file("rgb16.png"), PngSpec{w, h, PNG_COLOR_TYPE_RGB, 16, false, {}, {}, rows});
        const nst::Image image = nst::load_image(folder.file("rgb16.png"));
        std::vector<double> expected(3 * w * h);
        for (int i = 0; i < w * h; ++i)
            for (int c = 0; c < 3; ++c) {
                const int k = 3 * i + c;
                expected[c * w * h + i] = (rows[2 * k] * 256 + rows[2 * k + 1]) / 65535.0;
            }
        // Float rounding (≤ 6e-8) only, far below one 16-bit step (1.5e-5).
        const auto result = nst::test::compare(image.pixels, expected, 1e-7, 0.0);
        INFO(result.report);
        CHECK(result.ok);
        CHECK(image.at(0, 0, 0) != image.at(1, 0, 0));
    }

    SECTION("palette with transparency") {
        const std::vector<png_color> palette = {{255, 0, 0}, {0, 128, 255}, {10, 20, 30}};
        const std::vector<png_byte> alpha = {255, 0, 128};
        Bytes rows(w * h);
        for (int i = 0; i < w * h; ++i) rows[i] = static_cast<unsigned char>(i % 3);
        write_png(folder.file("palette.png"), PngSpec{w, h, PNG_COLOR_TYPE_PALETTE, 8, false, palette, alpha, rows});
        const nst::Image image = nst::load_image(folder.file("palette.png"));
        std::vector<double> expected(3 * w * h);
        for (int i = 0; i < w * h; ++i) {
            const png_color& colour = palette[rows[i]];
            const double a = alpha[rows[i]] / 255.0;
            const double rgb[3] = {colour.red / 255.0, colour.green / 255.0, colour.blue / 255.0};
            for (int c = 0; c < 3; ++c) expected[c * w * h + i] = rgb[c] * a + (1.0 - a);
        }
        const auto result = nst::test::compare(image.pixels, expected, 1e-6, 0.0);  // as for RGBA
        INFO(result.report);
        CHECK(result.ok);
    }
}

TEST_CASE("JPEG grayscale and CMYK are converted to RGB", "[image]") {
    nst::test::TempDir folder("image-jpeg-types");

    SECTION("grayscale") {
        JpegSpec spec{16, 8, 1, JCS_GRAYSCALE, 95, random_samples(16 * 8, 41), {}};
        write_bytes(folder.file("gray.jpg"), encode_jpeg(spec));
        const nst::Image image = nst::load_image(folder.file("gray.jpg"));
        REQUIRE((image.width == 16 && image.height == 8));
        for (int y = 0; y < 8; ++y)
            for (int x = 0; x < 16; ++x) {
                CHECK(image.at(0, y, x) == image.at(1, y, x));
                CHECK(image.at(0, y, x) == image.at(2, y, x));
            }
    }

    SECTION("Adobe CMYK (inverted, as Photoshop writes it)") {
        // 8×8 blocks of flat colour at quality 100: each block is a DC term only, so
        // the decoded value is exact to within one level of rounding.
        struct Ink { double c, m, y, k; };
        const std::vector<Ink> inks = {{0, 1, 1, 0}, {1, 0, 1, 0}, {0, 0, 0, 0.5}, {0.2, 0.4, 0.6, 0.1}};
        const int w = 8 * static_cast<int>(inks.size()), h = 8;
        Bytes samples(w * h * 4);
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                const Ink& ink = inks[x / 8];
                const double values[4] = {ink.c, ink.m, ink.y, ink.k};
                for (int q = 0; q < 4; ++q)
                    samples[(y * w + x) * 4 + q] = static_cast<unsigned char>(std::lround((1.0 - values[q]) * 255));
            }
        JpegSpec spec{w, h, 4, JCS_CMYK, 100, samples, {}};
        write_bytes(folder.file("cmyk.jpg"), encode_jpeg(spec));  // libjpeg adds the Adobe marker
        const nst::Image image = nst::load_image(folder.file("cmyk.jpg"));
        REQUIRE((image.width == w && image.height == h));
        for (std::size_t b = 0; b < inks.size(); ++b) {
            const Ink& ink = inks[b];
            const double rgb[3] = {(1 - ink.c) * (1 - ink.k), (1 - ink.m) * (1 - ink.k), (1 - ink.y) * (1 - ink.k)};
            for (int c = 0; c < 3; ++c) {
                INFO("block " << b << " channel " << c);
                // Two levels: one for the stored inks' rounding, one for the DCT's.
                CHECK(std::fabs(image.at(c, 4, 8 * static_cast<int>(b) + 4) - rgb[c]) <= 2.0 / 255);
            }
        }
    }
}

TEST_CASE("bad image files are refused with the file name and the reason", "[image]") {
    nst::test::TempDir folder("image-bad");

    SECTION("missing file") {
        require_refused(folder.file("nope.jpg"), "No such file or directory");
    }
    SECTION("a folder") {
        fs::create_directory(folder.file("dir.png"));
        require_refused(folder.file("dir.png"), "a directory, not a regular file");
    }
    SECTION("empty file") {
        write_bytes(folder.file("empty.png"), {});
        require_refused(folder.file("empty.png"), "empty file");
    }
    SECTION("text named .png") {
        const std::string text = "this is not an image\n";
        write_bytes(folder.file("text.png"), Bytes(text.begin(), text.end()));
        require_refused(folder.file("text.png"), "not a PNG or JPEG image");
    }
    SECTION("truncated JPEG") {
        JpegSpec spec{64, 64, 3, JCS_RGB, 95, random_samples(64 * 64 * 3, 51), {}};
        const Bytes whole = encode_jpeg(spec);
        write_bytes(folder.file("cut.jpg"), Bytes(whole.begin(), whole.begin() + whole.size() / 2));
        require_refused(folder.file("cut.jpg"), "truncated JPEG data");
        // Cut just before EOI: every scanline decodes, the end marker is missing.
        write_bytes(folder.file("no-eoi.jpg"), Bytes(whole.begin(), whole.end() - 2));
        require_refused(folder.file("no-eoi.jpg"), "truncated JPEG data");
    }
    SECTION("corrupt JPEG data") {
        JpegSpec spec{64, 64, 3, JCS_RGB, 95, random_samples(64 * 64 * 3, 52), {}};
        Bytes bytes = encode_jpeg(spec);
        // Replace the middle of the scan with a restart marker, which cannot occur there.
        bytes[bytes.size() / 2] = 0xFF;
        bytes[bytes.size() / 2 + 1] = 0xD3;
        write_bytes(folder.file("corrupt.jpg"), bytes);
        require_refused(folder.file("corrupt.jpg"), "corrupt JPEG");
    }
    SECTION("PNG with a CRC error in IDAT") {
        // Uncompressed (zlib stored blocks) and split into 64-byte IDAT chunks: a byte
        // flipped in the first chunk's payload is invisible to zlib until its Adler-32
        // at the very end, so it is the first chunk's CRC, checked when libpng moves
        // on to the second chunk, that must catch it.
        PngSpec spec{16, 16, PNG_COLOR_TYPE_RGB, 8, false, {}, {}, random_samples(16 * 16 * 3, 53)};
        spec.compression_level = 0;
        spec.idat_bytes = 64;
        write_png(folder.file("good.png"), spec);
        CHECK(nst::load_image(folder.file("good.png")).width == 16);
        Bytes bytes = read_bytes(folder.file("good.png"));
        const std::string needle = "IDAT";
        const auto type_at = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
        REQUIRE(type_at != bytes.end());
        REQUIRE(type_at[-1] == 64);  // the chunk's length
        type_at[4 + 32] ^= 0x01;     // past zlib's 2-byte header and the 5-byte block header
        write_bytes(folder.file("crc.png"), bytes);
        require_refused(folder.file("crc.png"), "IDAT: CRC error");
    }
    SECTION("truncated PNG") {
        write_png(folder.file("good.png"), PngSpec{16, 16, PNG_COLOR_TYPE_RGB, 8, false, {}, {}, random_samples(16 * 16 * 3, 54)});
        const Bytes bytes = read_bytes(folder.file("good.png"));
        write_bytes(folder.file("cut.png"), Bytes(bytes.begin(), bytes.begin() + bytes.size() / 2));
        require_refused(folder.file("cut.png"), "truncated PNG data");
        // Without IEND: the pixels are all there but the file is incomplete.
        write_bytes(folder.file("no-iend.png"), Bytes(bytes.begin(), bytes.end() - 12));
        require_refused(folder.file("no-iend.png"), "truncated PNG data");
    }
    SECTION("1x1 PNG") {
        write_gray_rgb_png(folder.file("dot.png"), 1, 1);
        require_refused(folder.file("dot.png"), "too small");
        write_gray_rgb_png(folder.file("line.png"), 40, 1);
        require_refused(folder.file("line.png"), "too small");
    }
    SECTION("too large") {
        write_bytes(folder.file("wide.png"), png_header_only(32769, 2));
        require_refused(folder.file("wide.png"), "too large");
        write_bytes(folder.file("huge.png"), png_header_only(16385, 16385));  // 2^28 + 32769 pixels
        require_refused(folder.file("huge.png"), "too large");
        JpegSpec spec{32769, 2, 1, JCS_GRAYSCALE, 50, Bytes(32769 * 2, 100), {}};
        write_bytes(folder.file("wide.jpg"), encode_jpeg(spec));
        require_refused(folder.file("wide.jpg"), "too large");
    }
    SECTION("the size limits themselves are accepted") {
        write_gray_rgb_png(folder.file("two.png"), 2, 2);
        CHECK(nst::load_image(folder.file("two.png")).width == 2);
        write_bytes(folder.file("widest.png"), png_header_only(32768, 2));
        // The header passes the size check; the missing pixel data is what fails.
        require_refused(folder.file("widest.png"), "truncated PNG data");
    }
}

TEST_CASE("the shared photograph loads", "[image]") {
    const std::string path = nst::test::shared_image_path("tubingen.jpg");
    const nst::Image image = nst::load_image(path);
    CHECK(image.width == 1024);
    CHECK(image.height == 768);
    REQUIRE(image.pixels.size() == 3u * 1024 * 768);
    const auto [lo, hi] = std::minmax_element(image.pixels.begin(), image.pixels.end());
    CHECK(*lo >= 0.0f);
    CHECK(*hi <= 1.0f);
    // A photograph, not a gray fill: it spans most of the range.
    CHECK(*hi - *lo > 0.5f);
}

// ---------------------------------------------------------------------------------
// Resampling

TEST_CASE("resizing a constant image keeps it constant", "[image]") {
    const nst::Image image = make_image(31, 17, [](int c, int, int) { return static_cast<float>(0.2 + 0.3 * c); });
    for (const auto& [w, h] : std::vector<std::pair<int, int>>{{10, 6}, {64, 40}, {31, 5}, {3, 50}, {1, 1}}) {
        const nst::Image resized = nst::resize_image(image, w, h);
        REQUIRE((resized.width == w && resized.height == h));
        std::vector<double> expected(3 * static_cast<std::size_t>(w) * h);
        for (int c = 0; c < 3; ++c)
            std::fill(expected.begin() + c * w * h, expected.begin() + (c + 1) * w * h, 0.2 + 0.3 * c);
        // Weights are normalised to sum to 1 in double; float output rounding only.
        const auto result = nst::test::compare(resized.pixels, expected, 1e-6, 0.0);
        INFO(w << "x" << h << "\n" << result.report);
        CHECK(result.ok);
    }
}

TEST_CASE("downscaling a fine checkerboard gives its mean (antialiasing)", "[image]") {
    const nst::Image board = make_image(96, 96, [](int, int y, int x) { return float((x + y) % 2); });
    for (const int factor : {4, 3}) {
        const int n = 96 / factor;
        const nst::Image small = nst::resize_image(board, n, n);
        const auto [lo, hi] = std::minmax_element(small.pixels.begin(), small.pixels.end());
        CHECK(*lo >= 0.0f);
        CHECK(*hi <= 1.0f);
        // Away from the borders (3 output pixels = the stretched kernel's reach),
        // where clamped indices repeat the edge and break the pattern.
        double worst = 0.0;
        for (int c = 0; c < 3; ++c)
            for (int y = 3; y < n - 3; ++y)
                for (int x = 3; x < n - 3; ++x) worst = std::max(worst, std::fabs(small.at(c, y, x) - 0.5));
        INFO("factor " << factor << ": worst deviation from 0.5 is " << worst);
        // Point sampling would give 0 or 1 (deviation 0.5), and so would plain
        // Lanczos-3 at factor 3 (it interpolates: L(k) = 0 at nonzero integers).
        // The kernel stretched by the factor puts the checkerboard's frequency
        // (Nyquist of the input) deep in its stopband: each axis passes under 0.1%
        // of it, and the 2-D response is the product of the two. 0.005 (1% of the
        // contrast) is a bound with a wide margin; at factor 4 the symmetric taps
        // cancel exactly and only rounding remains.
        CHECK(worst < 0.005);
    }
}

TEST_CASE("downscaling vertical stripes by 3 is antialiased per axis", "[image]") {
    // One axis at a time: the deviation is the 1-D response itself, not a product.
    const nst::Image stripes = make_image(96, 12, [](int, int, int x) { return float(x % 2); });
    const nst::Image small = nst::resize_image(stripes, 32, 12);
    double worst = 0.0;
    for (int x = 3; x < 29; ++x) worst = std::max(worst, std::fabs(small.at(0, 5, x) - 0.5));
    INFO("worst deviation " << worst);
    // As above: under 0.1% of the stripes' amplitude (0.5) passes; unfiltered
    // sampling would give 0.5, a 3-tap box 1/6.
    CHECK(worst < 0.005);
}

TEST_CASE("upscaling a linear ramp follows the ramp away from the borders", "[image]") {
    // r(x, y) = 0.1 + 0.03·x + 0.02·y at input pixel centres (x, y).
    const int in_w = 16, in_h = 12, out_w = 40, out_h = 37;
    auto ramp = [](double x, double y) { return 0.1 + 0.03 * x + 0.02 * y; };
    const nst::Image image = make_image(in_w, in_h, [&](int, int y, int x) { return float(ramp(x, y)); });
    const nst::Image big = nst::resize_image(image, out_w, out_h);
    const double sx = double(in_w) / out_w, sy = double(in_h) / out_h;
    double worst = 0.0;
    for (int y = 0; y < out_h; ++y) {
        const double cy = (y + 0.5) * sy - 0.5;  // output centre in input coordinates
        if (cy < 3 || cy > in_h - 4) continue;   // the kernel would reach past the border
        for (int x = 0; x < out_w; ++x) {
            const double cx = (x + 0.5) * sx - 0.5;
            if (cx < 3 || cx > in_w - 4) continue;
            worst = std::max(worst, std::fabs(big.at(1, y, x) - ramp(cx, cy)));
        }
    }
    INFO("worst deviation " << worst);
    // Lanczos-3 reproduces constants exactly (normalised weights) but linear functions
    // only approximately: at off-centre phases the sampled kernel's first moment is
    // not zero, an error of at most ~0.02 pixel in position for this kernel. With
    // slopes 0.03 and 0.02 per pixel that is ≤ 0.02·0.05 = 1e-3; 1.5e-3 allows for it.
    CHECK(worst < 1.5e-3);
    CHECK(worst > 0.0);  // the comparison ran over some pixels
}

TEST_CASE("resize_longest_side keeps the aspect ratio", "[image]") {
    const nst::Image image = random_image(1024, 768, 61);
    const nst::Image half = nst::resize_longest_side(image, 512);
    CHECK(half.width == 512);
    CHECK(half.height == 384);
    const nst::Image tall = nst::resize_longest_side(random_image(30, 100, 62), 50);
    CHECK(tall.width == 15);
    CHECK(tall.height == 50);
    const nst::Image thin = nst::resize_longest_side(random_image(400, 2, 63), 100);
    CHECK(thin.width == 100);
    CHECK(thin.height == 1);  // 0.5 rounds to 1 and never below 1
    const nst::Image rounded = nst::resize_longest_side(random_image(1000, 333, 64), 512);
    CHECK(rounded.width == 512);
    CHECK(rounded.height == 170);  // 333·0.512 = 170.496
    const nst::Image line = nst::resize_longest_side(random_image(400, 1, 65), 100);
    CHECK(line.width == 100);
    CHECK(line.height == 1);  // 0.25 would round to 0
    // Already that size: the very same pixels, not a resampled copy.
    const nst::Image same = nst::resize_longest_side(image, 1024);
    CHECK(same.width == 1024);
    CHECK(same.height == 768);
    CHECK(same.pixels == image.pixels);
    CHECK_THROWS_AS(nst::resize_longest_side(image, 0), nst::UsageError);
    CHECK_THROWS_AS(nst::resize_image(image, 0, 5), nst::UsageError);
}

// ---------------------------------------------------------------------------------
// Hostile files: refused from the header, before anything of the claimed size is
// allocated, and without blocking.

namespace {

// Virtual memory of this process now, in bytes (VmSize in /proc/self/status).
std::size_t virtual_memory_bytes() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmSize:", 0) == 0) return std::stoull(line.substr(7)) * 1024;  // "N kB"
    return 0;
}

enum ChildOutcome { refused_as_expected = 0, other_message = 1, out_of_memory = 2, not_refused = 3 };

// Runs load_image(path) in a forked child whose address space may grow by at most
// `headroom` bytes (RLIMIT_AS) and which is killed after `seconds` (alarm), and
// returns how it ended: a ChildOutcome, or 128 + signal.
int load_in_limited_child(const std::string& path, const std::string& reason,
                          std::size_t headroom, unsigned seconds) {
    std::fflush(nullptr);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::alarm(seconds);
        rlimit limit{};
        limit.rlim_cur = limit.rlim_max = virtual_memory_bytes() + headroom;
        if (setrlimit(RLIMIT_AS, &limit) != 0) _exit(90);
        int outcome = not_refused;
        try {
            nst::load_image(path);
        } catch (const nst::InputError& error) {
            outcome = std::string(error.what()).find(reason) != std::string::npos ? refused_as_expected
                                                                                  : other_message;
        } catch (const std::bad_alloc&) {
            outcome = out_of_memory;
        } catch (...) {
            outcome = other_message;
        }
        _exit(outcome);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A small valid baseline JPEG whose SOF0 claims width × height instead.
Bytes jpeg_claiming(std::uint16_t width, std::uint16_t height) {
    JpegSpec spec{16, 16, 3, JCS_RGB, 90, random_samples(16 * 16 * 3, 61), {}};
    Bytes bytes = encode_jpeg(spec);
    for (std::size_t i = 2; i + 9 < bytes.size(); ++i) {
        if (bytes[i] != 0xFF || bytes[i + 1] != 0xC0) continue;
        // FF C0, length (2), precision (1), height (2), width (2), big-endian
        bytes[i + 5] = static_cast<unsigned char>(height >> 8);
        bytes[i + 6] = static_cast<unsigned char>(height & 0xFF);
        bytes[i + 7] = static_cast<unsigned char>(width >> 8);
        bytes[i + 8] = static_cast<unsigned char>(width & 0xFF);
        return bytes;
    }
    FAIL("no SOF0 marker in the encoded JPEG");
    return bytes;
}

}  // namespace

TEST_CASE("headers claiming huge images are refused before allocating", "[image]") {
    nst::test::TempDir folder("image-hostile");
    // 64 MiB of headroom: the decoders' fixed structures and the file buffer need
    // well under 1 MiB for these files (each < 1 kB); the smallest refused claim
    // below needs 2^27 pixels · 12 bytes = 1.5 GiB of float planes alone.
    constexpr std::size_t headroom = std::size_t(64) << 20;
    // 10 s: a refusal from the header takes microseconds; before the check moved
    // ahead of libpng, the 2^29-wide PNG took 7 s and 4.3 GB to be refused.
    constexpr unsigned seconds = 10;
    struct Case {
        const char* name;
        Bytes bytes;
    };
    const std::vector<Case> cases = {
        {"wide.png", png_header_only(1u << 29, 2)},            // 68 bytes, libpng's own maximum side
        {"square.png", png_header_only(16384, 16384)},         // 2^28 pixels, each side allowed
        {"over.png", png_header_only(16384, 8193)},            // kMaxImagePixels + 16384
        {"square.jpg", jpeg_claiming(16384, 16384)},
        {"over.jpg", jpeg_claiming(16384, 8193)},
        {"widest.jpg", jpeg_claiming(65500, 65500)},
    };
    for (const Case& c : cases) {
        const std::string path = folder.file(c.name);
        write_bytes(path, c.bytes);
        INFO(c.name << " (" << c.bytes.size() << " bytes)");
        const auto start = std::chrono::steady_clock::now();
        CHECK(load_in_limited_child(path, "image too large", headroom, seconds) == refused_as_expected);
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        INFO("took " << elapsed << " s");
        CHECK(elapsed < 2.0);  // fork + exit + header: milliseconds; 2 s allows a loaded machine
        require_refused(path, "image too large");
    }
    // At the limit itself the header passes and the missing pixels are what fails.
    write_bytes(folder.file("limit.png"), png_header_only(16384, 8192));
    require_refused(folder.file("limit.png"), "truncated PNG data");
    CHECK(nst::kMaxImagePixels == 16384LL * 8192);
}

TEST_CASE("non-regular files are refused without being opened", "[image]") {
    nst::test::TempDir folder("image-special");
    SECTION("a FIFO with no writer does not block") {
        const std::string path = folder.file("pipe.png");
        REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
        // In a child with an alarm: were the FIFO opened for reading, it would wait
        // for a writer for ever, and the alarm (128 + SIGALRM) would say so.
        CHECK(load_in_limited_child(path, "a FIFO (named pipe), not a regular file",
                                    std::size_t(256) << 20, 5) == refused_as_expected);
        require_refused(path, "FIFO");
    }
    SECTION("a device") {
        require_refused("/dev/null", "a device, not a regular file");
        require_refused("/dev/zero", "a device, not a regular file");
    }
    SECTION("a symbolic link to a regular file is followed") {
        write_gray_rgb_png(folder.file("real.png"), 4, 3);
        fs::create_symlink(folder.file("real.png"), folder.file("link.png"));
        CHECK(nst::load_image(folder.file("link.png")).width == 4);
    }
}
