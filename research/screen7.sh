#!/bin/bash
# Stage 1 screen, round 7 (this session): the recipe (per-block rates, 2 noise inputs kept from
# the action rows, lineage credit, rank selection) with one more lever each. CartPole-v1, one
# founder, tuning seeds 100-104, 30M steps. Usage: research/screen7.sh NAME key=value ...
# SEEDS and OUT override the seeds and the results file (research/heldout7.sh sets them).
set -e
cd "$(dirname "$0")/.."
export NUMBA_NUM_THREADS=1
. .venv/bin/activate
R="beta=per_block noise_to_y=False noise_inputs=2 credit=lineage selection=rank"
name=$1; shift
python research/probe.py $PROBE_ARGS --name "$name" --set $R "$@" \
    --seeds ${SEEDS:-100 101 102 103 104} --steps 30e6 --out "${OUT:-research/results/screen7.jsonl}"
