#!/bin/bash
# Stage 2: held-out seeds 0-9, 100M env steps, CartPole-v1 from ONE founder.
#   research/stage2.sh NAME key=value ...
set -e
cd "$(dirname "$0")/.."
export NUMBA_NUM_THREADS=1
. .venv/bin/activate
name=$1; shift
python research/probe.py --name "$name" --set "$@" --seeds 0 1 2 3 4 5 6 7 8 9 --steps 100e6 \
    --every 10e6 --out research/results/stage2.jsonl
