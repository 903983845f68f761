#!/usr/bin/env bash
# Makes, on the development machine, everything the GPU check carries:
# .device-bundle/nst-deps.tar.gz (libraries, headers, CMake files) and
# .device-bundle/nst-prebuilt.tar.gz (the executables), and prints how long
# each took. Target: at most 5 minutes on 2 cores; the executables build only
# the targets the check runs (neural-style, nst-bench, tests/cuda/test_*), not
# the whole project. Commit first: the executables are built from HEAD.
#
#   scripts/prepare-device-check.sh      then carry [".device-bundle"] (docs/PROFILING.md)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)
"$root/scripts/make-device-bundle.sh"
bundle_s=$(( $(date +%s) - start ))
echo "prepare-device-check.sh: bundle in $bundle_s s"
"$root/scripts/make-device-binaries.sh" 2>&1 | grep -v '^\['
binaries_s=$(( $(date +%s) - start - bundle_s ))
total=$(( $(date +%s) - start ))
echo "prepare-device-check.sh: bundle $bundle_s s, binaries $binaries_s s, $total s in all$( ((total > 300)) && echo ' (over the 5-minute target)')"
echo "prepare-device-check.sh: .device-bundle/ is $(du -sm "$root/.device-bundle" | cut -f1) MiB: $(cd "$root/.device-bundle" && ls | tr '\n' ' ')"
