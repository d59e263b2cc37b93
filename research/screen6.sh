#!/bin/bash
# Stage 1 screen, round 6: FME hyperparameters (batch, pool) and the fitness window around
# per-block rates + 2 noise inputs to the self-modification rows + lineage credit.
# CartPole-v1, one founder, seeds 100-104, 30M steps.
set -e
cd "$(dirname "$0")/.."
export NUMBA_NUM_THREADS=1
. .venv/bin/activate
P="python research/probe.py --seeds 100 101 102 103 104 --steps 30e6 --out research/results/screen6.jsonl"
B="beta=per_block noise_to_y=False noise_inputs=2 credit=lineage"
$P --name pbnl_b64 --set $B batch=64
