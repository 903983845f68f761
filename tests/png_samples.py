#!/usr/bin/python3
"""Prints a PNG's header and samples, decoded without libpng (the reader the tests hold
save_image's PNGs to): the chunks, zlib and the five row filters of the PNG
specification (ISO/IEC 15948, sections 9 and 11), for non-interlaced RGB of 8 or 16 bits.

    png_samples.py FILE

Output: "WIDTH HEIGHT BIT_DEPTH COLOR_TYPE" on the first line, then every sample as an
integer, row by row, pixel by pixel, R G B, separated by spaces.
"""
import struct
import sys
import zlib


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def main(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    at, idat, header = 8, b"", None
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    width, height, depth, color_type, _, _, interlace = header
    if color_type != 2 or depth not in (8, 16) or interlace != 0:
        sys.exit(f"{path}: colour type {color_type}, depth {depth}, interlace {interlace}: not handled")
    step = 3 * depth // 8  # bytes per pixel: the filters' distance to the left neighbour
    stride = width * step
    raw = zlib.decompress(idat)
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = row[i - step] if i >= step else 0
            up = previous[i]
            up_left = previous[i - step] if i >= step else 0
            predictor = (0, left, up, (left + up) // 2, paeth(left, up, up_left))[kind]
            row[i] = (row[i] + predictor) & 0xFF
        rows.append(row)
        previous = row
    samples = []
    for row in rows:
        if depth == 16:
            samples.extend(struct.unpack(f">{len(row) // 2}H", bytes(row)))
        else:
            samples.extend(row)
    print(width, height, depth, color_type)
    print(" ".join(map(str, samples)))


if __name__ == "__main__":
    main(sys.argv[1])
