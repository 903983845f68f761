#!/usr/bin/env bash
# Installs the package with Debian's pip, offline and without --no-deps (numpy is
# Debian's python3-numpy), twice: `pip install --target DIR .` and `pip install .`
# into a fresh virtual environment (system site packages); imports the installed
# copy, checks its version, stubs and py.typed, and stylises a tiny image. The
# source tree must be left as it was: no file created, changed or removed outside
# the build folder (setuptools' folders and egg-info are temporary).
#   python/check-pip-install.sh SOURCE BUILD     (BUILD: the CMake build to reuse)
set -euo pipefail
source=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The tree's files and folders, the build folder (when inside) and .git aside.
listing() {
    (cd "$source" && find . \( -path ./.git -o -path "./${build#"$source"/}" \) -prune -o -print | LC_ALL=C sort)
}
changed_since() {
    (cd "$source" && find . \( -path ./.git -o -path "./${build#"$source"/}" \) -prune -o -newer "$1" -print)
}
listing >"$work/before"
touch "$work/stamp"
sleep 1  # -newer compares modification times, whole seconds on some file systems

pip_install() {  # PIP [install options]
    local pip=$1
    shift
    (cd "$source" && NST_BUILD_DIR="$build" $pip install --quiet --no-index --no-build-isolation "$@" . \
        >"$work/pip.log" 2>&1) || { cat "$work/pip.log"; exit 1; }
}
pip_install "/usr/bin/python3 -m pip" --target "$work/site"
/usr/bin/python3 -m venv --system-site-packages "$work/venv"
pip_install "$work/venv/bin/pip"

listing >"$work/after"
if ! diff "$work/before" "$work/after" >"$work/listing.diff" || [[ -n $(changed_since "$work/stamp") ]]; then
    echo "pip install wrote into the source tree $source:"
    cat "$work/listing.diff"
    changed_since "$work/stamp"
    exit 1
fi

check='
import importlib.metadata, os, sys
import numpy as np
import nst
assert nst.__file__.startswith(sys.argv[2]), nst.__file__  # the installed copy
package = os.path.dirname(nst.__file__)
assert os.path.isfile(os.path.join(package, "py.typed")) and os.path.isfile(os.path.join(package, "__init__.pyi"))
assert importlib.metadata.version("nst") == nst.__version__, (importlib.metadata.version("nst"), nst.__version__)
assert not importlib.metadata.requires("nst"), importlib.metadata.requires("nst")  # numpy was there
rng = np.random.default_rng(1)
out = nst.stylize(rng.random((24, 32, 3)), rng.random((24, 24, 3)), weights=sys.argv[1],
                  size=32, iterations=3, device="cpu")
assert out.shape == (24, 32, 3) and np.isfinite(out).all()
print("pip-installed nst", nst.__version__, nst.__file__, out.shape)
'
cd "$work"
PYTHONPATH="$work/site" /usr/bin/python3 -c "$check" "$source/tests/reference/narrow_vgg19.h5" "$work/site"
"$work/venv/bin/python" -c "$check" "$source/tests/reference/narrow_vgg19.h5" "$work/venv"
