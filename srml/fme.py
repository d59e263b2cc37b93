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

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import instruments
from .backends import Rollout
from .device_pool import DevicePool, make_pool
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
    the device; the batch never visits the host between generations). False: the host pool.
    Lineage credit (--credit) needs the host pool."""


class FME(Method):
    """The FME loop over one pool (see the module docstring)."""

    name = "fme"
    Options = FMEOptions

    def __init__(self, cfg, options: FMEOptions | None = None, backend=None):
        super().__init__(cfg, options, backend)
        cfg = self.cfg  # validated: its "auto" fields resolved
        device = self.options.device_pool and cfg.credit == "none"
        self.pool = make_pool(cfg, self.backend, self.task.layout.size, device)
        self.founders = self.task.layout.init(self.rng, cfg.n_founders, cfg.init_std)
        self._drawn = None  # (pool rows, parent ids, founder ids) of the genomes asked for
        self._readings: dict = {}  # this generation's instruments (log columns)
        self._ahead = None  # the next draw's uniforms, being drawn (see _draw_ahead)
        self._drawer: ThreadPoolExecutor | None = None

    @classmethod
    def check_resources(cls, cfg, task) -> None:
        c, G = cfg, task.layout.size  # refuse a pool that cannot fit, before allocating
        need = run_bytes(c.pool_size, G, c.n_founders, c.batch)
        check_memory(need, f"a pool of {c.pool_size} genomes x {G} weights")

    def propose(self):
        B, pool, done = self.cfg.batch, self.pool, self.generation * self.cfg.batch
        if done < len(self.founders):  # founders are evaluated before they compete
            idx = np.arange(done, done + B) % len(self.founders)
            self._drawn = (None, None, idx)
            return pool.batch(self.founders[idx])
        rule = (self.cfg.selection, self.cfg.temperature)
        if pool.on_device:  # with the uniforms drawn while the device ran the last generation
            rows = pool.sample(self.rng, B, *rule, u=self._drawn_ahead())
        else:
            rows = pool.sample(self.rng, B, *rule)
        self._drawn = (rows, *pool.members(rows))
        genomes = pool.gather(rows)
        if self.cfg.sigma > 0:  # a baseline knob only: pure FME has no mutation
            noise = self.rng.standard_normal((B, self.task.layout.size), dtype=np.float32)
            genomes = pool.perturb(genomes, np.float32(self.cfg.sigma) * noise)
        if pool.on_device:
            self._draw_ahead()
        return genomes

    def _draw_ahead(self) -> None:
        """Start drawing the next generation's selection uniforms (``random(batch)``) on a copy
        of the run's generator, in a thread, so the host draws them while the device runs this
        generation (numpy releases the GIL while it fills). The run's own generator is not
        touched: :meth:`_drawn_ahead` uses the numbers only where it is still in the state
        the copy started from, so every draw, checkpoint and resume is as without this."""
        start = self.rng.bit_generator.state
        copy = np.random.Generator(type(self.rng.bit_generator)())
        copy.bit_generator.state = start
        self._drawer = self._drawer or ThreadPoolExecutor(1, thread_name_prefix="srml-draw")
        self._ahead = (start, copy, self._drawer.submit(copy.random, self.cfg.batch))

    def _drawn_ahead(self):
        """The uniforms :meth:`_draw_ahead` drew, advancing the run's generator past them as
        drawing them itself would; None where there are none or the generator moved since."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        start, copy, future = ahead
        u = future.result()
        if self.rng.bit_generator.state != start:
            return None
        self.rng.bit_generator.state = copy.bit_generator.state
        return u

    def update(self, asked, rollout: Rollout) -> None:
        rows, parents, founders = self._drawn
        pool = self.pool
        if self.cfg.credit != "none" and rows is not None:  # lucky records are re-checked:
            pool.credit(rows, rollout.fitness)  # a drawn member's record: the mean of its runs
            if self.cfg.credit == "lineage":  # ... and each run also counts for its parent
                up = pool.rows_of(pool.parent[rows])
                pool.credit(up[up >= 0], rollout.fitness[up >= 0])
        if not pool.on_device:  # how much the lifetimes changed the weights, before insertion
            r = np.random.default_rng([self.cfg.seed, self.generation, 0x5B1B])  # not training's
            self._readings = instruments.batch_readings(asked, rollout.genomes, parents, r)
        pool.insert(rollout.genomes, rollout.fitness, parents, founders, self.generation)

    # --- what the log and a user see --------------------------------------------------------
    def population_fitness(self) -> np.ndarray:
        return self.pool.host_fitness()

    def population_size(self) -> int:
        return self.pool.size

    def population_stats(self) -> dict[str, float]:
        return self.pool.fitness_stats()  # the device pool computes them where they are

    def row_extras(self, rollout: Rollout) -> dict:
        n, effective = self.pool.lineage_summary()
        row = {"lineages": n, "lineages_effective": effective}
        if not self.pool.on_device:  # the pool instruments read host arrays
            r = np.random.default_rng([self.cfg.seed, self.generation, 0x1257])  # not training's
            row |= self._readings | instruments.pool_instruments(self.pool, self.founders,
                                                                 self.task.layout, r)  # fmt: skip
        return row

    def records(self) -> dict[str, dict]:
        founders, counts = self.pool.lineage()
        return {"lineage": {"founders": founders.tolist(), "counts": counts.tolist()}}

    def candidates(self) -> np.ndarray:
        return self.pool.take(self.pool.best(self.options.deploy))

    def candidates_fitness(self) -> np.ndarray:
        return self.pool.host_fitness()[self.pool.best(self.options.deploy)]

    # --- checkpoint state: the pool and the founders still to be evaluated ------------------
    def arrays(self) -> dict[str, np.ndarray]:
        return {**{f"pool_{k}": v for k, v in self.pool.state().items()}, "founders": self.founders}

    def load_arrays(self, arrays: dict) -> None:
        pool, founders = fme_arrays(arrays, self.cfg, self.task.layout.size)
        if self.pool.on_device:
            pool = DevicePool.from_pool(pool, self.pool.xp)
        self.pool, self.founders = pool, founders

    def close(self) -> None:
        if self._drawer is not None:
            self._drawer.shutdown(cancel_futures=True)
            self._drawer, self._ahead = None, None
        super().close()


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
