"""CartPole-v1 twin: mirrors Gymnasium 1.4's ``CartPoleEnv`` (classic_control/cartpole.py).

Dynamics: Euler kinematics (the default ``kinematics_integrator``), float64
state, float32 observation; terminates when |x| > 2.4 or |theta| > 12 degrees;
reward +1 on every step including the terminal one (or Sutton & Barto's 0 / -1
with ``sutton_barto_reward=True``); truncation after ``max_episode_steps``
(500, as registered for CartPole-v1; 0 disables it). Reset draws the four
state variables uniformly from [-0.05, 0.05) with srml's counter RNG.

State: ``[x, x_dot, theta, theta_dot, elapsed]``.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from srml.rng import STREAM_RESET, make_rng

from .twin import TwinEnv, TwinVectorEnv, twin_factory

GRAVITY = 9.8
MASSCART = 1.0
MASSPOLE = 0.1
TOTAL_MASS = MASSPOLE + MASSCART
LENGTH = 0.5  # half the pole's length
POLEMASS_LENGTH = MASSPOLE * LENGTH
FORCE_MAG = 10.0
TAU = 0.02
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
RESET_LOW, RESET_HIGH = -0.05, 0.05


def build(jit, rng_jit, max_episode_steps, sutton_barto_reward):
    _, _, uniform = make_rng(rng_jit)
    max_steps = float(max_episode_steps)
    sb_reward = bool(sutton_barto_reward)

    @jit
    def reset(state, obs, key, episode):
        base = episode * 64
        for k in range(4):
            u = uniform(key, STREAM_RESET, base + k)
            v = RESET_LOW + (RESET_HIGH - RESET_LOW) * u
            state[k] = v
            obs[k] = v
        state[4] = 0.0

    @jit
    def step(state, act, obs, key, t):
        x = state[0]
        x_dot = state[1]
        theta = state[2]
        theta_dot = state[3]
        force = FORCE_MAG if int(act[0]) == 1 else -FORCE_MAG
        costheta = math.cos(theta)
        sintheta = math.sin(theta)
        temp = (force + POLEMASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS
        thetaacc = (GRAVITY * sintheta - costheta * temp) / (
            LENGTH * (4.0 / 3.0 - MASSPOLE * (costheta * costheta) / TOTAL_MASS)
        )
        xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
        x = x + TAU * x_dot
        x_dot = x_dot + TAU * xacc
        theta = theta + TAU * theta_dot
        theta_dot = theta_dot + TAU * thetaacc
        state[0] = x
        state[1] = x_dot
        state[2] = theta
        state[3] = theta_dot
        elapsed = state[4] + 1.0
        state[4] = elapsed
        obs[0] = x
        obs[1] = x_dot
        obs[2] = theta
        obs[3] = theta_dot
        terminated = (
            x < -X_THRESHOLD
            or x > X_THRESHOLD
            or theta < -THETA_THRESHOLD
            or theta > THETA_THRESHOLD
        )
        if sb_reward:
            reward = -1.0 if terminated else 0.0
        else:
            reward = 1.0
        truncated = max_steps > 0.0 and elapsed >= max_steps
        return reward, terminated, truncated

    return reset, step


@twin_factory("srml/CartPole-v1", build)
def cartpole(max_episode_steps: int = 500, sutton_barto_reward: bool = False):
    """CartPole-v1 twin; ``max_episode_steps=0`` leaves truncation to a wrapper."""
    if int(max_episode_steps) < 0:
        raise ValueError(f"max_episode_steps must be >= 0, got {max_episode_steps}")
    high = np.array([X_THRESHOLD * 2, np.inf, THETA_THRESHOLD * 2, np.inf], dtype=np.float32)
    return dict(
        gym_id="CartPole-v1",
        state_dim=5,
        obs_dim=4,
        act_dim=1,
        observation_space=spaces.Box(-high, high, dtype=np.float32),
        action_space=spaces.Discrete(2),
    )


class CartPoleTwinEnv(TwinEnv):
    factory = staticmethod(cartpole)


class CartPoleTwinVectorEnv(TwinVectorEnv):
    factory = staticmethod(cartpole)
