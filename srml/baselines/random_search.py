"""Random search: every generation runs B fresh random genomes; it keeps the best it has seen.

Genomes are drawn like FME's founders (N(0, init_std^2) per weight) and run
with the Config's ``self_modify``. Nothing is learned across generations
except which genomes scored best: the archive holds the ``deploy`` genomes with
the highest fitness so far (each scored by the single lifetime it ran, so the
archive's fitness is biased upward by luck; held-out evaluation is not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends import Rollout
from ..config import Config
from .base import Search


@dataclass
class RandomSearchOptions:
    deploy: int = 16
    """Size of the archive of best genomes found, which is also the deployed solution."""


class RandomSearch(Search):
    name = "random_search"
    Options = RandomSearchOptions

    def __init__(self, cfg: Config, options: RandomSearchOptions | None = None, backend=None):
        super().__init__(cfg, options, backend)
        self.archive = np.empty((0, self.task.layout.size), np.float32)
        self.archive_fitness = np.empty(0)

    def step(self) -> Rollout:
        genomes = self.random_genomes(self.cfg.batch)
        res = self.execute(genomes)  # the genomes as drawn, not as they rewrote themselves
        f = np.concatenate([self.archive_fitness, res.fitness])
        f = np.where(np.isfinite(f), f, -np.inf)
        keep = np.argsort(-f, kind="stable")[: self.options.deploy]
        self.archive = np.concatenate([self.archive, genomes])[keep]
        self.archive_fitness = f[keep]
        return res

    def population_fitness(self) -> np.ndarray:
        return self.archive_fitness

    def solution(self) -> np.ndarray:
        return self.archive
