#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs the whole suite.
# Tests that need a GPU are reported as skipped where there is none.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh "$@"
ctest --test-dir build --output-on-failure -j "$(nproc)"
