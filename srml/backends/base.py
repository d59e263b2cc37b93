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

    @property
    def gym_id(self) -> str:
        """The id of the Gymnasium env a user would render or step (a twin's reference id)."""
        if self.twin is not None and getattr(self.twin, "gym_id", None):
            return self.twin.gym_id
        return self.env_id


@dataclass
class Rollout:
    """The result of one execution of B genomes for one lifetime each."""

    genomes: np.ndarray  # (B, G) float32, rewritten during the lifetime
    fitness: np.ndarray  # (B,) float64: mean return per episode begun
    episodes: np.ndarray  # (B,) episodes begun (the unfinished one counts)
    env_steps: int  # agent-steps taken, B * S
    nonfinite: int = 0  # genomes whose weights or rewards became NaN/inf
    actions: np.ndarray | None = field(default=None, repr=False)  # (S, B, ...) when recorded
    rewards: np.ndarray | None = field(default=None, repr=False)  # (S, B) when recorded
    firsts: np.ndarray | None = field(default=None, repr=False)  # (S, B) episode-start flags


def finalize(genomes, returns, episodes, env_steps, trace=None) -> Rollout:
    """Fitness from returns; a genome whose weights or return are not finite gets -inf."""
    fitness = returns / np.maximum(episodes, 1)
    bad = ~np.isfinite(fitness) | ~np.isfinite(genomes).all(axis=1)
    fitness = np.where(bad, -np.inf, fitness)
    res = Rollout(genomes, fitness, episodes, env_steps, int(bad.sum()))
    if trace is not None:  # (actions, rewards, firsts), each a list over steps
        res.actions, res.rewards, res.firsts = (np.stack(v) for v in trace)
    return res


@runtime_checkable
class Backend(Protocol):
    """What the run loop and every method need from an engine.

    ``run(genomes, seed, record=False)`` executes B = ``batch`` genomes (float32,
    ``(B, G)``, not modified) for one lifetime each in ``task``'s env and returns
    their rewritten copies with fitness. The same genomes and seed give the same
    Rollout on every backend, to float tolerance. ``close()`` frees the env and
    device resources."""

    name: str
    task: Task
    batch: int

    def run(self, genomes: np.ndarray, seed: int, record: bool = False) -> Rollout: ...

    def close(self) -> None: ...
