#!/usr/bin/env bash
# Installs what nst needs to build and test, from Debian's packages. Idempotent:
# packages already present are left alone. The CUDA toolkit (nvcc, cuDNN,
# cuBLAS) is not a Debian package here; the CUDA backend is built when it is found.
# clang, its sanitizer and libFuzzer runtimes (libclang-rt) and its OpenMP (libomp)
# are for the hardening build (scripts/ci-hardening.sh). patchelf sets the
# prebuilt GPU executables' library path (scripts/make-device-binaries.sh). The
# Python package takes PIL images and shows progress with tqdm when they are there
# (optional for users; its tests use both). Video: FFmpeg's libraries decode
# and encode (the ffmpeg program makes the tests' clips), OpenCV computes the
# optical flow (DIS in opencv-video, DeepFlow in opencv-contrib). Slurm and
# munge run the batch tests' one-node cluster (scripts/slurm-test-cluster.sh).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libhdf5-dev hdf5-tools
  libpng-dev libjpeg62-turbo-dev
  libopenblas-dev
  libcli11-dev nlohmann-json3-dev
  catch2
  python3-torch python3-h5py python3-numpy
  python3-dev pybind11-dev python3-pytest python3-venv python3-setuptools python3-wheel
  python3-pil python3-tqdm
  curl
  clang libclang-rt-14-dev libomp-dev zlib1g-dev
  patchelf
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg
  libopencv-video-dev libopencv-contrib-dev
  slurm-wlm munge
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
