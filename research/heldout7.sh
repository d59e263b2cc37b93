#!/bin/bash
# Round 7: a screened setting on the held-out seeds 0-9 at the screen's budget (30M steps).
#   research/heldout7.sh NAME key=value ...   (the recipe's settings plus these)
SEEDS="0 1 2 3 4 5 6 7 8 9" OUT=research/results/heldout7.jsonl exec "$(dirname "$0")/screen7.sh" "$@"
