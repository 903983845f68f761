#!/usr/bin/env bash
# The GPU check: builds nst with the CUDA backend on a machine that has a GPU,
# the CUDA toolkit (nvcc, cuBLAS), cuDNN, CMake and ninja but none of our
# Debian development packages and no network, then runs the GPU tests, a
# compute-sanitizer memcheck of the CUDA ops, and the benchmark when present.
#
#   scripts/make-device-bundle.sh       # once, on the development machine
#   scripts/device-check.sh             # on the GPU machine, from the checkout
#
# The bundle (.device-bundle/, about 21 MiB, git-ignored) must travel with the
# working tree to the GPU machine. Rehearse without a GPU by running this script
# here with CUDA_ARCH=90: it builds, reports the GPU tests as skipped and skips
# memcheck and the benchmark.
#
# Environment (all optional):
#   OUT          folder for the logs (default: build-device/logs)
#   JOBS         build parallelism (default: nproc)
#   CUDA_ARCH    CMAKE_CUDA_ARCHITECTURES (default: native)
#   BUILD_DIR    build folder (default: build-device)
#   DEPS_DIR     where the bundle is unpacked (default: /tmp/nst-deps)
#   SKIP_BENCH=1 do not run the benchmark
#
# Logs: summary.txt (one line per step), build.log, ctest.log, memcheck.log,
# bench.log and the benchmark's JSON reports. Exit status: 0 when the build,
# the GPU tests and memcheck all pass (skipped GPU tests count as passed only
# when no GPU is present, e.g. when rehearsing on a development machine).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/build-device/logs}
build=${BUILD_DIR:-$root/build-device}
deps=${DEPS_DIR:-/tmp/nst-deps}
jobs=${JOBS:-$(nproc)}
arch=${CUDA_ARCH:-native}
mkdir -p "$out"
summary=$out/summary.txt
: >"$summary"
status=0

note() { echo "$*" | tee -a "$summary"; }
elapsed() { echo $(( $(date +%s) - $1 )); }

# ---- the machine ------------------------------------------------------------------------
export PATH=$PATH:/usr/local/cuda/bin
note "nst device check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -m), $(nproc) cores"
note "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"
note "nvcc: $(nvcc --version 2>/dev/null | tail -1 || echo missing)"
note "cmake: $(cmake --version | head -1)"

# ---- dependencies from the bundle ----------------------------------------------------------
archive=$root/.device-bundle/nst-deps.tar.gz
if [[ ! -f $archive ]]; then
    note "error: $archive is missing: run scripts/make-device-bundle.sh on the development machine"
    exit 1
fi
rm -rf "$deps" && mkdir -p "$(dirname "$deps")"
tar -C "$(dirname "$deps")" -xzf "$archive"
[[ $(basename "$deps") == nst-deps ]] || mv "$(dirname "$deps")/nst-deps" "$deps"
# The bundle also carries common libraries (zlib, OpenSSL, curl's dependencies)
# that HDF5 loads. Where this machine has its own, use those: a newer system
# program must never load an older copy from the bundle.
primary='^lib(hdf5|png|jpeg|openblas|gfortran|quadmath|sz|aec)'
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
for library in "$deps"/lib/*.so.*; do
    name=$(basename "$library")
    if [[ ! $name =~ $primary ]] && "$ldconfig" -p 2>/dev/null | grep -q "^[[:space:]]*$name "; then
        rm -f "$library"
    fi
done
note "deps: $(ls "$deps/lib" | grep -c '\.so') library files in $deps/lib"

# cuDNN: the toolkit's folder, else the pip wheel next to PyTorch.
if [[ ! -f /usr/local/cuda/include/cudnn.h && -z ${CUDNN_PATH:-} ]]; then
    CUDNN_PATH=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null || true)
    [[ -n $CUDNN_PATH ]] && export CUDNN_PATH && note "cudnn: $CUDNN_PATH"
fi

# ---- configure and build --------------------------------------------------------------------
# DT_RPATH (--disable-new-dtags) rather than RUNPATH: it also applies to the
# libraries our libraries load (HDF5's), so nothing needs LD_LIBRARY_PATH.
# Only what this check runs: the GPU tests, the CLI (for profiling) and the
# benchmark when it exists. The CPU tests need ../shared/assets, which a GPU
# machine does not have.
targets="neural-style $(cd "$root/tests/cuda" && ls test_*.cpp | sed 's/\.cpp$//' | tr '\n' ' ')"
[[ -f $root/apps/nst_bench.cpp ]] && targets="$targets nst-bench"
link_flags="-Wl,--disable-new-dtags -Wl,-rpath,$deps/lib -Wl,-rpath-link,$deps/lib"
start=$(date +%s)
{
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNST_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCMAKE_PREFIX_PATH="$deps" -DHDF5_ROOT="$deps" \
        -DCMAKE_EXE_LINKER_FLAGS="$link_flags" -DCMAKE_SHARED_LINKER_FLAGS="$link_flags" &&
    cmake --build "$build" -j "$jobs" --target $targets
} >"$out/build.log" 2>&1
rc=$?
note "build: exit $rc ($(elapsed "$start") s, -j $jobs, CUDA architectures $arch)"
if (( rc != 0 )); then
    tail -40 "$out/build.log"
    exit 1
fi

# ---- GPU tests --------------------------------------------------------------------------------
start=$(date +%s)
ctest --test-dir "$build" -L gpu --output-on-failure --timeout 600 >"$out/ctest.log" 2>&1
rc=$?
note "gpu tests: exit $rc ($(elapsed "$start") s): $(grep -E 'tests passed|tests failed' "$out/ctest.log" | tail -1)"
grep -E '\(Skipped\)|\(Failed\)|Not Run' "$out/ctest.log" | sed 's/^/  /' | tee -a "$summary"
(( rc == 0 )) || status=1
# The tests' own main decides: exit code 77 means it found no CUDA device.
"$build/tests/cuda/test_cuda_backend" --list-test-names-only >/dev/null 2>&1
gpu_present=$(( $? != 77 ))

# ---- memcheck of the CUDA ops -------------------------------------------------------------------
# The element-wise, pooling, loss and reduction kernels, and the gemm wrapper;
# the cuDNN convolutions are left out (library code, and slow under memcheck).
sanitizer=$(command -v compute-sanitizer || true)
if [[ -z $sanitizer ]]; then
    note "memcheck: skipped (compute-sanitizer not found)"
elif (( gpu_present == 0 )); then
    note "memcheck: skipped (no GPU)"
else
    start=$(date +%s)
    {
        "$sanitizer" --tool memcheck --error-exitcode 90 --leak-check full \
            "$build/tests/cuda/test_cuda_ops" '[relu],[pool],[preprocess],[gram],[loss],[vector]' &&
        "$sanitizer" --tool memcheck --error-exitcode 90 \
            "$build/tests/cuda/test_cuda_backend" '[gemm],[memory]'
    } >"$out/memcheck.log" 2>&1
    rc=$?
    note "memcheck: exit $rc ($(elapsed "$start") s): $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tr '\n' ' ')"
    (( rc == 0 )) || status=1
fi

# ---- benchmark ----------------------------------------------------------------------------------
if [[ ${SKIP_BENCH:-0} == 1 ]]; then
    note "bench: skipped (SKIP_BENCH=1)"
elif [[ ! -x $build/apps/nst-bench || ! -x $root/bench/compare.sh ]]; then
    note "bench: skipped (apps/nst-bench or bench/compare.sh not present)"
elif (( gpu_present == 0 )); then
    note "bench: skipped (no GPU)"
else
    start=$(date +%s)
    bench_out=$(mktemp -d)
    PYTHON=${PYTHON:-python3} "$root/bench/compare.sh" "$build" --device cuda --sizes 256,512 \
        --precision tf32 --repeats 5 --warmup 2 --out "$bench_out" >"$out/bench.log" 2>&1
    rc=$?
    cp "$bench_out"/*.json "$out/" 2>/dev/null
    note "bench: exit $rc ($(elapsed "$start") s), table in bench.log"
fi

note "device check: $( ((status == 0)) && echo passed || echo FAILED)$( ((gpu_present == 0)) && echo ' (no GPU: GPU tests skipped)')"
exit $status
