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
#   fake-gpu    a stub nvidia-smi that lists a GPU (tests/scripts/stubs): the skipping
#               tests must FAIL the check
#   fake-gpu-cpu  the same stub GPU with NST_TEST_DEVICE=cpu (the CPU stands in for
#               the device), the stub compute-sanitizer, the stub torch and numpy
#               (tests/scripts/stub-python) and its stub baseline (BENCH_BASELINE):
#               must pass with EVERY phase PASS, facts to bench
#   no-cudnn    no cuDNN anywhere: start must fail, the fallback build must run and fail
#   fallback    FORCE_FALLBACK=1: the build from the bundle's dev prefix, then the phases
#   fallback-libcudnn-so  the same, configured afresh, with the unversioned
#               libcudnn.so in the wheel's lib/ too (as conda and some wheels have it):
#               CUDNN_PATH must still be exported and configure find cuDNN
#   trixie, trixie-fake-gpu-cpu, trixie-libcudnn-so  with TRIXIE_ROOT=DIR (a Debian 13
#               root made by debootstrap): the prebuilt executables under a newer glibc
#               and libstdc++, without a GPU, as fake-gpu-cpu (every phase PASS), and
#               with libcudnn.so in the wheel
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
    "$root/scripts/prepare-device-check.sh" 2>&1 | tee -a "$log"
    say "bundle made in $(( $(date +%s) - start )) s"
fi

# ---- the transfer ---------------------------------------------------------------------------
rm -rf "$R/tree" "$R/tree-nocarry"
mkdir -p "$R/tree"
git -C "$root" archive HEAD | tar -x -C "$R/tree"
cp -a "$R/tree" "$R/tree-nocarry"
cp -r "$root/.device-bundle" "$R/tree/"
# The stubs of the fake-GPU runs travel with the tree (committed files only).
stubs=$R/tree/tests/scripts/stubs
stub_python=$R/tree/tests/scripts/stub-python
if [[ ! -x $stubs/nvidia-smi || ! -x $stubs/compute-sanitizer || ! -f $stub_python/torch/__init__.py ]]; then
    say "the stubs (tests/scripts/stubs, tests/scripts/stub-python) are not in HEAD: commit them first"
    exit 2
fi
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

# ---- inside the simulation ----------------------------------------------------------------------
cat >"$R/inside.sh" <<EOF
set -uo pipefail
R=$R; cuda=$cuda; log=$log; trixie=${TRIXIE_ROOT:-}; stubs=$stubs; stub_python=$stub_python
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
every_phase_passed() {  # every_phase_passed SUMMARY: each phase of the check has its PASS line
    local phase missing=
    for phase in facts bundle start gpu-tests memcheck racecheck determinism bench; do
        grep -q "^$phase: PASS " "$1" || missing="$missing $phase"
    done
    if [[ -n $missing ]]; then
        say "    NOT every phase PASS:$missing: UNEXPECTED"
        failures=$((failures + 1))
    else
        say "    every phase PASS, facts to bench"
    fi
}
failures=0
# The CPU-as-device runs: the stub GPU and sanitizer, the CPU as the device, the
# stub torch and numpy, the stub baseline; the limits raised, as the CPU stands
# in for the GPU on 2 shared cores.
cpu_as_device=(NST_TEST_DEVICE=cpu BENCH_BASELINE="$stub_python/stub_torch_baseline.py"
               CHECK_BUDGET_S=1800 CHECK_LIMIT_GPU_TESTS_S=600 CHECK_LIMIT_MEMCHECK_S=600
               CHECK_LIMIT_RACECHECK_S=300 CHECK_LIMIT_DETERMINISM_S=300 CHECK_LIMIT_BENCH_S=300)
sp=$("$R/venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -f "$sp/nvidia/cudnn/lib/libcudnn.so"

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
say "    ldd (prebuilt test_cuda_backend): $(grep -A40 -- '-- .*test_cuda_backend' "$R/out-prebuilt/machine.log" | grep -E 'libhdf5|libpng|libjpeg|libopenblas|libz\.|libgfortran|libcudnn|libcublas' | awk '{print $1 " => " $3}' | sort -u | tr '\n' ';')"
say "    fixtures through $(readlink /tmp/nst-device/src): $(ls /tmp/nst-device/src/tests/reference/*.h5 | xargs -n1 basename | tr '\n' ' ')"
say "    cuDNN/cuBLAS: $(grep -E '^== (cudnn|cublas|wheel)' "$R/out-prebuilt/machine.log" | tr '\n' ' ')"

run fake-gpu 1 "$R/tree" PATH="$stubs:$base_path" SKIP_BENCH=1

run fake-gpu-cpu 0 "$R/tree" PATH="$stubs:$base_path" PYTHONPATH="$stub_python" "${cpu_as_device[@]}"
every_phase_passed "$R/out-fake-gpu-cpu/summary.txt"

run no-cudnn 1 "$R/tree" PATH="$PATH" PYTHON=/nonexistent SKIP_BENCH=1

run fallback 0 "$R/tree" PATH="$base_path" SKIP_BENCH=1 FORCE_FALLBACK=1 CHECK_BUDGET_S=900 JOBS="$(nproc)" BUILD_DIR="$R/tree/build-device"
say "    ldd (built test_cuda_backend): $(ldd "$R/tree/build-device/tests/cuda/test_cuda_backend" | grep -E 'libhdf5|libpng|libjpeg|libopenblas|libz\.|libcudnn|libcublas|libcudart' | awk '{print $1 " => " $3}' | sort -u | tr '\n' ';')"

# A wheel (or conda) folder that holds the unversioned libcudnn.so as well:
# configured afresh in the same build folder (the same flags: nothing to recompile).
ln -sfn libcudnn.so.9 "$sp/nvidia/cudnn/lib/libcudnn.so"
rm -f "$R/tree/build-device/CMakeCache.txt"
run fallback-libcudnn-so 0 "$R/tree" PATH="$base_path" SKIP_BENCH=1 FORCE_FALLBACK=1 CHECK_BUDGET_S=900 JOBS="$(nproc)" BUILD_DIR="$R/tree/build-device"
say "    $(grep -m1 '^CUDNN_PATH=' "$R/out-fallback-libcudnn-so/build.log"); $(grep -m1 -o 'cuDNN: [^)]*' "$R/out-fallback-libcudnn-so/build.log" || echo 'configure named no cuDNN')"
grep -q "^CUDNN_PATH=$sp/nvidia/cudnn " "$R/out-fallback-libcudnn-so/build.log" ||
    { say "    CUDNN_PATH not exported: UNEXPECTED"; failures=$((failures + 1)); }
rm -f "$sp/nvidia/cudnn/lib/libcudnn.so"

# Optional: the prebuilt executables on a newer distribution (Debian 13: glibc 2.41,
# GCC 14's libstdc++ and libgomp), without CMake or nvcc, cuDNN/cuBLAS from the
# wheels through that distribution's own python3 (PYTHONPATH = the venv's
# site-packages). Make the root once with
#   debootstrap --variant=minbase --include=libstdc++6,libgomp1,binutils,python3 trixie DIR
run_trixie() {  # run_trixie NAME ENV...: the check in the Debian 13 root, expected to pass
    local name=$1; shift
    local out=$R/out-$name start rc
    rm -rf "$trixie$out" "$trixie/tmp/nst-deps"
    start=$(date +%s)
    chroot "$trixie" env -i PATH=/usr/bin:/bin HOME=/root PYTHONPATH="$sp" OUT="$out" "$@" \
        bash -c "cd $R/tree && scripts/device-check.sh" >"$R/stdout-$name.txt" 2>&1
    rc=$?
    say ""
    say "## $name: exit $rc (expected 0) in $(( $(date +%s) - start )) s$( ((rc == 0)) && echo ': as expected' || echo ': UNEXPECTED'); $(chroot "$trixie" ldd --version | head -1), $(chroot "$trixie" sh -c 'ls /usr/lib/x86_64-linux-gnu/libstdc++.so.6.*')"
    sed 's/^/    /' "$trixie$out/summary.txt" | tee -a "$log"
    (( rc == 0 )) || failures=$((failures + 1))
}
if [[ -n $trixie && -x $trixie/bin/bash ]]; then
    mkdir -p "$trixie$R/tree" "$trixie$R/venv" "$trixie/proc" "$trixie/dev"
    mount --bind "$R/tree" "$trixie$R/tree"
    mount --bind "$R/venv" "$trixie$R/venv"
    mount -t proc proc "$trixie/proc"
    mount --bind /dev "$trixie/dev"
    run_trixie trixie SKIP_BENCH=1
    run_trixie trixie-fake-gpu-cpu PATH="$stubs:/usr/bin:/bin" PYTHONPATH="$sp:$stub_python" "${cpu_as_device[@]}"
    every_phase_passed "$trixie$R/out-trixie-fake-gpu-cpu/summary.txt"
    ln -sfn libcudnn.so.9 "$sp/nvidia/cudnn/lib/libcudnn.so"
    run_trixie trixie-libcudnn-so PATH="$stubs:/usr/bin:/bin" PYTHONPATH="$sp:$stub_python" "${cpu_as_device[@]}"
    every_phase_passed "$trixie$R/out-trixie-libcudnn-so/summary.txt"
    rm -f "$sp/nvidia/cudnn/lib/libcudnn.so"
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
