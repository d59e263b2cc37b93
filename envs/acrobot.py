"""Acrobot-v1 twin: mirrors Gymnasium 1.4's ``AcrobotEnv`` (classic_control/acrobot.py).

Dynamics: the book equations (``book_or_nips = "book"``, no torque noise),
one RK4 step of dt = 0.2 s per action, joint angles wrapped to [-pi, pi],
velocities bounded to 4 pi and 9 pi. Actions 0, 1, 2 apply torque -1, 0, +1.
Reward -1 per step, 0 on the step that reaches the target height
(``-cos(t1) - cos(t1 + t2) > 1``), which terminates. Truncation after
``max_episode_steps`` (500; 0 disables it). Reset draws the four state
variables uniformly from [-0.1, 0.1) and, like Gymnasium, rounds them to
float32. Observation: ``[cos t1, sin t1, cos t2, sin t2, dt1, dt2]``.

State: ``[theta1, theta2, dtheta1, dtheta2, elapsed]``.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from srml.rng import STREAM_RESET, make_rng

from .twin import TwinEnv, TwinVectorEnv, twin_factory

PI = math.pi
DT = 0.2
LINK_LENGTH_1 = 1.0
LINK_MASS_1 = 1.0
LINK_MASS_2 = 1.0
LINK_COM_POS_1 = 0.5
LINK_COM_POS_2 = 0.5
LINK_MOI = 1.0
MAX_VEL_1 = 4 * PI
MAX_VEL_2 = 9 * PI
G = 9.8
RESET_LOW, RESET_HIGH = -0.1, 0.1


def build(jit, rng_jit, max_episode_steps):
    _, _, uniform = make_rng(rng_jit)
    max_steps = float(max_episode_steps)
    m1, m2, l1 = LINK_MASS_1, LINK_MASS_2, LINK_LENGTH_1
    lc1, lc2, i1, i2 = LINK_COM_POS_1, LINK_COM_POS_2, LINK_MOI, LINK_MOI

    @jit
    def dsdt(theta1, theta2, dtheta1, dtheta2, a):
        # Same operation order as Gymnasium's AcrobotEnv._dsdt (book dynamics).
        d1 = m1 * lc1 * lc1 + m2 * (l1 * l1 + lc2 * lc2 + 2 * l1 * lc2 * math.cos(theta2)) + i1 + i2
        d2 = m2 * (lc2 * lc2 + l1 * lc2 * math.cos(theta2)) + i2
        phi2 = m2 * lc2 * G * math.cos(theta1 + theta2 - PI / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * (dtheta2 * dtheta2) * math.sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * math.sin(theta2)
            + (m1 * lc1 + m2 * l1) * G * math.cos(theta1 - PI / 2)
            + phi2
        )
        ddtheta2 = (
            a + d2 / d1 * phi1 - m2 * l1 * lc2 * (dtheta1 * dtheta1) * math.sin(theta2) - phi2
        ) / (m2 * lc2 * lc2 + i2 - d2 * d2 / d1)
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return dtheta1, dtheta2, ddtheta1, ddtheta2

    @jit
    def wrap(x, lo, hi):
        diff = hi - lo
        while x > hi:
            x = x - diff
        while x < lo:
            x = x + diff
        return x

    @jit
    def write_obs(state, obs):
        obs[0] = math.cos(state[0])
        obs[1] = math.sin(state[0])
        obs[2] = math.cos(state[1])
        obs[3] = math.sin(state[1])
        obs[4] = state[2]
        obs[5] = state[3]

    @jit
    def reset(state, obs, key, episode):
        base = episode * 64
        for k in range(4):
            u = uniform(key, STREAM_RESET, base + k)
            state[k] = np.float32(RESET_LOW + (RESET_HIGH - RESET_LOW) * u)
        state[4] = 0.0
        write_obs(state, obs)

    @jit
    def step(state, act, obs, key, t):
        torque = int(act[0]) - 1.0
        s0 = state[0]
        s1 = state[1]
        s2 = state[2]
        s3 = state[3]
        # One RK4 step of length DT, as Gymnasium's rk4(derivs, y0, [0, dt]).
        h2 = DT / 2.0
        k1a, k1b, k1c, k1d = dsdt(s0, s1, s2, s3, torque)
        k2a, k2b, k2c, k2d = dsdt(
            s0 + h2 * k1a, s1 + h2 * k1b, s2 + h2 * k1c, s3 + h2 * k1d, torque
        )
        k3a, k3b, k3c, k3d = dsdt(
            s0 + h2 * k2a, s1 + h2 * k2b, s2 + h2 * k2c, s3 + h2 * k2d, torque
        )
        k4a, k4b, k4c, k4d = dsdt(
            s0 + DT * k3a, s1 + DT * k3b, s2 + DT * k3c, s3 + DT * k3d, torque
        )
        h6 = DT / 6.0
        n0 = s0 + h6 * (k1a + 2 * k2a + 2 * k3a + k4a)
        n1 = s1 + h6 * (k1b + 2 * k2b + 2 * k3b + k4b)
        n2 = s2 + h6 * (k1c + 2 * k2c + 2 * k3c + k4c)
        n3 = s3 + h6 * (k1d + 2 * k2d + 2 * k3d + k4d)
        n0 = wrap(n0, -PI, PI)
        n1 = wrap(n1, -PI, PI)
        n2 = min(max(n2, -MAX_VEL_1), MAX_VEL_1)
        n3 = min(max(n3, -MAX_VEL_2), MAX_VEL_2)
        state[0] = n0
        state[1] = n1
        state[2] = n2
        state[3] = n3
        elapsed = state[4] + 1.0
        state[4] = elapsed
        write_obs(state, obs)
        terminated = -math.cos(n0) - math.cos(n1 + n0) > 1.0
        reward = 0.0 if terminated else -1.0
        truncated = max_steps > 0.0 and elapsed >= max_steps
        return reward, terminated, truncated

    return reset, step


@twin_factory("srml/Acrobot-v1", build)
def acrobot(max_episode_steps: int = 500):
    """Acrobot-v1 twin; ``max_episode_steps=0`` leaves truncation to a wrapper."""
    if int(max_episode_steps) < 0:
        raise ValueError(f"max_episode_steps must be >= 0, got {max_episode_steps}")
    high = np.array([1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2], dtype=np.float32)
    return dict(
        gym_id="Acrobot-v1",
        state_dim=5,
        obs_dim=6,
        act_dim=1,
        observation_space=spaces.Box(-high, high, dtype=np.float32),
        action_space=spaces.Discrete(3),
    )


class AcrobotTwinEnv(TwinEnv):
    factory = staticmethod(acrobot)


class AcrobotTwinVectorEnv(TwinVectorEnv):
    factory = staticmethod(acrobot)
