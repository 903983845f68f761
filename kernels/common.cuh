// Shared by every kernel file and by the CUDA backend (host side):
//   - NST_DEVICE_CHECK, the one generic check macro: a library call's status is
//     compared with its success value and, on failure, nst::DeviceError is thrown
//     carrying file:line, the failing call and the library's own error string.
//     CUDA_CHECK is made from it here; CUBLAS_CHECK and CUDNN_CHECK in
//     engine/backends/cuda/device_check.h (kernels need neither library).
//   - *_CHECK_LOG variants for destructors and release paths: log to stderr,
//     never throw (a destructor that throws terminates the program).
//   - CEIL_DIV and the launch-configuration constants.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "engine/base/error.h"
#include "engine/base/nvtx.h"

#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

// status_expr is evaluated once; to_string maps the status to the library's message.
#define NST_DEVICE_CHECK(status_expr, success, to_string)                                    \
    do {                                                                                     \
        const auto nst_check_status_ = (status_expr);                                        \
        if (nst_check_status_ != (success))                                                  \
            throw ::nst::DeviceError(::nst::source_location(__FILE__, __LINE__) + ": " +     \
                                     #status_expr + " failed: " +                            \
                                     std::string(to_string(nst_check_status_)));             \
    } while (0)

#define NST_DEVICE_CHECK_LOG(status_expr, success, to_string)                                \
    do {                                                                                     \
        const auto nst_check_status_ = (status_expr);                                        \
        if (nst_check_status_ != (success))                                                  \
            std::fprintf(stderr, "nst: %s: %s failed: %s\n",                                 \
                         ::nst::source_location(__FILE__, __LINE__).c_str(), #status_expr,   \
                         to_string(nst_check_status_));                                      \
    } while (0)

#define CUDA_CHECK(call) NST_DEVICE_CHECK(call, cudaSuccess, cudaGetErrorString)
#define CUDA_CHECK_LOG(call) NST_DEVICE_CHECK_LOG(call, cudaSuccess, cudaGetErrorString)

// After every launch: configuration errors surface here, on the launching call,
// instead of at the next synchronisation.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

namespace nst::kernels {

// Threads per block of the elementwise kernels and of the reductions.
constexpr int kBlockSize = 256;

// Blocks of an elementwise launch over `count` elements. Grid-stride loops let
// the grid stop at a fixed cap instead of growing with the tensor.
inline unsigned elementwise_blocks(std::size_t count) {
    constexpr std::size_t kMaxBlocks = 65535;
    const std::size_t blocks = CEIL_DIV(count, std::size_t(kBlockSize));
    return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

}  // namespace nst::kernels
