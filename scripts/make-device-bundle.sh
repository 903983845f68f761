#!/usr/bin/env bash
# Packs what a bare GPU machine lacks to build nst: the headers, CMake package
# files and shared libraries of the Debian development packages (HDF5, libpng,
# libjpeg, OpenBLAS, zlib, Catch2, CLI11, nlohmann-json), with the libraries
# those libraries load. zlib is packed whole (headers, libz.so) because CMake's
# FindPNG requires FindZLIB, and a machine without development packages has no
# zlib.h. Run it on a Debian 12 (x86-64) development machine with the
# packages of the README installed; scripts/device-check.sh unpacks the result.
#
#   scripts/make-device-bundle.sh [DIR]     (default: .device-bundle in the checkout)
#
# Writes DIR/nst-deps.tar.gz (a prefix: include/, lib/, lib/cmake/, share/cmake/).
# Compressed because OpenBLAS alone is 36 MiB; the archive stays near 15 MiB.
# glibc, libstdc++, libgcc_s and libgomp are not packed: the target's compiler
# brings its own (any glibc ≥ 2.36 runs these libraries).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/.device-bundle}
arch_lib=/usr/lib/x86_64-linux-gnu
arch_inc=/usr/include/x86_64-linux-gnu

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
prefix=$stage/nst-deps
mkdir -p "$prefix/include" "$prefix/lib/cmake" "$prefix/share/cmake"

# ---- headers ----------------------------------------------------------------------------
cp -r /usr/include/catch2 /usr/include/CLI /usr/include/nlohmann "$prefix/include/"
cp /usr/include/hdf5/serial/*.h "$prefix/include/"
cp /usr/include/png.h /usr/include/pngconf.h /usr/include/pnglibconf.h "$prefix/include/"
cp /usr/include/zlib.h /usr/include/zconf.h "$prefix/include/"
cp /usr/include/jpeglib.h /usr/include/jerror.h /usr/include/jmorecfg.h "$arch_inc/jconfig.h" \
   "$prefix/include/"
cp "$arch_inc/openblas-pthread/cblas.h" "$arch_inc/openblas-pthread/openblas_config.h" \
   "$prefix/include/"

# ---- CMake package files (relocatable: they locate the prefix from their own path) -----
cp -r /usr/lib/cmake/Catch2 "$prefix/lib/cmake/"
cp /usr/lib/libCatch2WithMain.a "$prefix/lib/"  # named by Catch2's package file
cp -r /usr/share/cmake/CLI11 /usr/share/cmake/nlohmann_json "$prefix/share/cmake/"

# ---- libraries, under their SONAME, plus every library they load --------------------------
# Link names (what find_library looks for) -> the library file on this machine.
declare -A link_names=(
    [libhdf5.so]=$arch_lib/libhdf5_serial.so     # FindHDF5 without h5cc looks for "hdf5"
    [libpng.so]=$arch_lib/libpng16.so
    [libpng16.so]=$arch_lib/libpng16.so
    [libjpeg.so]=$arch_lib/libjpeg.so
    [libopenblas.so]=$arch_lib/openblas-pthread/libopenblas.so
    [libz.so]=$arch_lib/libz.so
)
# Provided by the target's toolchain and C library: never packed.
system_libs='^(libc|libm|libdl|librt|libpthread|libresolv|libutil|ld-linux-x86-64|libstdc\+\+|libgcc_s|libgomp)\.so'

copy_with_dependencies() {
    local library=$1
    local real soname
    real=$(readlink -f "$library")
    soname=$(objdump -p "$real" | awk '/SONAME/ {print $2}')
    [[ -e $prefix/lib/$soname ]] || cp "$real" "$prefix/lib/$soname"
    # ldd resolves the whole closure; keep what is not part of the system.
    ldd "$real" | awk '/=> \// {print $1, $3}' | while read -r name path; do
        if [[ ! $name =~ $system_libs && ! -e $prefix/lib/$name ]]; then
            cp "$(readlink -f "$path")" "$prefix/lib/$name"
        fi
    done
    echo "$soname"
}

for name in "${!link_names[@]}"; do
    soname=$(copy_with_dependencies "${link_names[$name]}")
    ln -sf "$soname" "$prefix/lib/$name"
done

mkdir -p "$dest"
tar -C "$stage" -czf "$dest/nst-deps.tar.gz" nst-deps
unpacked=$(du -sm "$prefix" | cut -f1)
packed=$(du -sm "$dest/nst-deps.tar.gz" | cut -f1)
echo "wrote $dest/nst-deps.tar.gz: $packed MiB ($unpacked MiB unpacked, $(ls "$prefix/lib" | wc -l) library files)"
if (( packed > 30 )); then
    echo "error: the bundle is over 30 MiB; with the prebuilt executables (make-device-binaries.sh)" \
         "and the working tree it must stay under the 64 MiB a transfer to a GPU machine may hold" >&2
    exit 1
fi
