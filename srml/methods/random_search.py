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
from ..errors import SrmlError
from ..fitness import ranked, top_k
from ..method import Method, expect_array


@dataclass
class RandomSearchOptions:
    deploy: int = 16
    """Size of the archive of best genomes found, which is also the deployed solution."""


class RandomSearch(Method):
    name = "random_search"
    Options = RandomSearchOptions

    def __init__(self, cfg: Config, options: RandomSearchOptions | None = None, backend=None):
        super().__init__(cfg, options, backend)
        self.archive = np.empty((0, self.task.layout.size), np.float32)
        self.archive_fitness = np.empty(0)

    def propose(self) -> np.ndarray:
        return self.random_genomes(self.cfg.batch)

    def update(self, asked: np.ndarray, rollout: Rollout) -> None:
        # the genomes as drawn, not as they rewrote themselves
        f = np.concatenate([self.archive_fitness, ranked(rollout.fitness)])
        keep = top_k(f, self.options.deploy)
        self.archive = np.concatenate([self.archive, asked])[keep]
        self.archive_fitness = f[keep]

    def population_fitness(self) -> np.ndarray:
        return self.archive_fitness

    def candidates(self) -> np.ndarray:
        return self.archive

    def candidates_fitness(self) -> np.ndarray:
        return self.archive_fitness

    def arrays(self) -> dict[str, np.ndarray]:
        return {"archive": self.archive, "archive_fitness": self.archive_fitness}

    def load_arrays(self, arrays: dict) -> None:
        f = arrays.get("archive_fitness")
        if not isinstance(f, np.ndarray) or f.ndim != 1 or f.dtype != np.float64:
            raise SrmlError("checkpoint: array 'archive_fitness' should be a float64 vector")
        if len(f) > self.options.deploy:
            raise SrmlError(f"checkpoint: archive larger than deploy = {self.options.deploy}")
        G = self.task.layout.size
        self.archive = expect_array(arrays, "archive", (len(f), G), np.float32).copy()
        self.archive_fitness = f.copy()
