"""Reversal bandit with episodes longer than any seen in training (issue 13, item 4).

    python research/bandit_longer.py RUNS_DIR [--lengths 40 120 240] [--out FILE.json]

RUNS_DIR is an ``experiments/fme_from_one.py`` output for srml/ReversalBandit-v0 (trained with
40-pull episodes, 12 per 480-step lifetime). Each run's deployed genomes (FME: the 16 best
records; hill-climber: its current genome; ES: its mean) run one batch of fresh 480-step
lifetimes on held-out seeds with episodes of each length (the arms swap once at a random pull
in the middle half of every episode, as in training). Reported: reward per pull (fitness / pulls
per episode); win-stay, lose-shift earns 0.68 a pull, always knowing the good arm 0.8.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from srml.api import load_run
from srml.evaluation import heldout_seed
from srml.methods import make_method

ENV = "ReversalBandit-v0"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", type=Path)
    ap.add_argument("--methods", nargs="+",
                    default=["fme_paper", "fme_best", "fme_step_noise", "hill_climber_s3_one",
                             "openai_es_one"])  # fmt: skip
    ap.add_argument("--lengths", nargs="+", type=int, default=[40, 120, 240])
    ap.add_argument("--out", default="research/results/bandit_longer.json")
    a = ap.parse_args(argv)
    out = {"lengths": a.lengths, "methods": {}}
    for label in a.methods:
        per = {n: [] for n in a.lengths}
        for seed_dir in sorted((a.runs / ENV / label).glob("seed*")):
            run = load_run(seed_dir)
            cands = np.asarray(run.method.candidates(), np.float32)
            cfg = run.config
            for n in a.lengths:
                c = replace(cfg, env_kwargs={**cfg.env_kwargs, "episode_steps": n})
                m = make_method(c.method, c, **c.method_options)
                res = m.backend.run(cands[np.arange(c.batch) % len(cands)], heldout_seed(c.seed, 0))
                f = res.fitness[np.isfinite(res.fitness)]
                per[n].append(float(f.mean() / n) if len(f) else float("nan"))
                m.close()
            run.method.close()
        out["methods"][label] = {str(n): v for n, v in per.items()}
        means = "  ".join(f"{n}: {np.nanmean(v):.3f}" for n, v in per.items())
        print(f"{label}: reward per pull by episode length  {means}", flush=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(a.out)


if __name__ == "__main__":
    sys.exit(main())
