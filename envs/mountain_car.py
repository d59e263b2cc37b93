"""MountainCar-v0 and MountainCarContinuous-v0 twins.

They mirror Gymnasium 1.4's ``MountainCarEnv`` (classic_control/mountain_car.py)
and ``Continuous_MountainCarEnv`` (classic_control/continuous_mountain_car.py).
Reset draws the position uniformly from [-0.6, -0.4) with srml's counter RNG,
velocity 0.

MountainCar-v0: actions 0, 1, 2 push left, not at all, right; reward -1 per
step; terminates at position >= 0.5 with velocity >= ``goal_velocity``;
truncation after ``max_episode_steps`` (200; 0 disables it). Float64 state.

MountainCarContinuous-v0: force = clip(action, -1, 1); reward
``100 * reached - 0.1 * action**2`` (of the unclipped action, as Gymnasium);
terminates at position >= 0.45; truncation after 999 steps. Gymnasium keeps
this env's state in float32 after the first step and computes parts of each
step in float32 (numpy 2's promotion rules); the twin reproduces that
arithmetic with explicit float32 casts, so trajectories match bit for bit.

State: ``[position, velocity, elapsed]``.
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from srml.rng import STREAM_RESET, make_rng

from .twin import TwinEnv, TwinVectorEnv, twin_factory

MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07
GOAL_POSITION = 0.5
GOAL_POSITION_CONTINUOUS = 0.45
FORCE = 0.001
GRAVITY = 0.0025
POWER = 0.0015
RESET_LOW, RESET_HIGH = -0.6, -0.4


def _obs_space():
    low = np.array([MIN_POSITION, -MAX_SPEED], dtype=np.float32)
    high = np.array([MAX_POSITION, MAX_SPEED], dtype=np.float32)
    return spaces.Box(low, high, dtype=np.float32)


def _check_steps(max_episode_steps):
    if int(max_episode_steps) < 0:
        raise ValueError(f"max_episode_steps must be >= 0, got {max_episode_steps}")


def build_reset(jit, uniform):
    @jit
    def reset(state, obs, key, episode):
        u = uniform(key, STREAM_RESET, episode * 64)
        position = RESET_LOW + (RESET_HIGH - RESET_LOW) * u
        state[0] = position
        state[1] = 0.0
        state[2] = 0.0
        obs[0] = position
        obs[1] = 0.0

    return reset


def build_discrete(jit, rng_jit, max_episode_steps, goal_velocity):
    _, _, uniform = make_rng(rng_jit)
    max_steps = float(max_episode_steps)
    goal_v = float(goal_velocity)
    reset = build_reset(jit, uniform)

    @jit
    def step(state, act, obs, key, t):
        position = state[0]
        velocity = state[1]
        velocity = velocity + ((int(act[0]) - 1) * FORCE + math.cos(3 * position) * (-GRAVITY))
        velocity = min(max(velocity, -MAX_SPEED), MAX_SPEED)
        position = position + velocity
        position = min(max(position, MIN_POSITION), MAX_POSITION)
        if position == MIN_POSITION and velocity < 0.0:
            velocity = 0.0
        terminated = position >= GOAL_POSITION and velocity >= goal_v
        state[0] = position
        state[1] = velocity
        elapsed = state[2] + 1.0
        state[2] = elapsed
        obs[0] = position
        obs[1] = velocity
        truncated = max_steps > 0.0 and elapsed >= max_steps
        return -1.0, terminated, truncated

    return reset, step


def build_continuous(jit, rng_jit, max_episode_steps, goal_velocity):
    _, _, uniform = make_rng(rng_jit)
    max_steps = float(max_episode_steps)
    goal_v = float(goal_velocity)
    reset = build_reset(jit, uniform)

    # In Gymnasium the state is float64 right after reset and float32 after any
    # step; Python floats (the constants, and values clipped to them) mixed with
    # float32 are rounded to float32. The *_32 flags track which type a value
    # has in Gymnasium's code; float32 arithmetic is written as explicit casts.
    @jit
    def step(state, act, obs, key, t):
        position = state[0]
        velocity = state[1]
        first = state[2] == 0.0
        a = act[0]
        a64 = np.float64(a)
        # force = min(max(action[0], -1.0), 1.0); force * power
        if a64 < -1.0:
            term = -1.0 * POWER
            term_32 = False
        elif a64 > 1.0:
            term = 1.0 * POWER
            term_32 = False
        else:
            term = np.float64(np.float32(a) * np.float32(POWER))
            term_32 = True
        # - 0.0025 * math.cos(3 * position)
        if first:
            c = 0.0025 * math.cos(3 * position)
        else:
            c = 0.0025 * math.cos(np.float64(np.float32(3.0) * np.float32(position)))
        if term_32:
            inc = np.float64(np.float32(term) - np.float32(c))
        else:
            inc = term - c
        # velocity += ...
        if first:
            velocity = velocity + inc
            v_32 = False
        else:
            velocity = np.float64(np.float32(velocity) + np.float32(inc))
            v_32 = True
        # clip velocity to +-max_speed
        if v_32:
            if np.float32(velocity) > np.float32(MAX_SPEED):
                velocity = MAX_SPEED
                v_32 = False
        elif velocity > MAX_SPEED:
            velocity = MAX_SPEED
        if v_32:
            if np.float32(velocity) < np.float32(-MAX_SPEED):
                velocity = -MAX_SPEED
                v_32 = False
        elif velocity < -MAX_SPEED:
            velocity = -MAX_SPEED
        # position += velocity
        if first:
            position = position + velocity
            p_32 = False
        else:
            position = np.float64(np.float32(position) + np.float32(velocity))
            p_32 = True
        # clip position
        if p_32:
            if np.float32(position) > np.float32(MAX_POSITION):
                position = MAX_POSITION
                p_32 = False
        elif position > MAX_POSITION:
            position = MAX_POSITION
        if p_32:
            if np.float32(position) < np.float32(MIN_POSITION):
                position = MIN_POSITION
                p_32 = False
        elif position < MIN_POSITION:
            position = MIN_POSITION
        if p_32:
            at_left = np.float32(position) == np.float32(MIN_POSITION)
        else:
            at_left = position == MIN_POSITION
        if at_left and velocity < 0.0:
            velocity = 0.0
            v_32 = False
        if p_32:
            reached = np.float32(position) >= np.float32(GOAL_POSITION_CONTINUOUS)
        else:
            reached = position >= GOAL_POSITION_CONTINUOUS
        if v_32:
            fast = np.float32(velocity) >= np.float32(goal_v)
        else:
            fast = velocity >= goal_v
        terminated = reached and fast
        reward = 100.0 if terminated else 0.0
        reward = reward - a64 * a64 * 0.1
        p = np.float32(position)
        v = np.float32(velocity)
        state[0] = p
        state[1] = v
        elapsed = state[2] + 1.0
        state[2] = elapsed
        obs[0] = p
        obs[1] = v
        truncated = max_steps > 0.0 and elapsed >= max_steps
        return reward, terminated, truncated

    return reset, step


@twin_factory("srml/MountainCar-v0", build_discrete)
def mountain_car(max_episode_steps: int = 200, goal_velocity: float = 0.0):
    """MountainCar-v0 twin; ``max_episode_steps=0`` leaves truncation to a wrapper."""
    _check_steps(max_episode_steps)
    return dict(
        gym_id="MountainCar-v0",
        state_dim=3,
        obs_dim=2,
        act_dim=1,
        observation_space=_obs_space(),
        action_space=spaces.Discrete(3),
    )


@twin_factory("srml/MountainCarContinuous-v0", build_continuous)
def mountain_car_continuous(max_episode_steps: int = 999, goal_velocity: float = 0.0):
    """MountainCarContinuous-v0 twin; ``max_episode_steps=0`` leaves truncation to a wrapper."""
    _check_steps(max_episode_steps)
    return dict(
        gym_id="MountainCarContinuous-v0",
        state_dim=3,
        obs_dim=2,
        act_dim=1,
        observation_space=_obs_space(),
        action_space=spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32),
    )


class MountainCarTwinEnv(TwinEnv):
    factory = staticmethod(mountain_car)


class MountainCarTwinVectorEnv(TwinVectorEnv):
    factory = staticmethod(mountain_car)


class MountainCarContinuousTwinEnv(TwinEnv):
    factory = staticmethod(mountain_car_continuous)


class MountainCarContinuousTwinVectorEnv(TwinVectorEnv):
    factory = staticmethod(mountain_car_continuous)
