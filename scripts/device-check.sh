#!/usr/bin/env bash
# The GPU check, for a machine lent for a few minutes: an NVIDIA GPU, the CUDA
# toolkit (nvcc, compute-sanitizer), CMake and ninja, cuDNN and cuBLAS either in
# the toolkit or only as PyTorch's pip wheels, none of our Debian development
# packages, no network. It runs in phases, each under `timeout` and within an
# overall budget, each writing its line to $OUT/summary.txt as it finishes:
#
#   facts        nvidia-smi, driver, nvcc, where cuDNN/cuBLAS were found, torch, numpy
#   start        the prebuilt executables load (ldd finds every library) and run
#                (neural-style --help, each test program's --list-tests)
#   build        only when they do not: build from the bundle's dev prefix
#   gpu-tests    tests/cuda executables; skipped tests FAIL when nvidia-smi
#                lists a GPU (the runtime must see what the driver sees)
#   memcheck     compute-sanitizer memcheck, a short selection of our kernels
#   racecheck    compute-sanitizer racecheck of the reductions ([loss],[vector])
#   determinism  two identical short neural-style runs: cmp of the two PNGs
#   bench        bench/compare.sh when present (SKIP_BENCH=1 leaves it out)
#
# Each result is PASS, FAIL or SKIPPED (with its reason); the last line is
# "device check: PASSED ..." or "device check: FAILED (phases) ...". A phase
# that fails does not stop the later ones: only a missing bundle, or nothing to
# run after a failed fallback build, ends the check early. Every decision is a
# function of scripts/device-check-lib.sh, tested by tests/scripts/test_device_check.sh.
#
# On the development machine (Debian 12), before the transfer:
#
#   scripts/prepare-device-check.sh     # both of these, timed:
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
#   CHECK_BUDGET_S seconds for the whole check (default 330); each phase has its
#                  own limit (scripts/device-check-lib.sh, phase_limit), cut to
#                  what is left; CHECK_LIMIT_<PHASE>_S overrides one
#                  (CHECK_LIMIT_GPU_TESTS_S=600)
#   NST_TEST_DEVICE=cpu  the CPU-as-device rehearsal: the test programs run their
#                  bodies on a CPU backend standing in for the GPU and must pass;
#                  compute-sanitizer is whatever is on PATH (the rehearsal's stub);
#                  determinism and bench run on the CPU. Every summary line says so.
#   JOBS           parallelism of the fallback build (default: nproc)
#   CUDA_ARCH      its CMAKE_CUDA_ARCHITECTURES (default: native with a GPU, else 80-real;90)
#   BUILD_DIR      its folder (default: build-device)
#   DEPS_DIR       where the bundle is unpacked (default: /tmp/nst-deps)
#   CUDA_HOME      the CUDA toolkit (default: /usr/local/cuda)
#   PYTHON         the Python with torch (default: the first of python3,
#                  /opt/torch/.venv/bin/python3 that imports torch)
#   BENCH_BASELINE a Python script run instead of bench/torch_baseline.py, with
#                  its arguments: the rehearsal's stub baseline
#                  (tests/scripts/stub-python/stub_torch_baseline.py)
#   FORCE_FALLBACK=1  ignore the prebuilt executables (rehearses the fallback)
#   SKIP_BENCH=1   do not run the benchmark
#   NST_DEVICE_DIR where the prebuilt tests find the source tree (default
#                  /tmp/nst-device, compiled into them; only the script's own
#                  tests point it elsewhere)
#
# Exit status 0 when no phase failed.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=device-check-lib.sh
. "$root/scripts/device-check-lib.sh"
out=${OUT:-$root/build-device/logs}
build=${BUILD_DIR:-$root/build-device}
deps=${DEPS_DIR:-/tmp/nst-deps}
jobs=${JOBS:-$(nproc)}
budget=${CHECK_BUDGET_S:-330}
cuda_home=${CUDA_HOME:-/usr/local/cuda}
fixed=${NST_DEVICE_DIR:-/tmp/nst-device}   # where the prebuilt tests look for tests/reference (make-device-binaries.sh)
device_mode=cuda
[[ ${NST_TEST_DEVICE:-} == cpu ]] && device_mode=cpu
mkdir -p "$out"
summary=$out/summary.txt
machine=$out/machine.log
: >"$summary"
: >"$machine"
check_start=$(date +%s)
original_ld_path=${LD_LIBRARY_PATH:-}
export PATH=$PATH:$cuda_home/bin

# One line per phase: "phase: RESULT (N s) detail [-> next: what to look at]".
line() { echo "$*" | tee -a "$summary"; }
cpu_note=
[[ $device_mode == cpu ]] && cpu_note="[CPU-as-device rehearsal (NST_TEST_DEVICE=cpu): not a GPU result]"
failed_phases=()
phase_start=0
phase_end=0
begin() { phase_start=$(date +%s); phase_end=$(( phase_start + $(phase_limit "$1") )); }
report() {  # report PHASE RESULT DETAIL [NEXT]
    local text="$1: $2 ($(( $(date +%s) - phase_start )) s)${3:+ $3}"
    [[ -n $cpu_note ]] && text="$text $cpu_note"
    [[ -n ${4:-} ]] && text="$text -> next: $4"
    line "$text"
    [[ $2 == FAIL ]] && failed_phases+=("$1")
    return 0
}
# Seconds left of the budget (5 kept for the last line), and of the phase.
budget_left() { echo $(( budget - ($(date +%s) - check_start) - 5 )); }
phase_left() { echo $(( phase_end - $(date +%s) )); }
t() {  # t CAP COMMAND...: COMMAND under timeout, cut to what is left
    local seconds; seconds=$(command_limit "$1" "$(phase_left)" "$(budget_left)"); shift
    timeout -k 5 "$seconds" "$@"
}
enough_time() { has_time "$(budget_left)" "$(phase_minimum "$1")"; }
no_time() { echo "for time: $(budget_left) s left of CHECK_BUDGET_S=$budget, $1 needs $(phase_minimum "$1")"; }

# ==== facts ====================================================================================
begin facts
gpu_listed=$(t 20 nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
{
    echo "== date: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -srm), $(nproc) cores"
    echo "== os: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    echo "== glibc: $(ldd --version 2>/dev/null | head -1)"
    echo "== compilers: $(c++ --version 2>/dev/null | head -1); $(nvcc --version 2>/dev/null | tail -1)"
    echo "== cmake: $(cmake --version 2>/dev/null | head -1); ninja $(ninja --version 2>/dev/null)"
    echo "== nvidia-smi -L"; t 20 nvidia-smi -L 2>&1
    echo "== nvidia-smi"; t 20 nvidia-smi 2>&1
    echo "== compute-sanitizer: $(command -v compute-sanitizer || echo missing); ncu: $(command -v ncu || echo missing)"
    echo "== NST_TEST_DEVICE=${NST_TEST_DEVICE:-unset}"
} >>"$machine" 2>&1
gpu_name=$(t 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)

# Python with torch (for the benchmark and as a second opinion on the device),
# and the nvidia namespace packages of every candidate Python (the pip wheels
# of cuDNN, cuBLAS, the CUDA runtime: nvidia/cudnn/lib, nvidia/cu13/lib,
# nvidia/cublas/lib, ...). One Python call each: torch is imported at most once.
python='' torch_version='' torch_cuda='' cuda_available='' numpy_version=''
wheel_roots=()
if [[ -n ${PYTHON:-} ]]; then candidates=("$PYTHON"); else candidates=(python3 /opt/torch/.venv/bin/python3); fi
for candidate in "${candidates[@]}"; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    want_torch=0
    [[ -z $python ]] && want_torch=1
    probe=$(t 60 "$candidate" -c "$(python_probe_source)" "$want_torch" 2>>"$machine")
    echo "== python probe of $candidate:" >>"$machine"
    sed 's/^/   /' <<<"$probe" >>"$machine"
    while read -r dir; do
        [[ -n $dir && -d $dir ]] && wheel_roots+=("$dir")
    done < <(probe_field nvidia_path <<<"$probe")
    if [[ $want_torch == 1 ]] && [[ -n $(probe_field torch_version <<<"$probe") ]]; then
        python=$candidate
        torch_version=$(probe_field torch_version <<<"$probe")
        torch_cuda=$(probe_field torch_cuda <<<"$probe")
        cuda_available=$(probe_field cuda_available <<<"$probe")
        numpy_version=$(probe_field numpy_version <<<"$probe")
    fi
done
torch_facts="no Python with torch"
[[ -n $python ]] && torch_facts="torch $torch_version CUDA $torch_cuda, cuda.is_available()=$cuda_available, numpy ${numpy_version:-missing}"

# Folders to look for CUDA libraries in: the toolkit, then the wheels.
nvcc_dir=$(dirname "$(command -v nvcc 2>/dev/null || echo /nonexistent/bin/nvcc)")
lib_dirs=()
for dir in "$nvcc_dir/../lib64" "$cuda_home/lib64" "$cuda_home/targets/x86_64-linux/lib"; do
    [[ -d $dir && " ${lib_dirs[*]} " != *" $(cd "$dir" && pwd -P) "* ]] && lib_dirs+=("$(cd "$dir" && pwd -P)")
done
toolkit_libs=${#lib_dirs[@]}
for wheel in "${wheel_roots[@]}"; do
    while read -r dir; do lib_dirs+=("$dir"); done < <(find "$wheel" -maxdepth 3 -type d -name 'lib*' 2>/dev/null | sort)
done
inc_dirs=()
for dir in "$nvcc_dir/../include" "$cuda_home/include"; do
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
report facts PASS "gpu: ${gpu_name:-none} ($gpu_listed listed by nvidia-smi -L); $(nvcc --version 2>/dev/null | tail -1 || echo 'nvcc missing'); cudnn $cudnn_version: ${cudnn_dir:-NOT FOUND}; cublas: ${cublas_dir:-NOT FOUND}; $torch_facts"

# ==== the bundle ==============================================================================
begin bundle
archive=$root/.device-bundle/nst-deps.tar.gz
if [[ ! -f $archive ]]; then
    report bundle FAIL "$archive is missing. .device-bundle/ is git-ignored, so it travels only when the transfer names it: carry [\".device-bundle\"]" \
        "on the development machine: scripts/prepare-device-check.sh, then rerun with carry [\".device-bundle\"]"
    line "device check: FAILED (bundle) in $(( $(date +%s) - check_start )) s: no bundle"
    exit 1
fi
rm -rf "$deps" && mkdir -p "$(dirname "$deps")"
prebuilt_archive=$root/.device-bundle/nst-prebuilt.tar.gz
unpacked=0
if t 60 tar -C "$(dirname "$deps")" -xzf "$archive" 2>>"$machine"; then
    unpacked=1
    [[ -f $prebuilt_archive ]] && { t 60 tar -C "$(dirname "$deps")" -xzf "$prebuilt_archive" 2>>"$machine" || unpacked=0; }
fi
if (( unpacked == 0 )); then
    report bundle FAIL "could not unpack $archive${prebuilt_archive:+ or $prebuilt_archive}" "machine.log (tar's message)"
    line "device check: FAILED (bundle) in $(( $(date +%s) - check_start )) s: no bundle"
    exit 1
fi
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
    [[ -e $library ]] || continue
    name=$(basename "$library")
    if [[ ! $name =~ $primary ]] && grep -qxF "$name" <<<"$system_libraries"; then
        rm -f "$library"
    fi
done
report bundle PASS "$(ls "$deps/lib" 2>/dev/null | grep -c '\.so') library files in $deps/lib; prebuilt: $( [[ -f $prebuilt_archive ]] && head -1 "$root/.device-bundle/nst-prebuilt.txt" 2>/dev/null || echo none)"

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
begin start
bindir=
executables() { ls "$1"/apps/neural-style "$1"/apps/nst-bench "$1"/tests/cuda/test_* 2>/dev/null; }
test_programs() { local exe; for exe in "$1"/tests/cuda/test_*; do [[ -f $exe && -x $exe ]] && echo "$exe"; done; }
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
    echo "== neural-style --help" >>"$machine"
    t 30 "$deps/prebuilt/apps/neural-style" --help >>"$machine" 2>&1; help_rc=$?
    listings='' listing_failed=0
    listing=$(mktemp)
    for exe in $(test_programs "$deps/prebuilt"); do
        t 30 "$exe" --list-tests >"$listing" 2>&1
        rc=$?
        { echo "== $(basename "$exe") --list-tests: exit $rc"; cat "$listing"; } >>"$machine"
        read -r result detail <<<"$(listing_verdict "$rc" "$listing")"
        [[ $result == PASS ]] || listing_failed=1
        listings="$listings$(basename "$exe"): $detail; "
    done
    rm -f "$listing"
    [[ -z $listings ]] && { listing_failed=1; listings="no test programs in prebuilt/tests/cuda; "; }
    if [[ -n $missing ]]; then
        report start FAIL "ldd: $missing; building instead" "machine.log (ldd of each executable, LD_LIBRARY_PATH)"
    elif (( help_rc != 0 || listing_failed )); then
        report start FAIL "neural-style --help exit $help_rc; ${listings}building instead" "machine.log (their output)"
    else
        bindir=$deps/prebuilt
        report start PASS "prebuilt executables load and run ($(sed -n 1p "$root/.device-bundle/nst-prebuilt.txt" 2>/dev/null)); ${listings%; }"
    fi
fi

# ==== build: the fallback ===========================================================================
if [[ -z $bindir ]]; then
    begin build
    # native needs a GPU the runtime sees: not in the CPU-as-device rehearsal.
    if (( gpu_listed > 0 )) && [[ $device_mode != cpu ]]; then arch=${CUDA_ARCH:-native}; else arch=${CUDA_ARCH:-80-real;90}; fi
    targets="neural-style $(cd "$root/tests/cuda" && ls test_*.cpp | sed 's/\.cpp$//' | tr '\n' ' ')"
    [[ -f $root/apps/nst_bench.cpp ]] && targets="$targets nst-bench"
    # DT_RPATH (--disable-new-dtags), not RUNPATH: it also applies to the
    # libraries our libraries load (HDF5's). cuDNN and cuBLAS where found: the
    # wheels ship no unversioned libcublas.so, so the library is named directly.
    link_flags="-Wl,--disable-new-dtags -Wl,-rpath,$deps/lib -Wl,-rpath-link,$deps/lib"
    extra=()
    cudnn_path=$(cudnn_path_for_build "$cudnn_inc" "${inc_dirs[@]:0:toolkit_incs}")
    [[ -n $cudnn_path ]] && export CUDNN_PATH=$cudnn_path
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
        t "$(phase_limit build)" cmake --build "$build" -j "$jobs" --target $targets
    } >"$out/build.log" 2>&1
    rc=$?
    if (( rc == 0 )); then
        bindir=$build
        report build PASS "-j $jobs, CUDA architectures $arch"
    else
        report build FAIL "exit $rc$( ((rc == 124)) && echo ' (timeout)'), -j $jobs, CUDA architectures $arch" \
            "build.log (last lines below; configure errors: CMake's 'Could NOT find')"
        tail -25 "$out/build.log" | sed 's/^/    /' | tee -a "$summary"
        line "device check: $(final_verdict "${failed_phases[@]}") in $(( $(date +%s) - check_start )) s: nothing to run"
        exit 1
    fi
fi

# ==== gpu-tests ======================================================================================
begin gpu-tests
: >"$out/tests.log"
passed=() skipped=() failed=() not_run=()
for exe in $(test_programs "$bindir"); do
    name=$(basename "$exe")
    if (( $(phase_left) < 1 || $(budget_left) < 1 )); then not_run+=("$name"); continue; fi
    echo "==== $name (NST_TEST_DEVICE=${NST_TEST_DEVICE:-unset})" >>"$out/tests.log"
    (cd "$bindir/tests/cuda" && t "$(phase_limit gpu-tests)" "$exe" --durations yes) >>"$out/tests.log" 2>&1
    rc=$?
    echo "==== $name: exit $rc" >>"$out/tests.log"
    read -r outcome why <<<"$(test_outcome "$rc")"
    case $outcome in
        passed) passed+=("$name") ;;
        skipped) skipped+=("$name") ;;
        *) failed+=("$name($why)") ;;
    esac
done
gpu_seen=0
(( ${#passed[@]} + ${#failed[@]} > 0 )) && gpu_seen=1
detail="passed: ${passed[*]:-none}; skipped: ${skipped[*]:-none}; failed: ${failed[*]:-none}"
(( ${#not_run[@]} > 0 )) && detail="$detail; not run (no time): ${not_run[*]}"
read -r result why <<<"$(gpu_tests_verdict ${#passed[@]} ${#skipped[@]} ${#failed[@]} ${#not_run[@]} "$gpu_listed" "$device_mode")"
case $result in
    FAIL) if (( ${#failed[@]} > 0 )); then
              report gpu-tests FAIL "$detail${why:+; $why}" \
                  "tests.log: search 'FAILED:' and the lines after it; a time-out: the last lines before '==== NAME: exit 124'"
          else
              report gpu-tests FAIL "$detail${why:+; $why}" \
                  "machine.log: driver version (CUDA 13 needs driver >= 580), torch's cuda.is_available(), CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset}"
          fi ;;
    *) report gpu-tests "$result" "$detail${why:+ ($why)}" ;;
esac

# ==== sanitizers ======================================================================================
# The runs are listed, with why these, in sanitizer_runs (scripts/device-check-lib.sh).
sanitizer=$(command -v compute-sanitizer || true)
: >"$out/sanitizer.log"
run_sanitizer() {  # run_sanitizer PHASE
    local phase=$1
    begin "$phase"
    echo "==== $phase" >>"$out/sanitizer.log"
    if [[ -z $sanitizer ]]; then report "$phase" SKIPPED "compute-sanitizer not found"; return; fi
    if (( gpu_seen == 0 )); then report "$phase" SKIPPED "no GPU"; return; fi
    if ! enough_time "$phase"; then report "$phase" SKIPPED "$(no_time "$phase")"; return; fi
    local kind program filter rest tool_args exitcode rc errors outcome outcomes=() detail='' info='' run_log
    run_log=$(mktemp)
    while read -r kind program filter rest; do
        read -ra tool_args <<<"$rest"
        if [[ ! -x $bindir/tests/cuda/$program ]]; then
            outcomes+=(fail); detail="$detail$program: not among the executables; "
            continue
        fi
        if [[ $kind == info ]] && (( $(phase_left) < 10 || $(budget_left) < 10 )); then
            info="${info}API pass not run (no time); "
            continue
        fi
        exitcode=()
        [[ $kind == check ]] && exitcode=(--error-exitcode 90)
        echo "---- compute-sanitizer ${exitcode[*]} ${tool_args[*]} $program $filter" >>"$out/sanitizer.log"
        rc=0
        (cd "$bindir/tests/cuda" && t "$(phase_limit "$phase")" "$sanitizer" "${exitcode[@]}" "${tool_args[@]}" \
            "$bindir/tests/cuda/$program" "$filter") </dev/null >"$run_log" 2>&1 || rc=$?
        cat "$run_log" >>"$out/sanitizer.log"
        echo "---- exit $rc" >>"$out/sanitizer.log"
        errors=$(sanitizer_errors "$run_log")
        outcome=$(sanitizer_run_outcome "$rc" "$errors")
        if [[ $kind == info ]]; then
            info="${info}API errors of the --report-api-errors explicit pass ($program $filter; cuBLAS/cuDNN handle them; information only): ${errors:-no ERROR SUMMARY line}$( ((rc != 0)) && echo " (exit $rc)"); "
            continue
        fi
        outcomes+=("$outcome")
        detail="$detail$program $filter: $( [[ -n $errors ]] && echo "$errors errors" || echo "no ERROR SUMMARY line")$( ((rc != 0)) && echo " (exit $rc)"); "
        [[ $outcome == timeout ]] && break   # the rest would only time out too
    done < <(sanitizer_runs "$phase")
    rm -f "$run_log"
    read -r result why <<<"$(sanitizer_verdict "${outcomes[@]}")"
    if [[ $result == FAIL ]]; then
        detail="$detail$info"
        report "$phase" FAIL "${detail%; }" "sanitizer.log: the first '=========' block under '==== $phase'"
    else
        detail="$detail$info"
        report "$phase" "$result" "${detail%; }${why:+ ($why)}"
    fi
}
run_sanitizer memcheck
run_sanitizer racecheck

# ==== determinism ========================================================================================
# Two identical short runs of the CLI (the narrow VGG-19 of tests/reference,
# images from docs/) must write the same bytes. Without a GPU, or with the CPU
# standing in for it, it runs on the CPU, which checks that the command works.
begin determinism
device=(--device cuda)
if [[ $device_mode == cpu ]] || (( gpu_seen == 0 )); then
    device=(--device cpu --threads 1)   # one thread: the machine may be busy
fi
render_dir=$(mktemp -d)
: >"$out/render.log"
render() {
    echo "==== run $1: ${device[*]}" >>"$out/render.log"
    t 60 "$bindir/apps/neural-style" "${device[@]}" --weights "$root/tests/reference/narrow_vgg19.h5" \
        --content "$root/docs/images/tubingen_starry_night_256.jpg" \
        --style "$root/docs/images/gallery/none.jpg" --size 192 --iterations 20 --seed 7 \
        --output "$render_dir/run$1.png" >>"$out/render.log" 2>&1
}
if ! enough_time determinism; then
    echo "skipped: $(no_time determinism)" >>"$out/render.log"
    report determinism SKIPPED "$(no_time determinism)"
elif ! render 1 || ! render 2; then
    report determinism FAIL "neural-style ${device[*]} failed" "render.log"
elif cmp "$render_dir/run1.png" "$render_dir/run2.png" >>"$out/render.log" 2>&1; then
    report determinism PASS "${device[*]}: two runs, same $(stat -c %s "$render_dir/run1.png") bytes$( ((gpu_seen == 0)) && echo ' (no GPU: CPU run, the command only)')"
else
    report determinism FAIL "${device[*]}: the two PNGs differ ($(tail -1 "$out/render.log"))" \
        "render.log: the two runs' losses per iteration; where they first part"
fi
rm -rf "$render_dir"

# ==== bench ================================================================================================
begin bench
present=0
[[ -x $bindir/apps/nst-bench && -x $root/bench/compare.sh ]] && present=1
reason=$(bench_skip_reason "${SKIP_BENCH:-0}" "$present" "$gpu_seen" "$python" "$numpy_version" \
         "$(budget_left)" "$(phase_minimum bench)")
if [[ -n $reason ]]; then
    echo "skipped: $reason" >"$out/bench.log"
    report bench SKIPPED "$reason"
else
    bench_out=$(mktemp -d)
    # PyTorch loads its own CUDA libraries: the baseline runs without our
    # LD_LIBRARY_PATH, which could put the toolkit's cuBLAS before its wheel's.
    # BENCH_BASELINE takes the place of bench/torch_baseline.py where given.
    {
        echo '#!/bin/sh'
        [[ -n ${BENCH_BASELINE:-} ]] &&
            printf 'case "$1" in */torch_baseline.py) shift; set -- %q "$@" ;; esac\n' "$BENCH_BASELINE"
        printf 'LD_LIBRARY_PATH=%q exec %q "$@"\n' "$original_ld_path" "$(command -v "$python")"
    } >"$bench_out/python"
    chmod +x "$bench_out/python"
    read -ra bench_args <<<"$(bench_arguments "$device_mode")"
    echo "==== bench/compare.sh $bindir ${bench_args[*]} (baseline: ${BENCH_BASELINE:-bench/torch_baseline.py}, $python)" >"$out/bench.log"
    PYTHON=$bench_out/python t "$(phase_limit bench)" "$root/bench/compare.sh" "$bindir" "${bench_args[@]}" \
        --out "$bench_out" >>"$out/bench.log" 2>&1
    rc=$?
    for report_file in "$bench_out"/*.json; do
        [[ -f $report_file ]] && { echo "==== $(basename "$report_file")"; cat "$report_file"; }
    done >"$out/bench-reports.txt"
    read -r result why <<<"$(bench_verdict "$rc")"
    if [[ $result == FAIL ]]; then
        report bench FAIL "$why" "bench.log"
    else
        report bench "$result" "${why:-table in bench.log, JSON reports in bench-reports.txt}$( [[ -n ${BENCH_BASELINE:-} ]] && echo "; baseline: $BENCH_BASELINE")"
    fi
    rm -rf "$bench_out"
fi

notes=
(( gpu_seen == 0 )) && notes="; no GPU: GPU phases skipped"
[[ -n $cpu_note ]] && notes="$notes; $cpu_note"
line "device check: $(final_verdict "${failed_phases[@]}") in $(( $(date +%s) - check_start )) s, executables: $( [[ $bindir == "$deps/prebuilt" ]] && echo prebuilt || echo "built here ($build)")$notes"
exit $(( ${#failed_phases[@]} > 0 ))
