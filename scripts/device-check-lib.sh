# shellcheck shell=bash
# The decisions of scripts/device-check.sh: every verdict, limit and selection
# of the GPU check, as small functions that read only their arguments (and the
# CHECK_LIMIT_*_S overrides), so tests/scripts/test_device_check.sh holds each
# one to its rule without a GPU. Sourcing this file defines functions and
# nothing else. Results are PASS, FAIL or SKIPPED; a function that returns a
# verdict prints it as its first word, followed by the detail for the summary.

# ---- time ------------------------------------------------------------------------------------
# The phases in order, with the most each may take on the GPU machine (s).
# Every limit is also cut to what is left of CHECK_BUDGET_S. CHECK_LIMIT_<PHASE>_S
# overrides one (PHASE in capitals, '-' as '_': CHECK_LIMIT_GPU_TESTS_S=600).
# docs/PROFILING.md ("Time") gives the estimate and reasoning of each; a test
# checks that its table and these numbers agree.
phase_limit() {  # phase_limit PHASE -> seconds
    local default
    case $1 in
        facts) default=90 ;;         # nvidia-smi, one cold `import torch` (10-40 s)
        bundle) default=60 ;;        # two tar -xzf, 26 MiB
        start) default=60 ;;         # ldd, --help, --list-tests of each program
        build) default=480 ;;        # the fallback only: configure + ninja
        gpu-tests) default=150 ;;    # every tests/cuda program, one after the other
        memcheck) default=120 ;;     # three compute-sanitizer runs
        racecheck) default=90 ;;
        determinism) default=60 ;;   # two short neural-style runs
        bench) default=90 ;;         # bench/compare.sh, short settings
        *) echo "phase_limit: unknown phase '$1'" >&2; return 1 ;;
    esac
    local override=${1^^}
    override=CHECK_LIMIT_${override//-/_}_S
    echo "${!override:-$default}"
}

# Seconds that must be left of the budget for a phase to start at all: a
# sanitizer run cut to 30 s would only time out and say nothing.
phase_minimum() {  # phase_minimum PHASE -> seconds
    case $1 in
        memcheck|racecheck) echo 90 ;;
        determinism) echo 30 ;;
        bench) echo 60 ;;
        *) echo 0 ;;
    esac
}

has_time() {  # has_time SECONDS-LEFT SECONDS-NEEDED: status 0 when enough is left
    (( $1 >= $2 ))
}

# The limit of one command: its own cap, cut to what is left of its phase and
# of the budget, never below 1 s (timeout 0 would mean no limit at all).
command_limit() {  # command_limit CAP PHASE-LEFT BUDGET-LEFT -> seconds
    local limit=$1
    (( $2 < limit )) && limit=$2
    (( $3 < limit )) && limit=$3
    (( limit < 1 )) && limit=1
    echo "$limit"
}

# ---- start: does a test program list its tests? ------------------------------------------------
# Catch2 2's --list-tests exits with the NUMBER of tests it listed (6, say), not
# 0; our mains exit 0 after listing, older ones exit 77 without a GPU before
# Catch2 sees the option. So: the listing printed and an exit code of 0 or its
# count is success; 126/127 (not runnable), 124 (timeout), 128+N (signal N)
# and "no tests listed" are failures, whatever was printed.
listed_count() {  # listed_count FILE -> the N of Catch2's "N test cases" line, else the entries
    local n
    n=$(sed -n -E 's/^([0-9]+) test cases?$/\1/p' "$1" | tail -1)
    [[ -n $n ]] || n=$(grep -cE '^  [^ ]' "$1")
    echo "${n:-0}"
}

listing_verdict() {  # listing_verdict RC FILE -> PASS|FAIL detail
    local rc=$1 file=$2 count
    count=$(listed_count "$file")
    if (( rc == 124 )); then echo "FAIL timed out"
    elif (( rc == 126 || rc == 127 )); then echo "FAIL exit $rc: could not be run"
    elif (( rc >= 128 )); then echo "FAIL exit $rc: killed by signal $(( rc - 128 ))"
    elif (( rc == 77 )) && grep -q 'no CUDA device' "$file"; then
        echo "PASS runs (exit 77: lists nothing without a GPU)"
    elif (( count == 0 )); then echo "FAIL exit $rc, no tests listed"
    elif (( rc == 0 || rc == count % 256 )); then echo "PASS $count tests listed (exit $rc)"
    else echo "FAIL exit $rc with $count tests listed"
    fi
}

# ---- gpu-tests ------------------------------------------------------------------------------------
test_outcome() {  # test_outcome RC -> passed | skipped | failed timeout | failed exit N
    case $1 in
        0) echo passed ;;
        77) echo skipped ;;
        124|137) echo "failed timeout" ;;
        *) echo "failed exit $1" ;;
    esac
}

# DEVICE-MODE is cpu when NST_TEST_DEVICE=cpu (the CPU stands in for the GPU,
# so every program must pass), else cuda.
gpu_tests_verdict() {  # gpu_tests_verdict PASSED SKIPPED FAILED NOT-RUN GPUS-LISTED DEVICE-MODE
    local passed=$1 skipped=$2 failed=$3 not_run=$4 gpus=$5 mode=$6
    if (( passed + skipped + failed + not_run == 0 )); then echo "FAIL no test programs found"
    elif (( failed > 0 )); then echo "FAIL"
    elif (( skipped > 0 )) && [[ $mode == cpu ]]; then
        echo "FAIL NST_TEST_DEVICE=cpu, yet $skipped program(s) skipped (built before the CPU-as-device mode?)"
    elif (( skipped > 0 && gpus > 0 )); then
        echo "FAIL nvidia-smi -L lists $gpus GPU(s) but the CUDA runtime sees none"
    elif (( skipped > 0 )); then echo "SKIPPED no GPU: nvidia-smi lists none"
    elif (( not_run > 0 )); then echo "SKIPPED $not_run program(s) not run: no time left in the phase"
    else echo "PASS"
    fi
}

# ---- sanitizers --------------------------------------------------------------------------------
# What runs under compute-sanitizer, one run a line: KIND PROGRAM FILTER TOOL-ARGS...
# KIND check: its errors FAIL the phase; info: a pass whose errors are counted
# in the summary line as information only.
# Every check run has --report-api-errors no: cuBLAS and cuDNN raise API errors
# on purpose and handle them (probing features, heuristics), which the default
# (explicit) counts as errors.
# memcheck (check): our kernels and the gemm wrapper. Left out: the cuDNN
# convolutions (library code, and slow under the sanitizer) and [oom] of
# test_cuda_backend, which asks cudaMalloc for 4 TiB on purpose.
# memcheck (info): the gemm wrapper again with --report-api-errors explicit, so
# the API errors cuBLAS handles are on record (cuDNN's are left out for time).
# racecheck: the shared-memory reductions behind the losses and dot/asum/amax.
# The filters are Catch2 test specs: "[a]~[b]" is tag a and not tag b, "," is or.
sanitizer_runs() {  # sanitizer_runs PHASE
    case $1 in
        memcheck)
            echo "check test_backend_ops [op]~[conv3x3_forward]~[conv3x3_backward_data] --tool memcheck --leak-check full --report-api-errors no"
            echo "check test_cuda_backend [gemm] --tool memcheck --report-api-errors no"
            echo "info test_cuda_backend [gemm] --tool memcheck --report-api-errors explicit" ;;
        racecheck)
            echo "check test_backend_ops [loss],[vector] --tool racecheck --report-api-errors no" ;;
    esac
}

# The errors a compute-sanitizer log reports: "ERROR SUMMARY: N errors"
# (memcheck), else racecheck's "RACECHECK SUMMARY: H hazards displayed (N errors,
# W warnings)"; nothing when neither line is there.
sanitizer_errors() {  # sanitizer_errors FILE -> N or nothing
    local n
    n=$(sed -n -E 's/.*ERROR SUMMARY: ([0-9]+) error.*/\1/p' "$1" | tail -1)
    [[ -n $n ]] || n=$(sed -n -E 's/.*RACECHECK SUMMARY: .*\(([0-9]+) error.*/\1/p' "$1" | tail -1)
    echo "$n"
}

# One run: a time-out says nothing about our code (SKIPPED for time, not FAIL);
# errors, or a failing exit (the test itself, or --error-exitcode), FAIL.
sanitizer_run_outcome() {  # sanitizer_run_outcome RC ERRORS -> pass | timeout | fail
    local rc=$1 errors=${2:-}
    if (( rc == 124 || rc == 137 )); then echo timeout
    elif (( rc != 0 )) || [[ -n $errors && $errors != 0 ]]; then echo fail
    else echo pass
    fi
}

sanitizer_verdict() {  # sanitizer_verdict OUTCOME... -> PASS|FAIL|SKIPPED detail
    local outcome fails=0 timeouts=0
    for outcome in "$@"; do
        [[ $outcome == fail ]] && fails=$((fails + 1))
        [[ $outcome == timeout ]] && timeouts=$((timeouts + 1))
    done
    if (( fails > 0 )); then echo "FAIL"
    elif (( timeouts > 0 )); then echo "SKIPPED for time: a run reached its limit (a time-out, not a finding)"
    elif (( $# == 0 )); then echo "SKIPPED nothing ran"
    else echo "PASS"
    fi
}

# ---- bench ----------------------------------------------------------------------------------------
# Why the bench does not run, or nothing when it does. bench/torch_baseline.py
# needs torch AND numpy (PyTorch's wheels do not bring numpy).
bench_skip_reason() {  # bench_skip_reason SKIP_BENCH PROGRAMS-PRESENT GPU-SEEN TORCH NUMPY LEFT NEEDED
    local skip=$1 present=$2 gpu_seen=$3 torch=$4 numpy=$5 left=$6 needed=$7
    if [[ $skip == 1 ]]; then echo "SKIP_BENCH=1"
    elif [[ $present != 1 ]]; then echo "apps/nst-bench or bench/compare.sh not present"
    elif [[ $gpu_seen != 1 ]]; then echo "no GPU"
    elif [[ -z $torch ]]; then echo "no Python with torch found (set PYTHON)"
    elif [[ -z $numpy || $numpy == missing ]]; then echo "numpy missing in the Python with torch ($torch): bench/torch_baseline.py imports it"
    elif ! has_time "$left" "$needed"; then echo "for time: ${left} s left of CHECK_BUDGET_S, the bench needs ${needed}"
    fi
}

bench_verdict() {  # bench_verdict RC -> PASS|FAIL|SKIPPED detail
    case $1 in
        0) echo "PASS" ;;
        124|137) echo "SKIPPED for time: bench/compare.sh reached its limit" ;;
        *) echo "FAIL exit $1" ;;
    esac
}

# bench/compare.sh's settings: short on the GPU (two sizes, five timed
# evaluations, five L-BFGS iterations once); tiny for the CPU standing in.
bench_arguments() {  # bench_arguments DEVICE-MODE
    if [[ $1 == cpu ]]; then
        echo "--device cpu --sizes 64 --threads 1 --precision fp32 --repeats 2 --warmup 1 --iterations-lbfgs 2 --lbfgs-repeats 1"
    else
        echo "--device cuda --sizes 256,512 --precision tf32 --repeats 5 --warmup 2 --iterations-lbfgs 5 --lbfgs-repeats 1"
    fi
}

# ---- facts ----------------------------------------------------------------------------------------
# One Python call per candidate interpreter, so torch is imported once (10-40 s
# cold): the nvidia namespace packages' folders (pip wheels of cuDNN, cuBLAS;
# nvidia.cudnn has no __file__, __path__ is the list), then, when ARGV[1] is 1,
# torch's version, its CUDA, cuda.is_available() and numpy's version or
# "missing". One "key value" a line, flushed, so a time-out keeps what came first.
python_probe_source() {
    cat <<'EOF'
import sys
try:
    import nvidia
    for folder in nvidia.__path__:
        print("nvidia_path", folder, flush=True)
except Exception:
    pass
if sys.argv[1:] == ["1"]:
    try:
        import torch
    except Exception as error:
        print("torch_missing", type(error).__name__, flush=True)
    else:
        print("torch_version", torch.__version__, flush=True)
        print("torch_cuda", torch.version.cuda, flush=True)
        print("cuda_available", torch.cuda.is_available(), flush=True)
    try:
        import numpy
        print("numpy_version", numpy.__version__, flush=True)
    except Exception:
        print("numpy_version missing", flush=True)
EOF
}

probe_field() {  # probe_field KEY < PROBE-OUTPUT -> the values of KEY, one a line
    awk -v key="$1" '$1 == key { sub(/^[^ ]+ /, ""); print }'
}

# ---- build ------------------------------------------------------------------------------------------
# CUDNN_PATH for the fallback's configure (cmake/NstCuda.cmake looks for cudnn.h
# in the toolkit's include folder, then under $CUDNN_PATH/include): the folder
# above cudnn.h's whenever that is not one of the toolkit's include folders,
# whatever the library folder holds (a wheel or conda folder with the
# unversioned libcudnn.so too still has its headers outside the toolkit).
cudnn_path_for_build() {  # cudnn_path_for_build CUDNN-INCLUDE TOOLKIT-INCLUDE... -> folder or nothing
    local include=$1 dir; shift
    [[ -n $include ]] || return 0
    for dir in "$@"; do [[ $dir == "$include" ]] && return 0; done
    dirname "$include"
}

# ---- the last line ------------------------------------------------------------------------------------
final_verdict() {  # final_verdict FAILED-PHASE... -> PASSED | FAILED (phases)
    if (( $# == 0 )); then echo "PASSED"; else echo "FAILED ($*)"; fi
}
