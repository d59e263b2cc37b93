"""Fitness monotonic execution (after Kirsch & Schmidhuber 2022).

No gradient, no mutation, no meta-optimizer: genomes are drawn from the pool
with a probability that rises with their fitness, run for one lifetime while
they rewrite their own weights, and go back into the pool as new members with
the fitness they just earned. Execution time given to better genomes is the
only outer loop.

    fme = FME(cfg)
    while not fme.finished:
        genomes = fme.ask()              # founders first, then draws from the pool
        rollout = fme.evaluate(genomes)  # one lifetime each, weights rewritten as they act
        fme.tell(rollout)                # the rewritten copies join the pool (LRU evicts)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backends import DeviceBatch, Rollout
from .device_pool import DevicePool
from .errors import SrmlError
from .memory import check_memory, run_bytes
from .method import Method, check_meta, expect_array
from .pool import Pool


@dataclass
class FMEOptions:
    deploy: int = 16
    """How many pool members (highest recorded fitness first) make up the deployed solution."""
    device_pool: bool = True
    """With --backend cuda: keep the pool in GPU memory (selection, insertion and eviction on
    the device; the batch never visits the host between generations). False: the host pool."""


class FME(Method):
    """The FME loop over one pool (see the module docstring)."""

    name = "fme"
    Options = FMEOptions

    def __init__(self, cfg, options: FMEOptions | None = None, backend=None):
        super().__init__(cfg, options, backend)
        G = self.task.layout.size
        self.xp = None  # the device's array module when the pool lives there
        if self.options.device_pool and getattr(self.backend, "accepts_device_batch", False):
            self.xp = self.backend.xp
            check_device_memory(self.xp, cfg.pool_size, G, cfg.n_founders, cfg.batch)
            self.pool = DevicePool(cfg.pool_size, G, self.xp)
        else:
            self.pool = Pool(cfg.pool_size, G)
        self.founders = self.task.layout.init(self.rng, cfg.n_founders, cfg.init_std)
        self._drawn = None  # (parent ids, founder ids) of the genomes asked for, or founder rows
        self._d_founders = None  # device copy (G, K) while founders remain to be evaluated

    def check_resources(self) -> None:
        c, G = self.cfg, self.task.layout.size  # refuse a pool that cannot fit, before allocating
        need = run_bytes(c.pool_size, G, c.n_founders, c.batch)
        check_memory(need, f"a pool of {c.pool_size} genomes x {G} weights")

    def propose(self) -> np.ndarray:
        B, done = self.cfg.batch, self.generation * self.cfg.batch
        if done < len(self.founders):  # founders are evaluated before they compete
            idx = np.arange(done, done + B) % len(self.founders)
            self._drawn = (None, idx)
            if self.xp is not None:
                return self._device_founders(idx)
            return self.founders[idx]
        self._d_founders = None
        if self.xp is not None:
            return self._propose_device(B)
        idx = self.pool.sample(self.rng, B, self.cfg.selection, self.cfg.temperature)
        self._drawn = (self.pool.ids[idx], self.pool.founder[idx])
        genomes = self.pool.genomes[idx]
        if self.cfg.sigma > 0:  # a baseline knob only: pure FME has no mutation
            noise = self.rng.standard_normal(genomes.shape, dtype=np.float32)
            genomes = genomes + np.float32(self.cfg.sigma) * noise
        return genomes

    def _device_founders(self, idx: np.ndarray) -> DeviceBatch:
        xp = self.xp
        if self._d_founders is None:
            self._d_founders = xp.asarray(np.ascontiguousarray(self.founders.T))
        return DeviceBatch(self._d_founders[:, xp.asarray(idx)], xp)

    def _propose_device(self, B: int) -> DeviceBatch:
        """propose() on the device pool: the same draws, the batch left on the device."""
        pool, xp = self.pool, self.xp
        idx = pool.sample(self.rng, B, self.cfg.selection, self.cfg.temperature)
        self._drawn = (pool.d_ids[idx], pool.d_founder[idx])
        genomes = pool.gather(idx)
        if self.cfg.sigma > 0:  # same host draws as the host pool's path
            noise = self.rng.standard_normal((B, pool.genome_size), dtype=np.float32)
            scaled = np.float32(self.cfg.sigma) * xp.asarray(np.ascontiguousarray(noise.T))
            genomes = DeviceBatch(genomes.data + scaled, xp)
        return genomes

    def update(self, asked: np.ndarray, rollout: Rollout) -> None:
        parents, founders = self._drawn
        self.pool.insert(rollout.genomes, rollout.fitness, parents, founders, self.generation)

    def population_fitness(self) -> np.ndarray:
        if self.xp is not None:
            return self.pool.host_fitness()
        return self.pool.fitness[: self.pool.size]

    def population_size(self) -> int:
        return self.pool.size

    def population_stats(self) -> dict[str, float]:
        return self.pool.fitness_stats()  # the device pool computes them where they are

    def lineage(self) -> tuple[np.ndarray, np.ndarray]:
        """Founders with descendants in the pool and how many members descend from each."""
        if self.xp is not None:
            key = (self.generation, self.pool.clock)  # a log row asks twice per generation
            if getattr(self, "_lineage", (None,))[0] != key:
                self._lineage = (key, self.pool.lineage())
            return self._lineage[1]
        return np.unique(self.pool.founder[: self.pool.size], return_counts=True)

    def row_extras(self, rollout: Rollout) -> dict:
        if self.xp is not None and self.xp is not np:  # on the GPU: two numbers come back
            n, effective = self.pool.lineage_summary()
            return {"lineages": n, "lineages_effective": effective}
        _, counts = self.lineage()
        p = counts / counts.sum()
        return {
            "lineages": len(counts),
            "lineages_effective": float(np.exp(-(p * np.log(p)).sum())),
        }

    def records(self) -> dict[str, dict]:
        founders, counts = self.lineage()
        return {"lineage": {"founders": founders.tolist(), "counts": counts.tolist()}}

    def candidates(self) -> np.ndarray:
        rows = self.pool.best(self.options.deploy)
        return self.pool.take(rows) if self.xp is not None else self.pool.genomes[rows]

    def candidates_fitness(self) -> np.ndarray:
        if self.xp is not None:
            return self.pool.host_fitness()[self.pool.best(self.options.deploy)]
        return self.pool.fitness[self.pool.best(self.options.deploy)]

    # --- checkpoint state: the pool and the founders still to be evaluated ------------------
    def arrays(self) -> dict[str, np.ndarray]:
        return {**{f"pool_{k}": v for k, v in self.pool.state().items()}, "founders": self.founders}

    def load_arrays(self, arrays: dict) -> None:
        pool, founders = fme_arrays(arrays, self.cfg, self.task.layout.size)
        if self.xp is not None:
            pool = DevicePool.from_pool(pool, self.xp)
        self.pool, self.founders, self._d_founders = pool, founders, None


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


def fme_arrays(arrays: dict, c, G: int) -> tuple[Pool, np.ndarray]:
    """The pool and founders of an FME checkpoint, every array checked against config ``c``
    and genome size ``G`` (SrmlError naming the first that does not fit)."""
    pool_state = {k[5:]: v for k, v in arrays.items() if k.startswith("pool_")}
    try:
        pool = Pool.from_state(pool_state, G)
    except SrmlError as e:
        raise SrmlError(f"checkpoint: {e}") from None
    if pool.capacity != c.pool_size:
        raise SrmlError(f"checkpoint pool holds {pool.capacity}, config says {c.pool_size}")
    founders = expect_array(arrays, "founders", (c.n_founders, G), np.float32)
    return pool, founders


def check_state(arrays: dict, meta: dict, c, G: int) -> None:
    """What ``FME.load_state`` would refuse, checked without building an FME (an island
    driver checks its workers' states before sending them)."""
    fme_arrays(arrays, c, G)
    check_meta(meta)
