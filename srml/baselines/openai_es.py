"""OpenAI-ES (Salimans et al. 2017): antithetic Gaussian perturbations, centered ranks, Adam.

A search distribution N(theta, sigma^2 I) over genomes. Each generation runs
B/2 antithetic pairs ``theta +- sigma * eps_i`` for one lifetime each, replaces
their fitness with centered ranks in [-0.5, 0.5], estimates the gradient of
expected fitness ``g = sum_i (u+_i - u-_i) eps_i / (B sigma)`` and takes an
Adam ascent step on ``g - weight_decay * theta``. This is the kind of explicit
meta-optimizer that FME claims to make unnecessary: with ``self_modify = true``
(the Config default) it meta-trains the initial weights of a self-modifying
network, whose rewritten weights are thrown away after each lifetime; with
``self_modify = false`` it trains a fixed network.

The first generation runs B random genomes (drawn like FME's founders) and
theta starts at the best of them (``init = "best"``), or at one random genome
(``init = "random"``; that generation is then skipped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends import Rollout
from ..config import Config
from ..errors import SrmlError
from .base import Search


def centered_ranks(fitness: np.ndarray) -> np.ndarray:
    """Ranks mapped linearly onto [-0.5, 0.5] (worst -0.5, best 0.5); non-finite ranks lowest."""
    f = np.where(np.isfinite(fitness), fitness, -np.inf)
    n = len(f)
    ranks = np.empty(n)
    ranks[np.argsort(f, kind="stable")] = np.arange(n)
    return ranks / max(n - 1, 1) - 0.5


@dataclass
class OpenAIESOptions:
    lr: float = 0.03
    """Adam step size on the mean theta."""
    beta1: float = 0.9
    """Adam's first-moment decay."""
    beta2: float = 0.999
    """Adam's second-moment decay."""
    weight_decay: float = 0.005
    """L2 coefficient pulling theta to 0 (OpenAI-ES's l2coeff)."""
    init: str = "best"
    """Where theta starts: best (of one generation of B random genomes) or random (one genome)."""


class OpenAIES(Search):
    name = "openai_es"
    Options = OpenAIESOptions

    def __init__(self, cfg: Config, options: OpenAIESOptions | None = None, backend=None):
        super().__init__(cfg, options, backend)
        if cfg.sigma <= 0:
            raise SrmlError("OpenAI-ES needs a perturbation scale: set --sigma > 0")
        if cfg.batch % 2:
            raise SrmlError(
                f"OpenAI-ES pairs its perturbations: --batch must be even, got {cfg.batch}"
            )
        if self.options.init not in ("best", "random"):
            raise SrmlError(f"OpenAI-ES init must be best or random, got {self.options.init!r}")
        G = self.task.layout.size
        self.theta = self.random_genomes(1)[0] if self.options.init == "random" else None
        self.m, self.v, self.t = np.zeros(G), np.zeros(G), 0  # Adam state (float64)
        self.last = np.empty(0)  # this generation's fitness (the population curve)

    def step(self) -> Rollout:
        B, sigma = self.cfg.batch, np.float32(self.cfg.sigma)
        if self.theta is None:
            genomes = self.random_genomes(B)
            res = self.execute(genomes)
            f = np.where(np.isfinite(res.fitness), res.fitness, -np.inf)
            self.theta = genomes[int(np.argmax(f))].copy()
            self.last = res.fitness
            return res
        eps = self.rng.standard_normal((B // 2, self.theta.size), dtype=np.float32)
        genomes = np.concatenate([self.theta + sigma * eps, self.theta - sigma * eps])
        res = self.execute(genomes)
        u = centered_ranks(res.fitness)
        grad = (u[: B // 2] - u[B // 2 :]) @ eps.astype(np.float64) / (B * self.cfg.sigma)
        self.theta = self._adam(grad - self.options.weight_decay * self.theta)
        self.last = res.fitness
        return res

    def _adam(self, grad: np.ndarray) -> np.ndarray:
        """One Adam ascent step along ``grad``; returns the new theta (float32)."""
        o = self.options
        self.t += 1
        self.m = o.beta1 * self.m + (1 - o.beta1) * grad
        self.v = o.beta2 * self.v + (1 - o.beta2) * grad**2
        m_hat = self.m / (1 - o.beta1**self.t)
        v_hat = self.v / (1 - o.beta2**self.t)
        return (self.theta + o.lr * m_hat / (np.sqrt(v_hat) + 1e-8)).astype(np.float32)

    def population_fitness(self) -> np.ndarray:
        return self.last

    def solution(self) -> np.ndarray:
        if self.theta is None:
            return np.empty((0, self.task.layout.size), np.float32)
        return self.theta[None, :]
