"""Bandit tasks: payoff statistics, task redraws at reset, constant observations."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from srml.envs import TwinVectorEnv, get_twin


def within(observed, expected, var, sigmas=4.0):
    """|observed - expected| within `sigmas` standard deviations (var: variance of the sum)."""
    return abs(observed - expected) <= sigmas * np.sqrt(var) + 1e-12


def run(env_id, lanes, n_steps, seed, policy, **kwargs):
    """Step a SAME_STEP vector env; return per-step arrays (states before the step)."""
    env = TwinVectorEnv(lanes, twin=env_id, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = {"state": [], "action": [], "reward": [], "obs": [obs], "trunc": [], "term": []}
    for s in range(n_steps):
        actions = policy(rng, s, lanes)
        out["state"].append(env.states.copy())
        obs, r, te, tr, _ = env.step(actions)
        out["action"].append(actions)
        out["reward"].append(r)
        out["obs"].append(obs)
        out["trunc"].append(tr)
        out["term"].append(te)
    return {k: np.array(v) for k, v in out.items()}, env


def uniform_policy(n_arms):
    return lambda rng, s, lanes: rng.integers(n_arms, size=lanes)


@pytest.mark.parametrize("n_arms", [2, 5])
def test_bernoulli_bandit_payoffs_match_arm_probabilities(n_arms):
    steps = 10
    out, env = run(
        "srml/BernoulliBandit-v0", 400, 60, 1, uniform_policy(n_arms),
        n_arms=n_arms, episode_steps=steps,
    )  # fmt: skip
    assert env.single_action_space == gymnasium.spaces.Discrete(n_arms)
    assert env.twin.state_dim == n_arms + 1
    probs = out["state"][:, :, :n_arms]  # (step, lane, arm)
    p = np.take_along_axis(probs, out["action"][:, :, None], axis=2)[:, :, 0]
    r = out["reward"]
    assert set(np.unique(r)) <= {0.0, 1.0}
    assert within(r.sum(), p.sum(), (p * (1 - p)).sum())
    # Per-probability-bin agreement: payoffs follow each arm's own probability.
    for lo in np.arange(0.0, 1.0, 0.25):
        m = (p >= lo) & (p < lo + 0.25)
        assert within(r[m].sum(), p[m].sum(), (p[m] * (1 - p[m])).sum())
    # Arm probabilities: uniform on [0, 1), fixed within an episode, redrawn at reset.
    episode_p = probs[::steps].reshape(-1)  # first step of every episode
    assert len(episode_p) == 6 * 400 * n_arms
    assert within(episode_p.mean(), 0.5, 1 / 12 / len(episode_p))
    hist, _ = np.histogram(episode_p, bins=10, range=(0, 1))
    assert hist.min() > 0.8 * len(episode_p) / 10
    within_episode = probs.reshape(6, steps, 400, n_arms)
    assert (within_episode == within_episode[:, :1]).all()
    assert (np.diff(probs[::steps], axis=0) != 0).all()


def test_swapping_bandit_deterministic_arms_and_swaps():
    steps, lanes, episodes = 5, 300, 8
    out, _ = run(
        "srml/SwappingBandit-v0", lanes, steps * episodes, 2, uniform_policy(2),
        episode_steps=steps,
    )  # fmt: skip
    good = out["state"][:, :, 0]  # good arm, per step and lane
    # Default payoffs: exactly 1 for the good arm, 0 for the other.
    np.testing.assert_array_equal(out["reward"], (out["action"] == good).astype(float))
    per_episode = good[::steps]  # (episode, lane)
    assert (good.reshape(episodes, steps, lanes) == per_episode[:, None]).all()
    assert set(np.unique(per_episode)) == {0.0, 1.0}
    n = per_episode.size
    assert within(per_episode.sum(), n / 2, n / 4)
    swaps = per_episode[1:] != per_episode[:-1]
    assert within(swaps.sum(), swaps.size / 2, swaps.size / 4)


def test_swapping_bandit_stochastic_payoffs():
    out, _ = run(
        "srml/SwappingBandit-v0", 500, 40, 3, uniform_policy(2),
        episode_steps=10, p_good=0.8, p_bad=0.3,
    )  # fmt: skip
    good = out["action"] == out["state"][:, :, 0]
    r = out["reward"]
    for mask, p in ((good, 0.8), (~good, 0.3)):
        assert within(r[mask].sum(), p * mask.sum(), p * (1 - p) * mask.sum())


def test_reversal_bandit_swaps_once_within_each_episode():
    steps, lanes, episodes = 12, 400, 5
    out, env = run(
        "srml/ReversalBandit-v0", lanes, steps * episodes, 5, uniform_policy(2),
        episode_steps=steps,
    )  # fmt: skip
    assert env.twin.state_dim == 3
    s = out["state"].reshape(episodes, steps, lanes, 3)  # state before each pull
    rev = s[:, 0, :, 2]  # the reversal pull of each episode
    assert rev.min() >= steps // 4 and rev.max() <= 3 * steps // 4
    assert set(np.unique(rev)) == set(range(steps // 4, 3 * steps // 4 + 1))  # uniform support
    assert (s[:, :, :, 2] == rev[:, None]).all()  # fixed within the episode
    # the good arm paying at pull k: the one drawn at reset before the reversal, the other after
    start = s[:, 0, :, 0]
    good = np.where(
        np.arange(steps)[None, :, None] < rev[:, None], start[:, None], 1 - start[:, None]
    )
    paid = out["reward"].reshape(episodes, steps, lanes)
    chose = out["action"].reshape(episodes, steps, lanes) == good
    for mask, p in ((chose, 0.8), (~chose, 0.2)):
        assert within(paid[mask].sum(), p * mask.sum(), p * (1 - p) * mask.sum())
    assert within(start.sum(), start.size / 2, start.size / 4)


@pytest.mark.parametrize(
    "env_id", ["srml/BernoulliBandit-v0", "srml/SwappingBandit-v0", "srml/ReversalBandit-v0"]
)
def test_bandit_observation_constant_and_truncation(env_id):
    out, env = run(env_id, 50, 45, 4, uniform_policy(2), episode_steps=9)
    assert (out["obs"] == 0).all() and out["obs"].dtype == np.float32
    assert env.single_observation_space.shape == (1,)
    assert not out["term"].any()
    truncated_at = np.flatnonzero(out["trunc"][:, 0]) + 1
    np.testing.assert_array_equal(truncated_at, [9, 18, 27, 36, 45])
    assert out["trunc"].all(axis=1)[truncated_at - 1].all()


@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        ("srml/BernoulliBandit-v0", {"n_arms": 5, "episode_steps": 3}),
        ("srml/SwappingBandit-v0", {"p_good": 0.9, "p_bad": 0.1, "episode_steps": 4}),
        ("srml/ReversalBandit-v0", {"episode_steps": 8}),
    ],
)
def test_bandit_gymnasium_env(env_id, kwargs):
    env = gymnasium.make(env_id, **kwargs)
    assert env.spec.max_episode_steps is None  # the bandit truncates by itself
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    n = kwargs["episode_steps"]
    for i in range(n):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs.tolist() == [0.0] and reward in (0.0, 1.0) and not terminated
        assert truncated == (i == n - 1)


def test_bandit_kwargs_are_validated():
    with pytest.raises(ValueError):
        get_twin("srml/BernoulliBandit-v0", n_arms=0)
    with pytest.raises(ValueError):
        get_twin("srml/SwappingBandit-v0", p_good=1.5)
    with pytest.raises(ValueError):
        get_twin("srml/SwappingBandit-v0", episode_steps=0)
    with pytest.raises(ValueError):
        get_twin("srml/ReversalBandit-v0", episode_steps=3)
