// engine/backends/cuda_api.h: device discovery and the backend factory.
#include "engine/backends/cuda_api.h"

#include <cstdio>

#include "engine/backends/cuda/cuda_backend.h"
#include "engine/backends/cuda/device_check.h"

namespace nst {

int cuda_device_count() {
    // No driver, no device or a driver too old all mean "no GPU here": 0, silently.
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return count;
}

namespace {
void require_device(int index) {
    const int count = cuda_device_count();
    if (count == 0) throw DeviceError("no CUDA device is available (no GPU or no driver)");
    if (index < 0 || index >= count)
        throw DeviceError("CUDA device " + std::to_string(index) + " does not exist (" +
                          std::to_string(count) + " device" + (count == 1 ? "" : "s") + " found)");
}
}  // namespace

std::string cuda_device_description(int index) {
    require_device(index);
    cudaDeviceProp properties{};
    CUDA_CHECK(cudaGetDeviceProperties(&properties, index));
    char text[320];
    std::snprintf(text, sizeof text, "%s (sm_%d%d, %.1f GiB)", properties.name, properties.major,
                  properties.minor, double(properties.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
    return text;
}

std::unique_ptr<Backend> make_cuda_backend(int index, bool tf32) {
    require_device(index);
    return std::make_unique<cuda::CudaBackend>(index, tf32);
}

}  // namespace nst
