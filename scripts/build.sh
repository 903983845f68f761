#!/usr/bin/env bash
# Configures and builds nst into ./build (Release). The CUDA backend is built
# when nvcc, cuDNN and cuBLAS are found (NST_CUDA=AUTO); extra arguments go to
# CMake, e.g. scripts/build.sh -DNST_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/cuda/bin"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$(nproc)"
