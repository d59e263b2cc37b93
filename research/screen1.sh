#!/bin/bash
# Stage 1 screen, single levers: CartPole-v1, one founder, seeds 100-104, 30M steps.
set -e
cd "$(dirname "$0")/.."
export NUMBA_NUM_THREADS=1
. .venv/bin/activate
P="python research/probe.py --seeds 100 101 102 103 104 --steps 30e6 --out research/results/screen1.jsonl"
$P --name baseline
$P --name per_block --set beta=per_block
$P --name tanh --set update=tanh
$P --name noise2 --set noise_inputs=2
$P --name sample_keys --set sample_keys=True
$P --name credit_mean --set credit=mean
$P --name second_half --set fitness_from=0.5
$P --name init1 --set init_std=1.0
$P --name init0.35 --set init_std=0.35
