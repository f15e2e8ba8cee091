#!/usr/bin/env bash
# Builds ferry's CUDA helper (workload/cuda-ckpt.c) into OUT: dynamic (it opens libcuda.so.1 at run
# time, so it builds and runs without CUDA, saying so), compiled against cuda.h instead of its own
# declarations where CUDA is installed. scripts/setup.sh and the GPU check (test/gpu/check.sh) build
# it so; --need-cuda-h refuses to build without the header.
#   bash scripts/build-cuda-helper.sh OUT [--need-cuda-h]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: build-cuda-helper.sh OUT [--need-cuda-h]}
CUDA_H=$(ls /usr/local/cuda/include/cuda.h /usr/include/cuda.h 2>/dev/null | head -n1 || true)
if [ -z "$CUDA_H" ] && [ "${2:-}" = --need-cuda-h ]; then
  echo "build-cuda-helper: no cuda.h (is CUDA installed?)" >&2
  exit 1
fi
echo "building ferry's CUDA helper${CUDA_H:+ against $CUDA_H}"
gcc -O2 -Wall ${CUDA_H:+-DFERRY_HAVE_CUDA_H -I"$(dirname "$CUDA_H")"} -o "$out.new" workload/cuda-ckpt.c -ldl
mv "$out.new" "$out"
