"""Instruments: what a pool's state says about why FME does or does not improve.

Pure functions of arrays (genomes, founder ids, fitness), plus :func:`repeatability`,
which runs a backend. Each answers one question of issue 13:

- :func:`weight_change`: does self-modification still vary the weights? (mean relative
  change of a genome over one lifetime)
- :func:`diversity`: how different are the members? (mean pairwise distance of a sample,
  divided by their mean norm)
- :func:`lineages`: how many founder lineages are alive, and how many effectively?
- :func:`column_residual`: has a lineage left its founder's column space? (with one
  learning rate every descendant is W0 times a matrix)
- :func:`repeatability`: does a member's fitness describe the genome? (correlation of two
  fresh evaluations of the same members on new seeds)
"""

from __future__ import annotations

import numpy as np

from .srwm import Layout


def weight_change(before: np.ndarray, after: np.ndarray) -> float:
    """Mean over genomes of ||after - before|| / ||before|| (rows: genomes)."""
    b = np.asarray(before, np.float64)
    a = np.asarray(after, np.float64)
    ok = np.isfinite(a).all(1)
    if not ok.any():
        return float("nan")
    num = np.linalg.norm(a[ok] - b[ok], axis=1)
    den = np.maximum(np.linalg.norm(b[ok], axis=1), 1e-30)
    return float(np.mean(num / den))


def diversity(genomes: np.ndarray, rng: np.random.Generator, n: int = 64) -> float:
    """Mean pairwise Euclidean distance of n sampled members / their mean norm (0: clones)."""
    g = np.asarray(genomes, np.float64)
    g = g[np.isfinite(g).all(1)]
    if len(g) < 2:
        return 0.0
    g = g[rng.choice(len(g), size=min(n, len(g)), replace=False)]
    sq = (g * g).sum(1)
    # differences, not g @ g.T: a BLAS call here spins its threads against numba's
    d2 = ((g[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    iu = np.triu_indices(len(g), 1)
    return float(np.sqrt(d2[iu]).mean() / max(np.sqrt(sq).mean(), 1e-30))


def lineages(founder: np.ndarray) -> tuple[int, float]:
    """(founder lineages alive, effective number exp(entropy of their shares))."""
    _, counts = np.unique(np.asarray(founder), return_counts=True)
    p = counts / counts.sum()
    return int(len(counts)), float(np.exp(-(p * np.log(p)).sum()))


def column_residual(genomes: np.ndarray, founders: np.ndarray, layout: Layout) -> float:
    """Mean over members of ||(I - Q Q^T) W|| / ||W||, Q an orthonormal basis of the columns
    of the member's founder W0, per layer and head (norms summed over them). ~1e-6 (float
    rounding) means the member is its founder times a matrix; founders among themselves
    give O(1)."""
    g = np.asarray(genomes, np.float32)
    f = np.asarray(founders, np.float32)
    num = den = 0.0
    for gi, fi in zip(layout.views(g), layout.views(f), strict=True):  # (n, H, rows, di)
        W = gi.reshape(-1, *gi.shape[2:]).astype(np.float64)  # every member x head at once
        F = fi.reshape(-1, *fi.shape[2:]).astype(np.float64)
        ok = np.isfinite(W).all((1, 2))
        W, F = W[ok], F[ok]
        if not len(W):
            continue
        q, _ = np.linalg.qr(F)
        resid = W - q @ (q.transpose(0, 2, 1) @ W)
        num += float((resid**2).sum())
        den += float((W**2).sum())
    return float(np.sqrt(num / max(den, 1e-300)))


def column_residuals(genomes, founders, layout) -> np.ndarray:
    """:func:`column_residual` of each member on its own."""
    return np.array(
        [column_residual(g[None], f[None], layout) for g, f in zip(genomes, founders, strict=True)]
    )


def weight_norm(genomes: np.ndarray) -> float:
    """Median Euclidean norm of the genomes (saturation: founders start near sqrt(G) std)."""
    g = np.asarray(genomes, np.float64)
    return float(np.median(np.linalg.norm(g, axis=1)))


def repeatability(backend, genomes: np.ndarray, seeds: tuple[int, int]) -> tuple[float, np.ndarray]:
    """Correlation of two fresh evaluations of the same genomes (one backend run per seed,
    genomes tiled to the backend's batch; each genome's fitness averaged over its lanes).
    Returns (correlation, (2, n) fitness). Nothing is written back."""
    g = np.asarray(genomes, np.float32)
    n, b = len(g), backend.batch
    chunks = -(-n // b)  # more genomes than lanes: several runs per seed
    fits = []
    for s in seeds:
        tot, cnt = np.zeros(n), np.zeros(n)
        for c in range(chunks):
            lanes = (c * b + np.arange(b)) % n
            res = backend.run(g[lanes], s + c)
            f = np.where(np.isfinite(res.fitness), res.fitness, 0.0)
            tot += np.bincount(lanes, weights=f, minlength=n)
            cnt += np.bincount(lanes, minlength=n)
        fits.append(tot / cnt)
    fits = np.array(fits)
    if fits[0].std() == 0 or fits[1].std() == 0:
        return float("nan"), fits
    return float(np.corrcoef(fits[0], fits[1])[0, 1]), fits


def sibling_spread(
    before: np.ndarray,
    after: np.ndarray,
    max_kids: int | None = None,
    parents: np.ndarray | None = None,
    max_groups: int | None = None,
    rng: np.random.Generator | None = None,
) -> float:
    """Heritable variation: mean pairwise distance between the children of the same parent
    (rows of ``before`` with the same ``parents`` id, or without ids identical rows, were run
    from one genome), divided by the parent's norm; nan when no genome was run twice. Compare
    with :func:`weight_change`: a change that every child makes alike is drift, not variation
    selection can use. ``max_kids`` per parent and ``max_groups`` parents (drawn with ``rng``)
    make it a cheaper estimate."""
    b = np.ascontiguousarray(before)
    if parents is not None:
        _, inverse = np.unique(np.asarray(parents), return_inverse=True)
    else:  # identical rows: one parent run several times
        ids: dict[bytes, int] = {}
        inverse = np.array([ids.setdefault(row.tobytes(), len(ids)) for row in b], dtype=np.int64)
    counts = np.bincount(inverse)
    twice = np.flatnonzero(counts >= 2)  # parents run more than once
    if max_groups is not None and len(twice) > max_groups:
        rng = rng if rng is not None else np.random.default_rng(0)
        twice = np.sort(rng.choice(twice, max_groups, replace=False))
    groups = [np.flatnonzero(inverse == k) for k in twice]
    out = []
    for rows in groups:
        kids = np.asarray(after[rows[:max_kids]], np.float64)
        if not np.isfinite(kids).all():
            continue
        d = np.sqrt(((kids[:, None] - kids[None]) ** 2).sum(-1))
        iu = np.triu_indices(len(kids), 1)
        out.append(d[iu].mean() / max(np.linalg.norm(b[rows[0]].astype(np.float64)), 1e-30))
    return float(np.mean(out)) if out else float("nan")


def batch_readings(before, after, parents=None, rng=None, n: int = 512) -> dict:
    """Log columns of one generation's batch, read off at most ``n`` lifetimes and 32 parents
    (drawn with ``rng``) so they cost milliseconds at any batch size: ``weight_change`` (mean
    relative change over the lifetime) and ``sibling_spread`` (how far apart the children of
    one parent ended up; ``parents``: the drawn members' ids, or None to group identical rows)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    rows = np.arange(len(before))
    if len(rows) > n:
        rows = np.sort(rng.choice(len(rows), n, replace=False))
    return {
        "weight_change": weight_change(before[rows], after[rows]),
        "sibling_spread": sibling_spread(
            before, after, max_kids=16, parents=parents, max_groups=32, rng=rng
        ),
    }


def pool_instruments(pool, founders: np.ndarray, layout: Layout, rng: np.random.Generator) -> dict:
    """Log columns read off a sample of 64 members (cheap enough for every generation):
    ``diversity``, ``weight_norm`` (their median norm) and ``column_residual`` of 8 of them
    whose founder is known (an island's immigrants carry no founder of this island)."""
    n = pool.size
    rows = rng.choice(n, size=min(64, n), replace=False)
    g = pool.genomes[rows]
    known = rows[pool.founder[rows] < len(founders)][:8]
    res = float("nan")
    if len(known):
        res = column_residual(pool.genomes[known], founders[pool.founder[known]], layout)
    return {"diversity": diversity(g, rng), "weight_norm": weight_norm(g), "column_residual": res}
