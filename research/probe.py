"""Screening probe for issue 13: FME from ONE founder, variants x seeds, with instruments.

    NUMBA_NUM_THREADS=1 python research/probe.py --name tanh --set update=tanh \
        --seeds 100 101 102 103 104 --steps 30e6 --out research/results/screen.jsonl

Each (variant, seed) appends one JSON line: the config overrides, a curve of instrument
readings every --every env steps (pool median/mean/max, batch mean, relative weight change
of the batch, diversity, median genome norm, column-space residual vs the founder,
repeatability of two fresh evaluations and correlation of recorded vs re-run fitness of a
sample), and the final held-out fitness of the 16 members with the highest recorded
fitness (tiled over the batch, one run on a held-out seed, as srml.evaluation.evaluate_deployed).
Everything is seeded; the same command gives the same lines.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from srml import instruments, rng
from srml.backends import make_backend
from srml.config import Config
from srml.fme import FME

EVAL_STREAM = 0x5EED_E7A1  # as srml.evaluation: held-out seeds
PROBE_STREAM = 0x9B0B  # repeatability seeds (never used by training)


def parse_set(items):
    out = {}
    for it in items or []:
        k, _, v = it.partition("=")
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


def measure(fme: FME, before, after, probe_rng, k: int) -> dict:
    pool = fme.pool
    n = pool.size
    fit = pool.fitness[:n]
    g = pool.genomes[:n]
    row = {
        "env_steps": fme.env_steps,
        "generation": fme.generation,
        "pool_median": float(np.median(fit[np.isfinite(fit)])) if np.isfinite(fit).any() else None,
        "pool_mean": float(np.mean(fit[np.isfinite(fit)])) if np.isfinite(fit).any() else None,
        "pool_max": float(np.max(fit[np.isfinite(fit)])) if np.isfinite(fit).any() else None,
        "weight_change": instruments.weight_change(before, after),
        "sibling_spread": instruments.sibling_spread(before, after),
        "diversity": instruments.diversity(g, probe_rng),
        "norm": instruments.weight_norm(g),
    }
    alive, eff = instruments.lineages(pool.founder[:n])
    row["lineages"], row["lineages_eff"] = alive, eff
    sample = probe_rng.choice(n, size=min(16, n), replace=False)
    row["column_residual"] = instruments.column_residual(
        g[sample], fme.founders[pool.founder[sample]], fme.task.layout
    )
    # repeatability: 128 random members, 2 lanes each per evaluation, two fresh seeds
    members = probe_rng.choice(n, size=min(128, n), replace=False)
    seeds = (
        rng.derive_seed(fme.cfg.seed, PROBE_STREAM, k, 0),
        rng.derive_seed(fme.cfg.seed, PROBE_STREAM, k, 1),
    )
    r, fits = instruments.repeatability(fme.evaluator, g[members], seeds)
    rec = fit[members]
    ok = np.isfinite(rec)
    row["repeatability"] = r
    fresh = fits.mean(0)
    row["recorded_vs_rerun"] = (
        float(np.corrcoef(rec[ok], fresh[ok])[0, 1])
        if ok.sum() > 2 and rec[ok].std() > 0 and fresh[ok].std() > 0
        else None
    )
    row["rerun_mean"] = float(fresh.mean())
    row["recorded_mean_sample"] = float(rec[ok].mean()) if ok.any() else None
    return row


def held_out(fme: FME, top: int = 16) -> float:
    pool = fme.pool
    fit = pool.fitness[: pool.size]
    order = np.argsort(np.where(np.isfinite(fit), -fit, np.inf), kind="stable")[:top]
    g = pool.genomes[order]
    b = fme.cfg.batch
    res = fme.evaluator.run(g[np.arange(b) % len(g)], rng.derive_seed(fme.cfg.seed, EVAL_STREAM, 0))
    f = res.fitness[np.isfinite(res.fitness)]
    return float(f.mean()) if len(f) else float("nan")


def run_one(cfg: Config, every: float, save: str = "") -> dict:
    fme = FME(cfg)
    # evaluations count fitness over the whole lifetime, whatever the training fitness is
    fme.evaluator = make_backend(
        cfg.backend, replace(fme.task, fitness_start=0), cfg.batch, threads=1
    )
    captured = {}
    probe_rng = np.random.default_rng([cfg.seed, PROBE_STREAM])
    curve, next_at, k, t0 = [], every, 0, time.perf_counter()
    solved_at = None
    while not fme.finished:
        genomes = fme.ask()  # one generation, the batch kept before and after its lifetime
        res = fme.evaluate(genomes)
        captured["in"], captured["out"] = np.array(genomes, copy=True), res.genomes
        fme.tell(res)
        fit = fme.pool.fitness[: fme.pool.size]
        med = np.median(fit[np.isfinite(fit)]) if np.isfinite(fit).any() else -np.inf
        if solved_at is None and med >= cfg_threshold(cfg):
            solved_at = fme.env_steps
        if fme.env_steps >= next_at or fme.finished:
            curve.append(measure(fme, captured["in"], captured["out"], probe_rng, k))
            k += 1
            next_at += every
    final = curve[-1]
    if save:
        n = fme.pool.size
        np.savez_compressed(save, genomes=fme.pool.genomes[:n], fitness=fme.pool.fitness[:n])
    return {
        "held_out": held_out(fme),
        "pool_median": final["pool_median"],
        "solved_median_at": solved_at,
        "wall_s": round(time.perf_counter() - t0, 1),
        "curve": curve,
    }


def own_credit():
    """Patch Pool.credit (this process only): the inherited first record gets weight 0."""
    from srml.pool import Pool

    def credit(self, rows, fitness):
        fitness = np.asarray(fitness, np.float64)
        ok = np.isfinite(fitness) & np.isfinite(self.fitness[rows])
        rows, fitness = np.asarray(rows)[ok], fitness[ok]
        total = np.zeros(self.size)
        count = np.zeros(self.size, np.int64)
        np.add.at(total, rows, fitness)
        np.add.at(count, rows, 1)
        hit = np.flatnonzero(count)
        own = self.runs[hit] - 1  # runs counts the inherited record as one
        self.fitness[hit] = (self.fitness[hit] * own + total[hit]) / (own + count[hit])
        self.runs[hit] = self.runs[hit] + count[hit]

    Pool.credit = credit


THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}


def cfg_threshold(cfg: Config) -> float:
    return THRESHOLDS.get(cfg.env, np.inf)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--set", nargs="*", default=[], help="Config overrides key=value")
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--seeds", nargs="+", type=int, default=[100, 101, 102, 103, 104])
    ap.add_argument("--steps", type=float, default=30e6)
    ap.add_argument("--every", type=float, default=5e6)
    ap.add_argument("--out", default="research/results/screen.jsonl")
    ap.add_argument("--save", default="", help="directory for each seed's final pool (npz)")
    ap.add_argument(
        "--own-credit", action="store_true",
        help="research only: a drawn member's record becomes the mean of its OWN runs (the "
        "record inherited from the run that made it is dropped at its first own run); needs "
        "credit=mean or lineage",
    )  # fmt: skip
    a = ap.parse_args(argv)
    if a.own_credit:
        own_credit()
    over = parse_set(a.set)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    for seed in a.seeds:
        # noise_hold=1: rounds 1-7 drew the noise inputs afresh every step (before --noise-hold
        # existed); round 8 sets noise_hold=0 explicitly
        base = dict(env=a.env, founders=1, total_steps=int(a.steps), seed=seed, threads=1,
                    progress=False, noise_hold=1)  # fmt: skip
        base.update(over)
        cfg = Config(**base)
        save = ""
        if a.save:
            Path(a.save).mkdir(parents=True, exist_ok=True)
            save = str(Path(a.save) / f"{a.name}-{a.env}-{seed}.npz")
        r = run_one(cfg, a.every, save)
        line = {"name": a.name, "env": a.env, "seed": seed, "steps": int(a.steps), "set": over, **r}
        th = cfg_threshold(cfg)
        line["success"] = bool(
            r["pool_median"] is not None and r["pool_median"] >= th and r["held_out"] >= th
        )
        with open(a.out, "a") as f:
            f.write(json.dumps(line) + "\n")
        c = r["curve"][-1]
        print(
            f"{a.name} seed {seed}: median {r['pool_median']:.1f} held-out {r['held_out']:.1f} "
            f"solved@{r['solved_median_at']} wchg {c['weight_change']:.3g} div {c['diversity']:.3g} "
            f"sib {c['sibling_spread']:.3g} norm {c['norm']:.3g} colres {c['column_residual']:.3g} rep {c['repeatability']:.2f} "
            f"rec~rerun {c['recorded_vs_rerun']} ({r['wall_s']}s)",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
