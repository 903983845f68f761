// NVTX ranges that name each layer, loss and optimiser phase in Nsight Systems.
// Header-only NVTX3 from the CUDA toolkit (no library to link). Without CUDA
// (NST_HAVE_CUDA undefined) the range is an empty object the compiler removes,
// so host code may use it unconditionally.
#pragma once

#if defined(NST_HAVE_CUDA)
#include <nvtx3/nvToolsExt.h>
#endif

namespace nst {

class NvtxRange {
public:
#if defined(NST_HAVE_CUDA)
    explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
    ~NvtxRange() { nvtxRangePop(); }
#else
    explicit NvtxRange(const char*) {}
#endif
    NvtxRange(const NvtxRange&) = delete;
    NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace nst

// NVTX_RANGE("conv3x3_forward") opens a range until the end of the scope.
#define NST_NVTX_CONCAT_(a, b) a##b
#define NST_NVTX_CONCAT(a, b) NST_NVTX_CONCAT_(a, b)
#define NVTX_RANGE(name) ::nst::NvtxRange NST_NVTX_CONCAT(nvtx_range_, __LINE__)(name)
