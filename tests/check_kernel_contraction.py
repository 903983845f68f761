#!/usr/bin/env python3
"""Fails when a CUDA kernel may fuse a float product into an addition (FMA).

The per-element arithmetic in kernels/*.h runs on both backends and promises
the same bits (kernels/host_device.h): the host computes a·b + c with two
roundings, so the device must too. nvcc contracts a·b + c into fma.rn.f32 by
default, and ptxas may fuse an unrounded mul.f32 into a later add.f32 or
sub.f32; only mul.rn.f32 (__fmul_rn, kernels::mul_rn) is never fused. This
reads the PTX of every kernel (the nst_kernels_ptx target) and reports:

  - every fma.rn.f32 / fma.f32 (a contraction nvcc already made);
  - every mul.f32 whose result feeds an add/sub.f32 of the same function,
    unless one factor is an immediate power of two (the product is exact, so
    fused or not the sum rounds once, to the same bits).

Double-precision FMAs are allowed: the backends compare loss values and
reductions to a tolerance, never bit for bit.

    check_kernel_contraction.py FILE.ptx...

Exit status: 0 when nothing is found, 1 otherwise (each finding printed with
the kernel's name); finding no kernel at all is a failure too.
"""
import re
import struct
import sys

ENTRY = re.compile(r"^\s*\.(?:visible\s+)?\.entry\s+(\S+?)\(")
FUNC = re.compile(r"^\s*\.(?:visible\s+)?\.func\s+(?:\([^)]*\)\s*)?(\S+?)\(")
FMA = re.compile(r"^\s*fma(?:\.rn|\.rz|\.rm|\.rp)?(?:\.ftz)?(?:\.sat)?\.f32\s")
MUL = re.compile(r"^\s*mul(?:\.ftz)?(?:\.sat)?\.f32\s+(%f\d+),\s*([^,]+),\s*([^;]+);")
ADD = re.compile(r"^\s*(?:add|sub)(?:\.ftz)?(?:\.sat)?\.f32\s+%f\d+,\s*([^,]+),\s*([^;]+);")


def power_of_two_immediate(operand):
    operand = operand.strip()
    if not re.fullmatch(r"0[fF][0-9a-fA-F]{8}", operand):
        return False
    bits = int(operand[2:], 16)
    value = struct.unpack("<f", struct.pack("<I", bits))[0]
    mantissa = bits & 0x7FFFFF
    exponent = (bits >> 23) & 0xFF
    return value != 0.0 and mantissa == 0 and 0 < exponent < 255


def findings(ptx_text):
    """[(function, line number, text)] and the number of functions read."""
    found, functions = [], 0
    function, unrounded = None, {}
    for number, line in enumerate(ptx_text.splitlines(), 1):
        header = ENTRY.match(line) or FUNC.match(line)
        if header:
            function, unrounded = header.group(1), {}
            functions += 1
            continue
        if function is None:
            continue
        if FMA.match(line):
            found.append((function, number, line.strip()))
            continue
        mul = MUL.match(line)
        if mul:
            destination, a, b = mul.groups()
            if not (power_of_two_immediate(a) or power_of_two_immediate(b)):
                unrounded[destination] = (number, line.strip())
            else:
                unrounded.pop(destination, None)
            continue
        add = ADD.match(line)
        if add:
            for operand in add.groups():
                operand = operand.strip()
                if operand in unrounded:
                    mul_line, mul_text = unrounded[operand]
                    found.append((function, mul_line, f"{mul_text}  (feeds line {number}: {line.strip()})"))
    return found, functions


def main(paths):
    total_functions, total = 0, []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as handle:
            found, functions = findings(handle.read())
        total_functions += functions
        total += [(path, *f) for f in found]
    if total_functions == 0:
        print("check_kernel_contraction: no kernel found in " + " ".join(paths))
        return 1
    for path, function, number, text in total:
        print(f"{path}:{number}: {function}: float product that may fuse into an FMA: {text}")
    if total:
        print(f"{len(total)} contraction(s) in {total_functions} functions: use kernels::mul_rn "
              "(kernels/host_device.h) for products that are added to")
        return 1
    print(f"no float contraction in {total_functions} functions of {len(paths)} PTX files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
