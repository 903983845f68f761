// libFuzzer target: the neural-style command line (nst::cli::parse). The input
// is split at NUL bytes into arguments (argv[0] is "neural-style"; at most 64
// arguments). Promise under test (apps/cli_options.h): parse returns, or throws
// nst::UsageError with a one-line message; never a crash or another exception.
// --help and --version print to stdout, which is sent to /dev/null.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "apps/cli_options.h"
#include "engine/base/error.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (!std::freopen("/dev/null", "w", stdout)) return 1;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string> args{"neural-style"};
    std::string current;
    for (std::size_t i = 0; i < size && args.size() < 64; ++i) {
        if (data[i] == 0) {
            args.push_back(current);
            current.clear();
        } else {
            current.push_back(char(data[i]));
        }
    }
    if (!current.empty() && args.size() < 64) args.push_back(current);
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);

    nst::cli::Options options;
    try {
        nst::cli::parse(int(args.size()), argv.data(), options);
    } catch (const nst::UsageError& e) {
        const std::string message = e.what();
        if (message.empty()) nst::fuzz::fail("empty usage message");
        return 0;
    }
    return 0;
}
