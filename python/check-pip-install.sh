#!/usr/bin/env bash
# Installs the module with `pip install --no-build-isolation .` into a fresh
# virtual environment (Debian's python3, system site packages for numpy) and
# stylises a tiny image with the installed module.
#   python/check-pip-install.sh SOURCE BUILD     (BUILD: the CMake build to reuse)
set -euo pipefail
source=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 -m venv --system-site-packages "$work/venv"
(cd "$source" && NST_BUILD_DIR="$build" "$work/venv/bin/pip" install --quiet --no-index \
    --no-build-isolation --no-deps . >"$work/pip.log" 2>&1) || { cat "$work/pip.log"; exit 1; }
cd "$work"
"$work/venv/bin/python" - "$source/tests/reference/narrow_vgg19.h5" <<'PY'
import sys
import numpy as np
import nst
assert nst.__file__.startswith(sys.prefix), nst.__file__  # the installed copy
rng = np.random.default_rng(1)
out = nst.stylize(rng.random((24, 32, 3)), rng.random((24, 24, 3)), weights=sys.argv[1],
                  size=32, iterations=3, device="cpu")
assert out.shape == (24, 32, 3) and np.isfinite(out).all()
print("pip-installed nst:", nst.__file__, out.shape)
PY
