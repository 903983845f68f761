#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs the whole suite.
# Tests that need a GPU are reported as skipped where there is none; their
# bodies run all the same on a CPU stand-in for the device (cpu-as-device.*),
# and the counts of what ran there are printed last.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh "$@"
status=0
ctest --test-dir build --output-on-failure -j "$(nproc)" || status=$?
# ctest shows the output of failed tests only: the device test bodies that ran
# on the CPU stand-in, by program, from the log of this run.
awk '/ Testing: cpu-as-device\./ { name = $3 }
     name != "" && /^(All tests passed|test cases:)/ { print "device test bodies on the CPU stand-in: " name ": " $0; name = "" }' \
    build/Testing/Temporary/LastTest.log
exit "$status"
