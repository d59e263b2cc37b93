"""Table of research/offspring.py results (research/FINDINGS.md, rounds 7 and 8).

    python research/offspring_table.py research/results/offspring.jsonl [--name NAME]

One row per pool (seed, steps): pool median; the parents' re-run fitness and recorded fitness
(medians over parents); the share of children truly better / worse than their parent (mean over
parents), self-modified and Gaussian; the children's fitness spread beyond evaluation noise and
their spread on the first layer's action rows (medians over parents); and, summed over the
parents whose best child's unbiased re-run beat the parent, the grandchildren's mean gain over
the parent against the best child's gain ("kept / gained").
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def row(line: dict) -> str:
    ps = line["parents"]
    cells = [f"{line['seed']}, {line['steps'] / 1e6:g}M", f"{line['pool_median']:.0f}",
             f"{np.median([p['parent'] for p in ps]):.0f} ({np.median([p['recorded'] for p in ps]):.0f})"]  # fmt: skip
    kinds = ("selfmod", "gauss")
    for k in kinds:
        better, worse = np.mean([p[k]["better"] for p in ps]), np.mean([p[k]["worse"] for p in ps])
        cells.append(f"{better:.2f} / {worse:.2f}")
    cells.append(" / ".join(f"{np.median([p[k]['true_sd'] for p in ps]):.1f}" for k in kinds))
    cells.append(" / ".join(f"{np.median([p[k]['spread_y'] for p in ps]):.3f}" for k in kinds))
    kept = []
    for k in kinds:
        up = [p for p in ps if "champion_rerun" in p[k] and p[k]["champion_rerun"] > p["parent"]]
        if not up:
            kept.append("no gain")
            continue
        gain = sum(p[k]["champion_rerun"] - p["parent"] for p in up)
        held = sum(p[k]["grandkids_mean"] - p["parent"] for p in up)
        kept.append(f"{held:.0f}/{gain:.0f}")
    cells.append(" / ".join(kept))
    return "| " + " | ".join(cells) + " |"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl")
    ap.add_argument("--name", default="")
    a = ap.parse_args(argv)
    print(
        "| pool (seed, steps) | pool median | parents re-run (recorded) | self-mod: truly better / "
        "worse | Gaussian 0.3: truly better / worse | children's fitness spread beyond noise, "
        "self-mod / Gaussian | spread on action rows, self-mod / Gaussian | best child's gain "
        "kept by its children, self-mod / Gaussian |"
    )
    print("|---|---|---|---|---|---|---|---|")
    lines = [json.loads(x) for x in open(a.jsonl)]
    for line in sorted(lines, key=lambda d: (d["seed"], d["steps"])):
        if not a.name or line["name"] == a.name:
            print(row(line))


if __name__ == "__main__":
    main()
