"""The pool on the device (FME with ``--backend cuda``): :class:`srml.pool.Pool`'s rules, with
every array in device memory (CuPy; numpy under numba's CUDA simulator).

Genomes are kept ``(G, N)`` (one column per member), so a drawn batch is a column gather that
lands in the cuda kernels' ``(G, B)`` layout and goes back in with a column scatter: the batch
never visits the host between generations. Fitness, the LRU clock, birth, ids, parents and
founders are device arrays too; selection (all three rules), insertion and LRU eviction run
on the device.

Same draws as the CPU pool: :meth:`sample` takes its uniforms from the run's numpy Generator
with exactly the call ``Generator.choice(n, k, p=p)`` makes (``random(k)``; FME draws them
ahead, on a copy of the Generator, while the device runs: :meth:`srml.fme.FME._draw_ahead`),
and inverts the cumulative distribution as ``choice`` does (``cumsum``, normalized by its last
entry, ``searchsorted(side="right")``). Weights are computed by the formulas of :mod:`srml.pool`.
With numpy arrays (the simulator) every draw, eviction and checkpoint is bit-identical to the
CPU pool's (tests/test_gpu.py). On a GPU, CuPy's sums run in another order than numpy's, so
probabilities can differ in their last bits and a draw differs only when its uniform falls
within rounding of a boundary of the cumulative distribution (``benchmarks/gpu.py`` counts
such draws at realistic sizes); the rank rule and the LRU order are exact everywhere.

Host copies are made only when asked: :meth:`state` (checkpoints), the pool statistics of a
log row (13 numbers), :meth:`lineage`, :meth:`take`. The CPU pool's attribute
names (``genomes``, ``fitness``, ``ids`` ...) read as host snapshots in the CPU layout
(``genomes`` is ``(N, G)``): a full copy each time, for tools and tests, not for loops.
"""

from __future__ import annotations

import numpy as np

from .backends.base import DeviceBatch, on_device
from .errors import SrmlError
from .fitness import STATS, top_k
from .pool import HUGE, SELECTIONS, Pool, rank_power


def _host(xp, a) -> np.ndarray:
    return a if xp is np else xp.asnumpy(a)


def _unhuge(xp, f):
    """``f`` scaled as the CPU pool scales fitness beyond :data:`srml.pool.HUGE` (divided by
    its largest magnitude), without a host sync: below it the divisor is 1.0 (exact)."""
    top = xp.abs(f).max()
    return f / xp.where(top > HUGE, top, 1.0)


def _finite_or_uniform(xp, f, weights_of_finite):
    ok = xp.isfinite(f)
    if bool(ok.all()):  # the common case: no mask, no compaction (same values)
        return weights_of_finite(_unhuge(xp, f))
    if not bool(ok.any()):
        return xp.ones_like(f)
    w = xp.zeros_like(f)
    w[ok] = weights_of_finite(_unhuge(xp, f[ok]))
    return w


def proportional(xp, fitness, temperature: float = 1.0):
    """:func:`srml.pool.proportional` on device arrays."""

    def w(f):
        lo = f.min()
        span = f.max() - lo
        return f - lo + xp.where(span > 0, 0.01 * span, 1.0)

    return _finite_or_uniform(xp, fitness, w)


def rank(xp, fitness, temperature: float = 1.0):
    """:func:`srml.pool.rank` on device arrays: ties get their mean rank, computed as
    (#smaller + #not-greater + 1) / 2 from one sort (exactly the CPU pool's values)."""

    def w(f):
        s = xp.sort(f)
        lo = xp.searchsorted(s, f, side="left")
        hi = xp.searchsorted(s, f, side="right")
        return rank_power((lo + hi + 1).astype(np.float64) / 2.0, temperature)

    return _finite_or_uniform(xp, fitness, w)


def softmax(xp, fitness, temperature: float = 1.0):
    """:func:`srml.pool.softmax` on device arrays."""

    def w(f):
        sd = f.std()
        scale = temperature * xp.where(sd > 0, sd, 1.0)
        return xp.exp((f - f.max()) / scale)

    return _finite_or_uniform(xp, fitness, w)


QUANTILES = np.array([0.1, 0.25, 0.5, 0.75, 0.9])  # srml.fitness.stats' quantiles


def _quantile_neighbours(n: int):
    """For :data:`QUANTILES` of n sorted values: the positions below and above each and the
    interpolation weight, as ``np.quantile``'s default (linear) method computes them (-1 for
    the last value)."""
    vi = (n - 1) * QUANTILES
    lo = np.floor(vi)
    hi = lo + 1
    top = vi >= n - 1
    lo[top] = hi[top] = -1
    lo, hi = lo.astype(np.intp), hi.astype(np.intp)
    return lo, hi, vi - lo


def _lerp(a, b, t):
    """``np.quantile``'s interpolation between neighbours a and b, operation for operation."""
    diff = b - a
    out = a + diff * t
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    return out


DEVICE_SELECTIONS = {"proportional": proportional, "rank": rank, "softmax": softmax}
assert set(DEVICE_SELECTIONS) == set(SELECTIONS)


class DevicePool:
    """A pool of at most ``capacity`` genomes of ``genome_size`` floats in device memory
    (``xp``: cupy, or numpy under the simulator). Same members, counters, rules and
    checkpoint format as :class:`srml.pool.Pool` (see the module docstring)."""

    on_device = True
    ARRAYS = Pool.ARRAYS

    def __init__(self, capacity: int, genome_size: int, xp):
        if capacity < 1:
            raise SrmlError(f"pool size must be >= 1, got {capacity}")
        self.xp, self.genome_size = xp, genome_size
        self.capacity, self.size, self.clock, self.next_id = capacity, 0, 0, 0
        self.d_genomes = xp.zeros((genome_size, capacity), np.float32)  # (G, N)
        self.d_fitness = xp.full(capacity, np.nan, np.float64)
        self.d_last_used = xp.zeros(capacity, np.int64)
        self.d_born = xp.zeros(capacity, np.int64)
        self.d_ids = xp.full(capacity, -1, np.int64)
        self.d_parent = xp.full(capacity, -1, np.int64)
        self.d_founder = xp.full(capacity, -1, np.int64)
        self.d_runs = xp.zeros(capacity, np.int64)  # the CPU pool's record counts (credit)

    # --- selection, insertion, eviction (on the device) ---------------------------------------
    def weights(self, rule: str = "proportional", temperature: float = 1.0):
        if rule not in DEVICE_SELECTIONS:
            raise SrmlError(f"unknown selection {rule!r}; choose from {sorted(SELECTIONS)}")
        return DEVICE_SELECTIONS[rule](self.xp, self.d_fitness[: self.size], temperature)

    def probabilities(self, rule: str = "proportional", temperature: float = 1.0):
        w = self.weights(rule, temperature)
        return w / w.sum()

    def sample(self, rng: np.random.Generator, k: int, rule="proportional", temperature=1.0,
               u=None):  # fmt: skip
        """Draw k member indices (device array, with replacement) and mark them used; draws
        ``rng.random(k)`` exactly as the CPU pool's ``rng.choice`` does (or uses ``u``, those
        k uniforms drawn ahead by the caller)."""
        if self.size == 0:
            raise SrmlError("cannot sample from an empty pool")
        xp = self.xp
        cdf = xp.cumsum(self.probabilities(rule, temperature))
        cdf /= cdf[-1]
        u = xp.asarray(rng.random(k) if u is None else u)
        idx = xp.searchsorted(cdf, u, side="right").astype(np.int64)
        self.clock += 1
        self.last_used_mark(idx)
        return idx

    def last_used_mark(self, idx) -> None:
        self.d_last_used[idx] = self.clock

    def gather(self, idx) -> DeviceBatch:
        """The members at device indices ``idx`` as a (G, k) batch."""
        return DeviceBatch(self.d_genomes[:, idx], self.xp)

    def insert(self, genomes, fitness, parent=None, founder=None, born: int = 0):
        """Add genomes (a DeviceBatch or a host ``(k, G)`` array); when full, overwrite the least
        recently used members (ties: lower row first, as the CPU pool's stable sort). Returns
        the rows (a device array)."""
        xp = self.xp
        k = len(genomes)
        if k > self.capacity:
            raise SrmlError(f"cannot insert {k} genomes into a pool of {self.capacity}")
        free = min(k, self.capacity - self.size)
        rows = xp.arange(self.size, self.size + free, dtype=np.int64)
        if free < k:  # evict the k - free least recently used, ordered by (last use, row)
            n = self.size
            key = self.d_last_used[:n] * n + xp.arange(n, dtype=np.int64)
            lru = xp.argsort(key)[: k - free]
            rows = xp.concatenate([rows, lru.astype(np.int64)])
        self.size += free
        self.clock += 1
        new_ids = xp.arange(self.next_id, self.next_id + k, dtype=np.int64)
        self.next_id += k
        if on_device(genomes):
            self.d_genomes[:, rows] = genomes.data
        else:
            self.d_genomes[:, rows] = xp.asarray(np.asarray(genomes, np.float32).T)
        self.d_fitness[rows] = xp.asarray(fitness, np.float64)
        self.d_last_used[rows] = self.clock
        self.d_born[rows] = born
        self.d_ids[rows] = new_ids
        self.d_parent[rows] = -1 if parent is None else xp.asarray(parent)
        self.d_founder[rows] = new_ids if founder is None else xp.asarray(founder)
        self.d_runs[rows] = 1
        return rows

    def batch(self, genomes: np.ndarray) -> DeviceBatch:
        """Host genomes (B, G) as a device batch (G, B)."""
        host = np.ascontiguousarray(np.asarray(genomes, np.float32).T)
        return DeviceBatch(self.xp.asarray(host), self.xp)

    def members(self, rows) -> tuple:
        """(ids, founder ids) of the members at device indices ``rows`` (device arrays)."""
        return self.d_ids[rows], self.d_founder[rows]

    def perturb(self, batch: DeviceBatch, noise: np.ndarray) -> DeviceBatch:
        """``batch`` plus host ``noise`` (B, G), on the device."""
        return DeviceBatch(batch.data + self.xp.asarray(np.ascontiguousarray(noise.T)), self.xp)

    # --- host views ----------------------------------------------------------------------------
    def host_fitness(self) -> np.ndarray:
        """Fitness of the members in use, on the host."""
        return _host(self.xp, self.d_fitness[: self.size])

    def lineage(self) -> tuple[np.ndarray, np.ndarray]:
        """Founders with descendants in the pool and their member counts (host arrays)."""
        f, c = self.xp.unique(self.d_founder[: self.size], return_counts=True)
        return _host(self.xp, f), _host(self.xp, c)

    def lineage_summary(self) -> tuple[int, float]:
        """(founders with descendants, exp of the entropy of their shares), computed on the
        device (FME's log columns ``lineages`` and ``lineages_effective``)."""
        xp = self.xp
        _, c = xp.unique(self.d_founder[: self.size], return_counts=True)
        p = c / c.sum()
        return int(c.size), float(xp.exp(-(p * xp.log(p)).sum()))

    def take(self, rows) -> np.ndarray:
        """Host ``(len(rows), G)`` copy of the given members."""
        rows = self.xp.asarray(np.asarray(rows, np.int64))
        return np.ascontiguousarray(_host(self.xp, self.d_genomes[:, rows]).T)

    def best(self, k: int) -> np.ndarray:
        """Rows of the k members with the highest recorded fitness, best first (host)."""
        return top_k(self.host_fitness(), k)

    def fitness_stats(self) -> dict[str, float]:
        """:func:`srml.fitness.stats` of the members' fitness from one sort on the device and
        one copy of 13 numbers to the host: min and max are the sorted ends, each quantile
        numpy's linear interpolation between its sorted neighbours, done on the host with
        numpy's own arithmetic (so equal to numpy's bit for bit); the mean is the device's
        (on a GPU its sum may differ from numpy's in the last bits)."""
        xp = self.xp
        f = self.d_fitness[: self.size]
        ok = xp.isfinite(f)
        if not bool(ok.all()):
            f = f[ok]
        n = int(f.size)
        if n == 0:
            return dict.fromkeys(STATS, float("nan"))
        lo, hi, gamma = _quantile_neighbours(n)
        picks = xp.asarray(np.concatenate([[0, n - 1], lo, hi]) % n)  # numpy's -1: the last
        v = _host(xp, xp.concatenate([xp.sort(f)[picks], f.mean()[None]]))
        q = _lerp(v[2:7], v[7:12], gamma)
        return {k: float(x) for k, x in zip(STATS, [v[0], *q, v[12], v[1]], strict=True)}

    def __getattr__(self, name):  # the CPU pool's array names, as host snapshots
        if name in Pool.ARRAYS:
            a = _host(self.xp, self.__dict__["d_" + name])
            return np.ascontiguousarray(a.T) if name == "genomes" else a.copy()
        raise AttributeError(name)

    # --- checkpoints ---------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """Exactly :meth:`srml.pool.Pool.state` (host arrays): checkpoints are interchangeable."""
        xp, n = self.xp, self.size
        out = {}
        for name in self.ARRAYS:
            a = self.__dict__["d_" + name]
            out[name] = (
                np.ascontiguousarray(_host(xp, a[:, :n]).T)
                if name == "genomes"
                else _host(xp, a[:n]).copy()
            )
        out["counters"] = np.array([self.capacity, self.size, self.clock, self.next_id], np.int64)
        return out

    @classmethod
    def from_pool(cls, pool: Pool, xp) -> DevicePool:
        """A device copy of a host pool (its arrays validated already)."""
        d = cls(pool.capacity, pool.genomes.shape[1], xp)
        n = pool.size
        d.d_genomes[:, :n] = xp.asarray(np.ascontiguousarray(pool.genomes[:n].T))
        for name in cls.ARRAYS[1:]:
            d.__dict__["d_" + name][:n] = xp.asarray(getattr(pool, name)[:n])
        d.size, d.clock, d.next_id = pool.size, pool.clock, pool.next_id
        return d

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], genome_size: int, xp) -> DevicePool:
        return cls.from_pool(Pool.from_state(state, genome_size), xp)

    def to_host(self) -> Pool:
        """A host :class:`Pool` with the same members and counters."""
        return Pool.from_state(self.state(), self.genome_size)


def make_pool(cfg, backend, G: int, device: bool):
    """FME's pool of ``G``-weight genomes: in GPU memory when the backend takes device batches
    and ``device`` (the ``device_pool`` option) allows it, else on the host."""
    if device and getattr(backend, "accepts_device_batch", False):
        check_device_memory(backend.xp, cfg.pool_size, G, cfg.n_founders, cfg.batch)
        return DevicePool(cfg.pool_size, G, backend.xp)
    return Pool(cfg.pool_size, G)


def check_device_memory(xp, pool_size: int, G: int, n_founders: int, batch: int) -> None:
    """Refuse in one line a device pool that cannot fit in the GPU's free memory."""
    if xp is np:
        return
    need = 4 * G * (pool_size + n_founders + 4 * batch) + 48 * pool_size
    try:
        free = int(xp.cuda.runtime.memGetInfo()[0])
    except Exception:
        return
    if need > free:
        raise SrmlError(
            f"a device pool of {pool_size} genomes x {G} weights needs about {need / 2**30:.1f} "
            f"GiB of GPU memory, {free / 2**30:.1f} GiB are free (smaller --pool-size or "
            "--batch, or --method-options '{\"device_pool\": false}')"
        )
