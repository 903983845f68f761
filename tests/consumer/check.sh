#!/usr/bin/env bash
# The package check: installs the build tree BUILD into a temporary prefix,
# configures and builds tests/consumer against it (find_package(nst)), runs it.
#   tests/consumer/check.sh BUILD
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
# The headers are the API's, under include/nst/ only: no engine/ folder, no backend's own header.
unexpected=$(cd "$work/prefix/include" && find . -name '*.h' ! -path './nst/*' -o -name 'cpu_backend.h' -o -name 'cuda_api.h')
[[ -z $unexpected ]] || { echo "installed headers outside the API: $unexpected" >&2; exit 1; }
grep -rq '#include "engine/' "$work/prefix/include/nst" && { echo "an installed header includes engine/" >&2; exit 1; }
cmake -S "$here" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
# The program finds libnst through the imported target's absolute path (its RPATH).
"$work/build/nst-consumer"
