"""Pendulum-v1 twin: mirrors Gymnasium 1.4's ``PendulumEnv`` (classic_control/pendulum.py).

Dynamics: torque u = clip(action, -2, 2) (float32, as in Gymnasium);
``thdot += (3 g / (2 l) sin(th) + 3 / (m l^2) u) dt``, clipped to +-8, then
``th += thdot dt`` with dt = 0.05, m = l = 1 and gravity ``g`` (default 10).
Reward ``-(angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2)`` of the state
before the step. Never terminates; truncation after ``max_episode_steps``
(200; 0 disables it). Reset draws th uniformly from [-pi, pi) and thdot from
[-1, 1) with srml's counter RNG. Observation: ``[cos th, sin th, thdot]``.

State: ``[th, thdot, elapsed]``.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from srml.rng import STREAM_RESET, make_rng

from .twin import TwinEnv, TwinVectorEnv, twin_factory

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05
M = 1.0
L = 1.0
PI = math.pi


def build(jit, rng_jit, max_episode_steps, g):
    _, _, uniform = make_rng(rng_jit)
    max_steps = float(max_episode_steps)
    gravity_coef = 3 * float(g) / (2 * L)
    torque_coef = 3.0 / (M * L * L)

    @jit
    def write_obs(th, thdot, obs):
        obs[0] = math.cos(th)
        obs[1] = math.sin(th)
        obs[2] = thdot

    @jit
    def reset(state, obs, key, episode):
        base = episode * 64
        th = -PI + (PI - -PI) * uniform(key, STREAM_RESET, base)
        thdot = -1.0 + (1.0 - -1.0) * uniform(key, STREAM_RESET, base + 1)
        state[0] = th
        state[1] = thdot
        state[2] = 0.0
        write_obs(th, thdot, obs)

    @jit
    def step(state, act, obs, key, t):
        th = state[0]
        thdot = state[1]
        u = act[0]
        if u < -MAX_TORQUE:
            u = -MAX_TORQUE
        elif u > MAX_TORQUE:
            u = MAX_TORQUE
        u32 = np.float32(u)
        # angle_normalize(th) ** 2 + 0.1 * thdot ** 2 + 0.001 * (u ** 2); the last term
        # is float32 arithmetic in Gymnasium (u is a float32 scalar there).
        an = ((th + PI) % (2 * PI)) - PI
        u2 = np.float32(0.001) * (u32 * u32)
        costs = an * an + 0.1 * (thdot * thdot) + np.float64(u2)
        # 3 / (m l^2) * u is float32 arithmetic in Gymnasium as well.
        tu = np.float64(np.float32(torque_coef) * u32)
        newthdot = thdot + (gravity_coef * math.sin(th) + tu) * DT
        newthdot = min(max(newthdot, -MAX_SPEED), MAX_SPEED)
        newth = th + newthdot * DT
        state[0] = newth
        state[1] = newthdot
        elapsed = state[2] + 1.0
        state[2] = elapsed
        write_obs(newth, newthdot, obs)
        truncated = max_steps > 0.0 and elapsed >= max_steps
        return -costs, False, truncated

    return reset, step


@twin_factory("srml/Pendulum-v1", build)
def pendulum(max_episode_steps: int = 200, g: float = 10.0):
    """Pendulum-v1 twin; ``max_episode_steps=0`` leaves truncation to a wrapper."""
    if int(max_episode_steps) < 0:
        raise ValueError(f"max_episode_steps must be >= 0, got {max_episode_steps}")
    high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
    return dict(
        gym_id="Pendulum-v1",
        state_dim=3,
        obs_dim=3,
        act_dim=1,
        observation_space=spaces.Box(-high, high, dtype=np.float32),
        action_space=spaces.Box(-MAX_TORQUE, MAX_TORQUE, shape=(1,), dtype=np.float32),
    )


class PendulumTwinEnv(TwinEnv):
    factory = staticmethod(pendulum)


class PendulumTwinVectorEnv(TwinVectorEnv):
    factory = staticmethod(pendulum)
