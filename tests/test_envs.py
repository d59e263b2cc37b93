"""srml.envs: compiled twins vs Gymnasium, the Gymnasium wrappers, and the kernel contract."""

from __future__ import annotations

import os
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from srml.envs import TWINS, TwinEnv, TwinVectorEnv, get_twin, make_batch_kernels, register_envs

from srml.rng import lane_keys

CLASSIC = [eid for eid in TWINS if get_twin(eid).gym_id is not None]
ALL = list(TWINS)
CUDASIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
if CUDASIM:  # a module global: the simulator swaps `cuda` in kernels' globals
    from numba import cuda


# ----------------------------------------------------------------- helpers


def heuristic(gym_id, obs):
    """A policy that reaches each task's terminal states (so parity covers them)."""
    if gym_id == "CartPole-v1":  # balances: episodes run into truncation
        return int(obs[2] + 0.5 * obs[3] + 0.05 * obs[0] + 0.2 * obs[1] > 0)
    if gym_id == "Acrobot-v1":  # pumps energy: reaches the target height
        return 0 if obs[4] > 0 else 2
    if gym_id == "MountainCar-v0":
        return 2 if obs[1] > 0 else 0
    if gym_id == "MountainCarContinuous-v0":  # +-1.2: also exercises clipping
        return np.array([1.2 if obs[1] >= 0 else -1.2], np.float32)
    return None  # Pendulum: random torques only


def random_action(twin, rng):
    if twin.discrete:
        return int(rng.integers(twin.action_space.n))
    hi = twin.action_space.high
    # Beyond the bounds too: Gymnasium clips (and MountainCarContinuous's
    # reward uses the unclipped action), the twin must do the same.
    return rng.uniform(-1.5 * hi, 1.5 * hi).astype(np.float32)


def ref_state(twin, state):
    """The twin's state as Gymnasium's env holds it (dtype included)."""
    fresh = state[-1] == 0.0
    gid = twin.gym_id
    if gid in ("CartPole-v1",):
        return np.array(state[:4], np.float64)
    if gid == "Acrobot-v1":  # Gymnasium's reset state is float32, later float64
        return np.array(state[:4], np.float32 if fresh else np.float64)
    if gid == "MountainCarContinuous-v0":  # float64 after reset, float32 after a step
        return np.array(state[:2], np.float64 if fresh else np.float32)
    return np.array(state[:2], np.float64)  # MountainCar, Pendulum


def to_act(twin, action):
    act = np.zeros(twin.act_dim, np.float32)
    act[:] = action
    return act


# ------------------------------------------------------------------ parity


def run_parity(twin, n_steps, seed, resync=False):
    """Step the twin and Gymnasium's env side by side; return counts of endings.

    The reference's state is set from the twin's at each reset (and before
    every step if ``resync``); between resets both evolve on their own.
    Episodes alternate between random actions and a goal-reaching heuristic
    with 20% random actions.
    """
    reset, step = twin.make_kernels("njit")
    kwargs = {k: v for k, v in twin.params.items() if k != "max_episode_steps"}
    ref = gymnasium.make(
        twin.gym_id,
        max_episode_steps=twin.params["max_episode_steps"],
        disable_env_checker=True,
        **kwargs,
    )
    ref.reset(seed=seed)
    rng = np.random.default_rng(seed)
    state = np.zeros(twin.state_dim)
    obs = np.zeros(twin.obs_dim, np.float32)
    key = np.uint64(lane_keys(seed, 0))
    episode, fresh, counts = -1, True, {"terminated": 0, "truncated": 0}
    for t in range(n_steps):
        if fresh:
            episode += 1
            reset(state, obs, key, episode)
            ref.reset()
            ref.unwrapped.state = ref_state(twin, state)
            fresh = False
            ref_obs = obs.copy()
        elif resync:
            ref.unwrapped.state = ref_state(twin, state)
        action = heuristic(twin.gym_id, ref_obs) if episode % 2 else None
        if action is None or rng.random() < 0.2:
            action = random_action(twin, rng)
        reward, terminated, truncated = step(state, to_act(twin, action), obs, key, t)
        ref_obs, ref_reward, ref_term, ref_trunc, _ = ref.step(action)
        where = f"{twin.id} step {t} (episode {episode}, elapsed {state[-1]:.0f})"
        np.testing.assert_allclose(obs, ref_obs, rtol=0, atol=1e-5, err_msg=where)
        assert abs(reward - ref_reward) <= 1e-5, (where, reward, ref_reward)
        assert (bool(terminated), bool(truncated)) == (ref_term, ref_trunc), where
        if terminated or truncated:
            counts["terminated"] += bool(terminated)
            counts["truncated"] += bool(truncated)
            fresh = True
    return counts


# How many steps each env needs to see both endings (Pendulum only truncates).
PARITY_STEPS = {
    "srml/CartPole-v1": 3000,
    "srml/Acrobot-v1": 3000,
    "srml/MountainCar-v0": 3000,
    "srml/MountainCarContinuous-v0": 4000,
    "srml/Pendulum-v1": 3000,
}


@pytest.mark.parametrize("env_id", CLASSIC)
def test_parity_with_gymnasium(env_id):
    twin = get_twin(env_id)
    counts = run_parity(twin, PARITY_STEPS[env_id], seed=7)
    assert counts["truncated"] > 0, counts
    if env_id != "srml/Pendulum-v1":
        assert counts["terminated"] > 0, counts


@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        ("srml/CartPole-v1", {"sutton_barto_reward": True, "max_episode_steps": 60}),
        ("srml/Acrobot-v1", {"max_episode_steps": 40}),
        ("srml/MountainCar-v0", {"goal_velocity": 0.01, "max_episode_steps": 150}),
        ("srml/MountainCarContinuous-v0", {"goal_velocity": 0.01, "max_episode_steps": 150}),
        ("srml/Pendulum-v1", {"g": 9.81, "max_episode_steps": 50}),
    ],
)
def test_parity_with_gymnasium_kwargs(env_id, kwargs):
    twin = get_twin(env_id, **kwargs)
    assert twin.params["max_episode_steps"] == kwargs["max_episode_steps"]
    counts = run_parity(twin, 600, seed=3, resync=True)
    assert counts["truncated"] > 0


# ----------------------------------------------------- registry and spaces


def test_registry_and_get_twin():
    assert set(ALL) == {
        "srml/CartPole-v1",
        "srml/Acrobot-v1",
        "srml/MountainCar-v0",
        "srml/MountainCarContinuous-v0",
        "srml/Pendulum-v1",
        "srml/BernoulliBandit-v0",
        "srml/SwappingBandit-v0",
        "srml/ReversalBandit-v0",
        "srml/LearnedOptimizer-v0",
    }
    assert get_twin("CartPole-v1") is None
    assert get_twin("srml/NoSuchEnv-v0") is None
    a = get_twin("srml/CartPole-v1")
    assert a is get_twin("srml/CartPole-v1", max_episode_steps=500)
    assert a is not get_twin("srml/CartPole-v1", max_episode_steps=100)
    assert a.make_kernels("njit") is a.make_kernels("njit")
    assert len({a, get_twin("srml/CartPole-v1")}) == 1  # hashable, one object per kwargs
    with pytest.raises(TypeError):
        get_twin("srml/CartPole-v1", no_such_kwarg=1)
    with pytest.raises(ValueError):
        get_twin("srml/BernoulliBandit-v0", n_arms=65)
    for env_id in ALL:
        spec = gymnasium.spec(env_id)
        assert isinstance(spec.entry_point, str) and isinstance(spec.vector_entry_point, str)
    # Registration is idempotent: no "overriding environment" warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_envs()


@pytest.mark.parametrize("env_id", ALL)
def test_twin_fields(env_id):
    twin = get_twin(env_id)
    assert twin.id == env_id
    assert twin.observation_space.shape == (twin.obs_dim,)
    assert twin.observation_space.dtype == np.float32
    assert twin.act_dim == (1 if twin.discrete else twin.action_space.shape[0])
    if twin.gym_id is not None:
        ref = gymnasium.make(twin.gym_id)
        assert twin.observation_space == ref.observation_space
        assert twin.action_space == ref.action_space
        assert gymnasium.spec(env_id).max_episode_steps == ref.spec.max_episode_steps
        assert twin.params["max_episode_steps"] == ref.spec.max_episode_steps


@pytest.mark.parametrize("env_id", ALL)
def test_check_env(env_id):
    env = gymnasium.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "is different from the unwrapped version"
        check_env(env, skip_render_check=True)
    with pytest.raises(ValueError):
        gymnasium.make(env_id, render_mode="rgb_array")


@pytest.mark.parametrize("env_id", CLASSIC)
def test_single_env_truncates_like_gymnasium(env_id):
    """gymnasium.make adds TimeLimit; its max_episode_steps override works as usual."""
    env = gymnasium.make(env_id, max_episode_steps=7)
    twin = get_twin(env_id)
    env.reset(seed=0)
    for i in range(7):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert truncated == (i == 6 and not terminated)
        if terminated:
            break
    # Without the wrapper the env itself does not truncate ...
    raw = gymnasium.make(env_id, max_episode_steps=-1)
    assert raw.unwrapped.twin.params["max_episode_steps"] == 0
    # ... unless told to.
    own = TwinEnv(env_id, max_episode_steps=twin.params["max_episode_steps"])
    assert own.twin is twin


# -------------------------------------------------------------- vector env


def lane_reference(twin, seed, lanes, actions, mode):
    """Gymnasium's autoreset conventions, lane by lane with the njit kernels."""
    reset, step = twin.make_kernels("njit")
    n_steps = len(actions)
    obs = np.zeros((n_steps + 1, lanes, twin.obs_dim), np.float32)
    rew = np.zeros((n_steps, lanes))
    term = np.zeros((n_steps, lanes), bool)
    trunc = np.zeros((n_steps, lanes), bool)
    for i in range(lanes):
        key = np.uint64(lane_keys(seed, i))
        state = np.zeros(twin.state_dim)
        o = np.zeros(twin.obs_dim, np.float32)
        episode, t, pending = 0, 0, False
        reset(state, o, key, episode)
        obs[0, i] = o
        for s in range(n_steps):
            if mode == AutoresetMode.NEXT_STEP and pending:
                episode += 1
                reset(state, o, key, episode)
                pending = False
            else:
                r, te, tr = step(state, to_act(twin, actions[s][i]), o, key, t)
                t += 1
                rew[s, i], term[s, i], trunc[s, i] = r, te, tr
                if te or tr:
                    if mode == AutoresetMode.NEXT_STEP:
                        pending = True
                    else:
                        episode += 1
                        reset(state, o, key, episode)
            obs[s + 1, i] = o
    return obs, rew, term, trunc


def short_kwargs(env_id):
    if env_id == "srml/LearnedOptimizer-v0":  # 3 parameters x 3 optimizer steps per episode
        return {"dim": 3, "steps_per_problem": 3}
    return {"episode_steps": 7} if get_twin(env_id).gym_id is None else {"max_episode_steps": 9}


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("env_id", ALL)
def test_vector_env_matches_lanes(env_id, mode):
    lanes, n_steps, seed = 3, 40, 11
    env = TwinVectorEnv(lanes, twin=env_id, autoreset_mode=mode, **short_kwargs(env_id))
    assert env.metadata["autoreset_mode"] == mode
    assert env.single_observation_space == env.twin.observation_space
    assert env.observation_space.shape == (lanes, env.twin.obs_dim)
    assert env.action_space.shape[0] == lanes
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(n_steps)]
    obs, rew, term, trunc = lane_reference(env.twin, seed, lanes, actions, mode)
    o, _ = env.reset(seed=seed)
    np.testing.assert_array_equal(o, obs[0])
    ended = 0
    for s in range(n_steps):
        o, r, te, tr, info = env.step(actions[s])
        np.testing.assert_array_equal(o, obs[s + 1])
        np.testing.assert_array_equal(r, rew[s])
        np.testing.assert_array_equal(te, term[s])
        np.testing.assert_array_equal(tr, trunc[s])
        done = te | tr
        ended += done.sum()
        if mode == AutoresetMode.SAME_STEP and done.any():
            np.testing.assert_array_equal(info["_final_obs"], done)
            for i in np.flatnonzero(done):
                assert info["final_obs"][i].shape == (env.twin.obs_dim,)
        else:
            assert "final_obs" not in info
    assert ended >= lanes * 2


def test_vector_env_modes_see_the_same_episodes():
    """NEXT_STEP only inserts the reset steps; the transitions are those of SAME_STEP."""
    env_id, lanes, seed = "srml/CartPole-v1", 2, 5
    runs = {}
    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        env = TwinVectorEnv(lanes, twin=env_id, autoreset_mode=mode)
        env.reset(seed=seed)
        seen = [[] for _ in range(lanes)]  # (obs, reward) of every real step, per lane
        pending = np.zeros(lanes, bool)
        taken = np.zeros(lanes, np.int64)  # real steps per lane: the action depends on it
        for _ in range(150):
            actions = (taken // 3 + np.arange(lanes)) % 2
            o, r, te, tr, info = env.step(actions)
            for i in range(lanes):
                if mode == AutoresetMode.NEXT_STEP and pending[i]:
                    continue
                taken[i] += 1
                last = info["final_obs"][i] if (te[i] or tr[i]) and "final_obs" in info else o[i]
                seen[i].append((last.copy(), r[i], te[i]))
            pending = te | tr
        runs[mode] = seen
    for i in range(lanes):
        a, b = runs[AutoresetMode.NEXT_STEP][i], runs[AutoresetMode.SAME_STEP][i]
        n = min(len(a), len(b))
        assert n > 100 and sum(x[2] for x in a[:n]) >= 2
        for (oa, ra, ta), (ob, rb, tb) in zip(a[:n], b[:n], strict=True):
            np.testing.assert_array_equal(oa, ob)
            assert (ra, ta) == (rb, tb)


@pytest.mark.parametrize("env_id", ["srml/CartPole-v1", "srml/SwappingBandit-v0"])
def test_vector_env_reset_reproducible_and_lanes_differ(env_id):
    env = TwinVectorEnv(8, twin=env_id)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(30)]

    def rollout(seed):
        out = [env.reset(seed=seed)[0]]
        for a in actions:
            o, r, _, _, _ = env.step(a)
            out += [o, r]
        return out

    a, b, c = rollout(1), rollout(1), rollout(2)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    if env_id == "srml/CartPole-v1":
        first = a[0]
        assert len({tuple(row) for row in first}) == 8  # every lane starts elsewhere
    else:
        goods = env.states[:, 0]  # good arm per lane: both kinds among 8 lanes
        env.reset(seed=1)
        goods = np.concatenate([goods, env.states[:, 0]])
        assert 0 < goods.sum() < len(goods)


def test_vector_env_reset_without_seed_starts_next_episode():
    env = TwinVectorEnv(4, twin="srml/CartPole-v1")
    o0, _ = env.reset(seed=3)
    o1, _ = env.reset()
    np.testing.assert_array_equal(env.episodes, 1)
    assert not np.array_equal(o0, o1)
    o2, _ = env.reset(seed=3)
    np.testing.assert_array_equal(o0, o2)
    np.testing.assert_array_equal(env.episodes, 0)
    # A list of seeds gives lane i the key lane_keys(seeds[i], i).
    o3, _ = env.reset(seed=[3, 4, 5, 6])
    np.testing.assert_array_equal(o3[0], o0[0])
    np.testing.assert_array_equal(env.keys, lane_keys(np.array([3, 4, 5, 6]), np.arange(4)))
    # Unseeded first reset: seeded from np_random, still valid observations.
    fresh = TwinVectorEnv(4, twin="srml/CartPole-v1")
    o, _ = fresh.reset()
    assert o in fresh.observation_space


def test_vector_env_disabled_autoreset():
    env = TwinVectorEnv(2, twin="srml/CartPole-v1", autoreset_mode="disabled", max_episode_steps=3)
    env.reset(seed=0)
    for _ in range(3):
        _, _, te, tr, _ = env.step(np.array([0, 1]))
    assert (te | tr).all()
    with pytest.raises(RuntimeError):
        env.step(np.array([0, 1]))
    env.reset(options={"reset_mask": np.array([True, False])})
    np.testing.assert_array_equal(env.episodes, [1, 0])
    env.reset(options={"reset_mask": np.array([False, True])})
    env.step(np.array([0, 1]))


def test_vector_env_rejects_bad_actions():
    env = TwinVectorEnv(2, twin="srml/CartPole-v1")
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(np.array([0, 2]))


@pytest.mark.parametrize("env_id", ALL)
def test_make_vec_uses_the_batched_entry_point(env_id):
    envs = gymnasium.make_vec(env_id, num_envs=3)
    assert isinstance(envs, TwinVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    spec_steps = gymnasium.spec(env_id).max_episode_steps
    if spec_steps is not None:
        assert envs.twin.params["max_episode_steps"] == spec_steps
    envs = gymnasium.make_vec(env_id, num_envs=2, autoreset_mode=AutoresetMode.SAME_STEP)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, _ = envs.reset(seed=0)
    assert obs in envs.observation_space


@pytest.mark.parametrize("env_id", ALL)
def test_single_env_is_lane_zero(env_id):
    """TwinEnv (through gymnasium.make) steps exactly like lane 0 of the vector env."""
    env = gymnasium.make(env_id)
    vec = gymnasium.make_vec(env_id, num_envs=2, autoreset_mode=AutoresetMode.SAME_STEP)
    env.action_space.seed(4)
    o, _ = env.reset(seed=9)
    vo, _ = vec.reset(seed=9)
    np.testing.assert_array_equal(o, vo[0])
    for _ in range(300):
        a = env.action_space.sample()
        o, r, te, tr, _ = env.step(a)
        vo, vr, vte, vtr, info = vec.step(np.stack([a, a]))
        assert (r, te, tr) == (vr[0], vte[0], vtr[0])
        if te or tr:
            np.testing.assert_array_equal(o, info["final_obs"][0])
            o, _ = env.reset()
        np.testing.assert_array_equal(o, vo[0])


# ------------------------------------------------- python / njit / cuda


def kernel_rollout(twin, reset, step, lanes=3, n_steps=150, seed=2):
    """Run reset/step on a few lanes (episodes end early) and record everything."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(lanes):
        key = np.uint64(lane_keys(seed, i))
        state = np.zeros(twin.state_dim)
        obs = np.zeros(twin.obs_dim, np.float32)
        episode = 0
        reset(state, obs, key, episode)
        out.append(obs.copy())
        for t in range(n_steps):
            r, te, tr = step(state, to_act(twin, random_action(twin, rng)), obs, key, t)
            out += [obs.copy(), state.copy(), np.array([r, te, tr], np.float64)]
            if te or tr:
                episode += 1
                reset(state, obs, key, episode)
                out.append(obs.copy())
    return out


@pytest.mark.parametrize("env_id", ALL)
def test_python_and_njit_kernels_agree(env_id):
    twin = get_twin(env_id, **short_kwargs(env_id))
    py = kernel_rollout(twin, *twin.make_kernels(None))
    nj = kernel_rollout(twin, *twin.make_kernels("njit"))
    for a, b in zip(py, nj, strict=True):
        np.testing.assert_array_equal(a, b)


def test_batch_kernels_python_and_njit_agree():
    twin = get_twin("srml/Acrobot-v1", max_episode_steps=5)
    results = []
    for jit in (None, "njit"):
        vreset, vstep = make_batch_kernels(twin, jit)
        n = 3
        states = np.zeros((n, twin.state_dim))
        obs = np.zeros((n, twin.obs_dim), np.float32)
        keys = lane_keys(0, np.arange(n))
        episodes = np.zeros(n, np.int64)
        steps = np.zeros(n, np.int64)
        flags = [np.zeros(n, bool) for _ in range(4)]
        rewards = np.zeros(n)
        final_obs = np.zeros_like(obs)
        vreset(states, obs, keys, episodes, np.ones(n, bool))
        for s in range(12):
            acts = np.full((n, 1), s % 3, np.float32)
            vstep(states, acts, obs, rewards, flags[0], flags[1], keys, episodes, steps,
                  flags[2], 1, final_obs, flags[3])  # fmt: skip
        results.append((states.copy(), obs.copy(), episodes.copy(), steps.copy()))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def cuda_rollout(twin, lanes, n_steps, seed, actions):
    reset, step = twin.make_kernels("cuda")
    obs_dim = twin.obs_dim

    @cuda.jit
    def run(states, obs, acts, keys, obs_out, rew_out, done_out):
        i = cuda.grid(1)
        if i < states.shape[0]:
            episode = 0
            reset(states[i], obs[i], keys[i], episode)
            for t in range(acts.shape[1]):
                r, te, tr = step(states[i], acts[i, t], obs[i], keys[i], t)
                rew_out[i, t] = r
                done_out[i, t] = 1 * te + 2 * tr
                for j in range(obs_dim):
                    obs_out[i, t, j] = obs[i, j]
                if te or tr:
                    episode += 1
                    reset(states[i], obs[i], keys[i], episode)

    states = np.zeros((lanes, twin.state_dim))
    obs = np.zeros((lanes, obs_dim), np.float32)
    keys = lane_keys(seed, np.arange(lanes))
    obs_out = np.zeros((lanes, n_steps, obs_dim), np.float32)
    rew_out = np.zeros((lanes, n_steps))
    done_out = np.zeros((lanes, n_steps), np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # uint64 wrap-around in the simulator
        run[1, lanes](states, obs, actions, keys, obs_out, rew_out, done_out)
    return obs_out, rew_out, done_out


def njit_rollout(twin, lanes, n_steps, seed, actions):
    reset, step = twin.make_kernels("njit")
    obs_out = np.zeros((lanes, n_steps, twin.obs_dim), np.float32)
    rew_out = np.zeros((lanes, n_steps))
    done_out = np.zeros((lanes, n_steps), np.int64)
    for i in range(lanes):
        key = np.uint64(lane_keys(seed, i))
        state = np.zeros(twin.state_dim)
        obs = np.zeros(twin.obs_dim, np.float32)
        episode = 0
        reset(state, obs, key, episode)
        for t in range(n_steps):
            r, te, tr = step(state, actions[i, t], obs, key, t)
            rew_out[i, t], done_out[i, t], obs_out[i, t] = r, 1 * te + 2 * tr, obs
            if te or tr:
                episode += 1
                reset(state, obs, key, episode)
    return obs_out, rew_out, done_out


@pytest.mark.skipif(not CUDASIM, reason="set NUMBA_ENABLE_CUDASIM=1 to run CUDA kernels on the CPU")
@pytest.mark.parametrize("env_id", ALL)
def test_cuda_kernels_agree_with_njit(env_id):
    twin = get_twin(env_id, **short_kwargs(env_id))
    lanes, n_steps, seed = 2, 25, 6
    rng = np.random.default_rng(seed)
    actions = np.array(
        [[to_act(twin, random_action(twin, rng)) for _ in range(n_steps)] for _ in range(lanes)]
    )
    got = cuda_rollout(twin, lanes, n_steps, seed, actions)
    want = njit_rollout(twin, lanes, n_steps, seed, actions)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert (want[2] > 0).any()  # episodes ended and were reset inside the kernel
