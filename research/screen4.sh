#!/bin/bash
# Stage 1 screen, round 4: around the best so far (per-block rates + 2 noise inputs that
# reach only the self-modification rows). CartPole-v1, one founder, seeds 100-104, 30M steps.
set -e
cd "$(dirname "$0")/.."
export NUMBA_NUM_THREADS=1
. .venv/bin/activate
P="python research/probe.py --seeds 100 101 102 103 104 --steps 30e6 --out research/results/screen4.jsonl"
B="beta=per_block noise_to_y=False"
$P --name pb_noise2_sm_half --set $B noise_inputs=2 fitness_from=0.5
$P --name pb_noise4_sm --set $B noise_inputs=4
$P --name pb_noise2_sm_keys --set $B noise_inputs=2 sample_keys=True
$P --name pb_noise2_sm_init1 --set $B noise_inputs=2 init_std=1.0
