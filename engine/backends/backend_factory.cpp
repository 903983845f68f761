// Choosing and creating a backend (--device auto|cpu|cuda[:N]).
#include <cstdlib>

#include "engine/backends/backend.h"
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cuda_api.h"
#include "engine/base/error.h"

namespace nst {

DeviceChoice parse_device(const std::string& text) {
    DeviceChoice choice;
    if (text == "auto") {
        choice.kind = DeviceChoice::automatic;
    } else if (text == "cpu") {
        choice.kind = DeviceChoice::cpu;
    } else if (text == "cuda") {
        choice.kind = DeviceChoice::cuda;
    } else if (text.rfind("cuda:", 0) == 0 && text.size() > 5 && text.size() <= 8 &&
               text.find_first_not_of("0123456789", 5) == std::string::npos) {
        choice.kind = DeviceChoice::cuda;
        choice.cuda_index = std::atoi(text.c_str() + 5);
    } else {
        throw UsageError("--device: '" + text + "' is not one of auto, cpu, cuda, cuda:N");
    }
    return choice;
}

#ifndef NST_HAVE_CUDA
// Without the CUDA backend there is no device to find.
int cuda_device_count() { return 0; }
std::string cuda_device_description(int) { return "not built with CUDA"; }
std::unique_ptr<Backend> make_cuda_backend(int, bool) {
    throw UsageError("--device cuda: this nst was built without CUDA (configure with NST_CUDA=ON)");
}
#endif

std::unique_ptr<Backend> make_backend(const DeviceChoice& choice, int cpu_threads, bool tf32) {
    switch (choice.kind) {
    case DeviceChoice::cpu:
        return std::make_unique<CpuBackend>(cpu_threads);
    case DeviceChoice::cuda: {
#ifndef NST_HAVE_CUDA
        return make_cuda_backend(choice.cuda_index, tf32);  // throws: not built
#else
        const int count = cuda_device_count();
        if (choice.cuda_index >= count)
            throw DeviceError("--device cuda:" + std::to_string(choice.cuda_index) + ": " +
                              (count == 0 ? std::string("no CUDA device found")
                                          : std::to_string(count) + " CUDA device(s) present"));
        return make_cuda_backend(choice.cuda_index, tf32);
#endif
    }
    case DeviceChoice::automatic:
        if (cuda_device_count() > 0) return make_cuda_backend(0, tf32);
        return std::make_unique<CpuBackend>(cpu_threads);
    }
    throw Error("unknown device kind");
}

}  // namespace nst
