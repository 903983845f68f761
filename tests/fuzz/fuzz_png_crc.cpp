// libFuzzer target: PNG through nst::load_image with every chunk's CRC repaired
// before decoding. A mutated PNG almost always has a wrong CRC, which libpng
// rejects before looking at the chunk; repairing it lets mutations of IHDR
// (dimensions, bit depth, colour type), PLTE, tRNS, IDAT and the rest reach
// the decoder. Inputs without the 8-byte PNG signature get one prepended.
//
// Chunk layout (PNG spec §5.3): length (4 bytes, big-endian), type (4),
// data (length), CRC-32 over type and data (4). A chunk whose length runs past
// the end is left as it is (libpng must refuse a truncated file). The oracle
// is in image_check.h.
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/fuzz/image_check.h"

namespace {

constexpr std::uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

std::uint32_t read_be32(const std::uint8_t* p) {
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}

void repair_crcs(std::vector<std::uint8_t>& png) {
    std::size_t at = sizeof kSignature;
    while (png.size() - at >= 12) {
        const std::uint64_t length = read_be32(&png[at]);
        if (length > png.size() - at - 12) break;
        const std::size_t crc_at = at + 8 + std::size_t(length);
        const auto crc = std::uint32_t(crc32(0L, &png[at + 4], static_cast<uInt>(length + 4)));
        png[crc_at] = std::uint8_t(crc >> 24);
        png[crc_at + 1] = std::uint8_t(crc >> 16);
        png[crc_at + 2] = std::uint8_t(crc >> 8);
        png[crc_at + 3] = std::uint8_t(crc);
        at = crc_at + 4;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::uint8_t> png;
    png.reserve(size + sizeof kSignature);
    if (size < sizeof kSignature || std::memcmp(data, kSignature, sizeof kSignature) != 0)
        png.insert(png.end(), kSignature, kSignature + sizeof kSignature);
    png.insert(png.end(), data, data + size);
    repair_crcs(png);
    nst::fuzz::check_decode(png.data(), png.size());
    return 0;
}
