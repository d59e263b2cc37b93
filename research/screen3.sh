#!/bin/bash
# Stage 1 screen, round 3: noise that only reaches self-modification, per-block rates,
# lineage credit, stronger selection. CartPole-v1, one founder, seeds 100-104, 30M steps.
set -e
cd "$(dirname "$0")/.."
export NUMBA_NUM_THREADS=1
. .venv/bin/activate
P="python research/probe.py --seeds 100 101 102 103 104 --steps 30e6 --out research/results/screen3.jsonl"
$P --name noise2_sm --set noise_inputs=2 noise_to_y=False
$P --name pb_noise2_sm --set beta=per_block noise_inputs=2 noise_to_y=False
$P --name softmax0.3 --set selection=softmax temperature=0.3
$P --name credit_lineage --set credit=lineage
$P --name pb_noise2_sm_lineage --set beta=per_block noise_inputs=2 noise_to_y=False credit=lineage
