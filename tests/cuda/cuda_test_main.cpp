// main() of every CUDA test executable: without a GPU it skips (exit code 77,
// which ctest reports as skipped through SKIP_RETURN_CODE) instead of passing.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "engine/cuda_api.h"

int main(int argc, char* argv[]) {
    if (nst::cuda_device_count() == 0) {
        std::printf("no CUDA device: skipped\n");
        return 77;
    }
    std::printf("CUDA device 0: %s\n", nst::cuda_device_description(0).c_str());
    return Catch::Session().run(argc, argv);
}
