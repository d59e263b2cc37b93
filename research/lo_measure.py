"""Measure an FME run on srml/LearnedOptimizer-v0 against SGD/Adam on the same problems.

    python research/lo_measure.py RUN_DIR [--seed 12345] [--lanes 64] [--problems 10]
                                  [--env-kwargs '{"dim": 32}']

Takes the 16 genomes with the highest recorded fitness from RUN_DIR/pool.npz, runs each on
`lanes` held-out lanes (seed never used in training) for `problems` whole problems per
lifetime (numba backend, recorded), and sums the rewards of every problem: the return per
problem, ln(L_0 (1 + f)) - ln(L_K + f L_0). The same (lane key, episode) problems are then
solved by Adam with its lr tuned on srml.optimizers.TUNE_SEEDS, Adam with lr 1e-3, tuned
SGD, and by random founders (the pool's initial distribution) for reference.
A one-off measurement script for research/LO_NOTES.md, not the experiment.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from srml.envs.learned_optimizer import sizes

from srml import optimizers
from srml.backends import make_backend
from srml.config import from_dict, load_toml
from srml.run.rundir import load_checkpoint
from srml.task import make_task


def per_problem_returns(rewards, firsts, n_problems, steps):
    """(S, B) rewards -> (B, n_problems) returns; every episode has `steps` env steps."""
    S, B = rewards.shape
    assert S == n_problems * steps and firsts[::steps].all()
    return rewards.reshape(n_problems, steps, B).sum(axis=1).T


def run_genomes(cfg, params, genomes, lanes, n_problems, seed):
    D = sizes(params["problem"], params["dim"], params["n_data"], params["rotations"],
              params["hidden"]).D  # fmt: skip
    steps = D * params["steps_per_problem"]
    cfg.lifetime = n_problems * steps
    task = make_task(cfg)
    out = []
    for g in genomes:  # every genome on the same lanes (same keys) -> the same problems
        batch = np.repeat(g[None], lanes, axis=0)
        res = make_backend("numba", task, lanes, threads=1).run(batch, seed=seed, record=True)
        out.append(per_problem_returns(res.rewards, res.firsts, n_problems, steps))
    return np.stack(out)  # (genomes, lanes, problems)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--lanes", type=int, default=64)
    ap.add_argument("--problems", type=int, default=10)
    ap.add_argument("--top", type=int, default=16)
    ap.add_argument("--env-kwargs", default="{}", help="JSON overriding the run's (e.g. dim)")
    a = ap.parse_args()
    run = Path(a.run)
    cfg = from_dict(load_toml(run / "config.toml"))
    cfg.env_kwargs = {**cfg.env_kwargs, **json.loads(a.env_kwargs)}
    params = optimizers.env_params(**cfg.env_kwargs)
    arrays, _ = load_checkpoint(run / "pool.npz")
    fit = arrays["pool_fitness"]
    order = np.argsort(-np.where(np.isfinite(fit), fit, -np.inf))[: a.top]
    best = arrays["pool_genomes"][order]
    task = make_task(cfg)
    founders = task.layout.init(np.random.default_rng(999), a.top, cfg.init_std)

    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    K, f = params["steps_per_problem"], params["loss_floor"]
    probs = optimizers.problems(a.seed, a.lanes, episodes=a.problems, **cfg.env_kwargs)
    result = {
        "run": str(run),
        "env_kwargs": params,
        "pool_fitness_first": {k: rows[0][k] for k in ("pool_fitness_median", "pool_fitness_max")},
        "pool_fitness_last": {k: rows[-1][k] for k in ("pool_fitness_median", "pool_fitness_max")},
        "env_steps": rows[-1]["env_steps"],
    }
    fme = run_genomes(cfg, params, best, a.lanes, a.problems, a.seed)
    rnd = run_genomes(cfg, params, founders, a.lanes, a.problems, a.seed)
    result["fme_top16"] = {
        "mean_return": float(fme.mean()),
        "per_genome_mean": [round(float(x), 3) for x in fme.mean(axis=(1, 2))],
        "by_problem_index": [round(float(x), 3) for x in fme.mean(axis=(0, 1))],
        "recorded_fitness": [round(float(x), 3) for x in fit[order]],
    }
    result["random_founders"] = {"mean_return": float(rnd.mean())}
    # the genome with the highest RECORDED fitness (chosen without looking at these problems)
    fme_best = fme[0].reshape(-1)  # lane-major, like `probs`
    result["fme_top1_mean_return"] = float(fme_best.mean())
    for name, method, lr in (
        ("adam_tuned", "adam", None),
        ("adam_1e-3", "adam", optimizers.DEFAULT_ADAM_LR),
        ("sgd_tuned", "sgd", None),
    ):
        if lr is None:
            lr, _ = optimizers.tune_lr(method, **cfg.env_kwargs)
        ev = optimizers.evaluate(method, lr, probs, K, f)
        lam = ev.losses[:, -1]
        result[name] = {
            "lr": lr,
            "mean_return": ev.mean_return,
            "median_final_over_initial": float(np.median(lam / ev.losses[:, 0])),
            "share_where_top1_fme_wins": float(np.mean(fme_best > ev.returns)),
            # final loss of the top-1 FME genome over this optimizer's, per problem (the
            # returns share L_0, so the ratio is exp of their difference, floor aside)
            "median_final_loss_ratio_top1_fme_over_this": float(
                np.median(np.exp(ev.returns - fme_best))
            ),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
