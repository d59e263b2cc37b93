"""Hand-written optimizers on the learned-optimizer problems: SGD and Adam.

The baselines a learned update rule meets. They run on exactly the problems
that ``srml/LearnedOptimizer-v0`` samples (:func:`srml.envs.learned_optimizer.sample_problem`:
same lane key and episode, same problem, same gradient noise), start where
the env does (``theta = 0``; the MLP's random init), and are scored like it: the return of a problem is
``ln(L_0 + f L_0) - ln(L_K + f L_0)`` with ``f = loss_floor``, the log-factor
by which the loss went down in ``K = steps_per_problem`` steps.

Unlike the env's rule, whose update is at most ``update_scale`` per parameter and
step, SGD and Adam take unbounded steps.

- :func:`problems`: the env's problems for lanes ``0 .. n-1`` of a seed
  (``lane_keys(seed, lane)``) and episodes ``0 .. episodes-1``.
- :func:`sgd`, :func:`adam`: the loss curve ``(K + 1,)`` of one problem.
- :func:`evaluate`: loss curves and returns of one optimizer on many problems.
- :func:`tune_lr`: the learning rate with the best mean return over a log grid,
  on tuning seeds (``TUNE_SEEDS``) that evaluation never uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .envs.learned_optimizer import Problem, learned_optimizer, sample_problem
from .rng import lane_keys

TUNE_SEEDS = (100, 101)
LR_GRID = tuple(float(x) for x in np.logspace(-4, 2, 25))  # 1e-4 .. 100, 4 per decade
DEFAULT_ADAM_LR = 1e-3


def env_params(**env_kwargs) -> dict:
    """The env's kwargs with defaults filled in (validated by the env's factory)."""
    return dict(learned_optimizer(**env_kwargs).params)


def problems(seed: int, n: int, episodes: int = 1, **env_kwargs) -> list[Problem]:
    """The env's problems for lanes ``0 .. n-1`` of ``seed`` and episodes ``0 .. episodes-1``,
    lane-major (``[lane 0 ep 0, lane 0 ep 1, ..., lane 1 ep 0, ...]``)."""
    keys = lane_keys(seed, np.arange(n))
    return [sample_problem(k, e, **env_kwargs) for k in keys for e in range(episodes)]


def sgd(problem: Problem, lr: float, steps: int, momentum: float = 0.0) -> np.ndarray:
    """Losses ``L_0 .. L_steps`` of (heavy-ball) SGD from the problem's theta_0."""
    theta = problem.theta0.copy()
    buf = np.zeros(problem.dim)
    losses = np.empty(steps + 1)
    for k in range(steps + 1):
        losses[k], g = problem.noisy_grad(theta, k)
        if k == steps:
            break
        buf = momentum * buf + g
        theta = theta - lr * buf
    return losses


def adam(
    problem: Problem,
    lr: float,
    steps: int,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> np.ndarray:
    """Losses ``L_0 .. L_steps`` of Adam (Kingma & Ba, bias-corrected) from theta_0."""
    theta = problem.theta0.copy()
    m = np.zeros(problem.dim)
    v = np.zeros(problem.dim)
    losses = np.empty(steps + 1)
    for k in range(steps + 1):
        losses[k], g = problem.noisy_grad(theta, k)
        if k == steps:
            break
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        mh = m / (1 - beta1 ** (k + 1))
        vh = v / (1 - beta2 ** (k + 1))
        theta = theta - lr * mh / (np.sqrt(vh) + eps)
    return losses


OPTIMIZERS = {"sgd": sgd, "adam": adam}


def log_return(losses: np.ndarray, loss_floor: float) -> np.ndarray:
    """The env's return from loss curves (..., K + 1): ln(L_0 + f L_0) - ln(L_K + f L_0)."""
    losses = np.asarray(losses, np.float64)
    floor = loss_floor * losses[..., 0] + 1e-30
    return np.log(losses[..., 0] + floor) - np.log(losses[..., -1] + floor)


@dataclass
class Evaluation:
    losses: np.ndarray  # (n, K + 1)
    returns: np.ndarray  # (n,) the env's return per problem

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))


def evaluate(
    method: str, lr: float, probs: list[Problem], steps: int, loss_floor: float, **opts
) -> Evaluation:
    """Run optimizer ``method`` (sgd, adam) with ``lr`` for ``steps`` on every problem."""
    fn = OPTIMIZERS[method]
    with np.errstate(over="ignore", invalid="ignore"):
        losses = np.stack([fn(p, lr, steps, **opts) for p in probs])
    losses = np.where(np.isfinite(losses), losses, np.inf)  # a diverged run scores -inf
    with np.errstate(invalid="ignore"):
        returns = np.nan_to_num(log_return(losses, loss_floor), nan=-np.inf)
    return Evaluation(losses, returns)


def tune_lr(
    method: str,
    grid=LR_GRID,
    seeds=TUNE_SEEDS,
    n: int = 32,
    steps: int | None = None,
    **env_kwargs,
) -> tuple[float, dict[float, float]]:
    """The learning rate of ``grid`` with the highest mean return on ``n`` problems from each
    tuning seed (``steps`` defaults to the env's ``steps_per_problem``); returns
    ``(best_lr, {lr: mean_return})``. Ties go to the smaller learning rate."""
    p = env_params(**env_kwargs)
    steps = p["steps_per_problem"] if steps is None else int(steps)
    probs = [q for s in seeds for q in problems(s, n, **env_kwargs)]
    scores = {
        float(lr): evaluate(method, lr, probs, steps, p["loss_floor"]).mean_return for lr in grid
    }
    best = max(scores, key=lambda lr: (scores[lr], -lr))
    return best, scores
