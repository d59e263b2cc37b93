#!/bin/bash
# Round 8: the round-7 recipe (research/screen7.sh: per-block rates, noise inputs the action rows
# do not read, lineage credit, rank selection) with the noise inputs held for a lifetime
# (noise_hold=0) or H steps, and the given settings. CartPole-v1, one founder, tuning seeds
# 100-104, 30M steps. Usage: research/screen8.sh NAME key=value ...
OUT=${OUT:-research/results/screen8.jsonl} exec "$(dirname "$0")/screen7.sh" "$@"
