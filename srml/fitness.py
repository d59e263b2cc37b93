"""Fitness helpers every method, the pool and the run loop share.

Fitness is maximized. A non-finite fitness (a genome whose weights or rewards
blew up) ranks below every finite one, everywhere: :func:`ranked` is the one
place that says so.
"""

from __future__ import annotations

import numpy as np

STATS = ("min", "q10", "q25", "median", "q75", "q90", "mean", "max")


def ranked(fitness) -> np.ndarray:
    """Fitness as float64 with every non-finite value replaced by -inf (ranks lowest)."""
    f = np.asarray(fitness, np.float64)
    return np.where(np.isfinite(f), f, -np.inf)


def top_k(fitness, k: int) -> np.ndarray:
    """Indices of the k highest fitness values, best first; ties keep the lower index first."""
    return np.argsort(-ranked(fitness), kind="stable")[:k]


def stats(fitness) -> dict[str, float]:
    """min, quantiles, mean and max over the finite values (NaN where there are none)."""
    f = _finite(fitness)
    if len(f) == 0:
        return dict.fromkeys(STATS, float("nan"))
    q = np.quantile(f, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {k: float(v) for k, v in zip(STATS, [f.min(), *q, f.mean(), f.max()], strict=True)}


def _finite(fitness) -> np.ndarray:
    """The finite values, in order, as contiguous float64: the array itself when all are
    finite (the common case; no masked copy of a million values per log row), the same
    values and order either way, so the same sums."""
    f = np.ascontiguousarray(fitness, np.float64)
    ok = np.isfinite(f)
    return f if ok.all() else f[ok]


def finite_mean(fitness) -> float:
    f = _finite(fitness)
    return float(f.mean()) if len(f) else float("nan")


def finite_max(fitness) -> float:
    f = _finite(fitness)
    return float(f.max()) if len(f) else float("nan")
