#!/usr/bin/env bash
# The GPU check, for a machine lent for a few minutes: an NVIDIA GPU, the CUDA
# toolkit (nvcc, compute-sanitizer), CMake and ninja, cuDNN and cuBLAS either in
# the toolkit or only as PyTorch's pip wheels, none of our Debian development
# packages, no network. It runs in phases, each under `timeout` and within an
# overall budget, each writing its line to $OUT/summary.txt as it finishes:
#
#   facts        nvidia-smi, driver, nvcc, where cuDNN/cuBLAS were found, torch
#   start        the prebuilt executables load (ldd finds every library) and run
#   build        only when they do not: build from the bundle's dev prefix
#   gpu-tests    tests/cuda executables; skipped tests FAIL when nvidia-smi
#                lists a GPU (the runtime must see what the driver sees)
#   memcheck     compute-sanitizer memcheck, a short selection of our kernels
#   racecheck    compute-sanitizer racecheck of the reductions ([loss],[vector])
#   determinism  two identical short neural-style runs: cmp of the two PNGs
#   bench        bench/compare.sh when present (SKIP_BENCH=1 leaves it out)
#
# On the development machine (Debian 12), before the transfer:
#
#   scripts/make-device-bundle.sh       # .device-bundle/nst-deps.tar.gz (libraries, headers)
#   scripts/make-device-binaries.sh     # .device-bundle/nst-prebuilt.tar.gz (executables)
#
# .device-bundle/ is GIT-IGNORED: a transfer of the working tree leaves it
# behind unless it is named explicitly, i.e. the run's carry list must be
# [".device-bundle"]. Without it this script stops at once and says so.
# On the GPU machine, from the checkout:  OUT=$OUT scripts/device-check.sh
# Rehearse without a GPU with scripts/rehearse-device-check.sh (docs/PROFILING.md).
#
# Environment (all optional):
#   OUT            folder for the results (default: build-device/logs). At most 8
#                  files: summary.txt machine.log build.log tests.log sanitizer.log
#                  render.log bench.log bench-reports.txt
#   CHECK_BUDGET_S seconds for the whole check (default 330); each phase gets
#                  its own timeout, cut to what is left
#   JOBS           parallelism of the fallback build (default: nproc)
#   CUDA_ARCH      its CMAKE_CUDA_ARCHITECTURES (default: native with a GPU, else 80-real;90)
#   BUILD_DIR      its folder (default: build-device)
#   DEPS_DIR       where the bundle is unpacked (default: /tmp/nst-deps)
#   PYTHON         the Python with torch (default: the first of python3,
#                  /opt/torch/.venv/bin/python3 that imports torch)
#   FORCE_FALLBACK=1  ignore the prebuilt executables (rehearses the fallback)
#   SKIP_BENCH=1   do not run the benchmark
#
# Exit status 0 when every phase that ran passed. A phase is SKIPPED only for a
# stated reason (no GPU at all, no compute-sanitizer, no time left, SKIP_BENCH).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/build-device/logs}
build=${BUILD_DIR:-$root/build-device}
deps=${DEPS_DIR:-/tmp/nst-deps}
jobs=${JOBS:-$(nproc)}
budget=${CHECK_BUDGET_S:-330}
fixed=/tmp/nst-device   # where the prebuilt tests look for tests/reference (make-device-binaries.sh)
mkdir -p "$out"
summary=$out/summary.txt
machine=$out/machine.log
: >"$summary"
: >"$machine"
status=0
check_start=$(date +%s)
original_ld_path=${LD_LIBRARY_PATH:-}
export PATH=$PATH:/usr/local/cuda/bin

# One line per phase: "phase: RESULT (N s) detail [-> next: what to look at]".
line() { echo "$*" | tee -a "$summary"; }
phase_start=0
begin() { phase_start=$(date +%s); }
report() {  # report PHASE RESULT DETAIL [NEXT]
    local text="$1: $2 ($(( $(date +%s) - phase_start )) s)${3:+ $3}"
    [[ -n ${4:-} ]] && text="$text -> next: $4"
    line "$text"
    [[ $2 == FAIL ]] && status=1
    return 0
}
# Seconds a phase may take: its own limit, cut to what is left of the budget.
limit() {
    local left=$(( budget - ($(date +%s) - check_start) - 5 ))
    (( left < 1 )) && left=1
    (( left < $1 )) && echo "$left" || echo "$1"
}
enough_time() { (( $(limit 9999) >= $1 )); }
t() { local s; s=$(limit "$1"); shift; timeout -k 5 "$s" "$@"; }

# ==== facts ====================================================================================
begin
gpu_listed=$(timeout 20 nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
{
    echo "== date: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -srm), $(nproc) cores"
    echo "== os: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    echo "== glibc: $(ldd --version 2>/dev/null | head -1)"
    echo "== compilers: $(c++ --version 2>/dev/null | head -1); $(nvcc --version 2>/dev/null | tail -1)"
    echo "== cmake: $(cmake --version 2>/dev/null | head -1); ninja $(ninja --version 2>/dev/null)"
    echo "== nvidia-smi -L"; timeout 20 nvidia-smi -L 2>&1
    echo "== nvidia-smi"; timeout 20 nvidia-smi 2>&1
    echo "== compute-sanitizer: $(command -v compute-sanitizer || echo missing); ncu: $(command -v ncu || echo missing)"
} >>"$machine" 2>&1
gpu_name=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)

# Python with torch (for the benchmark and as a second opinion on the device),
# and the nvidia namespace packages of every candidate Python (the pip wheels
# of cuDNN, cuBLAS, the CUDA runtime: nvidia/cudnn/lib, nvidia/cu13/lib,
# nvidia/cublas/lib, ...). nvidia.cudnn is a namespace package: __file__ is
# None, __path__ is the list to search.
python=
wheel_roots=()
for candidate in ${PYTHON:-} python3 /opt/torch/.venv/bin/python3; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    while read -r dir; do
        [[ -n $dir && -d $dir ]] && wheel_roots+=("$dir")
    done < <(timeout 20 "$candidate" -c 'import nvidia; print("\n".join(nvidia.__path__))' 2>/dev/null)
    if [[ -z $python ]] && timeout 60 "$candidate" -c 'import torch' >/dev/null 2>&1; then
        python=$candidate
    fi
done
torch_facts="no Python with torch"
if [[ -n $python ]]; then
    torch_facts=$(timeout 60 "$python" -c 'import torch; print(f"torch {torch.__version__} CUDA {torch.version.cuda}, cuda.is_available()={torch.cuda.is_available()}")' 2>&1 | tail -1)
fi

# Folders to look for CUDA libraries in: the toolkit, then the wheels.
lib_dirs=()
for dir in "$(dirname "$(command -v nvcc 2>/dev/null || echo /nonexistent/bin/nvcc)")/../lib64" \
           /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [[ -d $dir && " ${lib_dirs[*]} " != *" $(cd "$dir" && pwd -P) "* ]] && lib_dirs+=("$(cd "$dir" && pwd -P)")
done
toolkit_libs=${#lib_dirs[@]}
for wheel in "${wheel_roots[@]}"; do
    while read -r dir; do lib_dirs+=("$dir"); done < <(find "$wheel" -maxdepth 3 -type d -name 'lib*' 2>/dev/null | sort)
done
inc_dirs=()
for dir in "$(dirname "$(command -v nvcc 2>/dev/null || echo /nonexistent/bin/nvcc)")/../include" \
           /usr/local/cuda/include; do
    [[ -d $dir && " ${inc_dirs[*]} " != *" $(cd "$dir" && pwd -P) "* ]] && inc_dirs+=("$(cd "$dir" && pwd -P)")
done
toolkit_incs=${#inc_dirs[@]}
for wheel in "${wheel_roots[@]}"; do
    while read -r dir; do inc_dirs+=("$dir"); done < <(find "$wheel" -maxdepth 3 -type d -name include 2>/dev/null | sort)
done
first_with() {  # first_with FILE DIR... -> the first DIR holding FILE
    local file=$1 dir; shift
    for dir in "$@"; do [[ -e $dir/$file ]] && { echo "$dir"; return 0; }; done
    return 1
}
where_lib() {  # a library: the first folder of lib_dirs, else the system's loader cache
    first_with "$1" "${lib_dirs[@]}" ||
        { local cached; cached=$(ldconfig -p 2>/dev/null | awk -v n="$1" '$1 == n {print $NF; exit}')
          [[ -n $cached && -e $cached ]] && dirname "$cached"; }
}
cudnn_dir=$(where_lib libcudnn.so.9)
cublas_dir=$(where_lib libcublas.so.13)
cudnn_inc=$(first_with cudnn.h "${inc_dirs[@]}")
cublas_inc=$(first_with cublas_v2.h "${inc_dirs[@]}")
cudnn_version=unknown
if [[ -f ${cudnn_inc:-/nonexistent}/cudnn_version.h ]]; then
    cudnn_version=$(awk '$1 == "#define" && $2 ~ /^CUDNN_(MAJOR|MINOR|PATCHLEVEL)$/ {printf "%s%s", sep, $3; sep = "."}' "$cudnn_inc/cudnn_version.h")
fi
{
    echo "== CUDA library folders searched: ${lib_dirs[*]:-none}"
    echo "== wheel roots (nvidia.__path__): ${wheel_roots[*]:-none}"
    echo "== cudnn: lib ${cudnn_dir:-NOT FOUND}, include ${cudnn_inc:-NOT FOUND}, version $cudnn_version (the prebuilt executables: see .device-bundle/nst-prebuilt.txt)"
    echo "== cublas: lib ${cublas_dir:-NOT FOUND}, include ${cublas_inc:-NOT FOUND}"
    echo "== python with torch: ${python:-none}: $torch_facts"
} >>"$machine"
report facts ok "gpu: ${gpu_name:-none} ($gpu_listed listed by nvidia-smi -L); $(nvcc --version 2>/dev/null | tail -1 || echo 'nvcc missing'); cudnn $cudnn_version: ${cudnn_dir:-NOT FOUND}; cublas: ${cublas_dir:-NOT FOUND}; $torch_facts"

# ==== the bundle ==============================================================================
begin
archive=$root/.device-bundle/nst-deps.tar.gz
if [[ ! -f $archive ]]; then
    report bundle FAIL "$archive is missing. .device-bundle/ is git-ignored, so it travels only when the transfer names it: carry [\".device-bundle\"]" \
        "on the development machine: scripts/make-device-bundle.sh && scripts/make-device-binaries.sh, then rerun with carry [\".device-bundle\"]"
    line "device check: FAILED (no bundle)"
    exit 1
fi
rm -rf "$deps" && mkdir -p "$(dirname "$deps")"
t 60 tar -C "$(dirname "$deps")" -xzf "$archive"
prebuilt_archive=$root/.device-bundle/nst-prebuilt.tar.gz
[[ -f $prebuilt_archive ]] && t 60 tar -C "$(dirname "$deps")" -xzf "$prebuilt_archive"
[[ $(basename "$deps") == nst-deps ]] || mv "$(dirname "$deps")/nst-deps" "$deps"
# The bundle also carries the libraries HDF5 loads (OpenSSL, curl, ...). Where
# this machine has its own, those are used instead (newer, with its security
# fixes); the primary libraries and zlib (libz.so is what the fallback build
# links) always come from the bundle.
primary='^lib(hdf5|png|jpeg|openblas|gfortran|quadmath|sz|aec|z\.)'
# (The cache is read once: `ldconfig -p | grep -q` under pipefail fails at
# random, when grep exits before ldconfig has written everything.)
system_libraries=$("$(command -v ldconfig || echo /sbin/ldconfig)" -p 2>/dev/null | awk '{print $1}')
for library in "$deps"/lib/*.so.*; do
    name=$(basename "$library")
    if [[ ! $name =~ $primary ]] && grep -qxF "$name" <<<"$system_libraries"; then
        rm -f "$library"
    fi
done
report bundle ok "$(ls "$deps/lib" | grep -c '\.so') library files in $deps/lib; prebuilt: $( [[ -f $prebuilt_archive ]] && head -1 "$root/.device-bundle/nst-prebuilt.txt" 2>/dev/null || echo none)"

# The CUDA libraries the executables load, from wherever they were found
# (toolkit or wheels): put those folders on LD_LIBRARY_PATH. cuDNN loads its
# sub-libraries (libcudnn_cnn, engines, ...) and they theirs (libnvrtc, ...)
# from the same path, so their missing dependencies are resolved too.
ld_path=()
add_ld() { local d; for d in "$@"; do [[ -n $d && " ${ld_path[*]} " != *" $d "* ]] && ld_path+=("$d"); done; return 0; }
add_ld "$cudnn_dir" "$cublas_dir"
resolve_missing() {  # resolve_missing FILE...: add folders holding what ldd cannot find
    local name dir
    for name in $(LD_LIBRARY_PATH=$(IFS=:; echo "${ld_path[*]}") ldd "$@" 2>/dev/null | awk '/=> not found/ {print $1}' | sort -u); do
        dir=$(first_with "$name" "${lib_dirs[@]}") && add_ld "$dir"
    done
}
[[ -n $cudnn_dir ]] && resolve_missing "$cudnn_dir"/libcudnn*.so.9
[[ -n $cublas_dir ]] && resolve_missing "$cublas_dir"/libcublas*.so.*
export LD_LIBRARY_PATH=$(IFS=:; echo "${ld_path[*]}")${original_ld_path:+:$original_ld_path}
echo "== LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >>"$machine"

# ==== start: the prebuilt executables ============================================================
begin
bindir=
executables() { ls "$1"/apps/neural-style "$1"/apps/nst-bench "$1"/tests/cuda/test_* 2>/dev/null; }
if [[ ${FORCE_FALLBACK:-0} == 1 ]]; then
    report start SKIPPED "FORCE_FALLBACK=1: building instead"
elif [[ ! -d $deps/prebuilt ]]; then
    report start SKIPPED "no prebuilt executables in the bundle (scripts/make-device-binaries.sh): building instead"
else
    resolve_missing $(executables "$deps/prebuilt")
    export LD_LIBRARY_PATH=$(IFS=:; echo "${ld_path[*]}")${original_ld_path:+:$original_ld_path}
    {
        echo "== ldd of the prebuilt executables"
        for exe in $(executables "$deps/prebuilt"); do echo "-- $exe"; ldd "$exe" 2>&1; done
    } >>"$machine"
    # Where the prebuilt tests find tests/reference: NST_SOURCE_DIR = $fixed/src.
    mkdir -p "$fixed/build"
    if [[ -e $fixed/src && ! -L $fixed/src ]]; then mv "$fixed/src" "$fixed/src.old.$$"; fi
    ln -sfn "$root" "$fixed/src"
    missing=$(for exe in $(executables "$deps/prebuilt"); do ldd "$exe" 2>&1; done |
              grep -E 'not found' | sort -u | tr -s ' \t\n' ' ')
    t 30 "$deps/prebuilt/apps/neural-style" --help >>"$machine" 2>&1; help_rc=$?
    t 30 "$deps/prebuilt/tests/cuda/test_cuda_backend" --list-tests >>"$machine" 2>&1; list_rc=$?
    if [[ -n $missing ]]; then
        report start FAIL "ldd: $missing; building instead" "machine.log (ldd of each executable, LD_LIBRARY_PATH)"
    elif (( help_rc != 0 )) || (( list_rc != 0 && list_rc != 77 )); then
        report start FAIL "neural-style --help exit $help_rc, test_cuda_backend --list-tests exit $list_rc; building instead" "machine.log (their output)"
    else
        bindir=$deps/prebuilt
        report start ok "prebuilt executables load and run ($(sed -n 1p "$root/.device-bundle/nst-prebuilt.txt" 2>/dev/null))"
    fi
fi

# ==== build: the fallback ===========================================================================
if [[ -z $bindir ]]; then
    begin
    if (( gpu_listed > 0 )); then arch=${CUDA_ARCH:-native}; else arch=${CUDA_ARCH:-80-real;90}; fi
    targets="neural-style $(cd "$root/tests/cuda" && ls test_*.cpp | sed 's/\.cpp$//' | tr '\n' ' ')"
    [[ -f $root/apps/nst_bench.cpp ]] && targets="$targets nst-bench"
    # DT_RPATH (--disable-new-dtags), not RUNPATH: it also applies to the
    # libraries our libraries load (HDF5's). cuDNN and cuBLAS where found: the
    # wheels ship no unversioned libcublas.so, so the library is named directly.
    link_flags="-Wl,--disable-new-dtags -Wl,-rpath,$deps/lib -Wl,-rpath-link,$deps/lib"
    extra=()
    [[ -n $cudnn_dir && ! -e $cudnn_dir/libcudnn.so && -n $cudnn_inc ]] && export CUDNN_PATH=$(dirname "$cudnn_inc")
    if [[ -n $cublas_dir ]] && ! first_with libcublas.so "${lib_dirs[@]:0:toolkit_libs}" >/dev/null; then
        extra+=(-DCUDA_cublas_LIBRARY="$cublas_dir/libcublas.so.13"
                -DCUDA_cublasLt_LIBRARY="$cublas_dir/libcublasLt.so.13")
    fi
    include_flags=
    for dir in "$cublas_inc" "$cudnn_inc"; do
        [[ -n $dir && " ${inc_dirs[*]:0:toolkit_incs} " != *" $dir "* ]] && include_flags="$include_flags -isystem $dir"
    done
    {
        echo "CUDNN_PATH=${CUDNN_PATH:-} extra: ${extra[*]:-none} include flags:${include_flags:- none}"
        t 120 cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNST_CUDA=ON \
            -DNST_CUDA_STATIC_RUNTIME=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
            -DCMAKE_PREFIX_PATH="$deps" -DHDF5_ROOT="$deps" "${extra[@]}" \
            -DCMAKE_CXX_FLAGS="$include_flags" -DCMAKE_CUDA_FLAGS="$include_flags" \
            -DCMAKE_EXE_LINKER_FLAGS="$link_flags" -DCMAKE_SHARED_LINKER_FLAGS="$link_flags" &&
        t 420 cmake --build "$build" -j "$jobs" --target $targets
    } >"$out/build.log" 2>&1
    rc=$?
    if (( rc == 0 )); then
        bindir=$build
        report build ok "-j $jobs, CUDA architectures $arch"
    else
        report build FAIL "exit $rc, -j $jobs, CUDA architectures $arch" \
            "build.log (last lines below; configure errors: CMake's 'Could NOT find')"
        tail -25 "$out/build.log" | sed 's/^/    /' | tee -a "$summary"
        line "device check: FAILED (nothing to run)"
        exit 1
    fi
fi

# ==== gpu-tests ======================================================================================
begin
: >"$out/tests.log"
passed=() skipped=() failed=()
for exe in "$bindir"/tests/cuda/test_*; do
    name=$(basename "$exe")
    echo "==== $name" >>"$out/tests.log"
    (cd "$bindir/tests/cuda" && t 120 "$exe" --durations yes) >>"$out/tests.log" 2>&1
    rc=$?
    echo "==== $name: exit $rc" >>"$out/tests.log"
    case $rc in
        0) passed+=("$name") ;;
        77) skipped+=("$name") ;;
        124|137) failed+=("$name(timeout)") ;;
        *) failed+=("$name(exit $rc)") ;;
    esac
done
gpu_seen=0
(( ${#passed[@]} + ${#failed[@]} > 0 )) && gpu_seen=1
detail="passed: ${passed[*]:-none}; skipped: ${skipped[*]:-none}; failed: ${failed[*]:-none}"
if (( ${#failed[@]} > 0 )); then
    report gpu-tests FAIL "$detail" "tests.log: search 'FAILED:' and the lines after it"
elif (( ${#skipped[@]} > 0 && gpu_listed > 0 )); then
    report gpu-tests FAIL "$detail; nvidia-smi -L lists $gpu_listed GPU(s) but the CUDA runtime sees none" \
        "machine.log: driver version (CUDA 13 needs driver >= 580), torch's cuda.is_available(), CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset}"
elif (( ${#skipped[@]} > 0 )); then
    report gpu-tests SKIPPED "$detail (no GPU: nvidia-smi lists none)"
else
    report gpu-tests ok "$detail"
fi

# ==== sanitizers ======================================================================================
# memcheck: the element-wise, pooling, loss and reduction kernels and the gemm
# wrapper. Left out: the cuDNN convolutions (library code, and slow under the
# sanitizer: [conv], [objective], [lbfgs], [determinism] and the [memory] case
# that runs whole evaluations) and [oom], which asks cudaMalloc for 4 TiB on
# purpose: memcheck reports that failed call as an error.
# racecheck: the shared-memory reductions behind the losses and dot/asum/all_finite.
sanitizer=$(command -v compute-sanitizer || true)
: >"$out/sanitizer.log"
run_sanitizer() {  # run_sanitizer PHASE SECONDS TOOL-ARGS... -- EXE FILTER
    local phase=$1 seconds=$2; shift 2
    begin
    if [[ -z $sanitizer ]]; then report "$phase" SKIPPED "compute-sanitizer not found"; return; fi
    if (( gpu_seen == 0 )); then report "$phase" SKIPPED "no GPU"; return; fi
    if ! enough_time 30; then report "$phase" SKIPPED "no time left in CHECK_BUDGET_S=$budget"; return; fi
    local rc=0 args=() errors= run_log exe
    run_log=$(mktemp)
    echo "==== $phase" >>"$out/sanitizer.log"
    while (( $# )); do
        args=()
        while (( $# )) && [[ $1 != ';' ]]; do args+=("$1"); shift; done
        (( $# )) && shift
        for exe in "${args[@]}"; do [[ $exe == /* ]] && break; done
        echo "---- compute-sanitizer ${args[*]}" >>"$out/sanitizer.log"
        (cd "$bindir/tests/cuda" && t "$seconds" "$sanitizer" --error-exitcode 90 "${args[@]}") >"$run_log" 2>&1 || rc=$?
        cat "$run_log" >>"$out/sanitizer.log"
        errors="$errors$(basename "$exe"): $(grep -E 'ERROR SUMMARY' "$run_log" | tail -1 | sed 's/.*ERROR SUMMARY: //')$( ((rc != 0)) && echo " (exit $rc)"); "
        (( rc != 0 )) && break
    done
    rm -f "$run_log"
    if (( rc == 0 )); then
        report "$phase" ok "$errors"
    else
        report "$phase" FAIL "exit $rc$( ((rc == 124)) && echo ' (timeout)') $errors" \
            "sanitizer.log: the first '=========' block under '==== $phase'"
    fi
}
run_sanitizer memcheck 120 \
    --tool memcheck --leak-check full "$bindir/tests/cuda/test_cuda_ops" '[relu],[pool],[preprocess],[gram],[loss],[vector]' ';' \
    --tool memcheck "$bindir/tests/cuda/test_cuda_backend" '[gemm]'
run_sanitizer racecheck 120 \
    --tool racecheck "$bindir/tests/cuda/test_cuda_ops" '[loss],[vector]'

# ==== determinism ========================================================================================
# Two identical short runs of the CLI (the narrow VGG-19 of tests/reference,
# images from docs/) must write the same bytes. Without a GPU it runs on the
# CPU, which checks only that the command works.
begin
device=(--device cuda)
(( gpu_seen == 0 )) && device=(--device cpu --threads 1)   # one thread: the machine may be busy
render_dir=$(mktemp -d)
: >"$out/render.log"
render() {
    echo "==== run $1: ${device[*]}" >>"$out/render.log"
    t 90 "$bindir/apps/neural-style" "${device[@]}" --weights "$root/tests/reference/narrow_vgg19.h5" \
        --content "$root/docs/images/tubingen_starry_night_256.jpg" \
        --style "$root/docs/images/gallery/none.jpg" --size 192 --iterations 20 --seed 7 \
        --output "$render_dir/run$1.png" >>"$out/render.log" 2>&1
}
if ! enough_time 30; then
    report determinism SKIPPED "no time left in CHECK_BUDGET_S=$budget"
elif ! render 1 || ! render 2; then
    report determinism FAIL "neural-style ${device[*]} failed" "render.log"
elif cmp "$render_dir/run1.png" "$render_dir/run2.png" >>"$out/render.log" 2>&1; then
    report determinism ok "${device[*]}: two runs, same $(stat -c %s "$render_dir/run1.png") bytes$( ((gpu_seen == 0)) && echo ' (no GPU: CPU run, the command only)')"
else
    report determinism FAIL "${device[*]}: the two PNGs differ ($(tail -1 "$out/render.log"))" \
        "render.log: the two runs' losses per iteration; where they first part"
fi
rm -rf "$render_dir"

# ==== bench ================================================================================================
begin
if [[ ${SKIP_BENCH:-0} == 1 ]]; then
    report bench SKIPPED "SKIP_BENCH=1"
elif [[ ! -x $bindir/apps/nst-bench || ! -x $root/bench/compare.sh ]]; then
    report bench SKIPPED "apps/nst-bench or bench/compare.sh not present"
elif (( gpu_seen == 0 )); then
    report bench SKIPPED "no GPU"
elif [[ -z $python ]]; then
    report bench SKIPPED "no Python with torch found (set PYTHON)"
elif ! enough_time 60; then
    report bench SKIPPED "no time left in CHECK_BUDGET_S=$budget"
else
    bench_out=$(mktemp -d)
    # PyTorch loads its own CUDA libraries: the baseline runs without our
    # LD_LIBRARY_PATH, which could put the toolkit's cuBLAS before its wheel's.
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%q exec %q "$@"\n' "$original_ld_path" "$(command -v "$python")" >"$bench_out/python"
    chmod +x "$bench_out/python"
    PYTHON=$bench_out/python t 240 "$root/bench/compare.sh" "$bindir" --device cuda --sizes 256,512 \
        --precision tf32 --repeats 5 --warmup 2 --out "$bench_out" >"$out/bench.log" 2>&1
    rc=$?
    for report_file in "$bench_out"/*.json; do
        [[ -f $report_file ]] && { echo "==== $(basename "$report_file")"; cat "$report_file"; }
    done >"$out/bench-reports.txt"
    if (( rc == 0 )); then
        report bench ok "table in bench.log, JSON reports in bench-reports.txt"
    else
        report bench FAIL "exit $rc$( ((rc == 124)) && echo ' (timeout)')" "bench.log"
    fi
    rm -rf "$bench_out"
fi

verdict=passed
(( status != 0 )) && verdict=FAILED
line "device check: $verdict in $(( $(date +%s) - check_start )) s, executables: $( [[ $bindir == "$deps/prebuilt" ]] && echo prebuilt || echo "built here ($build)")$( ((gpu_seen == 0)) && echo '; no GPU: GPU phases skipped')"
exit $status
