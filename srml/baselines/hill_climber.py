"""Hill-climber: one current genome, Gaussian mutants, a mutant replaces it only if not worse.

The FME paper's "fixed hill-climber" runs with ``self_modify = false`` in the
Config: the network's weights stay as the mutation left them for the whole
lifetime, so only mutation and selection improve them. With ``self_modify =
true`` the hill-climber searches the initial weights of a self-modifying
network instead (the weights it rewrites during a lifetime are thrown away).

Each generation runs B lifetimes: lane 0 re-runs the current genome (with
``reevaluate``), lanes 1..B-1 run mutants ``current + sigma * N(0, I)``. The
best mutant becomes the current genome if its fitness is >= the current one's.
The first generation runs B random genomes (drawn like FME's founders) and
keeps the best, so the climb starts from the same kind of start as FME.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends import Rollout
from ..config import Config
from ..errors import SrmlError
from .base import Search


@dataclass
class HillClimberOptions:
    reevaluate: bool = True
    """Re-run the current genome each generation and compare mutants with that fresh fitness
    (robust to noise); false compares with the fitness it had when accepted (strict elitism)."""


class HillClimber(Search):
    name = "hill_climber"
    Options = HillClimberOptions

    def __init__(self, cfg: Config, options: HillClimberOptions | None = None, backend=None):
        super().__init__(cfg, options, backend)
        if cfg.sigma <= 0:
            raise SrmlError("the hill-climber needs mutation noise: set --sigma > 0")
        self.genome: np.ndarray | None = None  # the current genome (G,)
        self.fitness = -np.inf  # its fitness, as last measured
        self.accepted = 0  # how many mutants replaced the current genome
        self.last = np.empty(0)  # this generation's fitness (the population curve)

    def step(self) -> Rollout:
        B = self.cfg.batch
        if self.genome is None:  # B random starts; the best one is the first current genome
            genomes = self.random_genomes(B)
            res = self.execute(genomes)
            best = int(np.argmax(_finite(res.fitness)))
            self.genome, self.fitness = genomes[best].copy(), float(res.fitness[best])
            self.last = res.fitness
            return res
        noise = self.rng.standard_normal((B, self.genome.size), dtype=np.float32)
        genomes = self.genome[None, :] + np.float32(self.cfg.sigma) * noise
        first = 1 if self.options.reevaluate else 0
        genomes[:first] = self.genome  # lane 0: the current genome, unmutated
        res = self.execute(genomes)
        if self.options.reevaluate:
            self.fitness = float(res.fitness[0])
        best = first + int(np.argmax(_finite(res.fitness[first:])))
        if res.fitness[best] >= self.fitness:  # not worse: accept
            self.genome, self.fitness = genomes[best].copy(), float(res.fitness[best])
            self.accepted += 1
        self.last = res.fitness
        return res

    def population_fitness(self) -> np.ndarray:
        return self.last

    def solution(self) -> np.ndarray:
        return self.genome[None, :]


def _finite(f: np.ndarray) -> np.ndarray:
    """Non-finite fitness (a genome that blew up) ranks below every finite one."""
    return np.where(np.isfinite(f), f, -np.inf)
