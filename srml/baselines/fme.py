"""FME as a search method, so experiments can run it beside the baselines.

The algorithm itself lives in :mod:`srml.fme`; this adds what a comparison
needs: the pool's fitness as the population curve, and the pool members it
would deploy (the ``deploy`` highest-fitness ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Config
from ..fme import FME
from .base import top_k


@dataclass
class FMEOptions:
    deploy: int = 16
    """How many pool members (highest recorded fitness first) make up the deployed solution."""


class FMESearch(FME):
    """Fitness monotonic execution (no mutation unless ``sigma`` > 0, no optimizer)."""

    name = "fme"
    Options = FMEOptions

    def __init__(self, cfg: Config, options: FMEOptions | None = None, backend=None):
        super().__init__(cfg, backend)
        self.options = options if options is not None else FMEOptions()

    def population_fitness(self) -> np.ndarray:
        return self.pool.fitness[: self.pool.size]

    def solution(self) -> np.ndarray:
        n = self.pool.size
        return top_k(self.pool.genomes[:n], self.pool.fitness[:n], self.options.deploy)

    def close(self) -> None:
        self.backend.close()
