#!/usr/bin/env bash
# Builds, on the Debian 12 development machine (no GPU needed), the executables
# that scripts/device-check.sh runs on a GPU machine, so that the check need not
# compile anything there: the GPU tests (tests/cuda), neural-style and nst-bench.
#
#   scripts/make-device-binaries.sh [DIR]   (default: .device-bundle in the checkout)
#
# Writes DIR/nst-prebuilt.tar.gz and DIR/nst-prebuilt.txt (the commit and
# configuration). Run scripts/make-device-bundle.sh too: the executables load
# their non-CUDA libraries (HDF5, libpng, libjpeg, OpenBLAS, zlib, ...) from
# that bundle's lib/, and device-check.sh falls back to building from it when
# the executables do not start.
#
# How they are built:
#  - from the COMMITTED tree (git archive HEAD), copied to the fixed path
#    /tmp/nst-device/src, so the tests find tests/reference/*.h5 at a path
#    compiled into them (NST_SOURCE_DIR); device-check.sh links that path to
#    its checkout on the GPU machine;
#  - CUDA architectures 80-real;90: SASS for sm_80 and sm_90 and PTX of
#    compute_90, which the driver compiles for newer chips;
#  - the CUDA runtime linked statically (NST_CUDA_STATIC_RUNTIME); cuDNN and
#    cuBLAS are loaded from wherever the GPU machine has them (device-check.sh
#    sets LD_LIBRARY_PATH from what it finds: the toolkit or the pip wheels);
#  - DT_RPATH $ORIGIN/../../lib (apps/) and $ORIGIN/../../../lib (tests/cuda/),
#    which is the bundle's lib/ once both archives are unpacked into one
#    prefix; DT_RPATH (not RUNPATH) also applies to the libraries those load.
#    Set by patchelf after the build (scripts/install-deps.sh installs it), not
#    at link time: the two folders need different paths, and a link-time rpath
#    would also carry CMake's own build-tree entries (the toolkit's lib64, where
#    cuDNN lives here), which DT_RPATH puts before LD_LIBRARY_PATH on the GPU
#    machine. The binaries that the rehearsals ran were made this way.
#  - libstdc++, libgcc_s, libgomp and glibc are the target's own (GCC 12 /
#    glibc 2.36 here; newer versions are backward compatible).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/.device-bundle}

# Every tool this needs, checked before anything is built: one line and exit 1.
PATH=$PATH:/usr/local/cuda/bin
for tool in patchelf git cmake ninja gcc strip objdump ldd tar gzip nvcc; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "make-device-binaries.sh: '$tool' is missing (scripts/install-deps.sh installs it; nvcc comes with the CUDA toolkit)" >&2
        exit 1
    fi
done
jobs=${JOBS:-$(nproc)}
archs=${CUDA_ARCHS:-80-real;90}
fixed=/tmp/nst-device     # must match device-check.sh
src=$fixed/src
build=$fixed/build

if [[ -L $src ]]; then rm -f "$src"; fi
rm -rf "$fixed"
mkdir -p "$src" "$build"
commit=$(git -C "$root" rev-parse HEAD)
git -C "$root" archive HEAD | tar -x -C "$src"
if ! git -C "$root" diff --quiet HEAD -- . ':!docs'; then
    echo "note: uncommitted changes are NOT in the binaries (built from $commit)" >&2
fi

start=$(date +%s)
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNST_CUDA=ON \
    -DNST_CUDA_STATIC_RUNTIME=ON -DCMAKE_CUDA_ARCHITECTURES="$archs" \
    -DCMAKE_SKIP_BUILD_RPATH=ON >"$fixed/configure.log"
targets="neural-style nst-bench $(cd "$src/tests/cuda" && ls test_*.cpp | sed 's/\.cpp$//' | tr '\n' ' ')"
cmake --build "$build" -j "$jobs" --target $targets
seconds=$(( $(date +%s) - start ))

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
prefix=$stage/nst-deps/prebuilt
mkdir -p "$prefix/apps" "$prefix/tests/cuda"
for app in neural-style nst-bench; do
    cp "$build/apps/$app" "$prefix/apps/"
    patchelf --force-rpath --set-rpath '$ORIGIN/../../lib' "$prefix/apps/$app"
done
for test in $(cd "$src/tests/cuda" && ls test_*.cpp | sed 's/\.cpp$//'); do
    cp "$build/tests/cuda/$test" "$prefix/tests/cuda/"
    patchelf --force-rpath --set-rpath '$ORIGIN/../../../lib' "$prefix/tests/cuda/$test"
done
strip --strip-debug "$prefix"/apps/* "$prefix"/tests/cuda/*

# Nothing may load the CUDA runtime as a shared library: it is linked in.
if ldd "$prefix"/apps/* "$prefix"/tests/cuda/* | grep -q 'libcudart\.so'; then
    echo "error: an executable still needs libcudart.so" >&2
    exit 1
fi
needed=$(for f in "$prefix"/apps/* "$prefix"/tests/cuda/*; do
    objdump -p "$f" | awk '/NEEDED/ {print $2}'; done | sort -u | tr '\n' ' ')

mkdir -p "$dest"
tar -C "$stage" -czf "$dest/nst-prebuilt.tar.gz" nst-deps
{
    echo "commit $commit"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME"), $(gcc --version | head -1), $(nvcc --version | tail -1)"
    echo "glibc $(ldd --version | head -1 | awk '{print $NF}'), CUDA architectures $archs, static CUDA runtime"
    echo "compiled against cuDNN $(awk '$1 == "#define" && $2 ~ /^CUDNN_(MAJOR|MINOR|PATCHLEVEL)$/ {printf "%s%s", sep, $3; sep="."}' "$(dirname "$(readlink -f "$(command -v nvcc)")")/../include/cudnn_version.h")"
    echo "needed $needed"
} >"$dest/nst-prebuilt.txt"
rm -rf "$fixed"   # the GPU machine gets /tmp/nst-device/src as a link to its checkout
packed=$(du -m "$dest/nst-prebuilt.tar.gz" | cut -f1)
echo "wrote $dest/nst-prebuilt.tar.gz: $packed MiB (built in $seconds s from $commit)"
cat "$dest/nst-prebuilt.txt"
