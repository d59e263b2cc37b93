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

from .backends import Rollout
from .errors import SrmlError
from .memory import check_memory, run_bytes
from .method import Method, expect_array
from .pool import Pool


@dataclass
class FMEOptions:
    deploy: int = 16
    """How many pool members (highest recorded fitness first) make up the deployed solution."""


class FME(Method):
    """The FME loop over one pool (see the module docstring)."""

    name = "fme"
    Options = FMEOptions

    def __init__(self, cfg, options: FMEOptions | None = None, backend=None):
        super().__init__(cfg, options, backend)
        self.pool = Pool(cfg.pool_size, self.task.layout.size)
        self.founders = self.task.layout.init(self.rng, cfg.n_founders, cfg.init_std)
        self._drawn = None  # (parent ids, founder ids) of the genomes asked for, or founder rows

    def check_resources(self) -> None:
        c, G = self.cfg, self.task.layout.size  # refuse a pool that cannot fit, before allocating
        need = run_bytes(c.pool_size, G, c.n_founders, c.batch)
        check_memory(need, f"a pool of {c.pool_size} genomes x {G} weights")

    def propose(self) -> np.ndarray:
        B, done = self.cfg.batch, self.generation * self.cfg.batch
        if done < len(self.founders):  # founders are evaluated before they compete
            idx = np.arange(done, done + B) % len(self.founders)
            self._drawn = (None, idx)
            return self.founders[idx]
        idx = self.pool.sample(self.rng, B, self.cfg.selection, self.cfg.temperature)
        self._drawn = (self.pool.ids[idx], self.pool.founder[idx])
        genomes = self.pool.genomes[idx]
        if self.cfg.sigma > 0:  # a baseline knob only: pure FME has no mutation
            noise = self.rng.standard_normal(genomes.shape, dtype=np.float32)
            genomes = genomes + np.float32(self.cfg.sigma) * noise
        return genomes

    def update(self, asked: np.ndarray, rollout: Rollout) -> None:
        parents, founders = self._drawn
        self.pool.insert(rollout.genomes, rollout.fitness, parents, founders, self.generation)

    def population_fitness(self) -> np.ndarray:
        return self.pool.fitness[: self.pool.size]

    def lineage(self) -> tuple[np.ndarray, np.ndarray]:
        """Founders with descendants in the pool and how many members descend from each."""
        return np.unique(self.pool.founder[: self.pool.size], return_counts=True)

    def row_extras(self, rollout: Rollout) -> dict:
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
        return self.pool.genomes[self.pool.best(self.options.deploy)]

    def candidates_fitness(self) -> np.ndarray:
        return self.pool.fitness[self.pool.best(self.options.deploy)]

    # --- checkpoint state: the pool and the founders still to be evaluated ------------------
    def arrays(self) -> dict[str, np.ndarray]:
        return {**{f"pool_{k}": v for k, v in self.pool.state().items()}, "founders": self.founders}

    def load_arrays(self, arrays: dict) -> None:
        G, c = self.task.layout.size, self.cfg
        pool_state = {k[5:]: v for k, v in arrays.items() if k.startswith("pool_")}
        try:
            pool = Pool.from_state(pool_state, G)
        except SrmlError as e:
            raise SrmlError(f"checkpoint: {e}") from None
        if pool.capacity != c.pool_size:
            raise SrmlError(f"checkpoint pool holds {pool.capacity}, config says {c.pool_size}")
        founders = expect_array(arrays, "founders", (c.n_founders, G), np.float32)
        self.pool, self.founders = pool, founders
