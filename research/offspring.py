"""Offspring probe for issue 13: what does one lifetime of self-modification give selection to
work with, next to the Gaussian mutation that lets the same pool machinery solve CartPole?

    NUMBA_NUM_THREADS=1 python research/offspring.py --seeds 100 101 102 103 104 \
        --steps 10e6 --out research/results/offspring.jsonl

For each seed: FME with the from-one recipe runs --steps env steps from ONE founder; then
--parents members (half the best recorded, half at random) each get two sets of --kids
children: ``selfmod`` = the parent's genome after one lifetime (what FME inserts: B lanes
running the parent, different env, action and noise-input draws per lane), ``gauss`` = parent
+ sigma * N(0, I) (what the diagnostic FME with --sigma inserts, before its lifetime).
Parents and every child are then re-evaluated the same way (fresh lifetimes on probe seeds,
self-modifying as FME runs them, whole-lifetime fitness, --lanes lifetimes each child, twice as
many each parent). Per parent and kind: the share of children better than the parent by more
than 2 standard errors of the difference, the share worse by as much, the mean difference, the
spread of the children's fitness and that spread beyond evaluation noise (``true_sd``); and the children's spread in genome space on the
action (y) rows of the first layer vs the rest, relative to the parent's norm there.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from srml import rng
from srml.backends import make_backend
from srml.config import Config
from srml.fme import FME

STREAM = 0x0FF5  # probe seeds, never used in training


def evaluate(backend, genomes: np.ndarray, lanes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of each genome's fitness over ``lanes`` fresh lifetimes."""
    n, b = len(genomes), backend.batch
    f = np.zeros((n, lanes))
    per_run = b // lanes
    for c in range(0, n, per_run):
        idx = np.arange(c, min(c + per_run, n))
        g = np.repeat(genomes[idx], lanes, axis=0)
        pad = b - len(g)
        g = np.concatenate([g, np.repeat(g[:1], pad, axis=0)]) if pad else g
        res = backend.run(g, seed + c)
        fit = np.where(np.isfinite(res.fitness), res.fitness, np.nan)[: len(idx) * lanes]
        f[idx] = fit.reshape(len(idx), lanes)
    return np.nanmean(f, 1), np.nanstd(f, 1) / np.sqrt(lanes)


def y_mask(fme: FME) -> np.ndarray:
    """True on the genome entries of the first layer's action (y) rows."""
    lay = fme.task.layout
    L = lay.layers[0]
    m = np.zeros(lay.size, bool)
    v = m[L.offset : L.offset + L.size].reshape(L.heads, L.rows, L.head_in)
    v[:, : L.head_out, :] = True
    return m


def spread(kids: np.ndarray, parent: np.ndarray, mask: np.ndarray) -> float:
    """Mean distance of the children from their mean on ``mask`` / the parent's norm there."""
    k = kids[:, mask].astype(np.float64)
    return float(
        np.linalg.norm(k - k.mean(0), axis=1).mean() / max(np.linalg.norm(parent[mask]), 1e-30)
    )


def probe(cfg: Config, a) -> dict:
    fme = FME(cfg)
    while not fme.finished:
        fme.step()
    ev = make_backend(cfg.backend, replace(fme.task, fitness_start=0), cfg.batch, threads=1)
    pool = fme.pool
    n = pool.size
    fit = np.where(np.isfinite(pool.fitness[:n]), pool.fitness[:n], -np.inf)
    r = np.random.default_rng([cfg.seed, STREAM])
    half = a.parents // 2
    best = np.argsort(-fit, kind="stable")[:half]
    rest = r.choice(np.setdiff1d(np.arange(n), best), size=a.parents - half, replace=False)
    rows = np.concatenate([best, rest])
    ymask = y_mask(fme)
    out = []
    for j, row in enumerate(rows):
        p = pool.genomes[row].copy()
        s = rng.derive_seed(cfg.seed, STREAM, j)
        p_fit, p_se = evaluate(ev, p[None], a.lanes * 2, s)
        # what FME inserts: the parent after one lifetime, one child per lane
        made = ev.run(np.repeat(p[None], cfg.batch, axis=0), s + 1).genomes[: a.kids]
        made = np.asarray(made, np.float32)
        noise = r.standard_normal((a.kids, p.size), dtype=np.float32)
        gauss = p[None] + np.float32(a.sigma) * noise
        row_out = {"row": int(row), "best": bool(j < half), "recorded": float(fit[row]),
                   "parent": float(p_fit[0]), "parent_se": float(p_se[0])}  # fmt: skip
        for kind, kids in (("selfmod", made), ("gauss", gauss)):
            ok = np.isfinite(kids).all(1)
            kf, kse = evaluate(ev, kids[ok], a.lanes, s + 2)
            d = kf - p_fit[0]
            tol = 2 * np.sqrt(p_se[0] ** 2 + kse**2)  # a two-sample difference at ~2 sigma
            # the children's spread beyond their evaluation noise (0: all alike)
            true_var = np.nanvar(kf) - np.nanmean(kse**2) if len(d) > 1 else np.nan
            row_out[kind] = {
                "better": float(np.mean(d > tol)) if len(d) else None,
                "worse": float(np.mean(d < -tol)) if len(d) else None,
                "mean_diff": float(np.nanmean(d)) if len(d) else None,
                "fitness_sd": float(np.nanstd(kf)) if len(d) else None,
                "true_sd": float(np.sqrt(max(true_var, 0.0))) if len(d) > 1 else None,
                "noise_se": float(np.nanmean(kse)) if len(d) else None,
                "best_kid": float(np.nanmax(kf)) if len(d) else None,
                "spread_y": spread(kids[ok], p, ymask) if ok.sum() > 1 else None,
                "spread_rest": spread(kids[ok], p, ~ymask) if ok.sum() > 1 else None,
                "nonfinite": int((~ok).sum()),
            }
            if a.grandkids and ok.sum():  # does the best child's gain survive a generation?
                champ = kids[ok][int(np.nanargmax(kf))]
                c_fit, _ = evaluate(ev, champ[None], a.lanes * 2, s + 3)  # unbiased re-run
                if kind == "selfmod":
                    g2 = ev.run(np.repeat(champ[None], cfg.batch, axis=0), s + 4).genomes
                    g2 = np.asarray(g2, np.float32)[: a.kids]
                else:
                    g2 = champ[None] + np.float32(a.sigma) * r.standard_normal(
                        (a.kids, p.size), dtype=np.float32
                    )
                g2 = g2[np.isfinite(g2).all(1)]
                gf, _ = evaluate(ev, g2, a.lanes, s + 5) if len(g2) else (np.array([np.nan]), 0)
                row_out[kind] |= {
                    "champion_rerun": float(c_fit[0]),
                    "grandkids_mean": float(np.nanmean(gf)),
                    "grandkids_best": float(np.nanmax(gf)),
                }
        out.append(row_out)
    return {"pool_median": float(np.median(fit[np.isfinite(fit)])), "parents": out}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="recipe")
    ap.add_argument("--set", nargs="*", default=[], help="Config overrides key=value")
    ap.add_argument("--seeds", nargs="+", type=int, default=[100, 101, 102, 103, 104])
    ap.add_argument("--steps", type=float, default=10e6)
    ap.add_argument("--parents", type=int, default=16)
    ap.add_argument("--kids", type=int, default=32)
    ap.add_argument("--lanes", type=int, default=32, help="lifetimes per child (parents: twice)")
    ap.add_argument("--sigma", type=float, default=0.3)
    ap.add_argument(
        "--grandkids",
        action="store_true",
        help="also re-run each parent's best child and make its children the same way",
    )
    ap.add_argument("--out", default="research/results/offspring.jsonl")
    a = ap.parse_args(argv)
    from probe import parse_set  # research/probe.py, beside this file

    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    for seed in a.seeds:
        # noise_hold=1 as round 7 ran (before --noise-hold); --set noise_hold=0 for round 8's
        kw = dict(env="CartPole-v1", founders=1, total_steps=int(a.steps), seed=seed, threads=1,
                  progress=False, noise_hold=1)  # fmt: skip
        kw.update(parse_set(a.set))
        res = probe(Config(**kw), a)
        line = {"name": a.name, "seed": seed, "steps": int(a.steps), "set": a.set,
                "sigma": a.sigma, **res}  # fmt: skip
        with open(a.out, "a") as f:
            f.write(json.dumps(line) + "\n")
        for kind in ("selfmod", "gauss"):
            ps = res["parents"]
            b = np.mean([p[kind]["better"] for p in ps])
            w = np.mean([p[kind]["worse"] for p in ps])
            sy = np.median([p[kind]["spread_y"] for p in ps])
            sr = np.median([p[kind]["spread_rest"] for p in ps])
            md = np.mean([p[kind]["mean_diff"] for p in ps])
            tsd = np.median([p[kind]["true_sd"] for p in ps])
            print(f"{a.name} seed {seed} {kind}: better {b:.2f} worse {w:.2f} mean diff {md:.1f} "
                  f"true sd {tsd:.1f} "
                  f"spread y {sy:.3f} rest {sr:.3f} (pool median {res['pool_median']:.0f})",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
