#!/usr/bin/env bash
# benchmarks/gpu.py on a lent GPU machine, in ONE device call (../shared/gpu/README.md's recipe).
#
# Prepare here, in the repository root (the device reaches no package index; in a git worktree
# .git is a file: "$(git rev-parse --git-path info/exclude)" names the exclude file):
#   echo /.whl/ >> "$(git rev-parse --git-path info/exclude)"
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     -d .whl gymnasium==1.4.0 farama-notifications==0.0.6 tomli-w==1.2.0 gymnax==1.0.1 \
#     setuptools==80.9.0
#   mkdir -p .peers && cp ../shared/peers/*.py .peers/
#   echo /.peers/ >> "$(git rev-parse --git-path info/exclude)"
# (setuptools >= 77 builds srml's SPDX license field; the device's own may be older.)
# Then one device call, carry [".whl", ".peers"], timeout_s 590:
#   bash benchmarks/gpu_device.sh
# It installs the wheels and srml under /tmp, runs benchmarks/gpu.py from /tmp (not the
# repository root: srml.envs is mapped at install time) and leaves in $OUT: RESULTS_GPU.md,
# gpu.log, nvidia-smi.txt. Commit RESULTS_GPU.md under benchmarks/. BUDGET (seconds, default
# 470) bounds the benchmark so the call ends inside its 600 s; GPU_ARGS adds arguments
# (e.g. GPU_ARGS="--skip peer kernel parity solve numba --profile").
set -o pipefail
export PYTHONUNBUFFERED=1 NUMBA_ENABLE_CUDASIM=0
R=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/srml-gpu-out}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$R"/.whl/*.whl
PYTHONPATH=/tmp/site python3 -m pip install -q --no-index --no-deps --no-build-isolation \
  --no-compile --target /tmp/srml "$R"  # built with the setuptools from .whl
cd /tmp || exit 1
export PYTHONPATH=/tmp/srml:/tmp/site
python3 "$R/benchmarks/gpu.py" --peers "$R/.peers" --out "$OUT/RESULTS_GPU.md" \
  --budget-s "${BUDGET:-470}" $GPU_ARGS 2>&1 | tee "$OUT/gpu.log"
