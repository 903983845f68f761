// libFuzzer target: nst::load_image on arbitrary bytes, PNG or JPEG (chosen by
// the signature, as in the programs). The oracle is in image_check.h.
#include <cstdint>

#include "tests/fuzz/image_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    nst::fuzz::check_decode(data, size);
    return 0;
}
