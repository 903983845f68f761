// Run-time choice of the CPU backend's instruction-set variants (cpu_isa.h).
#include "engine/backends/cpu/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/base/error.h"

namespace nst::cpu {

namespace {

// -1: not chosen yet; otherwise a CpuIsa.
std::atomic<int> selected_isa{-1};

CpuIsa widest_supported() {
    if (cpu_isa_supported(CpuIsa::avx512)) return CpuIsa::avx512;
    if (cpu_isa_supported(CpuIsa::avx2)) return CpuIsa::avx2;
    return CpuIsa::generic;
}

CpuIsa from_environment() {
    const char* value = std::getenv("NST_CPU_ISA");
    if (value == nullptr || *value == '\0') return widest_supported();
    for (CpuIsa isa : {CpuIsa::generic, CpuIsa::avx2, CpuIsa::avx512})
        if (std::strcmp(value, cpu_isa_name(isa)) == 0) {
            if (!cpu_isa_supported(isa))
                throw Error(std::string("NST_CPU_ISA=") + value + ": this CPU does not support it");
            return isa;
        }
    throw Error(std::string("NST_CPU_ISA=") + value + ": expected generic, avx2 or avx512");
}

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
    switch (isa) {
        case CpuIsa::generic: return "generic";
        case CpuIsa::avx2: return "avx2";
        case CpuIsa::avx512: return "avx512";
    }
    return "?";
}

bool cpu_isa_supported(CpuIsa isa) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    switch (isa) {
        case CpuIsa::generic: return true;
        case CpuIsa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case CpuIsa::avx512:
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                   __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return false;
#else
    return isa == CpuIsa::generic;
#endif
}

CpuIsa cpu_isa() {
    int isa = selected_isa.load();
    if (isa < 0) {
        isa = static_cast<int>(from_environment());
        selected_isa.store(isa);
    }
    return static_cast<CpuIsa>(isa);
}

void set_cpu_isa(CpuIsa isa) {
    if (!cpu_isa_supported(isa))
        throw Error(std::string("CPU kernels '") + cpu_isa_name(isa) +
                    "': this CPU does not support them");
    selected_isa.store(static_cast<int>(isa));
}

void reset_cpu_isa() { selected_isa.store(-1); }

}  // namespace nst::cpu
