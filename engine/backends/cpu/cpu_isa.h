// Which vector instructions the CPU backend's own loops use, chosen at run time.
//
// The binary is built for baseline x86-64 (no -march): the hand-written loops
// (Winograd's tile transforms) are compiled once per instruction set in the
// same translation unit (#pragma GCC target) and picked by what the CPU
// reports (__builtin_cpu_supports). Every variant runs the same operations in
// the same order, without contraction into FMAs (-ffp-contract=off on those
// files), so all of them give the same bits; tests check that.
//
// NST_CPU_ISA=generic|avx2|avx512 in the environment forces one (a variant the
// CPU lacks is refused with an error at first use); set_cpu_isa does the same
// from code.
#pragma once

namespace nst::cpu {

enum class CpuIsa { generic, avx2, avx512 };

// "generic", "avx2" (AVX2 + FMA), "avx512" (AVX-512 F/VL/BW/DQ).
const char* cpu_isa_name(CpuIsa isa);

// Whether this CPU (and the OS, for the registers' state) runs `isa`.
bool cpu_isa_supported(CpuIsa isa);

// The variant in use: the one forced (set_cpu_isa, else NST_CPU_ISA), else the
// widest this CPU supports.
CpuIsa cpu_isa();

// Forces a variant for the whole process; throws nst::Error when the CPU lacks it.
void set_cpu_isa(CpuIsa isa);

// Back to the default (NST_CPU_ISA, else the widest supported).
void reset_cpu_isa();

}  // namespace nst::cpu
