#!/usr/bin/env bash
# Hardening checks (docs/RELIABILITY.md, "Fuzzing and sanitizers"), run by .ci/run
# after the normal test command:
#   1. one clang build in build-hardening/ with NST_FUZZ=ON: every library, program
#      and test compiled with ASan (leak detection on) + UBSan and libFuzzer's
#      coverage instrumentation (CUDA and the Python module off);
#   2. the whole ctest suite there (the fuzz regression cases included), minus the
#      tests listed in EXCLUDE below;
#   3. each fuzz target for FUZZ_SECONDS (default 60) from its seed corpus, up to
#      nproc targets at a time; a crash, time-out, leak or out-of-memory fails the
#      script and leaves the input in build-hardening/fuzz/<target>/.
# Environment: FUZZ_SECONDS, FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT_S (25),
# HARDENING_BUILD (default build-hardening), SKIP_SUITE=1 / SKIP_FUZZ=1.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${HARDENING_BUILD:-build-hardening}
fuzz_seconds=${FUZZ_SECONDS:-60}
rss_mb=${FUZZ_RSS_MB:-2048}
timeout_s=${FUZZ_TIMEOUT_S:-25}
jobs=$(nproc)

# Impractical under the sanitizers:
#  - the package check installs libnst and builds a downstream program against it
#    with the default compiler and flags; an ASan-instrumented libnst cannot be
#    linked into an uninstrumented program (undefined __asan_* symbols).
EXCLUDE='^package: '

# allocator_may_return_null: an allocation too large for the machine throws
# std::bad_alloc, as it does without ASan, instead of aborting, so that the
# engine's out-of-memory paths (the isolated HDF5 parser's memory limit among
# them) are the ones tested. libFuzzer's -rss_limit_mb/-malloc_limit_mb still
# catch a fuzz input that makes the code allocate without bound.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:check_initialization_order=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

start=$SECONDS
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DNST_CUDA=OFF -DNST_PYTHON=OFF -DNST_FUZZ=ON -DNST_WERROR=ON \
    -DNST_FUZZ_RSS_LIMIT_MB="$rss_mb" -DNST_FUZZ_TIMEOUT_S="$timeout_s" >/dev/null
cmake --build "$build" -j "$jobs"
echo "ci-hardening: sanitizer build took $((SECONDS - start)) s"

status=0
if [ "${SKIP_SUITE:-0}" != 1 ]; then
  start=$SECONDS
  ctest --test-dir "$build" --output-on-failure -j "$jobs" -E "$EXCLUDE" || status=1
  echo "ci-hardening: sanitizer test suite took $((SECONDS - start)) s"
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  start=$SECONDS
  targets=(image png_crc weights cli flo)
  out="$build/fuzz"
  rm -rf "$out"
  run_target() {
    local t=$1 dir="$out/$1"
    mkdir -p "$dir/corpus"
    # New inputs go to the first corpus folder (a scratch copy); the committed
    # seeds are only read.
    "$build/tests/fuzz/fuzz_$t" "$dir/corpus" "tests/fuzz/corpus/$t" \
        -max_total_time="$fuzz_seconds" -rss_limit_mb="$rss_mb" -timeout="$timeout_s" \
        -print_final_stats=1 -artifact_prefix="$dir/" >"$dir/log" 2>&1 && echo 0 >"$dir/status" \
        || echo $? >"$dir/status"
  }
  for t in "${targets[@]}"; do
    while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
    run_target "$t" &
  done
  wait
  for t in "${targets[@]}"; do
    if [ "$(cat "$out/$t/status" 2>/dev/null)" = 0 ]; then result=ok; else result=FAILED; status=1; fi
    runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$out/$t/log" | grep -o '[0-9]*$' || echo "?")
    rate=$(grep -m1 -o 'stat::average_exec_per_sec: *[0-9]*' "$out/$t/log" | grep -o '[0-9]*$' || echo "?")
    echo "ci-hardening: fuzz_$t: $result, $runs executions ($rate/s; limit ${fuzz_seconds} s)"
    if [ "$result" = FAILED ]; then
      grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written|fuzz: )' "$out/$t/log" | head -20
      echo "  full log: $out/$t/log; keep the input under tests/fuzz/regressions/$t/"
    fi
  done
  echo "ci-hardening: fuzzing took $((SECONDS - start)) s"
fi
exit "$status"
