"""Held-out evaluation: genomes run on seeds never used in training, changing nothing.

Training rollouts use ``derive_seed(seed, generation)``; held-out ones use
``derive_seed(seed, EVAL_STREAM, k)`` (three parts), so the two never meet. A
method's recorded fitness is the score of the lifetime that produced a genome
(luck included); these functions measure the stored genomes afresh.
"""

from __future__ import annotations

import numpy as np

from . import rng
from .backends import Rollout
from .errors import SrmlError

EVAL_STREAM = 0x5EED_E7A1


def heldout_seed(seed: int, k: int, chunk: int = 0) -> int:
    """Seed of held-out evaluation number ``k`` (chunk: further batches of the same one)."""
    if chunk == 0:
        return rng.derive_seed(seed, EVAL_STREAM, k)
    return rng.derive_seed(seed, EVAL_STREAM, k, chunk)


def run_tiled(backend, genomes: np.ndarray, n_lanes: int, seed: int, k: int, record=False):
    """Run each genome on ``n_lanes`` lanes in total (genome i on lanes i, i+n, ...), in batches
    of the backend's size on held-out seeds; returns (lane -> genome index, fitness, rollouts)."""
    genomes = np.asarray(genomes, np.float32)
    if genomes.ndim != 2 or len(genomes) == 0:
        raise SrmlError(f"nothing to evaluate (genomes of shape {genomes.shape})")
    b = backend.batch
    chunks = max(1, -(-n_lanes // b))
    owner = np.arange(chunks * b) % len(genomes)
    fitness, rollouts = [], []
    for c in range(chunks):
        r = backend.run(genomes[owner[c * b : (c + 1) * b]], heldout_seed(seed, k, c), record)
        fitness.append(r.fitness)
        rollouts.append(r)
    return owner[:n_lanes], np.concatenate(fitness)[:n_lanes], rollouts


def evaluate_deployed(method, k: int = 0, record: bool = False) -> Rollout:
    """Run ``method.candidates()`` (tiled over one batch) on held-out evaluation ``k``.

    Nothing is counted in the method's budget and nothing in it changes: the rewritten
    genomes are thrown away. Every method evaluated with the same ``cfg.seed`` and ``k``
    meets the same environment randomness."""
    cands = np.asarray(method.candidates(), np.float32)
    if cands.ndim != 2 or len(cands) == 0:
        raise SrmlError(f"{method.name}: nothing to evaluate yet (candidates {cands.shape})")
    b = method.cfg.batch
    return method.backend.run(
        cands[np.arange(b) % len(cands)], heldout_seed(method.cfg.seed, k), record
    )


def reevaluate(method, genomes: np.ndarray, lifetimes: int, k: int = 1) -> dict:
    """Each genome for ``lifetimes`` fresh lifetimes on held-out seeds: mean fitness and a 95%
    interval (normal approximation) per genome. ``k`` picks the held-out seeds (0 is what
    :func:`evaluate_deployed` uses first)."""
    n = len(genomes)
    owner, f, _ = run_tiled(method.backend, genomes, n * lifetimes, method.cfg.seed, 1000 + k)
    mean, half, nonfinite = np.zeros(n), np.zeros(n), np.zeros(n, np.int64)
    for i in range(n):
        v = f[owner == i]
        ok = v[np.isfinite(v)]
        nonfinite[i] = len(v) - len(ok)
        mean[i] = ok.mean() if len(ok) and not nonfinite[i] else -np.inf
        half[i] = 1.96 * ok.std(ddof=1) / np.sqrt(len(ok)) if len(ok) > 1 else np.nan
    return {"mean": mean, "ci95": half, "lifetimes": lifetimes, "nonfinite": nonfinite}


def repeatability(method, genomes: np.ndarray, k: int = 2) -> float:
    """Correlation across genomes of two independent fresh evaluations (one lifetime each):
    how much of a single lifetime's fitness belongs to the genome rather than to luck."""
    a = reevaluate(method, genomes, 1, k)["mean"]
    b = reevaluate(method, genomes, 1, k + 1)["mean"]
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])
