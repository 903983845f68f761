#!/usr/bin/env bash
# Tests of scripts/device-check.sh and scripts/device-check-lib.sh that need no
# GPU, no built nst program, no root and no network (ctest: scripts.device_check).
#
# First the library's decisions, one function at a time; then the script's
# control flow, run whole in a fake checkout (a temporary folder holding the
# two scripts, empty stand-ins for the sources it lists, the real
# bench/compare.sh and a .device-bundle/ whose prebuilt executables are shell
# stubs), with stubs on PATH: nvidia-smi and compute-sanitizer
# (tests/scripts/stubs), cmake (configure and "build" by copying the stubs),
# python3 (/usr/bin/python3 -S: Debian's torch and numpy are out of sight; the
# stub torch and numpy of tests/scripts/stub-python on PYTHONPATH, and a wheel
# layout of empty cuDNN/cuBLAS files). Each scenario sets the stubs' behaviour
# through STUB_* variables and shortens the phase limits with CHECK_LIMIT_*_S.
# One line per group or scenario, then "N passed, M failed"; exit 1 on any failure.
# TEST_ONLY=REGEX runs only the groups whose names match.
#
# Run against the script as it was before its library (commit 2cfdc43):
#   git show 2cfdc43:scripts/device-check.sh >/tmp/old-device-check.sh
#   DEVICE_CHECK_SCRIPT=/tmp/old-device-check.sh TEST_ONLY='^(1|2|4|5|6|7|8|9|10|11|12) ' \
#       bash tests/scripts/test_device_check.sh
# every scenario but 12 fails (8 minutes: its limits are fixed; scenario 3 is left
# out, its hang costs 120 s more), each where the old script went wrong:
# 2: "start: FAIL ... test_cuda_backend --list-tests exit 6; building instead";
# 4: a sanitizer time-out is a FAIL; 5: the bench runs without numpy and fails;
# 6: determinism and bench run, but their lines say "ok", not PASS; 7: the
# crash is not named; 8: "CUDNN_PATH=" empty in build.log and configure stops
# (the old script also knows no CUDA_HOME); 11: the bench time-out is a FAIL;
# 1, 9, 10: "ok" and "passed" instead of PASS and PASSED. Only the scenarios use
# DEVICE_CHECK_SCRIPT; the old script writes /tmp/nst-device (no NST_DEVICE_DIR).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
script_under_test=${DEVICE_CHECK_SCRIPT:-$root/scripts/device-check.sh}
# shellcheck source=../../scripts/device-check-lib.sh
. "$root/scripts/device-check-lib.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nst-device-check-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export PYTHONDONTWRITEBYTECODE=1
passes=0 failures=0
problems=()

# ---- assertions ----------------------------------------------------------------------------
expect() {  # expect WHAT COMMAND...: COMMAND must succeed
    "${@:2}" >/dev/null 2>&1 || problems+=("$1")
}
expect_eq() {  # expect_eq WHAT ACTUAL EXPECTED
    [[ $2 == "$3" ]] || problems+=("$1: got '$2', expected '$3'")
}
has_line() {  # has_line FILE REGEX (grep -E)
    grep -qE -- "$2" "$1" 2>/dev/null
}
group() {  # group NAME FUNCTION: one line for what FUNCTION asserted
    [[ $1 =~ ${TEST_ONLY:-.} ]] || return 0
    problems=()
    "$2"
    if (( ${#problems[@]} == 0 )); then
        echo "ok   $1"
        passes=$((passes + 1))
    else
        echo "FAIL $1"
        printf '       - %s\n' "${problems[@]}"
        if [[ -n ${last_out:-} && -f $last_out/summary.txt ]]; then
            echo "       summary.txt of the last run:"
            sed 's/^/         | /' "$last_out/summary.txt"
        fi
        failures=$((failures + 1))
    fi
    last_out=
}

# ==== the library ================================================================================
listing_file() {  # listing_file NAME COUNT: Catch2 2's --list-tests output for COUNT tests
    local i
    {
        echo "All available test cases:"
        for ((i = 1; i <= $2; ++i)); do echo "  test case $i"; echo "      [cuda][tag$i]"; done
        echo
        if (( $2 == 1 )); then echo "1 test case"; else echo "$2 test cases"; fi
    } >"$tmp/$1"
    echo "$tmp/$1"
}

unit_listing() {
    local six none skipped
    six=$(listing_file six 6)
    : >"$tmp/none"; none=$tmp/none
    echo "no CUDA device: skipped" >"$tmp/skipped"; skipped=$tmp/skipped
    expect_eq "count of a listing" "$(listed_count "$six")" 6
    expect_eq "count without the total line" "$(head -n -2 "$six" >"$tmp/cut"; listed_count "$tmp/cut")" 6
    expect_eq "exit 0, 6 listed" "$(listing_verdict 0 "$six" | cut -d' ' -f1)" PASS
    expect_eq "exit 6 (Catch2 2's count), 6 listed" "$(listing_verdict 6 "$six" | cut -d' ' -f1)" PASS
    expect_eq "exit 5, 6 listed" "$(listing_verdict 5 "$six" | cut -d' ' -f1)" FAIL
    expect_eq "exit 0, nothing listed" "$(listing_verdict 0 "$none" | cut -d' ' -f1)" FAIL
    expect_eq "exit 77 'no CUDA device' (mains before the listing needed no GPU)" "$(listing_verdict 77 "$skipped" | cut -d' ' -f1)" PASS
    expect_eq "exit 77 without that line" "$(listing_verdict 77 "$none" | cut -d' ' -f1)" FAIL
    expect_eq "exit 139 (SIGSEGV) after a listing" "$(listing_verdict 139 "$six")" "FAIL exit 139: killed by signal 11"
    expect_eq "exit 127 (not found)" "$(listing_verdict 127 "$six" | cut -d' ' -f1)" FAIL
    expect_eq "exit 126 (not executable)" "$(listing_verdict 126 "$six" | cut -d' ' -f1)" FAIL
    expect_eq "exit 124 (timeout)" "$(listing_verdict 124 "$six")" "FAIL timed out"
}

unit_tests_verdicts() {
    expect_eq "exit 0" "$(test_outcome 0)" passed
    expect_eq "exit 77" "$(test_outcome 77)" skipped
    expect_eq "exit 124" "$(test_outcome 124)" "failed timeout"
    expect_eq "exit 137" "$(test_outcome 137)" "failed timeout"
    expect_eq "exit 3" "$(test_outcome 3)" "failed exit 3"
    #                                        passed skipped failed not-run gpus mode
    expect_eq "all passed" "$(gpu_tests_verdict 3 0 0 0 1 cuda)" PASS
    expect_eq "one failed" "$(gpu_tests_verdict 2 0 1 0 1 cuda)" FAIL
    expect_eq "skipped, GPU listed" "$(gpu_tests_verdict 0 3 0 0 1 cuda | cut -d' ' -f1)" FAIL
    expect_eq "skipped, no GPU" "$(gpu_tests_verdict 0 3 0 0 0 cuda | cut -d' ' -f1)" SKIPPED
    expect_eq "skipped under NST_TEST_DEVICE=cpu" "$(gpu_tests_verdict 0 3 0 0 0 cpu | cut -d' ' -f1)" FAIL
    expect_eq "passed under NST_TEST_DEVICE=cpu" "$(gpu_tests_verdict 3 0 0 0 1 cpu)" PASS
    expect_eq "no programs" "$(gpu_tests_verdict 0 0 0 0 1 cuda | cut -d' ' -f1)" FAIL
    expect_eq "not run for time" "$(gpu_tests_verdict 1 0 0 2 1 cuda | cut -d' ' -f1)" SKIPPED
}

unit_time() {
    expect "90 s left is enough for 90" has_time 90 90
    expect "89 s left is not" eval '! has_time 89 90'
    expect_eq "sanitizers need 90 s" "$(phase_minimum memcheck) $(phase_minimum racecheck)" "90 90"
    expect_eq "cap" "$(command_limit 60 100 100)" 60
    expect_eq "cut to the phase" "$(command_limit 60 20 100)" 20
    expect_eq "cut to the budget" "$(command_limit 60 100 7)" 7
    expect_eq "never below 1 s" "$(command_limit 60 -3 100)" 1
    expect_eq "override of a limit" "$(CHECK_LIMIT_GPU_TESTS_S=7 phase_limit gpu-tests)" 7
    expect "every phase has a limit" eval 'for p in facts bundle start build gpu-tests memcheck racecheck determinism bench; do phase_limit $p >/dev/null || exit 1; done'
    expect "an unknown phase is an error" eval '! phase_limit nonsense'
}

unit_sanitizer() {
    printf '========= ERROR SUMMARY: 3 errors\n' >"$tmp/memcheck.log"
    printf '========= RACECHECK SUMMARY: 2 hazards displayed (1 error, 1 warning)\n' >"$tmp/racecheck.log"
    echo "nothing" >"$tmp/nosummary.log"
    expect_eq "memcheck's summary" "$(sanitizer_errors "$tmp/memcheck.log")" 3
    expect_eq "racecheck's summary" "$(sanitizer_errors "$tmp/racecheck.log")" 1
    expect_eq "no summary" "$(sanitizer_errors "$tmp/nosummary.log")" ""
    expect_eq "clean run" "$(sanitizer_run_outcome 0 0)" pass
    expect_eq "errors" "$(sanitizer_run_outcome 90 2)" fail
    expect_eq "the test failed under it" "$(sanitizer_run_outcome 1 0)" fail
    expect_eq "time-out" "$(sanitizer_run_outcome 124 "")" timeout
    expect_eq "killed after the time-out" "$(sanitizer_run_outcome 137 "")" timeout
    expect_eq "all pass" "$(sanitizer_verdict pass pass)" PASS
    expect_eq "a time-out is SKIPPED for time" "$(sanitizer_verdict pass timeout | cut -d' ' -f1-3)" "SKIPPED for time:"
    expect_eq "a failure outweighs a time-out" "$(sanitizer_verdict timeout fail)" FAIL
    expect "memcheck of our kernels: --report-api-errors no" eval '[[ $(sanitizer_runs memcheck | grep "^check" | grep -c -- "--report-api-errors no") == $(sanitizer_runs memcheck | grep -c "^check") ]]'
    expect "an explicit pass, for information" eval 'sanitizer_runs memcheck | grep -q -- "^info .*--report-api-errors explicit"'
    # The selections name programs and tags: each must exist in tests/cuda (a
    # renamed program or tag would otherwise leave memcheck running nothing).
    local program filter tag
    while read -r _ program filter _; do
        expect "sanitizer selection names $program: tests/cuda/$program.cpp exists" test -f "$root/tests/cuda/$program.cpp"
        for tag in $(grep -oE '\[[a-z0-9_]+\]' <<<"$filter" | tr -d '[]'); do
            expect "tag [$tag] of $program exists (a literal tag, or an op or phase of engine/backends/backend_ops.h)" \
                eval "grep -qE '\\[$tag\\]' '$root/tests/cuda/$program.cpp' || grep -qE 'X\\((\\w+, )?$tag\\b' '$root/engine/backends/backend_ops.h'"
        done
    done < <(sanitizer_runs memcheck; sanitizer_runs racecheck)
}

unit_bench_and_verdicts() {
    #                                                     skip present gpu torch numpy left needed
    expect_eq "runs" "$(bench_skip_reason 0 1 1 python3 2.1 200 60)" ""
    expect_eq "SKIP_BENCH" "$(bench_skip_reason 1 1 1 python3 2.1 200 60)" "SKIP_BENCH=1"
    expect_eq "no GPU" "$(bench_skip_reason 0 1 0 python3 2.1 200 60)" "no GPU"
    expect "no torch" eval '[[ $(bench_skip_reason 0 1 1 "" "" 200 60) == *torch* ]]'
    expect "numpy missing names numpy" eval '[[ $(bench_skip_reason 0 1 1 python3 missing 200 60) == *numpy* ]]'
    expect "too little time" eval '[[ $(bench_skip_reason 0 1 1 python3 2.1 59 60) == "for time"* ]]'
    expect_eq "bench passed" "$(bench_verdict 0)" PASS
    expect_eq "bench timed out" "$(bench_verdict 124 | cut -d' ' -f1-3)" "SKIPPED for time:"
    expect_eq "bench failed" "$(bench_verdict 2)" "FAIL exit 2"
    expect "CPU bench: tiny, on the CPU" eval '[[ $(bench_arguments cpu) == "--device cpu --sizes 64 "* ]]'
    expect "GPU bench on cuda" eval '[[ $(bench_arguments cuda) == "--device cuda "* ]]'
    expect_eq "cudnn.h in the toolkit" "$(cudnn_path_for_build /usr/local/cuda/include /usr/local/cuda/include)" ""
    expect_eq "cudnn.h in a wheel" "$(cudnn_path_for_build /sp/nvidia/cudnn/include /usr/local/cuda/include)" /sp/nvidia/cudnn
    expect_eq "cudnn.h nowhere" "$(cudnn_path_for_build "" /usr/local/cuda/include)" ""
    expect_eq "no failed phase" "$(final_verdict)" PASSED
    expect_eq "failed phases" "$(final_verdict gpu-tests memcheck)" "FAILED (gpu-tests memcheck)"
    expect_eq "probe fields" "$(printf 'torch_version 2.9 x\nnumpy_version missing\n' | probe_field torch_version)" "2.9 x"
}

unit_python_probe() {
    local with without
    mkdir -p "$tmp/probe-torch-only" && ln -sfn "$here/stub-python/torch" "$tmp/probe-torch-only/torch"
    with=$(PYTHONPATH=$here/stub-python /usr/bin/python3 -S -c "$(python_probe_source)" 1 2>&1)
    without=$(PYTHONPATH=$tmp/probe-torch-only /usr/bin/python3 -S -c "$(python_probe_source)" 1 2>&1)
    expect_eq "torch's version" "$(probe_field torch_version <<<"$with")" "0.0+stub"
    expect_eq "cuda.is_available()" "$(probe_field cuda_available <<<"$with")" False
    expect_eq "numpy's version" "$(probe_field numpy_version <<<"$with")" "0.0+stub"
    expect_eq "numpy missing" "$(probe_field numpy_version <<<"$without")" missing
    expect_eq "torch not asked for" "$(PYTHONPATH=$here/stub-python /usr/bin/python3 -S -c "$(python_probe_source)" 0 | probe_field torch_version)" ""
}

# The time table of docs/PROFILING.md states each phase's limit and minimum:
# they must be the library's, and the estimates must fit the default budget.
unit_docs_agree() {
    local docs=$root/docs/PROFILING.md phase limit minimum estimate total=0 rows=0
    while IFS='|' read -r _ phase limit minimum estimate _; do
        phase=$(xargs <<<"$phase"); limit=$(xargs <<<"$limit"); minimum=$(xargs <<<"$minimum"); estimate=$(xargs <<<"$estimate")
        [[ $limit =~ ^[0-9]+$ ]] || continue
        rows=$((rows + 1))
        expect_eq "docs: limit of $phase" "$limit" "$(phase_limit "$phase")"
        expect_eq "docs: minimum of $phase" "$minimum" "$(phase_minimum "$phase")"
        [[ $phase == build ]] || total=$((total + estimate))
    done < <(sed -n '/^### Time/,/^### /p' "$docs" | grep -E '^\| [a-z-]+ \|')
    expect_eq "docs: rows of the time table" "$rows" 9
    local budget
    budget=$(sed -n -E 's/.*budget=\$\{CHECK_BUDGET_S:-([0-9]+)\}.*/\1/p' "$root/scripts/device-check.sh")
    expect "the default budget ($budget s) is at most 330 s" eval "(( ${budget:-9999} <= 330 ))"
    expect "the estimates ($total s, build left out) fit the budget" eval "(( $total <= ${budget:-0} ))"
}

# The options the determinism phase gives neural-style exist: each is declared in
# engine/run/run_options.h (the run's options) or apps/cli_options.cpp (the CLI's own).
unit_render_options() {
    local option name
    for option in $( { sed -n '/^render() {/,/^}/p' "$root/scripts/device-check.sh"
                      grep -E '^ *device=\(' "$root/scripts/device-check.sh"; } | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
        name=${option#--}
        expect "neural-style $option is declared" \
            eval "grep -qE '\"$name\"|\"--$name\"' '$root/engine/run/run_options.h' '$root/apps/cli_options.cpp'"
    done
}

# make-device-binaries.sh needs patchelf (and more): without it, one line and
# exit 1 before anything is built. PATH holds every other tool it checks.
unit_binaries_tools() {
    local tools=$tmp/tools tool err rc
    mkdir -p "$tools"
    for tool in bash dirname git cmake ninja gcc strip objdump ldd tar gzip nvcc; do
        command -v "$tool" >/dev/null 2>&1 && ln -sf "$(command -v "$tool")" "$tools/$tool"
    done
    err=$(cd "$tmp" && env -i PATH="$tools" "$tools/bash" "$root/scripts/make-device-binaries.sh" "$tmp/no-bundle" 2>&1 >/dev/null)
    rc=$?
    expect_eq "exit status" "$rc" 1
    expect_eq "one line" "$(wc -l <<<"$err")" 1
    expect "it names patchelf" eval "[[ \$err == *\'patchelf\'\ is\ missing* ]]"
    expect "nothing made" eval "[[ ! -e '$tmp/no-bundle' ]]"
}

# ==== the script, in a fake checkout =============================================================
stubbin=$tmp/bin          # cmake, python3 (before the shared stubs and /usr/bin)
programs=$tmp/programs    # the stub executables, laid out as the prebuilt ones
tree=$tmp/tree
mkdir -p "$stubbin" "$programs/apps" "$programs/tests/cuda" "$tree/scripts" "$tree/tests/cuda" \
         "$tree/apps" "$tree/tests/reference" "$tree/docs/images/gallery" "$tree/bench" "$tmp/cuda/include" "$tmp/cuda/lib64"
test_names=$(cd "$root/tests/cuda" && ls test_*.cpp | sed 's/\.cpp$//')

cat >"$programs/stub" <<'EOF'
#!/usr/bin/env bash
# One of nst's executables, as a stub; which one is its name.
#   STUB_LIST_RC=N      --list-tests exits N (128+: crashes before printing)
#   STUB_HANG="names"   those test programs sleep (not under the sanitizer)
#   STUB_FAIL="names"   those test programs fail (exit 1)
#   STUB_NO_DEVICE=1    test programs exit 77 unless NST_TEST_DEVICE=cpu
#   STUB_BENCH_HANG=1   nst-bench sleeps
name=$(basename "$0")
[[ -n ${STUB_CALLS:-} ]] && echo "$name $*" >>"$STUB_CALLS"
case $name in
    neural-style)
        [[ ${1:-} == --help ]] && { echo "usage: neural-style [options] (stub)"; exit 0; }
        output=
        while (( $# )); do [[ $1 == --output ]] && output=$2; shift; done
        echo "stub render" >"$output"
        echo "iteration 20: loss 1.0 (stub)" ;;
    nst-bench)
        [[ ${STUB_BENCH_HANG:-0} == 1 ]] && exec sleep 300
        sizes=256
        while (( $# )); do [[ $1 == --size ]] && sizes=$2; shift; done
        results= sep=
        for size in ${sizes//,/ }; do
            results="$results$sep{\"size\": $size, \"backend\": \"stub\", \"loss\": 1.0, \"peak_bytes\": 0, \"max_rss_bytes\": 0,
              \"evaluation_ms\": {\"median\": 1.0, \"min\": 1.0, \"max\": 1.0, \"samples\": [1.0]},
              \"lbfgs_iteration_ms\": {\"median\": 1.0, \"min\": 1.0, \"max\": 1.0, \"samples\": [1.0]},
              \"breakdown\": {\"ops\": [], \"phase_ms\": {\"forward\": 0.5}}}"
            sep=,
        done
        echo "{\"version\": \"stub\", \"threads\": 1, \"precision\": \"fp32\", \"weights\": \"generated\",
               \"machine\": {\"cpu\": \"stub\", \"hardware_threads\": 1, \"environment\": {}},
               \"results\": [$results]}" ;;
    test_*)
        if [[ ${1:-} == --list-tests ]]; then
            rc=${STUB_LIST_RC:-0}
            (( rc >= 128 )) && exit "$rc"
            echo "All available test cases:"
            for i in 1 2 3 4 5 6; do echo "  $name case $i"; echo "      [cuda][tag$i]"; done
            echo; echo "6 test cases"
            exit "$rc"
        fi
        [[ " ${STUB_HANG:-} " == *" $name "* && -z ${STUB_UNDER_SANITIZER:-} ]] && exec sleep 300
        [[ " ${STUB_FAIL:-} " == *" $name "* ]] && { echo "FAILED: a stub assertion"; exit 1; }
        if [[ ${STUB_NO_DEVICE:-0} == 1 && ${NST_TEST_DEVICE:-cuda} != cpu ]]; then
            echo "no CUDA device: skipped"; exit 77
        fi
        echo "All tests passed (stub, device under test: ${NST_TEST_DEVICE:-cuda})" ;;
esac
exit 0
EOF
chmod +x "$programs/stub"
for app in neural-style nst-bench; do cp "$programs/stub" "$programs/apps/$app"; done
for name in $test_names; do cp "$programs/stub" "$programs/tests/cuda/$name"; touch "$tree/tests/cuda/$name.cpp"; done
rm "$programs/stub"

cat >"$stubbin/cmake" <<'EOF'
#!/usr/bin/env bash
# cmake as a stub: --build copies the stub executables into the build folder;
# configure fails as cmake/NstCuda.cmake does when cudnn.h is neither in the
# toolkit's include folder nor under $CUDNN_PATH/include.
case ${1:-} in
    --version) echo "cmake version 3.99 (stub)"; exit 0 ;;
    --build) mkdir -p "$2" && cp -r "$STUB_PROGRAMS"/. "$2"/ && echo "stub build: $*"; exit 0 ;;
esac
echo "stub configure: CUDNN_PATH=${CUDNN_PATH:-unset}"
if [[ ! -e $CUDA_HOME/include/cudnn.h && ! -e ${CUDNN_PATH:-/nonexistent}/include/cudnn.h ]]; then
    echo "CMake Error at cmake/NstCuda.cmake: NST_CUDA=ON but nvcc, cuBLAS or cuDNN was not found (stub)"
    exit 1
fi
EOF
printf '#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n' >"$stubbin/python3"
chmod +x "$stubbin/cmake" "$stubbin/python3"

# The tree: the scripts under test, empty stand-ins for what the script lists
# or passes on, the real bench/compare.sh, and the bundle.
cp "$script_under_test" "$tree/scripts/device-check.sh"
cp "$root/scripts/device-check-lib.sh" "$tree/scripts/"
cp "$root/bench/compare.sh" "$tree/bench/"
touch "$tree/apps/nst_bench.cpp" "$tree/tests/reference/narrow_vgg19.h5" \
      "$tree/docs/images/tubingen_starry_night_256.jpg" "$tree/docs/images/gallery/none.jpg"
mkdir -p "$tmp/pack/nst-deps/lib" "$tmp/pack/nst-deps/prebuilt" "$tree/.device-bundle"
echo "stub library" >"$tmp/pack/nst-deps/lib/libhdf5_serial.so.103"
tar -C "$tmp/pack" -czf "$tree/.device-bundle/nst-deps.tar.gz" nst-deps/lib
cp -r "$programs"/. "$tmp/pack/nst-deps/prebuilt/"
tar -C "$tmp/pack" -czf "$tree/.device-bundle/nst-prebuilt.tar.gz" nst-deps/prebuilt
echo "commit stub" >"$tree/.device-bundle/nst-prebuilt.txt"

# Python paths: a wheel layout of cuDNN and cuBLAS (empty files, as pip lays
# them out: nvidia/ without __init__.py), the stub torch, with or without numpy.
wheel() {  # wheel DIR [libcudnn.so]: a site-packages with the nvidia wheels
    mkdir -p "$1/nvidia/cudnn/include" "$1/nvidia/cudnn/lib" "$1/nvidia/cu13/include" "$1/nvidia/cu13/lib"
    touch "$1/nvidia/cudnn/include/cudnn.h" "$1/nvidia/cudnn/lib/libcudnn.so.9" \
          "$1/nvidia/cu13/include/cublas_v2.h" "$1/nvidia/cu13/lib/libcublas.so.13" "$1/nvidia/cu13/lib/libcublasLt.so.13"
    [[ -n ${2:-} ]] && touch "$1/nvidia/cudnn/lib/$2"
    return 0
}
wheel "$tmp/site"
wheel "$tmp/site-unversioned" libcudnn.so
mkdir -p "$tmp/torch-only" && ln -s "$here/stub-python/torch" "$tmp/torch-only/torch"

run_check() {  # run_check NAME [VAR=VALUE...]: the script in the fake tree; sets out, rc
    local name=$1; shift
    out=$tmp/out-$name
    calls=$tmp/calls-$name
    last_out=$out
    rm -rf "$out" "$tmp/deps-$name" "$tmp/build-$name"
    : >"$calls"
    env -i HOME="$tmp" LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 \
        PATH="$stubbin:$here/stubs:/usr/bin:/bin:/usr/sbin:/sbin" \
        PYTHON="$stubbin/python3" PYTHONPATH="$tmp/site:$here/stub-python" \
        OUT="$out" DEPS_DIR="$tmp/deps-$name/nst-deps" BUILD_DIR="$tmp/build-$name" \
        NST_DEVICE_DIR="$tmp/fixed" CUDA_HOME="$tmp/cuda" JOBS=1 \
        BENCH_BASELINE="$here/stub-python/stub_torch_baseline.py" \
        STUB_CALLS="$calls" STUB_PROGRAMS="$programs" \
        "$@" bash "$tree/scripts/device-check.sh" >"$tmp/stdout-$name" 2>&1
    rc=$?
}
phase_is() {  # phase_is PHASE RESULT: the summary line of PHASE says RESULT
    has_line "$out/summary.txt" "^$1: $2 "
}
every_phase() {  # every_phase RESULT PHASE...
    local result=$1 phase; shift
    for phase in "$@"; do expect "$phase: $result" phase_is "$phase" "$result"; done
}
gpu_phases="gpu-tests memcheck racecheck determinism bench"

scenario_all_pass() {
    run_check all-pass STUB_API_ERRORS=3
    expect_eq "exit status" "$rc" 0
    every_phase PASS facts bundle start $gpu_phases
    expect "no build phase" eval '! phase_is build ".*"'
    expect "last line: device check: PASSED" eval "tail -1 '$out/summary.txt' | grep -q '^device check: PASSED '"
    expect "executables: prebuilt" has_line "$out/summary.txt" "executables: prebuilt"
    expect "facts name the stub torch and numpy" has_line "$out/summary.txt" "^facts: .*torch 0\.0\+stub.*numpy 0\.0\+stub"
    expect "memcheck of our kernels with --report-api-errors no" has_line "$calls" "compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 90 .*test_"
    expect "an explicit pass, without --error-exitcode" has_line "$calls" "compute-sanitizer --tool memcheck --report-api-errors explicit [^-]"
    expect "its 3 API errors are information in the memcheck line" has_line "$out/summary.txt" "^memcheck: PASS .*information only\): 3"
    expect "racecheck ran" has_line "$calls" "compute-sanitizer --tool racecheck"
    expect "determinism on cuda" has_line "$calls" "^neural-style --device cuda "
    expect "bench on cuda" has_line "$calls" "^nst-bench --device cuda "
    expect "bench's table" has_line "$out/bench.log" "ratio = torch / nst"
    expect "no CPU-as-device note on a GPU run" eval "! grep -q 'CPU-as-device' '$out/summary.txt'"
    expect "at most 8 files in OUT" eval "(( \$(ls '$out' | wc -l) <= 8 ))"
}

scenario_cpu_as_device() {
    run_check cpu-as-device NST_TEST_DEVICE=cpu STUB_NO_DEVICE=1
    expect_eq "exit status" "$rc" 0
    every_phase PASS facts bundle start $gpu_phases
    expect "last line: device check: PASSED" eval "tail -1 '$out/summary.txt' | grep -q '^device check: PASSED '"
    expect "every line says CPU-as-device" eval "! grep -v 'CPU-as-device rehearsal' '$out/summary.txt' | grep -q ."
    expect "the programs ran with NST_TEST_DEVICE=cpu" has_line "$out/tests.log" "device under test: cpu"
    expect "determinism: --device cpu --threads 1" has_line "$calls" "^neural-style --device cpu --threads 1 "
    expect "bench: --device cpu, tiny" has_line "$calls" "^nst-bench --device cpu --size 64 "
    expect "the stub compute-sanitizer ran the programs" has_line "$calls" "^test_.*\[gemm\]"
}

scenario_listing_count() {
    run_check listing-count STUB_LIST_RC=6
    expect_eq "exit status" "$rc" 0
    expect "start PASS" phase_is start PASS
    expect "the count is named" has_line "$out/summary.txt" "^start: PASS .*6 tests listed \(exit 6\)"
    expect "no fallback build" eval "[[ ! -e '$out/build.log' ]]"
    expect "executables: prebuilt" has_line "$out/summary.txt" "executables: prebuilt"
}

scenario_listing_crash() {
    run_check listing-crash STUB_LIST_RC=139
    expect "start FAIL" phase_is start FAIL
    expect "the signal is named" has_line "$out/summary.txt" "^start: FAIL .*exit 139: killed by signal 11"
    expect "the fallback build was attempted" has_line "$out/build.log" "stub configure"
    expect "build line" phase_is build PASS
    expect "later phases ran on the built executables" phase_is gpu-tests PASS
    expect "executables: built here" has_line "$out/summary.txt" "executables: built here"
    expect "FAILED, naming start" eval "tail -1 '$out/summary.txt' | grep -q '^device check: FAILED (start) '"
}

scenario_test_hangs() {
    local first
    first=$(head -1 <<<"$test_names")
    run_check test-hangs STUB_HANG="$first" CHECK_LIMIT_GPU_TESTS_S=3
    expect_eq "exit status" "$rc" 1
    expect "gpu-tests FAIL" phase_is gpu-tests FAIL
    expect "the time-out is named" has_line "$out/summary.txt" "^gpu-tests: FAIL .*$first\(timeout\)"
    local phase
    for phase in memcheck racecheck determinism bench; do
        expect "$phase still ran and wrote its line" has_line "$out/summary.txt" "^$phase: "
    done
    expect "render.log written" test -s "$out/render.log"
    expect "bench.log written" test -s "$out/bench.log"
    expect "FAILED, naming gpu-tests" eval "tail -1 '$out/summary.txt' | grep -q '^device check: FAILED (gpu-tests) '"
}

scenario_sanitizer_times_out() {
    run_check sanitizer-hangs STUB_SANITIZER_HANG=1 CHECK_LIMIT_MEMCHECK_S=2 CHECK_LIMIT_RACECHECK_S=2
    expect_eq "exit status" "$rc" 0
    expect "memcheck SKIPPED for time" has_line "$out/summary.txt" "^memcheck: SKIPPED .*for time"
    expect "racecheck SKIPPED for time" has_line "$out/summary.txt" "^racecheck: SKIPPED .*for time"
    expect "last line: PASSED" eval "tail -1 '$out/summary.txt' | grep -q '^device check: PASSED '"
}

scenario_too_little_time() {
    run_check little-time CHECK_BUDGET_S=60
    expect_eq "exit status" "$rc" 0
    expect "memcheck SKIPPED for time" has_line "$out/summary.txt" "^memcheck: SKIPPED .*for time.*needs 90"
    expect "racecheck SKIPPED for time" has_line "$out/summary.txt" "^racecheck: SKIPPED .*for time"
    expect "no sanitizer started" eval "! grep -q compute-sanitizer '$calls'"
    expect "bench SKIPPED for time" has_line "$out/summary.txt" "^bench: SKIPPED .*for time"
    expect "determinism ran" phase_is determinism PASS
}

scenario_sanitizer_errors() {
    run_check sanitizer-errors STUB_SANITIZER_ERRORS=2
    expect_eq "exit status" "$rc" 1
    expect "memcheck FAIL" phase_is memcheck FAIL
    expect "racecheck FAIL" phase_is racecheck FAIL
    expect "determinism still ran" phase_is determinism PASS
    expect "FAILED, naming both" eval "tail -1 '$out/summary.txt' | grep -q '^device check: FAILED (memcheck racecheck) '"
}

scenario_numpy_missing() {
    run_check numpy-missing PYTHONPATH="$tmp/site:$tmp/torch-only"
    expect_eq "exit status" "$rc" 0
    expect "facts: numpy missing" has_line "$out/summary.txt" "^facts: .*numpy missing"
    expect "bench SKIPPED naming numpy" has_line "$out/summary.txt" "^bench: SKIPPED .*numpy"
    expect "bench.log says why" has_line "$out/bench.log" "numpy"
    expect "last line: PASSED" eval "tail -1 '$out/summary.txt' | grep -q '^device check: PASSED '"
}

scenario_earlier_failure() {
    local last
    last=$(tail -1 <<<"$test_names")
    run_check earlier-failure STUB_FAIL="$last"
    expect_eq "exit status" "$rc" 1
    expect "gpu-tests FAIL" phase_is gpu-tests FAIL
    expect "determinism ran" phase_is determinism PASS
    expect "bench ran" phase_is bench PASS
    expect "render.log" test -s "$out/render.log"
    expect "bench.log" test -s "$out/bench.log"
    expect "bench-reports.txt" test -s "$out/bench-reports.txt"
}

scenario_wheel_with_libcudnn_so() {
    run_check libcudnn-so FORCE_FALLBACK=1 PYTHONPATH="$tmp/site-unversioned:$here/stub-python"
    expect "CUDNN_PATH exported" has_line "$out/build.log" "^CUDNN_PATH=$tmp/site-unversioned/nvidia/cudnn "
    expect "configure found cuDNN" has_line "$out/build.log" "stub configure: CUDNN_PATH=$tmp/site-unversioned/nvidia/cudnn"
    expect "build PASS" phase_is build PASS
    expect_eq "exit status" "$rc" 0
}

scenario_skips_with_a_gpu_listed() {
    run_check fake-gpu STUB_NO_DEVICE=1
    expect_eq "exit status" "$rc" 1
    expect "gpu-tests FAIL: the runtime sees no GPU" has_line "$out/summary.txt" "^gpu-tests: FAIL .*lists 1 GPU\(s\) but the CUDA runtime sees none"
    expect "memcheck SKIPPED (no GPU)" has_line "$out/summary.txt" "^memcheck: SKIPPED .*no GPU"
    expect "determinism on the CPU" phase_is determinism PASS
}

scenario_no_gpu() {
    run_check no-gpu STUB_GPUS=0 STUB_NO_DEVICE=1
    expect_eq "exit status" "$rc" 0
    expect "gpu-tests SKIPPED" phase_is gpu-tests SKIPPED
    expect "bench SKIPPED (no GPU)" has_line "$out/summary.txt" "^bench: SKIPPED .*no GPU"
    expect "last line: PASSED, GPU phases skipped" eval "tail -1 '$out/summary.txt' | grep -q '^device check: PASSED .*no GPU'"
}

scenario_bench_times_out() {
    run_check bench-hangs STUB_BENCH_HANG=1 CHECK_LIMIT_BENCH_S=2
    expect_eq "exit status" "$rc" 0
    expect "bench SKIPPED for time" has_line "$out/summary.txt" "^bench: SKIPPED .*for time"
}

scenario_no_bundle() {
    mv "$tree/.device-bundle" "$tmp/bundle-aside"
    run_check no-bundle
    mv "$tmp/bundle-aside" "$tree/.device-bundle"
    expect_eq "exit status" "$rc" 1
    expect "bundle FAIL names the carry entry" has_line "$out/summary.txt" '^bundle: FAIL .*carry \[".device-bundle"\]'
    expect "ends at once: FAILED" eval "tail -1 '$out/summary.txt' | grep -q '^device check: FAILED '"
}

start=$(date +%s)
group "lib: the listing verdict (Catch2 2 exits with the count)" unit_listing
group "lib: test exit codes and the gpu-tests verdict" unit_tests_verdicts
group "lib: limits and time left" unit_time
group "lib: sanitizer runs, outcomes and verdict; selections exist" unit_sanitizer
group "lib: bench, CUDNN_PATH and the final verdict" unit_bench_and_verdicts
group "lib: the one Python probe (torch once, numpy or missing)" unit_python_probe
group "docs/PROFILING.md's time table agrees with the lib" unit_docs_agree
group "make-device-binaries.sh stops at once, in one line, without patchelf" unit_binaries_tools
group "neural-style declares every option the determinism phase gives it" unit_render_options
group "1 everything passes with a fake GPU: PASSED" scenario_all_pass
group "1b the CPU-as-device rehearsal (NST_TEST_DEVICE=cpu): PASSED, said on every line" scenario_cpu_as_device
group "2 the listing exits with its count (6): start PASS, prebuilt used" scenario_listing_count
group "3 a test program hangs: gpu-tests FAIL (timeout), later phases still run" scenario_test_hangs
group "4 a sanitizer times out: SKIPPED for time, not FAIL" scenario_sanitizer_times_out
group "4b too little time left: sanitizers and bench SKIPPED for time" scenario_too_little_time
group "4c sanitizer errors: FAIL" scenario_sanitizer_errors
group "5 numpy missing: bench SKIPPED naming numpy, PASSED" scenario_numpy_missing
group "6 an earlier phase failed: determinism and bench still run and log" scenario_earlier_failure
group "7 the listing crashes (139): start FAIL, fallback build" scenario_listing_crash
group "8 a wheel folder holding libcudnn.so: CUDNN_PATH exported" scenario_wheel_with_libcudnn_so
group "9 tests skip while a GPU is listed: FAILED" scenario_skips_with_a_gpu_listed
group "10 no GPU at all: GPU phases skipped, PASSED" scenario_no_gpu
group "11 the bench times out: SKIPPED for time" scenario_bench_times_out
group "12 no bundle carried: FAILED at once, naming the carry entry" scenario_no_bundle
echo "($(( $(date +%s) - start )) s)"
echo "$passes passed, $failures failed"
(( failures == 0 ))
