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
from ..fitness import ranked
from ..method import Method, expect_array


@dataclass
class HillClimberOptions:
    reevaluate: bool = True
    """Re-run the current genome each generation and compare mutants with that fresh fitness
    (robust to noise); false compares with the fitness it had when accepted (strict elitism)."""
    init: str = "best"
    """Where the climb starts: best (of one generation of B random genomes) or random (one
    random genome, unevaluated: FME's start with --founders 1)."""


class HillClimber(Method):
    name = "hill_climber"
    Options = HillClimberOptions

    def __init__(self, cfg: Config, options: HillClimberOptions | None = None, backend=None):
        if cfg.sigma <= 0:
            raise SrmlError("the hill-climber needs mutation noise: set --sigma > 0")
        super().__init__(cfg, options, backend)
        if self.options.init not in ("best", "random"):
            raise SrmlError(f"hill-climber init must be best or random, got {self.options.init!r}")
        G = self.task.layout.size
        self.started = self.options.init == "random"
        # the current genome (meaningless until started)
        self.genome = self.random_genomes(1)[0] if self.started else np.zeros(G, np.float32)
        self.fitness = -np.inf  # its fitness, as last measured (-inf: not yet)
        self.accepted = 0  # how many mutants replaced the current genome
        self.last = np.empty(0)  # this generation's fitness (the population curve)

    def propose(self) -> np.ndarray:
        B = self.cfg.batch
        if not self.started:  # B random starts; the best one is the first current genome
            return self.random_genomes(B)
        noise = self.rng.standard_normal((B, self.genome.size), dtype=np.float32)
        genomes = self.genome[None, :] + np.float32(self.cfg.sigma) * noise
        if self.options.reevaluate:
            genomes[0] = self.genome  # lane 0: the current genome, unmutated
        return genomes

    def update(self, asked: np.ndarray, rollout: Rollout) -> None:
        f = ranked(rollout.fitness)
        self.last = rollout.fitness
        if not self.started:
            best = int(np.argmax(f))
            self.genome, self.fitness, self.started = asked[best].copy(), float(f[best]), True
            return
        first = 1 if self.options.reevaluate else 0
        if self.options.reevaluate:
            self.fitness = float(f[0])
        best = first + int(np.argmax(f[first:]))
        if f[best] >= self.fitness:  # not worse: accept
            self.genome, self.fitness = asked[best].copy(), float(f[best])
            self.accepted += 1

    def population_fitness(self) -> np.ndarray:
        return self.last

    def candidates(self) -> np.ndarray:
        return self.genome[None, :] if self.started else np.empty((0, self.genome.size), np.float32)

    def candidates_fitness(self) -> np.ndarray:
        return np.array([self.fitness] if self.started else [])

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "genome": self.genome,
            "scalars": np.array([self.fitness, self.accepted, self.started], np.float64),
            "last": np.asarray(self.last, np.float64),
        }

    def load_arrays(self, arrays: dict) -> None:
        genome = expect_array(arrays, "genome", (self.task.layout.size,), np.float32)
        fitness, accepted, started = expect_array(arrays, "scalars", (3,), np.float64)
        last = arrays.get("last")
        if not isinstance(last, np.ndarray) or last.ndim != 1 or last.dtype != np.float64:
            raise SrmlError("checkpoint: array 'last' should be a float64 vector")
        self.genome, self.fitness = genome.copy(), float(fitness)
        self.accepted, self.started, self.last = int(accepted), bool(started), last
