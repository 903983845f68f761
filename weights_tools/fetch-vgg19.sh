#!/usr/bin/env bash
# fetch-vgg19.sh [OUT.h5]
#
# Downloads Keras' published VGG-19 convolution weights, checks the checksum Keras
# publishes for them, and converts them with `nst-weights import-keras` to
# OUT.h5 (default ~/.cache/nst/vgg19.h5, where neural-style looks). Everything is
# written to a temporary folder beside OUT and renamed into place at the end, so
# a failure (offline, bad checksum, full disk) leaves no partial download and no
# partial or clobbered output.
#
# Exit codes: 0 success, 2 usage, 4 failure. Environment:
#   NST_WEIGHTS_TOOL   the nst-weights executable (default: beside this script,
#                      in ../build*/weights_tools/, then on PATH)
#   NST_VGG19_URL, NST_VGG19_MD5   another source for the same file (a mirror)
set -u

program="fetch-vgg19.sh"
file_name="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
# keras/applications/vgg19.py: WEIGHTS_PATH_NO_TOP and its file_hash (MD5).
url="${NST_VGG19_URL:-https://storage.googleapis.com/tensorflow/keras-applications/vgg19/$file_name}"
md5="${NST_VGG19_MD5:-253f8cb515780f3b799900260a226db6}"

fail() {  # fail CODE MESSAGE
    echo "$program: error: $2" >&2
    exit "$1"
}

case "${1:-}" in
    -h|--help)
        echo "usage: $program [OUT.h5]   (default: ~/.cache/nst/vgg19.h5)"
        echo "Downloads Keras' VGG-19 weights ($url),"
        echo "verifies their MD5 ($md5) and converts them with nst-weights import-keras."
        exit 0 ;;
esac
[ $# -le 1 ] || fail 2 "too many arguments (usage: $program [OUT.h5])"
output="${1:-${HOME:-.}/.cache/nst/vgg19.h5}"
[ -n "$output" ] || fail 2 "the output path is empty"

# The converter.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tool="${NST_WEIGHTS_TOOL:-}"
if [ -z "$tool" ]; then
    for candidate in "$here/nst-weights" "$here"/../build*/weights_tools/nst-weights; do
        if [ -x "$candidate" ]; then tool="$candidate"; break; fi
    done
fi
[ -n "$tool" ] || tool="$(command -v nst-weights || true)"
[ -n "$tool" ] && [ -x "$tool" ] ||
    fail 4 "nst-weights not found (build the project, or set NST_WEIGHTS_TOOL)"

# The downloader: curl or wget, with timeouts so that a dead network fails quickly.
if command -v curl >/dev/null 2>&1; then
    download() { curl --fail --silent --show-error --location --connect-timeout 20 \
                      --max-time 1800 --retry 2 --output "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
    download() { wget --quiet --timeout=20 --tries=3 --output-document="$2" "$1"; }
else
    fail 4 "neither curl nor wget is installed (needed to download $url)"
fi
command -v md5sum >/dev/null 2>&1 || fail 4 "md5sum is not installed (needed to verify the download)"

output_dir="$(dirname "$output")"
mkdir -p "$output_dir" 2>/dev/null || fail 4 "cannot create the folder '$output_dir'"
work="$(mktemp -d "$output_dir/.fetch-vgg19.XXXXXX" 2>/dev/null)" ||
    fail 4 "cannot write in '$output_dir'"
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

echo "downloading $url"
download "$url" "$work/$file_name" 2>"$work/download.log" ||
    fail 4 "cannot download $url ($(tail -n 1 "$work/download.log" | tr -d '\r' | cut -c1-160); offline? the weights can also be converted from a copy: nst-weights import-keras FILE OUT.h5)"

actual="$(md5sum "$work/$file_name" | cut -d' ' -f1)"
[ "$actual" = "$md5" ] ||
    fail 4 "the download from $url has MD5 $actual, expected $md5 (damaged or changed file)"

"$tool" import-keras "$work/$file_name" "$work/vgg19.h5" >/dev/null 2>"$work/import.log" ||
    fail 4 "converting the download failed: $(tail -n 1 "$work/import.log")"
mv -f "$work/vgg19.h5" "$output" || fail 4 "cannot move the weights into '$output'"
echo "wrote $output"
