// The image targets' oracle (fuzz_image.cpp, fuzz_png_crc.cpp). Promise under
// test (engine/io/image.h): any file either decodes to a well-formed image or
// throws one of nst's errors; never a crash, a hang, another exception or
// unbounded memory (libFuzzer's -rss_limit_mb and -malloc_limit_mb).
#pragma once

#include <cstdint>

#include "engine/base/error.h"
#include "engine/io/image.h"
#include "tests/fuzz/fuzz_support.h"

namespace nst::fuzz {

// Writes `size` bytes to a file, decodes it and checks what comes back.
inline void check_decode(const std::uint8_t* data, std::size_t size) {
    static InputFile file(".img");
    const std::string& path = file.write(data, size);
    Image image;
    try {
        image = load_image(path);
    } catch (const Error&) {
        return;  // refused with a message: the promised outcome for a bad file
    }
    // Documented limits: 2 to 32768 pixels a side, (3, H, W) values in [0,1].
    if (image.width < 2 || image.height < 2 || image.width > 32768 || image.height > 32768)
        fail("decoded size outside [2, 32768]");
    if (image.pixels.size() != 3 * image.plane()) fail("pixels.size() != 3·W·H");
    for (const float v : image.pixels)
        if (!(v >= 0.0f && v <= 1.0f)) fail("pixel value outside [0,1] or not finite");
}

}  // namespace nst::fuzz
