"""What every backend shares: the task it runs (built by :func:`srml.task.make_task`) and what
a run returns.

A backend runs "B genomes for S steps in env E" and returns the rewritten
genomes and their fitness. Same inputs, same seeds -> same results on every
backend, to float tolerance: action sampling and twin resets draw from the
counter-based RNG in :mod:`srml.rng`, keyed by (generation seed, lane).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ..srwm import Codec, Layout


@dataclass
class Task:
    """Everything about the problem a backend needs, resolved from the config."""

    env_id: str  # the id actually stepped (srml/... when a twin runs)
    env_kwargs: dict
    lifetime: int
    sample_actions: bool
    codec: Codec
    layout: Layout
    twin: object | None = None  # srml.envs.Twin when the env has a compiled twin
    self_modify: bool = True  # False freezes the weights (baselines)
    requested_id: str = ""  # the id the config named (e.g. CartPole-v1 for srml/CartPole-v1)
    step_timeout: float = 0.0  # generic path: seconds one vector step may take (0: no limit)
    fitness_start: int = 0  # > 0: only episodes ending from this step on count (whole)
    fast_exp: bool = False  # numba fused path: the lanes' polynomial exp and tanh (Config.fast_exp)

    @property
    def gym_id(self) -> str:
        """The id of the Gymnasium env a user would render or step (a twin's reference id)."""
        if self.twin is not None and getattr(self.twin, "gym_id", None):
            return self.twin.gym_id
        return self.env_id


class DeviceBatch:
    """B genomes resident on a device, laid out ``(G, B)``: one column per genome, so the
    threads of a warp read neighbouring floats.

    What FME's device pool hands the cuda backend and gets back (``ask()`` returns one, the
    rollout's ``genomes`` is one): the batch never visits the host between generations.
    ``data`` is the ``(G, B)`` array (CuPy on a GPU, numpy under numba's CUDA simulator) and
    ``xp`` its array module. ``len()`` and ``shape`` read as the host batch's ``(B, G)``;
    :meth:`to_host` (or ``np.asarray``) copies it to a ``(B, G)`` numpy array."""

    on_device = True
    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, data, xp):
        self.data, self.xp = data, xp

    def __len__(self) -> int:
        return int(self.data.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[1]), int(self.data.shape[0])

    def to_host(self) -> np.ndarray:
        host = self.data if self.xp is np else self.xp.asnumpy(self.data)
        return np.ascontiguousarray(host.T)

    def __array__(self, dtype=None, copy=None):
        a = self.to_host()
        return a if dtype is None else a.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"DeviceBatch(B={len(self)}, G={self.shape[1]}, {self.xp.__name__})"


def on_device(genomes) -> bool:
    return getattr(genomes, "on_device", False)


@dataclass
class Rollout:
    """The result of one execution of B genomes for one lifetime each.

    ``genomes`` is a :class:`DeviceBatch` when the backend was given one (the cuda backend
    with FME's device pool); everything else is on the host."""

    genomes: np.ndarray | DeviceBatch  # (B, G) float32, rewritten during the lifetime
    fitness: np.ndarray  # (B,) float64: mean return per episode begun
    episodes: np.ndarray  # (B,) episodes begun (the unfinished one counts)
    env_steps: int  # agent-steps taken, B * S
    nonfinite: int = 0  # genomes whose weights or rewards became NaN/inf
    actions: np.ndarray | None = field(default=None, repr=False)  # (S, B, ...) when recorded
    rewards: np.ndarray | None = field(default=None, repr=False)  # (S, B) when recorded
    firsts: np.ndarray | None = field(default=None, repr=False)  # (S, B) episode-start flags


def finalize(genomes, returns, episodes, env_steps, trace=None, finite=None) -> Rollout:
    """Fitness from returns; a genome whose weights or return are not finite gets -inf.
    ``finite``: which genomes have only finite weights, where the caller knows (a device)."""
    fitness = returns / np.maximum(episodes, 1)
    if finite is None:
        finite = np.isfinite(genomes).all(axis=1)
    bad = ~np.isfinite(fitness) | ~finite
    fitness = np.where(bad, -np.inf, fitness)
    res = Rollout(genomes, fitness, episodes, env_steps, int(bad.sum()))
    if trace is not None:  # (actions, rewards, firsts), each a list over steps
        res.actions, res.rewards, res.firsts = (np.stack(v) for v in trace)
    return res


@runtime_checkable
class Backend(Protocol):
    """What the run loop and every method need from an engine.

    ``run(genomes, seed, record=False)`` executes B = ``batch`` genomes (float32,
    ``(B, G)``, not modified; the cuda backend also takes a :class:`DeviceBatch`) for one lifetime each in ``task``'s env and returns
    their rewritten copies with fitness. The same genomes and seed give the same
    Rollout on every backend, to float tolerance. ``close()`` frees the env and
    device resources."""

    name: str
    task: Task
    batch: int

    def run(self, genomes: np.ndarray, seed: int, record: bool = False) -> Rollout: ...

    def close(self) -> None: ...
