#!/bin/bash
# Stage 1 screen, round 2: diagnostics (external mutation sigma: NOT an FME candidate, it shows
# whether FME's selection machinery can climb from one founder when variation is given) and
# combinations. CartPole-v1, one founder, seeds 100-104, 30M steps.
set -e
cd "$(dirname "$0")/.."
export NUMBA_NUM_THREADS=1
. .venv/bin/activate
P="python research/probe.py --seeds 100 101 102 103 104 --steps 30e6 --out research/results/screen2.jsonl"
$P --name diag_sigma0.1 --set sigma=0.1
$P --name diag_sigma0.1_frozen --set sigma=0.1 self_modify=False
$P --name pb_tanh --set beta=per_block update=tanh
$P --name softmax0.3 --set selection=softmax temperature=0.3
$P --name pb_tanh_noise2 --set beta=per_block update=tanh noise_inputs=2
$P --name pb_tanh_credit --set beta=per_block update=tanh credit=mean
