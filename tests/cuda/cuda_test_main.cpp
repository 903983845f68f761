// main() of every program in tests/cuda/: chooses the device under test from
// NST_TEST_DEVICE (device_under_test.h). With the CUDA backend and no GPU it
// skips (exit code 77, which ctest reports as skipped through SKIP_RETURN_CODE)
// instead of passing. Listing the tests (--list-tests, --list-test-names-only,
// --list-tags, --help) needs no device and exits 0 (Catch2 2's own listing
// exits with the number of tests listed).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "engine/base/error.h"
#include "engine/backends/cuda_api.h"
#include "tests/cuda/device_under_test.h"

int main(int argc, char* argv[]) {
    Catch::Session session;
    if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
    const Catch::ConfigData& config = session.configData();
    if (config.showHelp || config.listTests || config.listTestNamesOnly || config.listTags ||
        config.listReporters) {
        session.run();
        return 0;
    }
    nst::test::TestDevice device;
    try {
        device = nst::test::test_device_from_environment();
    } catch (const nst::Error& error) {
        std::fprintf(stderr, "error: %s\n", error.what());
        return 2;
    }
    if (device == nst::test::TestDevice::cuda && nst::cuda_device_count() == 0) {
        std::printf("no CUDA device: skipped (NST_TEST_DEVICE=cpu runs these tests on the CPU)\n");
        return 77;
    }
    nst::test::set_test_device(device);
    std::printf("device under test: %s; reference: CPU backend\n",
                nst::test::test_device_description().c_str());
    return session.run();
}
