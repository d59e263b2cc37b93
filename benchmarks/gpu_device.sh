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
# repository root: srml.envs is mapped at install time), then benchmarks/gpu_phases.py (where an
# end-to-end generation goes, appended to the report) and leaves in $OUT: RESULTS_GPU.md,
# gpu.log, gpu_phases.log, nvidia-smi.txt. Commit RESULTS_GPU.md under benchmarks/. BUDGET
# (seconds, default 380) bounds gpu.py and PHASES_S (default 150; 0 skips it) gpu_phases.py, so
# the call ends inside its 600 s; PHASES_POPS (default "131072 1048576") are its sizes; GPU_ARGS
# adds arguments to gpu.py (e.g. GPU_ARGS="--skip peer kernel parity solve numba --profile").
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
  --budget-s "${BUDGET:-380}" $GPU_ARGS 2>&1 | tee "$OUT/gpu.log"
status=$?
PHASES_S=${PHASES_S:-150}
if [ "$PHASES_S" -gt 0 ]; then
  timeout "$PHASES_S" python3 "$R/benchmarks/gpu_phases.py" --pops ${PHASES_POPS:-131072 1048576} \
    2>&1 | tee "$OUT/gpu_phases.log"
  {
    printf '\n## Where an end-to-end generation goes (device pool)\n\n'
    printf 'Made by `python benchmarks/gpu_phases.py --pops %s` in the same device call, right' \
      "${PHASES_POPS:-131072 1048576}"
    printf ' after the run above (same card; at most %s s).\n\n```\n' "$PHASES_S"
    cat "$OUT/gpu_phases.log"
    printf '```\n'
  } >> "$OUT/RESULTS_GPU.md"
fi
exit $status
