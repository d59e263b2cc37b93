"""The pool: a preallocated struct of arrays of genomes and what is known of them.

Selection draws genomes with a probability that rises with their fitness
(every rule in :data:`SELECTIONS` is monotonic in fitness). Eviction forgets
the least recently used genome: being drawn counts as a use, so genomes that
keep earning execution time stay, and the rest fade out.

Non-finite fitness (NaN, +inf, -inf: a genome whose weights or rewards blew
up) gets zero weight as long as any finite fitness exists, so it can never be
preferred over a finite one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import SrmlError
from .fitness import stats, top_k

HUGE = 1e150
"""Fitness beyond this in magnitude is scaled down before weighting: differences, spreads and
sums of values near float64's limit overflow (1e306 - -1e306 is inf) and gave NaN
probabilities. Every rule is invariant to a common positive scale, so the probabilities stay
the same; below it nothing changes, bit for bit."""


def _finite_or_uniform(fitness: np.ndarray, weights_of_finite) -> np.ndarray:
    ok = np.isfinite(fitness)
    if not ok.any():
        return np.ones_like(fitness)
    f = fitness[ok]
    top = np.abs(f).max()
    if top > HUGE:
        f = f / top
    w = np.zeros_like(fitness)
    w[ok] = weights_of_finite(f)
    return w


def rank_power(r, temperature: float):
    """Mean ranks r turned into weights (r / max r) ** (1 / T); T = 1 leaves r as it is (so
    draws stay bit-identical to linear ranking)."""
    return r if temperature == 1.0 else (r / r.max()) ** (1.0 / temperature)


def proportional(fitness: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Weight = fitness - pool minimum + 1% of the pool's range (the worst keeps a little)."""

    def w(f):
        lo, span = f.min(), f.max() - f.min()
        return f - lo + (0.01 * span if span > 0 else 1.0)

    return _finite_or_uniform(fitness, w)


def rank(fitness: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Weight = rank (1 for the worst ... n for the best); ties share their mean rank. With
    temperature T != 1 the weight is (rank / n) ** (1 / T): T = 0.25 gives the best member
    about 5x the mean weight instead of 2x (selection pressure without fitness scale)."""

    def w(f):
        order = np.argsort(f, kind="stable")
        r = np.empty(len(f))
        r[order] = np.arange(1, len(f) + 1)
        # average ranks over ties so equal fitness means equal probability
        _, inv = np.unique(f, return_inverse=True)
        return rank_power(np.bincount(inv, weights=r)[inv] / np.bincount(inv)[inv], temperature)

    return _finite_or_uniform(fitness, w)


def softmax(fitness: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Weight = exp(fitness / (temperature * std of pool fitness)): scale-free across envs."""

    def w(f):
        scale = temperature * (f.std() if f.std() > 0 else 1.0)
        return np.exp((f - f.max()) / scale)

    return _finite_or_uniform(fitness, w)


CREDITS = ("none", "mean", "lineage")

SELECTIONS: dict[str, Callable[..., np.ndarray]] = {
    "proportional": proportional,
    "rank": rank,
    "softmax": softmax,
}


class Pool:
    """Preallocated pool of at most ``capacity`` genomes of ``genome_size`` floats.

    Row i of every array describes one member; only the first ``size`` rows are in use.
    ``ids`` are unique over a run; ``parent`` and ``founder`` hold ids (-1: none),
    ``born`` the generation a member was inserted, ``last_used`` the LRU clock.
    """

    def __init__(self, capacity: int, genome_size: int):
        if capacity < 1:
            raise SrmlError(f"pool size must be >= 1, got {capacity}")
        self.capacity, self.size, self.clock, self.next_id = capacity, 0, 0, 0
        self.genomes = np.zeros((capacity, genome_size), np.float32)
        self.fitness = np.full(capacity, np.nan, np.float64)
        self.last_used = np.zeros(capacity, np.int64)
        self.born = np.zeros(capacity, np.int64)
        self.ids = np.full(capacity, -1, np.int64)
        self.parent = np.full(capacity, -1, np.int64)
        self.founder = np.full(capacity, -1, np.int64)
        self.runs = np.zeros(capacity, np.int64)  # fitness observations in a member's record

    ARRAYS = ("genomes", "fitness", "last_used", "born", "ids", "parent", "founder", "runs")
    OPTIONAL = {"runs": 1}  # arrays older checkpoints lack, with the value they stand for

    def probabilities(self, rule: str = "proportional", temperature: float = 1.0) -> np.ndarray:
        if rule not in SELECTIONS:
            raise SrmlError(f"unknown selection {rule!r}; choose from {sorted(SELECTIONS)}")
        w = SELECTIONS[rule](self.fitness[: self.size], temperature)
        return w / w.sum()

    def sample(self, rng: np.random.Generator, k: int, rule="proportional", temperature=1.0):
        """Draw k member indices (with replacement) and mark them used."""
        if self.size == 0:
            raise SrmlError("cannot sample from an empty pool")
        idx = rng.choice(self.size, size=k, p=self.probabilities(rule, temperature))
        self.clock += 1
        self.last_used[idx] = self.clock
        return idx

    def credit(self, rows: np.ndarray, fitness: np.ndarray) -> None:
        """Lineage credit: fold the fitness a run of member ``rows[j]`` earned into that
        member's record, which becomes the mean over its own first record and every run it
        was drawn for (a member drawn twice in a batch gets both). Non-finite results are
        skipped. Call before inserting the children (which may evict)."""
        fitness = np.asarray(fitness, np.float64)
        ok = np.isfinite(fitness) & np.isfinite(self.fitness[rows])
        rows, fitness = np.asarray(rows)[ok], fitness[ok]
        # sums of values near float64's limit overflow (a mean of 1e306 and 1e306 became inf,
        # then the worst record); scaled by the largest magnitude they do not. Below HUGE the
        # scale is 1.0: nothing changes, bit for bit
        top = max(np.abs(fitness).max(initial=0.0), np.abs(self.fitness[rows]).max(initial=0.0))
        scale = top if top > HUGE else 1.0
        total = np.zeros(self.size)
        count = np.zeros(self.size, np.int64)
        np.add.at(total, rows, fitness / scale)
        np.add.at(count, rows, 1)
        hit = np.flatnonzero(count)
        n = self.runs[hit]
        mean = (self.fitness[hit] / scale * n + total[hit]) / (n + count[hit])
        self.fitness[hit] = mean * scale
        self.runs[hit] = n + count[hit]

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Pool rows of member ids (-1 where the member is gone)."""
        ids = np.asarray(ids, np.int64)
        live = self.ids[: self.size]
        order = np.argsort(live, kind="stable")
        pos = np.minimum(np.searchsorted(live[order], ids), max(self.size - 1, 0))
        found = (self.size > 0) & (live[order][pos] == ids) & (ids >= 0)
        return np.where(found, order[pos], -1)

    def insert(self, genomes, fitness, parent=None, founder=None, born: int = 0) -> np.ndarray:
        """Add genomes; when full, overwrite the least recently used members. Returns rows."""
        k = len(genomes)
        if k > self.capacity:
            raise SrmlError(f"cannot insert {k} genomes into a pool of {self.capacity}")
        free = min(k, self.capacity - self.size)
        rows = np.arange(self.size, self.size + free)
        if free < k:  # evict the k - free least recently used
            lru = np.argsort(self.last_used[: self.size], kind="stable")[: k - free]
            rows = np.concatenate([rows, lru])
        self.size += free
        self.clock += 1
        new_ids = np.arange(self.next_id, self.next_id + k)
        self.next_id += k
        self.genomes[rows] = genomes
        self.fitness[rows] = fitness
        self.last_used[rows] = self.clock
        self.born[rows] = born
        self.ids[rows] = new_ids
        self.parent[rows] = -1 if parent is None else parent
        self.founder[rows] = new_ids if founder is None else founder
        self.runs[rows] = 1
        return rows

    def state(self) -> dict[str, np.ndarray]:
        """The members in use and counters, for a checkpoint."""
        out = {name: getattr(self, name)[: self.size].copy() for name in self.ARRAYS}
        out["counters"] = np.array([self.capacity, self.size, self.clock, self.next_id], np.int64)
        return out

    DTYPES = {"genomes": np.float32, "fitness": np.float64}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], genome_size: int) -> Pool:
        """A pool from :meth:`state`'s arrays, each checked for shape and dtype first (a crafted
        checkpoint must not reach a compiled kernel)."""
        c = state.get("counters")
        if not isinstance(c, np.ndarray) or c.shape != (4,) or c.dtype.kind not in "iu":
            raise SrmlError("pool counters missing or malformed")
        capacity, size, clock, next_id = (int(v) for v in c)
        if not (1 <= capacity and 0 <= size <= capacity and clock >= 0 and next_id >= size):
            raise SrmlError(f"pool counters out of range: {c.tolist()}")
        for name in cls.ARRAYS:
            a = state.get(name)
            if a is None and name in cls.OPTIONAL:
                continue  # an older checkpoint: filled with its stand-in value below
            want = (size, genome_size) if name == "genomes" else (size,)
            kind = np.dtype(cls.DTYPES.get(name, np.int64))
            if not isinstance(a, np.ndarray) or a.shape != want or a.dtype != kind:
                got = (
                    "missing"
                    if a is None
                    else f"{getattr(a, 'dtype', '?')}{getattr(a, 'shape', '')}"
                )
                raise SrmlError(f"pool array {name!r} should be {kind}{want}, got {got}")
        pool = cls(capacity, genome_size)
        for name in cls.ARRAYS:
            getattr(pool, name)[:size] = state[name] if name in state else cls.OPTIONAL[name]
        pool.size, pool.clock, pool.next_id = size, clock, next_id
        return pool

    # --- what FME asks of a pool (srml.device_pool.DevicePool answers the same on a GPU) ----
    on_device = False

    def batch(self, genomes: np.ndarray) -> np.ndarray:
        """Host genomes (B, G) in the form the backend takes (here: as they are)."""
        return genomes

    def gather(self, rows) -> np.ndarray:
        """The members at ``rows`` as a batch (B, G)."""
        return self.genomes[rows]

    def members(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """(ids, founder ids) of the members at ``rows``."""
        return self.ids[rows], self.founder[rows]

    def perturb(self, genomes: np.ndarray, noise: np.ndarray) -> np.ndarray:
        return genomes + noise

    def host_fitness(self) -> np.ndarray:
        return self.fitness[: self.size]

    def lineage(self) -> tuple[np.ndarray, np.ndarray]:
        """Founders with descendants in the pool and how many members descend from each."""
        return np.unique(self.founder[: self.size], return_counts=True)

    def lineage_summary(self) -> tuple[int, float]:
        """(founder lineages alive, exp of the entropy of their shares)."""
        _, counts = self.lineage()
        p = counts / counts.sum()
        return int(len(counts)), float(np.exp(-(p * np.log(p)).sum()))

    def fitness_stats(self) -> dict[str, float]:
        return stats(self.fitness[: self.size])

    def take(self, rows) -> np.ndarray:
        """A copy of the given members' genomes, ``(len(rows), G)``."""
        return self.genomes[rows].copy()

    def best(self, k: int) -> np.ndarray:
        """Rows of the k members with the highest recorded fitness, best first."""
        return top_k(self.fitness[: self.size], k)
