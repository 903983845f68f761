// What the rest of nst sees of the CUDA backend. Plain C++ (no CUDA headers):
// declared always, defined in engine/backends/cuda/ only when built with CUDA
// (NST_HAVE_CUDA); callers guard their use with that macro.
#pragma once

#include <memory>
#include <string>

#include "engine/backends/backend.h"

namespace nst {

// Number of usable CUDA devices; 0 when there is no GPU or no driver.
int cuda_device_count();

// "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)", for logs.
std::string cuda_device_description(int index);

// The CUDA backend on device `index`. tf32: allow TF32 tensor-core math in
// cuDNN and cuBLAS (else exact FP32). Throws DeviceError.
std::unique_ptr<Backend> make_cuda_backend(int index, bool tf32);

}  // namespace nst
