"""What every search method shares: the task, the backend, the budget and held-out evaluation.

A method improves genomes by running them in generations of ``batch`` lifetimes
of ``lifetime`` env steps each, so at equal ``total_steps`` every method has
used the same number of env steps. Every method answers three questions:

- ``step()``: run one generation (B lifetimes) and update what it keeps;
- ``population_fitness()``: the fitness of the genomes it holds now (FME: the
  pool; the hill-climber and OpenAI-ES: this generation's candidates; random
  search: its archive of the best found), drawn as the "pool reward" curve;
- ``solution()``: the genome(s) it would hand to a user now, which
  :func:`evaluate` runs on held-out seeds (never used in training).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import rng
from ..backends import Rollout, make_backend
from ..config import Config
from ..errors import SrmlError
from ..fme import make_task

EVAL_STREAM = (
    0x5EED_E7A1  # held-out seeds: derive_seed(seed, EVAL_STREAM, k), 3 parts vs training's 2
)


@dataclass
class NoOptions:
    """This method has no options beyond the shared :class:`srml.config.Config`."""


class Search:
    """Shared machinery: build the task and backend, execute generations, count env steps."""

    name = ""
    Options = NoOptions

    def __init__(self, cfg: Config, options=None, backend=None):
        self.cfg = cfg.validate()
        self.options = options if options is not None else self.Options()
        self.task = make_task(cfg)
        self.backend = backend or make_backend(cfg.backend, self.task, cfg.batch)
        self.rng = np.random.default_rng(cfg.seed)  # initial genomes, noise
        self.generation = 0
        self.env_steps = 0

    def execute(self, genomes: np.ndarray) -> Rollout:
        """Run B genomes for one lifetime with the same per-generation seeds as FME."""
        res = self.backend.run(genomes, rng.derive_seed(self.cfg.seed, self.generation))
        self.generation += 1
        self.env_steps += res.env_steps
        return res

    def random_genomes(self, n: int) -> np.ndarray:
        """``n`` genomes drawn like FME's founders: N(0, init_std^2) per weight."""
        return self.task.layout.init(self.rng, n, self.cfg.init_std)

    @property
    def finished(self) -> bool:
        c = self.cfg
        return (c.total_steps > 0 and self.env_steps >= c.total_steps) or (
            c.generations > 0 and self.generation >= c.generations
        )

    def step(self) -> Rollout:
        raise NotImplementedError

    def population_fitness(self) -> np.ndarray:
        raise NotImplementedError

    def solution(self) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        self.backend.close()


def top_k(genomes: np.ndarray, fitness: np.ndarray, k: int) -> np.ndarray:
    """The k genomes with the highest finite fitness (fewer if fewer exist), best first."""
    f = np.where(np.isfinite(fitness), fitness, -np.inf)
    order = np.argsort(-f, kind="stable")[:k]
    return genomes[order]


def evaluate(method, k: int = 0, record: bool = False) -> Rollout:
    """Run ``method.solution()`` on held-out seed number ``k``, one genome per lane (tiled).

    Nothing is counted in the method's budget and nothing in the method changes:
    the rewritten genomes are thrown away. Every method evaluated with the same
    ``cfg.seed`` and ``k`` meets the same environment randomness.
    """
    sol = np.asarray(method.solution(), np.float32)
    if sol.ndim != 2 or len(sol) == 0:
        raise SrmlError(f"{method.name}: nothing to evaluate yet (solution shape {sol.shape})")
    b = method.cfg.batch
    genomes = sol[np.arange(b) % len(sol)]
    seed = rng.derive_seed(method.cfg.seed, EVAL_STREAM, k)
    return method.backend.run(genomes, seed, record=record)
