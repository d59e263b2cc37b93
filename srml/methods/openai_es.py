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
from ..fitness import ranked
from ..method import Method, expect_array


def centered_ranks(fitness: np.ndarray) -> np.ndarray:
    """Ranks mapped linearly onto [-0.5, 0.5] (worst -0.5, best 0.5); non-finite ranks lowest."""
    f = ranked(fitness)
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


class OpenAIES(Method):
    name = "openai_es"
    Options = OpenAIESOptions

    def __init__(self, cfg: Config, options: OpenAIESOptions | None = None, backend=None):
        if cfg.sigma <= 0:
            raise SrmlError("OpenAI-ES needs a perturbation scale: set --sigma > 0")
        if cfg.batch % 2:
            raise SrmlError(
                f"OpenAI-ES pairs its perturbations: --batch must be even, got {cfg.batch}"
            )
        super().__init__(cfg, options, backend)
        if self.options.init not in ("best", "random"):
            raise SrmlError(f"OpenAI-ES init must be best or random, got {self.options.init!r}")
        G = self.task.layout.size
        self.started = self.options.init == "random"
        self.theta = self.random_genomes(1)[0] if self.started else np.zeros(G, np.float32)
        self.m, self.v, self.t = np.zeros(G), np.zeros(G), 0  # Adam state (float64)
        self.eps = None  # this generation's perturbations
        self.last = np.empty(0)  # this generation's fitness (the population curve)

    def propose(self) -> np.ndarray:
        B, sigma = self.cfg.batch, np.float32(self.cfg.sigma)
        if not self.started:
            return self.random_genomes(B)
        self.eps = self.rng.standard_normal((B // 2, self.theta.size), dtype=np.float32)
        return np.concatenate([self.theta + sigma * self.eps, self.theta - sigma * self.eps])

    def update(self, asked: np.ndarray, rollout: Rollout) -> None:
        B = self.cfg.batch
        self.last = rollout.fitness
        if not self.started:
            self.theta = asked[int(np.argmax(ranked(rollout.fitness)))].copy()
            self.started = True
            return
        u = centered_ranks(rollout.fitness)
        grad = (u[: B // 2] - u[B // 2 :]) @ self.eps.astype(np.float64) / (B * self.cfg.sigma)
        self.theta = self._adam(grad - self.options.weight_decay * self.theta)

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

    def candidates(self) -> np.ndarray:
        if not self.started:
            return np.empty((0, self.task.layout.size), np.float32)
        return self.theta[None, :]

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "theta": self.theta,
            "adam_m": self.m,
            "adam_v": self.v,
            "scalars": np.array([self.t, self.started], np.float64),
            "last": np.asarray(self.last, np.float64),
        }

    def load_arrays(self, arrays: dict) -> None:
        G = self.task.layout.size
        theta = expect_array(arrays, "theta", (G,), np.float32)
        m = expect_array(arrays, "adam_m", (G,), np.float64)
        v = expect_array(arrays, "adam_v", (G,), np.float64)
        t, started = expect_array(arrays, "scalars", (2,), np.float64)
        last = arrays.get("last")
        if not isinstance(last, np.ndarray) or last.ndim != 1 or last.dtype != np.float64:
            raise SrmlError("checkpoint: array 'last' should be a float64 vector")
        self.theta, self.m, self.v = theta.copy(), m.copy(), v.copy()
        self.t, self.started, self.last = int(t), bool(started), last
