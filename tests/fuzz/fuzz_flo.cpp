// libFuzzer target: nst::read_flo on arbitrary bytes (Middlebury .flo files are
// untrusted input: --flow PATTERN reads any tool's). The oracle: it returns a
// flow whose size matches the header and whose values are finite, or throws
// nst::InputError; a flow it returns survives write_flo and read_flo unchanged.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/base/error.h"
#include "engine/video/flow.h"

namespace {

std::string scratch(const char* name) {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir ? dir : "/tmp") + "/" + name + "-" + std::to_string(::getpid()) + ".flo";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string path = scratch("fuzz_flo_in"), copy = scratch("fuzz_flo_copy");
    std::FILE* file = std::fopen(path.c_str(), "wb");
    if (!file) std::abort();
    if (size > 0 && std::fwrite(data, 1, size, file) != size) std::abort();
    std::fclose(file);
    try {
        std::vector<bool> unknown;
        const nst::Flow flow = nst::read_flo(path, &unknown);
        if (flow.width <= 0 || flow.height <= 0 || flow.uv.size() != 2 * flow.plane() || unknown.size() != flow.plane())
            std::abort();
        for (const float v : flow.uv)
            if (!std::isfinite(v)) std::abort();
        nst::write_flo(copy, flow);
        if (nst::read_flo(copy).uv != flow.uv) std::abort();
        std::remove(copy.c_str());
    } catch (const nst::InputError&) {
    }
    std::remove(path.c_str());
    return 0;
}
