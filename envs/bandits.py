"""Bandit tasks for meta-learning (no Gymnasium counterpart).

Both are task *distributions*: every reset draws a new task, and the
observation carries nothing about it (a constant ``[0.0]`` in a ``Box(0, 1,
(1,))``), so only the reward the agent feeds back to itself tells it which arm
pays. Episodes never terminate; they are truncated after ``episode_steps``
pulls (default 20). The action is the arm index (``Discrete``).

``srml/BernoulliBandit-v0`` (``n_arms=2``, ``episode_steps=20``)
    Each reset draws every arm's success probability uniformly from [0, 1);
    a pull of arm ``a`` pays 1 with probability ``p[a]``, else 0.
    State: ``[p_0, ..., p_{n_arms-1}, elapsed]``.

``srml/SwappingBandit-v0`` (``episode_steps=20``, ``p_good=1.0``, ``p_bad=0.0``)
    Two arms: the good one pays 1 with probability ``p_good``, the other with
    ``p_bad`` (by default deterministic rewards 1 and 0). Each reset makes arm
    1 the good one with probability 1/2, independently of earlier episodes, so
    the arms' identities swap between consecutive episodes with probability
    1/2. State: ``[good_arm, elapsed]``.

``srml/ReversalBandit-v0`` (``episode_steps=40``, ``p_good=0.8``, ``p_bad=0.2``)
    Reversal learning: two arms with stochastic payoffs whose identities swap ONCE at a
    random pull *within* the episode. Each reset draws the good arm (1/2 each) and the
    reversal pull ``r``, uniform on ``[episode_steps // 4, 3 * episode_steps // 4]``; pulls
    ``r, r+1, ...`` (0-based) pay by the swapped arms. No fixed policy does well: with
    stochastic payoffs, win-stay/lose-shift on the last reward earns 0.68 per pull at the
    defaults, an agent that knows the good arm 0.8; closing the gap takes accumulating
    evidence within the episode and noticing the reversal. State: ``[good_arm, elapsed,
    reversal_pull]``.

Payoff randomness: ``uniform(key, STREAM_ENV, t * 8)`` for the lane's step
counter ``t``; reset randomness: ``uniform(key, STREAM_RESET, episode * 64 + k)``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from srml.rng import STREAM_ENV, STREAM_RESET, make_rng

from .twin import TwinEnv, TwinVectorEnv, twin_factory

MAX_ARMS = 64  # one reset draw per arm, and a reset has 64 counters


def _obs_space():
    return spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)


def _check_episode_steps(episode_steps):
    if int(episode_steps) < 1:
        raise ValueError(f"episode_steps must be >= 1, got {episode_steps}")


def build_bernoulli(jit, rng_jit, n_arms, episode_steps):
    _, _, uniform = make_rng(rng_jit)
    n = int(n_arms)
    max_steps = float(episode_steps)

    @jit
    def reset(state, obs, key, episode):
        base = episode * 64
        for k in range(n):
            state[k] = uniform(key, STREAM_RESET, base + k)
        state[n] = 0.0
        obs[0] = 0.0

    @jit
    def step(state, act, obs, key, t):
        a = int(act[0])
        reward = 1.0 if uniform(key, STREAM_ENV, t * 8) < state[a] else 0.0
        elapsed = state[n] + 1.0
        state[n] = elapsed
        obs[0] = 0.0
        return reward, False, elapsed >= max_steps

    return reset, step


def build_swapping(jit, rng_jit, episode_steps, p_good, p_bad):
    _, _, uniform = make_rng(rng_jit)
    max_steps = float(episode_steps)
    pg = float(p_good)
    pb = float(p_bad)

    @jit
    def reset(state, obs, key, episode):
        state[0] = 1.0 if uniform(key, STREAM_RESET, episode * 64) < 0.5 else 0.0
        state[1] = 0.0
        obs[0] = 0.0

    @jit
    def step(state, act, obs, key, t):
        a = int(act[0])
        p = pg if a == int(state[0]) else pb
        reward = 1.0 if uniform(key, STREAM_ENV, t * 8) < p else 0.0
        elapsed = state[1] + 1.0
        state[1] = elapsed
        obs[0] = 0.0
        return reward, False, elapsed >= max_steps

    return reset, step


def build_reversal(jit, rng_jit, episode_steps, p_good, p_bad):
    _, _, uniform = make_rng(rng_jit)
    n = int(episode_steps)
    lo, span = n // 4, 3 * n // 4 - n // 4 + 1
    pg, pb = float(p_good), float(p_bad)

    @jit
    def reset(state, obs, key, episode):
        base = episode * 64
        state[0] = 1.0 if uniform(key, STREAM_RESET, base) < 0.5 else 0.0
        state[1] = 0.0
        state[2] = float(lo + min(int(uniform(key, STREAM_RESET, base + 1) * span), span - 1))
        obs[0] = 0.0

    @jit
    def step(state, act, obs, key, t):
        if state[1] == state[2]:  # the reversal: from this pull on the arms are swapped
            state[0] = 1.0 - state[0]
        a = int(act[0])
        p = pg if a == int(state[0]) else pb
        reward = 1.0 if uniform(key, STREAM_ENV, t * 8) < p else 0.0
        elapsed = state[1] + 1.0
        state[1] = elapsed
        obs[0] = 0.0
        return reward, False, elapsed >= n

    return reset, step


@twin_factory("srml/BernoulliBandit-v0", build_bernoulli)
def bernoulli_bandit(n_arms: int = 2, episode_steps: int = 20):
    """N-armed Bernoulli bandit whose arm probabilities are redrawn at each reset."""
    if not 1 <= int(n_arms) <= MAX_ARMS:
        raise ValueError(f"n_arms must be in [1, {MAX_ARMS}], got {n_arms}")
    _check_episode_steps(episode_steps)
    return dict(
        gym_id=None,
        state_dim=int(n_arms) + 1,
        obs_dim=1,
        act_dim=1,
        observation_space=_obs_space(),
        action_space=spaces.Discrete(int(n_arms)),
    )


@twin_factory("srml/SwappingBandit-v0", build_swapping)
def swapping_bandit(episode_steps: int = 20, p_good: float = 1.0, p_bad: float = 0.0):
    """Two-armed bandit whose good arm is redrawn (swaps w.p. 1/2) at each reset."""
    _check_episode_steps(episode_steps)
    for name, p in (("p_good", p_good), ("p_bad", p_bad)):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    return dict(
        gym_id=None,
        state_dim=2,
        obs_dim=1,
        act_dim=1,
        observation_space=_obs_space(),
        action_space=spaces.Discrete(2),
    )


@twin_factory("srml/ReversalBandit-v0", build_reversal)
def reversal_bandit(episode_steps: int = 40, p_good: float = 0.8, p_bad: float = 0.2):
    """Two stochastic arms whose identities swap once at a random pull within the episode."""
    _check_episode_steps(episode_steps)
    if int(episode_steps) < 4:
        raise ValueError(
            f"episode_steps must be >= 4 (the reversal falls mid-episode), got {episode_steps}"
        )
    for name, p in (("p_good", p_good), ("p_bad", p_bad)):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    return dict(
        gym_id=None,
        state_dim=3,
        obs_dim=1,
        act_dim=1,
        observation_space=_obs_space(),
        action_space=spaces.Discrete(2),
    )


class BernoulliBanditTwinEnv(TwinEnv):
    factory = staticmethod(bernoulli_bandit)


class BernoulliBanditTwinVectorEnv(TwinVectorEnv):
    factory = staticmethod(bernoulli_bandit)


class SwappingBanditTwinEnv(TwinEnv):
    factory = staticmethod(swapping_bandit)


class SwappingBanditTwinVectorEnv(TwinVectorEnv):
    factory = staticmethod(swapping_bandit)


class ReversalBanditTwinEnv(TwinEnv):
    factory = staticmethod(reversal_bandit)


class ReversalBanditTwinVectorEnv(TwinVectorEnv):
    factory = staticmethod(reversal_bandit)
