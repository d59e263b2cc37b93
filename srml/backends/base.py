"""What every backend shares: the task it runs and what a run returns.

A backend runs "B genomes for S steps in env E" and returns the rewritten
genomes and their fitness. Same inputs, same seeds -> same results on every
backend, to float tolerance: action sampling and twin resets draw from the
counter-based RNG in :mod:`srml.rng`, keyed by (generation seed, lane).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from ..errors import SrmlError
from ..srwm import Codec, Layout


@dataclass
class Task:
    """Everything about the problem a backend needs, resolved from the config."""

    env_id: str
    env_kwargs: dict
    lifetime: int
    sample_actions: bool
    codec: Codec
    layout: Layout
    twin: object | None = None  # srml.envs.Twin when the env has a compiled twin
    self_modify: bool = True  # False freezes the weights (baselines)
    fitness_start: int = 0  # > 0: only episodes ending from this step on count (whole)


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


def resolve_env_id(env_id: str) -> str:
    """'module:EnvId' imports module (which registers the env) and returns 'EnvId'."""
    if ":" not in env_id:
        return env_id
    module, _, name = env_id.partition(":")
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise SrmlError(f"cannot import {module!r} for env {name!r}: {e}") from None
    return name


def env_spaces(env_id: str, env_kwargs: dict) -> tuple[gym.Space, gym.Space]:
    """Observation and action space of one env, with Gymnasium's errors made one line."""
    try:
        env = gym.make(env_id, **env_kwargs)
    except (gym.error.Error, ModuleNotFoundError) as e:  # NameNotFound, a missing module ...
        raise SrmlError(f"cannot make env {env_id!r}: {e}") from None
    except TypeError as e:
        raise SrmlError(f"bad env kwargs for {env_id!r}: {e}") from None
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()
