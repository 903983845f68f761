#!/usr/bin/env bash
# One command from a fresh checkout to a stylised image: installs what is
# missing, builds, and renders Tübingen in the style of The Starry Night with
# the shared VGG-19 weights, on the GPU if there is one, else on the CPU.
#   scripts/demo.sh [OUTPUT.png] [extra neural-style options...]
set -euo pipefail
cd "$(dirname "$0")/.."
output="${1:-tubingen_starry_night.png}"
shift || true
bash scripts/install-deps.sh
bash scripts/build.sh
assets="$(cd .. && pwd)/shared/assets"
weights="${NST_WEIGHTS:-$assets/vgg19/vgg19-conv-hybrid.h5}"
./build/apps/neural-style \
  --content "$assets/images/tubingen.jpg" \
  --style "$assets/images/starry_night.jpg" \
  --weights "$weights" \
  --size 256 --output "$output" "$@"
echo "wrote $output"
