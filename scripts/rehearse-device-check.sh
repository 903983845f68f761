#!/usr/bin/env bash
# Rehearses scripts/device-check.sh on the development machine (Debian 12, no
# GPU, run as root) in a simulation of the GPU machine, so the check works the
# first time on the real one:
#
#   scripts/rehearse-device-check.sh          (SKIP_MAKE=1: reuse .device-bundle/)
#
# The simulation, in a private mount namespace (unshare -m) with an overlay
# over /usr, so that hidden files really do not exist:
#  - our Debian development packages are gone: the HDF5, libpng, libjpeg, zlib
#    (headers and libz.so; libz.so.1 stays), OpenBLAS, Catch2, CLI11 and
#    nlohmann-json headers, CMake package files and libraries, h5cc, and the
#    runtime libraries HDF5/OpenBLAS load (libsz, libaec, libgfortran,
#    libquadmath), so the executables can only use the bundle's copies;
#  - cuDNN and cuBLAS are gone from the toolkit (/usr/local/cuda/lib64 and
#    include); they exist only as pip wheels do, in the site-packages of a
#    Python that is not Debian's (a venv of REHEARSAL_PYTHON, first on PATH):
#    nvidia/cudnn/{include,lib} and nvidia/cu13/{include,lib} (the CUDA 13
#    wheels' layout), namespace packages without __init__.py;
#  - the working tree travels as `git archive HEAD` (to another path than the
#    checkout) plus .device-bundle/ (the transfer's carry list).
# Runs, each with its summary and timing in $REHEARSAL_DIR/rehearsal.log:
#   no-carry    the tree without .device-bundle/: must stop and name the carry entry
#   negative    CMake without the bundle: must fail (proves the packages are hidden)
#   prebuilt    the prebuilt executables: must pass, GPU phases skipped (no GPU)
#   fake-gpu    a fake nvidia-smi that lists a GPU: the skipping tests must FAIL the check
#   no-cudnn    no cuDNN anywhere: start must fail, the fallback build must run and fail
#   fallback    FORCE_FALLBACK=1: the build from the bundle's dev prefix, then the phases
#   trixie      with TRIXIE_ROOT=DIR (a Debian 13 root made by debootstrap): the prebuilt
#               executables under a newer glibc and libstdc++
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
R=${REHEARSAL_DIR:-/tmp/nst-rehearsal}
python_base=${REHEARSAL_PYTHON:-/root/.pyenv/versions/3.12.1/bin/python3}
cuda=$(readlink -f /usr/local/cuda)
log=$R/rehearsal.log
[[ $(id -u) == 0 ]] || { echo "rehearse-device-check.sh: needs root (unshare -m, mount)" >&2; exit 2; }
mkdir -p "$R"
: >"$log"
say() { echo "$*" | tee -a "$log"; }

say "# rehearsal of scripts/device-check.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, commit $(git -C "$root" rev-parse --short HEAD)"

# ---- the bundle ----------------------------------------------------------------------------
if [[ ${SKIP_MAKE:-0} != 1 ]]; then
    start=$(date +%s)
    "$root/scripts/make-device-bundle.sh" | tee -a "$log"
    "$root/scripts/make-device-binaries.sh" 2>&1 | grep -v '^\[' | tee -a "$log"
    say "bundle made in $(( $(date +%s) - start )) s"
fi

# ---- the transfer ---------------------------------------------------------------------------
rm -rf "$R/tree" "$R/tree-nocarry"
mkdir -p "$R/tree"
git -C "$root" archive HEAD | tar -x -C "$R/tree"
cp -a "$R/tree" "$R/tree-nocarry"
cp -r "$root/.device-bundle" "$R/tree/"
say "transfer: $(du -sm "$R/tree" | cut -f1) MiB in all (tree $(du -sm "$R/tree-nocarry" | cut -f1) MiB, .device-bundle $(du -sm "$R/tree/.device-bundle" | cut -f1) MiB: $(cd "$R/tree/.device-bundle" && ls | tr '\n' ' '))"

# ---- the wheels: cuDNN and cuBLAS as nvidia-cudnn-cu13 / nvidia-cublas lay them out ---------
if [[ ! -f $R/venv/.complete ]]; then
    rm -rf "$R/venv"
    "$python_base" -m venv --without-pip "$R/venv"
    sp=$("$R/venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    mkdir -p "$sp/nvidia/cudnn/include" "$sp/nvidia/cudnn/lib" "$sp/nvidia/cu13/include" "$sp/nvidia/cu13/lib"
    for f in "$cuda"/lib/libcudnn*.so.9; do cp -L "$f" "$sp/nvidia/cudnn/lib/"; done
    cp "$cuda"/include/cudnn*.h "$sp/nvidia/cudnn/include/"
    for f in "$cuda"/lib/libcublas*.so.13; do cp -L "$f" "$sp/nvidia/cu13/lib/"; done
    cp "$cuda"/include/cublas*.h "$sp/nvidia/cu13/include/"
    touch "$R/venv/.complete"
fi
sp=$("$R/venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
say "wheels: $("$R/venv/bin/python3" --version) venv, $(cd "$sp" && find nvidia -maxdepth 2 | sort | tr '\n' ' ')"
say "        nvidia.cudnn.__file__ = $("$R/venv/bin/python3" -c 'import nvidia.cudnn as m; print(m.__file__)'), __path__ = $("$R/venv/bin/python3" -c 'import nvidia.cudnn as m; print(list(m.__path__))')"

# ---- a GPU that the driver lists and the runtime does not see --------------------------------
mkdir -p "$R/fake-gpu"
cat >"$R/fake-gpu/nvidia-smi" <<'EOF'
#!/bin/sh
# Simulated: the driver lists a GPU (the CUDA runtime here sees none).
case "$1" in
    -L) echo "GPU 0: NVIDIA H200 (UUID: GPU-00000000-simulated)" ;;
    --query-gpu=*) echo "NVIDIA H200 (simulated), 580.00, 143771 MiB" ;;
    *) echo "simulated nvidia-smi: NVIDIA H200, driver 580.00" ;;
esac
EOF
chmod +x "$R/fake-gpu/nvidia-smi"

# ---- inside the simulation ----------------------------------------------------------------------
cat >"$R/inside.sh" <<EOF
set -uo pipefail
R=$R; cuda=$cuda; log=$log; trixie=${TRIXIE_ROOT:-}
EOF
cat >>"$R/inside.sh" <<'EOF'
say() { echo "$*" | tee -a "$log"; }
mkdir -p "$R/overlay"
mount -t tmpfs tmpfs "$R/overlay"
mkdir -p "$R/overlay/upper" "$R/overlay/work"
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$R/overlay/upper,workdir=$R/overlay/work" /usr
(
    cd /usr/include
    rm -rf hdf5 catch2 CLI nlohmann png.h pngconf.h pnglibconf.h libpng libpng16 zlib.h zconf.h \
        jpeglib.h jerror.h jmorecfg.h jpegint.h szlib.h
    cd /usr/include/x86_64-linux-gnu
    rm -rf jconfig.h cblas*.h f77blas.h openblas-pthread openblas_config.h
    cd /usr/lib/x86_64-linux-gnu
    rm -rf libhdf5* hdf5 libpng* libjpeg* libopenblas* openblas-pthread libblas* liblapack* libz.so libz.a \
        libgfortran* libquadmath* libsz* libaec* cmake/openblas
    rm -rf /usr/lib/cmake/Catch2 /usr/lib/libCatch2* /usr/share/cmake/CLI11 /usr/share/cmake/nlohmann_json
    rm -f /usr/bin/h5cc /usr/bin/h5c++ /usr/bin/h5fc
    rm -f "$cuda"/lib/libcudnn* "$cuda"/lib/libcublas* "$cuda"/include/cudnn*.h "$cuda"/include/cublas*.h
)
say "simulation: hidden: $(ls /usr/include/hdf5 /usr/include/zlib.h /usr/include/catch2 /usr/lib/x86_64-linux-gnu/libhdf5_serial.so.103 /usr/lib/x86_64-linux-gnu/libz.so /usr/bin/h5cc "$cuda"/include/cudnn.h "$cuda"/lib/libcudnn.so.9 "$cuda"/lib/libcublas.so.13 2>&1 | grep -c 'No such file') of 9 probes absent; libz.so.1 kept: $(ls /usr/lib/x86_64-linux-gnu/libz.so.1)"

# The Python of the GPU machine: the venv's python3 first on PATH (not Debian's).
base_path=$R/venv/bin:$PATH

run() {  # run NAME EXPECTED-RC TREE ENV...
    local name=$1 expected=$2 tree=$3; shift 3
    local out=$R/out-$name start rc
    rm -rf "$out" /tmp/nst-deps
    start=$(date +%s)
    (cd "$tree" && env OUT="$out" "$@" scripts/device-check.sh) >"$R/stdout-$name.txt" 2>&1
    rc=$?
    say ""
    say "## $name: exit $rc (expected $expected) in $(( $(date +%s) - start )) s$( ((rc == expected)) && echo ': as expected' || echo ': UNEXPECTED')"
    sed 's/^/    /' "$out/summary.txt" | tee -a "$log"
    say "    files in OUT: $(ls "$out" | tr '\n' ' ')"
    (( rc == expected )) || failures=$((failures + 1))
}
failures=0

run no-carry 1 "$R/tree-nocarry" PATH="$base_path" SKIP_BENCH=1

say ""
rm -rf "$R/negative-build"
if cmake -S "$R/tree" -B "$R/negative-build" -G Ninja -DNST_CUDA=OFF >"$R/negative.log" 2>&1; then
    say "## negative: CMake configured WITHOUT the bundle: the simulation hides too little"
    failures=$((failures + 1))
else
    say "## negative: CMake without the bundle fails as it should: $(grep -m1 'Could NOT find' "$R/negative.log" || grep -m1 'Error' "$R/negative.log")"
fi

run prebuilt 0 "$R/tree" PATH="$base_path" SKIP_BENCH=1
say "    ldd (prebuilt test_cuda_ops): $(grep -A40 -- '-- .*test_cuda_ops' "$R/out-prebuilt/machine.log" | grep -E 'libhdf5|libpng|libjpeg|libopenblas|libz\.|libgfortran|libcudnn|libcublas' | awk '{print $1 " => " $3}' | sort -u | tr '\n' ';')"
say "    fixtures through $(readlink /tmp/nst-device/src): $(ls /tmp/nst-device/src/tests/reference/*.h5 | xargs -n1 basename | tr '\n' ' ')"
say "    cuDNN/cuBLAS: $(grep -E '^== (cudnn|cublas|wheel)' "$R/out-prebuilt/machine.log" | tr '\n' ' ')"

run fake-gpu 1 "$R/tree" PATH="$R/fake-gpu:$base_path" SKIP_BENCH=1

run no-cudnn 1 "$R/tree" PATH="$PATH" PYTHON=/nonexistent SKIP_BENCH=1

run fallback 0 "$R/tree" PATH="$base_path" SKIP_BENCH=1 FORCE_FALLBACK=1 CHECK_BUDGET_S=900 JOBS="$(nproc)" BUILD_DIR="$R/tree/build-device"
say "    ldd (built test_cuda_ops): $(ldd "$R/tree/build-device/tests/cuda/test_cuda_ops" | grep -E 'libhdf5|libpng|libjpeg|libopenblas|libz\.|libcudnn|libcublas|libcudart' | awk '{print $1 " => " $3}' | sort -u | tr '\n' ';')"

# Optional: the prebuilt executables on a newer distribution (Debian 13: glibc 2.41,
# GCC 14's libstdc++ and libgomp), without CMake or nvcc, cuDNN/cuBLAS from the
# wheels through that distribution's own python3 (PYTHONPATH = the venv's
# site-packages). Make the root once with
#   debootstrap --variant=minbase --include=libstdc++6,libgomp1,binutils,python3 trixie DIR
if [[ -n $trixie && -x $trixie/bin/bash ]]; then
    sp=$("$R/venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    mkdir -p "$trixie$R/tree" "$trixie$R/venv" "$trixie/proc" "$trixie/dev"
    mount --bind "$R/tree" "$trixie$R/tree"
    mount --bind "$R/venv" "$trixie$R/venv"
    mount -t proc proc "$trixie/proc"
    mount --bind /dev "$trixie/dev"
    rm -rf "$trixie$R/out-trixie" "$trixie/tmp/nst-deps"
    start=$(date +%s)
    chroot "$trixie" env -i PATH=/usr/bin:/bin HOME=/root PYTHONPATH="$sp" OUT="$R/out-trixie" SKIP_BENCH=1 \
        bash -c "cd $R/tree && scripts/device-check.sh" >"$R/stdout-trixie.txt" 2>&1
    rc=$?
    say ""
    say "## trixie: exit $rc (expected 0) in $(( $(date +%s) - start )) s$( ((rc == 0)) && echo ': as expected' || echo ': UNEXPECTED'); $(chroot "$trixie" ldd --version | head -1), $(chroot "$trixie" sh -c 'ls /usr/lib/x86_64-linux-gnu/libstdc++.so.6.*')"
    sed 's/^/    /' "$trixie$R/out-trixie/summary.txt" | tee -a "$log"
    (( rc == 0 )) || failures=$((failures + 1))
fi

say ""
say "rehearsal: $( ((failures == 0)) && echo 'every run as expected' || echo "$failures run(s) NOT as expected")"
exit $(( failures > 0 ))
EOF

start=$(date +%s)
rc=0
unshare -m --propagation private bash "$R/inside.sh" || rc=$?
say "rehearsal took $(( $(date +%s) - start )) s in the simulation; log: $log"
exit $rc
