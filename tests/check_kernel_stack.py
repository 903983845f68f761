#!/usr/bin/env python3
"""Fails when a CUDA kernel of a static library has a non-zero stack frame.

A stack frame in a kernel is local memory (off-chip, cached): a local array
indexed at run time, a kernel parameter array indexed at run time, register
spills or a non-inlined call. The element-wise kernels of nst need none, so any
frame is a regression to look at (`nvcc -Xptxas -v` names the kernel and the
bytes; cuobjdump -res-usage prints STACK per function).

    check_kernel_stack.py LIBRARY [--cuobjdump PATH]

With cuobjdump, its -res-usage report is read. Without it (it ships separately
from nvcc and is often absent), the cubins embedded in the library's objects
are read directly: each kernel's frame is the EIATTR_FRAME_SIZE (0x11) and
EIATTR_MIN_STACK_SIZE (0x12) records of the cubin's global .nv.info section,
the values that ptxas -v reports as "bytes stack frame". Finding no kernel at
all (a compressed fatbin, say) is a failure, never a pass.

Exit status: 0 when every kernel has a zero frame, 1 otherwise.
"""
import argparse
import re
import struct
import subprocess
import sys

EM_CUDA = 190
EIATTR_FRAME_SIZE = 0x11
EIATTR_MIN_STACK_SIZE = 0x12
EIFMT_HVAL, EIFMT_SVAL = 3, 4


def archive_members(data):
    """(name, bytes) of each member of a System V / GNU ar archive."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    offset, long_names = 8, b""
    while offset + 60 <= len(data):
        header = data[offset:offset + 60]
        name = header[:16].decode().strip()
        size = int(header[48:58].decode().strip())
        body = data[offset + 60:offset + 60 + size]
        if name == "//":
            long_names = body
        elif name.startswith("/") and name[1:].isdigit():
            start = int(name[1:])
            name = long_names[start:long_names.index(b"/\n", start)].decode()
        if name not in ("/", "//", "/SYM64/"):
            yield name.rstrip("/"), body
        offset += 60 + size + (size & 1)


def elf_sections(elf):
    """[(name, type, offset, size, link, info)] of a little-endian ELF64 image."""
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    raw = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    names_at = raw[shstrndx][4]

    def name(offset):
        start = names_at + offset
        return elf[start:elf.index(b"\0", start)].decode()

    return [(name(s[0]), s[1], s[4], s[5], s[6], s[7]) for s in raw]


def cubin_frames(elf):
    """{kernel name: frame bytes} of one cubin, from its global .nv.info section."""
    sections = elf_sections(elf)
    by_name = {s[0]: s for s in sections}
    symtab = by_name[".symtab"]
    strtab = sections[symtab[4]]
    symbols = []
    for k in range(symtab[3] // 24):
        st_name = struct.unpack_from("<I", elf, symtab[2] + 24 * k)[0]
        start = strtab[2] + st_name
        symbols.append(elf[start:elf.index(b"\0", start)].decode())
    kernels = {s[0][len(".nv.info."):] for s in sections if s[0].startswith(".nv.info.")}
    frames = {name: 0 for name in kernels}
    info = by_name.get(".nv.info")
    position, end = (info[2], info[2] + info[3]) if info else (0, 0)
    while position < end:
        fmt, attribute = elf[position], elf[position + 1]
        if fmt == EIFMT_SVAL:
            length = struct.unpack_from("<H", elf, position + 2)[0]
            if attribute in (EIATTR_FRAME_SIZE, EIATTR_MIN_STACK_SIZE) and length == 8:
                symbol, size = struct.unpack_from("<II", elf, position + 4)
                if symbols[symbol] in frames:
                    frames[symbols[symbol]] = max(frames[symbols[symbol]], size)
            position += 4 + length
        elif fmt == EIFMT_HVAL:
            position += 4
        else:
            position += 2
    return frames


def frames_from_cubins(library):
    """[(where, kernel, frame bytes)] for every kernel of every cubin in the library."""
    with open(library, "rb") as f:
        data = f.read()
    found = []
    for member, body in archive_members(data):
        start, index = body.find(b"\x7fELF", 1), 0
        while start != -1:
            # An embedded cubin: ELF64, little-endian, machine EM_CUDA.
            if body[start + 4] == 2 and body[start + 5] == 1 and \
                    struct.unpack_from("<H", body, start + 18)[0] == EM_CUDA:
                for kernel, frame in cubin_frames(body[start:]).items():
                    found.append((f"{member} cubin {index}", kernel, frame))
                index += 1
            start = body.find(b"\x7fELF", start + 1)
    return found


def frames_from_cuobjdump(cuobjdump, library):
    """[(arch, function, STACK)] from cuobjdump -res-usage."""
    report = subprocess.run([cuobjdump, "-res-usage", library], check=True,
                            capture_output=True, text=True).stdout
    found, arch, function = [], "?", None
    for line in report.splitlines():
        if m := re.match(r"\s*arch = (\S+)", line):
            arch = m.group(1)
        elif m := re.match(r"\s*Function (\S+):", line):
            function = m.group(1)
        elif function and (m := re.search(r"\bSTACK:(\d+)", line)):
            found.append((arch, function, int(m.group(1))))
            function = None
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library")
    parser.add_argument("--cuobjdump", help="path of cuobjdump; without it the cubins are read directly")
    args = parser.parse_args()
    if args.cuobjdump:
        method = "cuobjdump -res-usage"
        found = frames_from_cuobjdump(args.cuobjdump, args.library)
    else:
        method = "the cubins' .nv.info"
        found = frames_from_cubins(args.library)
    if not found:
        print(f"FAIL: no kernel found in {args.library} (by {method}); "
              "a compressed fatbin cannot be read without cuobjdump")
        return 1
    bad = [(where, kernel, frame) for where, kernel, frame in found if frame > 0]
    for where, kernel, frame in bad:
        print(f"FAIL: {kernel} ({where}): {frame} bytes stack frame")
    print(f"{len(found)} kernel images read by {method}, {len(bad)} with a stack frame")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
