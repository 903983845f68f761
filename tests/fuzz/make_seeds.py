#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/). Run from the
repository root: /usr/bin/python3 tests/fuzz/make_seeds.py. Needs numpy and
h5py, a C compiler and libjpeg (make_jpeg_seeds.c writes the JPEG seeds). The
outputs are committed; rerunning rewrites them."""
import os
import struct
import subprocess
import tempfile
import zlib

import h5py
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def png(width, height, color_type, bit_depth, rows, extra=()):
    """A PNG from raw scanlines (filter byte 0 each); extra: (type, data) chunks before IDAT."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    raw = b"".join(b"\0" + row for row in rows)
    body = chunk(b"IHDR", ihdr) + b"".join(chunk(k, d) for k, d in extra)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def images():
    pngs = {
        # 3×2 RGB 8-bit
        "rgb8.png": png(3, 2, 2, 8, [bytes(range(0, 9)), bytes(range(100, 109))]),
        # 2×2 gray 16-bit
        "gray16.png": png(2, 2, 0, 16, [b"\x00\x00\xff\xff", b"\x80\x00\x12\x34"]),
        # 2×2 RGBA 8-bit (alpha over white)
        "rgba8.png": png(2, 2, 6, 8, [b"\xff\x00\x00\x80\x00\xff\x00\x00", b"\x00\x00\xff\xff\x10\x20\x30\x40"]),
        # 4×2 palette 2-bit with tRNS
        "palette2.png": png(4, 2, 3, 2, [b"\x1b", b"\xe4"],
                            extra=[(b"PLTE", bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])),
                                   (b"tRNS", b"\xff\x80")]),
        # 2×2 gray + alpha 8-bit, with a gAMA chunk
        "graya8.png": png(2, 2, 4, 8, [b"\x10\xff\x20\x00", b"\x30\x80\x40\x40"],
                          extra=[(b"gAMA", struct.pack(">I", 45455))]),
    }
    for name, data in pngs.items():
        write("image", name, data)
        write("png_crc", name, data)
    # JPEG: written by make_jpeg_seeds.c through libjpeg (a build dependency).
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "make_jpeg_seeds")
        subprocess.run(["cc", "-O1", "-o", exe, os.path.join(here, "make_jpeg_seeds.c"), "-ljpeg"], check=True)
        subprocess.run([exe, os.path.join(ROOT, "image")], check=True)


def weights():
    """Two-layer narrow nst-vgg19 files (conv1_1: 3→2, conv1_2: 2→2): gzip-chunked
    as nst's writer makes them, and contiguous (another storage path in libhdf5)."""
    rng = np.random.default_rng(7)
    for name, compress in (("narrow2_gzip.h5", True), ("narrow2_contiguous.h5", False)):
        path = os.path.join(ROOT, "weights", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with h5py.File(path, "w", libver="earliest") as f:
            f.attrs["format"] = "nst-vgg19"
            f.attrs["format_version"] = np.int32(1)
            f.attrs["color_order"] = "BGR"
            f.attrs["mean"] = np.array([103.939, 116.779, 123.68], np.float32)
            f.attrs["std"] = np.array([1, 1, 1], np.float32)
            f.attrs["pixel_scale"] = np.float32(255)
            f.attrs["source"] = "fuzz seed"
            previous = 3
            for layer in ("conv1_1", "conv1_2"):
                g = f.create_group(layer)
                options = {"compression": "gzip", "compression_opts": 9} if compress else {}
                g.create_dataset("weight", data=rng.standard_normal((2, previous, 3, 3)).astype(np.float32), **options)
                g.create_dataset("bias", data=np.zeros(2, np.float32), **options)
                previous = 2


def cli():
    lines = {
        "minimal": ["--content", "c.png", "--style", "s.jpg", "--output", "o.png"],
        "weights": ["--content", "c.png", "--style", "a.png", "--style", "b.png", "--style-blend-weights", "1,3",
                    "--content-weight", "5", "--style-weight", "1e2", "--tv-weight", "1e-3", "--output", "o.jpg"],
        "scales": ["--content", "c.png", "--style", "s.png", "--output", "o.png", "--scale-sizes", "64,128",
                   "--scale-iterations", "10,5", "--content-layers", "conv4_2", "--style-layers", "relu1_1,relu2_1"],
        "optimizer": ["--content", "c.png", "--style", "s.png", "--output", "o.png", "--optimizer", "adam",
                      "--learning-rate", "1", "--init", "noise", "--seed", "3", "--pool", "max", "--threads", "2"],
        "colors": ["--content", "c.png", "--style", "s.png", "--output", "o.png", "--preserve-colors", "histogram",
                   "--color-transfer", "pca", "--style-masks", "m.png", "--mask-erosion", "--save-every", "5"],
        "help": ["--help"],
        "version": ["--version"],
    }
    for name, args in lines.items():
        write("cli", name, b"\0".join(a.encode() for a in args))


if __name__ == "__main__":
    images()
    weights()
    cli()
