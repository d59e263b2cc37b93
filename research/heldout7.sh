#!/bin/bash
# Round 7: a screened setting on the held-out seeds 0-9 at the screen's budget (30M steps).
#   research/heldout7.sh NAME key=value ...   (the recipe's settings plus these)
set -e
cd "$(dirname "$0")/.."
export NUMBA_NUM_THREADS=1
. .venv/bin/activate
R="beta=per_block noise_to_y=False noise_inputs=2 credit=lineage selection=rank"
name=$1; shift
python research/probe.py --name "$name" --set $R "$@" --seeds 0 1 2 3 4 5 6 7 8 9 --steps 30e6 \
    --out research/results/heldout7.jsonl
