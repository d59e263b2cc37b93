"""srml/LearnedOptimizer-v0: the twin against a plain-numpy reference, on every backend,
and the SGD/Adam baselines on the same problems."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from srml.envs import TWINS, TwinVectorEnv, get_twin
from srml.envs.learned_optimizer import (
    BETA1,
    BETA2,
    OBS_CLIP,
    PROBLEM_STRIDE,
    learned_optimizer,
    sample_problem,
    sizes,
)

from srml import optimizers
from srml.rng import lane_keys

ENV = "srml/LearnedOptimizer-v0"
CUDASIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
if CUDASIM:  # a module global: the simulator swaps `cuda` in kernels' globals
    from numba import cuda

# small settings so that several episodes fit in a short test; every problem, with and
# without noise, rotations, label noise and weight decay
SETTINGS = {
    "quadratic": {"problem": "quadratic", "dim": 4, "steps_per_problem": 5},
    "quadratic-noisy": {
        "problem": "quadratic", "dim": 3, "steps_per_problem": 4, "noise": 0.3, "rotations": 5,
        "condition": 50.0, "update_scale": 0.3,
    },
    "quadratic-axis": {"problem": "quadratic", "dim": 5, "steps_per_problem": 3, "rotations": 0},
    "linreg": {"problem": "linreg", "dim": 4, "steps_per_problem": 5, "n_data": 7},
    "linreg-noisy": {
        "problem": "linreg", "dim": 3, "steps_per_problem": 4, "noise": 0.1, "label_noise": 0.5,
        "l2": 0.05,
    },
    "logreg": {"problem": "logreg", "dim": 4, "steps_per_problem": 5},
    "logreg-noisy": {
        "problem": "logreg", "dim": 2, "steps_per_problem": 6, "n_data": 9, "label_noise": 1.0,
        "noise": 0.2, "l2": 0.0,
    },
    "mlp": {"problem": "mlp", "dim": 2, "hidden": 2, "steps_per_problem": 3},
    "mlp-noisy": {
        "problem": "mlp", "dim": 3, "hidden": 2, "steps_per_problem": 2, "n_data": 5,
        "noise": 0.1, "label_noise": 0.3, "l2": 0.01,
    },
}  # fmt: skip


# ---------------------------------------------------------- numpy reference


class Reference:
    """The env written directly from its docstring, on top of the numpy problems."""

    def __init__(self, **kwargs):
        self.p = learned_optimizer(**kwargs).params
        self.kwargs = kwargs
        self.D = sizes(self.p["problem"], self.p["dim"], hidden=self.p["hidden"]).D
        self.K = self.p["steps_per_problem"]
        self.scale = self.p["update_scale"]

    def reset(self, key, episode):
        self.prob = sample_problem(key, episode, **self.kwargs)
        D = self.D
        self.m, self.v, self.u = (np.zeros(D) for _ in range(3))
        self.theta = self.prob.theta0.copy()
        self.k, self.i, self.last = 0, 0, 0.0
        L = self._observe()
        self.floor = self.p["loss_floor"] * L + 1e-30
        self.lnl0 = self.lnl = np.log(L + self.floor)
        self.L0 = L
        return self._obs()

    def _observe(self):
        L, g = self.prob.noisy_grad(self.theta, self.k)
        self.g = g
        self.m = BETA1 * self.m + (1 - BETA1) * g
        self.v = BETA2 * self.v + (1 - BETA2) * g * g
        self.L = L
        return L

    def _obs(self):
        i, k = self.i, self.k
        rms = np.sqrt(self.v[i] / (1 - BETA2 ** (k + 1)))
        mh = self.m[i] / (1 - BETA1 ** (k + 1))
        f = [
            self.g[i] / (rms + 1e-12),
            mh / (rms + 1e-12),
            self.theta[i],
            self.u[i] / self.scale,
            0.25 * np.log10(rms + 1e-30),
            0.25 * (self.lnl0 - self.lnl),
            self.last,
            k / self.K,
        ]
        return np.append(np.clip(f, -OBS_CLIP, OBS_CLIP), float(i == 0)).astype(np.float32)

    def step(self, a):
        a = 0.0 if np.isnan(a) else float(np.clip(a, -1, 1))
        self.u[self.i] = self.scale * a
        if self.i < self.D - 1:
            self.i += 1
            return self._obs(), 0.0, False, False
        self.theta = self.theta + self.u
        self.k += 1
        L = self._observe()
        lnl = np.log(L + self.floor)
        r = self.lnl - lnl
        self.lnl, self.last, self.i = lnl, r, 0
        return self._obs(), r, False, self.k >= self.K


def random_actions(rng, n):
    """Mostly in [-1, 1]; some beyond the bounds and some NaN (clipped / treated as 0)."""
    a = rng.uniform(-1.3, 1.3, n).astype(np.float32)
    a[rng.random(n) < 0.03] = np.nan
    return a


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_parity_with_numpy_reference(setting):
    kwargs = SETTINGS[setting]
    env = gymnasium.make(ENV, **kwargs)
    ref = Reference(**kwargs)
    D, K = ref.D, ref.K
    rng = np.random.default_rng(1)
    seed = 5
    obs, _ = env.reset(seed=seed)
    key = lane_keys(seed, 0)
    want = ref.reset(key, 0)
    episode, returns, ret = 0, [], 0.0
    n_steps = 4 * D * K
    for t, a in enumerate(random_actions(rng, n_steps)):
        where = f"{setting}: step {t} (episode {episode})"
        np.testing.assert_allclose(obs, want, rtol=0, atol=1e-5, err_msg=where)
        obs, r, term, trunc, _ = env.step(np.array([a], np.float32))
        want, wr, wterm, wtrunc = ref.step(a)
        assert abs(r - wr) <= 1e-5, (where, r, wr)
        assert (term, trunc) == (wterm, wtrunc), where
        # a reward only on the step that completes an optimizer step
        assert (t % D == D - 1) or r == 0.0, where
        assert trunc == (t % (D * K) == D * K - 1), where
        ret += r
        if trunc:
            # the return is the log-factor by which the loss went down
            assert abs(ret - (ref.lnl0 - ref.lnl)) < 1e-9
            returns.append(ret)
            ret = 0.0
            episode += 1
            obs, _ = env.reset()
            want = ref.reset(key, episode)
    assert len(returns) == 4
    assert len(set(np.round(returns, 9))) == 4  # a fresh problem each episode


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_env_state_holds_the_reference_problem(setting):
    """Same seed and episode -> the same problem in the env and in the baselines."""
    kwargs = SETTINGS[setting]
    env = TwinVectorEnv(3, twin=ENV, **kwargs)
    env.reset(seed=9)
    z = sizes(
        kwargs["problem"], kwargs["dim"], kwargs.get("n_data"), kwargs.get("rotations"),
        kwargs.get("hidden", 4),
    )  # fmt: skip
    for lane in range(3):
        st = env.states[lane]
        prob = optimizers.problems(9, 3, **kwargs)[lane]
        assert prob.key == lane_keys(9, lane) and prob.episode == 0
        if z.problem == "quadratic":
            np.testing.assert_allclose(st[z.data : z.data + z.D], prob.h, rtol=1e-12)
            np.testing.assert_allclose(st[z.data2 : z.data2 + z.D], prob.c, rtol=1e-12)
            rot = st[z.rot : z.rot + 4 * z.R].reshape(z.R, 4)
            np.testing.assert_allclose(rot, prob.rot, rtol=1e-12, atol=1e-15)
            if z.R:
                assert (rot[:, 0] != rot[:, 1]).all()
        else:
            X = st[z.data : z.data + z.N * z.X].reshape(z.N, z.X)
            np.testing.assert_allclose(X, prob.X, rtol=1e-12)
            np.testing.assert_allclose(st[z.data2 : z.data2 + z.N], prob.y, rtol=1e-12)
        np.testing.assert_allclose(st[z.theta : z.theta + z.D], prob.theta0, rtol=1e-12)
        assert (prob.theta0 != 0).any() == (z.problem == "mlp")
        assert st[3] == pytest.approx(prob.loss(prob.theta0), rel=1e-12)  # L_0
    # the next episode of a lane is another problem
    p0, p1 = optimizers.problems(9, 1, episodes=2, **kwargs)
    assert p0.loss(np.ones(z.D)) != p1.loss(np.ones(z.D))


def test_problem_distributions():
    """Curvatures log-uniform over [1/condition, 1], optimum and teacher standard normal,
    Givens rotations orthogonal, logreg labels +-1 from the teacher."""
    D = 6
    quads = optimizers.problems(0, 200, problem="quadratic", dim=D, condition=1e4)
    logh = np.log10(np.concatenate([p.h for p in quads]))
    assert logh.min() >= -4 and logh.max() <= 0
    assert abs(logh.mean() + 2) < 0.1 and abs(logh.std() - 4 / np.sqrt(12)) < 0.1
    c = np.concatenate([p.c for p in quads])
    assert abs(c.mean()) < 0.1 and abs(c.std() - 1) < 0.1
    x = np.random.default_rng(0).normal(size=D)
    p = quads[0]
    assert np.linalg.norm(p._rotate(x)) == pytest.approx(np.linalg.norm(x))
    np.testing.assert_allclose(p._rotate(p._rotate(x), inverse=True), x, atol=1e-12)
    # the gradient is that of the loss (central differences)
    for kind in ("quadratic", "linreg", "logreg", "mlp"):
        prob = optimizers.problems(1, 1, problem=kind, dim=D)[0]
        P = prob.dim  # the mlp's parameters: hidden * (D + 2) + 1
        assert P == (4 * (D + 2) + 1 if kind == "mlp" else D)
        th = np.random.default_rng(1).normal(size=P)
        num = [(prob.loss(th + e) - prob.loss(th - e)) / 2e-6 for e in 1e-6 * np.eye(P)]
        np.testing.assert_allclose(prob.grad(th), num, rtol=1e-5, atol=1e-8)
    logs = optimizers.problems(0, 50, problem="logreg", dim=D)
    for p in logs[:5]:
        assert set(np.unique(p.y)) <= {-1.0, 1.0}
        np.testing.assert_array_equal(p.y, np.sign(p.X @ p.teacher))
    assert abs(np.mean([p.y.mean() for p in logs])) < 0.1


# ------------------------------------------------------ Gymnasium wrappers


@pytest.mark.parametrize("problem", ["quadratic", "linreg", "logreg", "mlp"])
def test_check_env(problem):
    env = gymnasium.make(ENV, problem=problem, **({"dim": 2} if problem == "mlp" else {}))
    assert env.spec.max_episode_steps is None  # the env truncates by itself
    check_env(env.unwrapped, skip_render_check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)


def test_registration_spaces_and_defaults():
    assert ENV in TWINS and ENV in gymnasium.registry
    twin = get_twin(ENV)
    assert twin.params["problem"] == "quadratic" and twin.params["dim"] == 8
    assert twin.params["steps_per_problem"] == 20
    assert twin.observation_space == gymnasium.spaces.Box(-10, 10, (9,), np.float32)
    assert twin.action_space == gymnasium.spaces.Box(-1, 1, (1,), np.float32)
    assert twin.state_dim == 138
    assert get_twin(ENV, problem="linreg").state_dim == 210
    # 4x the dimension: the same spaces, so the same network runs on it
    big = get_twin(ENV, problem="linreg", dim=32)
    assert big.observation_space == twin.observation_space
    assert big.action_space == twin.action_space
    envs = gymnasium.make_vec(ENV, num_envs=3, dim=5)
    assert isinstance(envs, TwinVectorEnv) and envs.twin.params["dim"] == 5
    obs, _ = envs.reset(seed=0)
    assert obs in envs.observation_space


BAD_KWARGS = [
    {"problem": "resnet"},
    {"problem": "mlp", "hidden": 0},
    {"dim": 0},
    {"steps_per_problem": 0},
    {"noise": -1.0},
    {"label_noise": -0.1},
    {"n_data": 0},
    {"rotations": -1},
    {"condition": 0.5},
    {"update_scale": 0.0},
    {"loss_floor": 0.0},
    {"l2": -1.0},
    {"problem": "linreg", "dim": 400, "n_data": 2000},  # beyond the counter scheme
]


@pytest.mark.parametrize("kwargs", BAD_KWARGS)
def test_bad_kwargs(kwargs):
    with pytest.raises(ValueError):
        get_twin(ENV, **kwargs)


def test_counter_scheme_budget():
    z = sizes("linreg", 64, None, None)  # the largest setting this test suite names
    assert z.draws < PROBLEM_STRIDE


# --------------------------------------------------- python / njit / cuda


def kernel_rollout(twin, reset, step, actions, seed=3, lanes=2):
    out = []
    for lane in range(lanes):
        key = np.uint64(lane_keys(seed, lane))
        state = np.zeros(twin.state_dim)
        obs = np.zeros(twin.obs_dim, np.float32)
        act = np.zeros(1, np.float32)
        episode = 0
        reset(state, obs, key, episode)
        out.append(obs.copy())
        for t, a in enumerate(actions):
            act[0] = a
            r, te, tr = step(state, act, obs, key, t)
            out += [obs.copy(), state.copy(), np.array([r, te, tr], np.float64)]
            if te or tr:
                episode += 1
                reset(state, obs, key, episode)
                out.append(obs.copy())
    return out


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_python_and_njit_kernels_agree(setting):
    twin = get_twin(ENV, **SETTINGS[setting])
    D = sizes(twin.params["problem"], twin.params["dim"], hidden=twin.params["hidden"]).D
    actions = random_actions(np.random.default_rng(2), 2 * D * 6 + 3)
    py = kernel_rollout(twin, *twin.make_kernels(None), actions)
    nj = kernel_rollout(twin, *twin.make_kernels("njit"), actions)
    for a, b in zip(py, nj, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def cuda_rollout(twin, actions, seed, lanes):
    reset, step = twin.make_kernels("cuda")
    obs_dim, n_steps = twin.obs_dim, actions.shape[1]

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


@pytest.mark.skipif(not CUDASIM, reason="set NUMBA_ENABLE_CUDASIM=1 to run CUDA kernels on the CPU")
@pytest.mark.parametrize(
    "setting", ["quadratic-noisy", "linreg-noisy", "logreg-noisy", "mlp-noisy"]
)
def test_cuda_kernels_agree_with_njit(setting):
    twin = get_twin(ENV, **SETTINGS[setting])
    lanes, seed = 2, 6
    D = sizes(twin.params["problem"], twin.params["dim"], hidden=twin.params["hidden"]).D
    n_steps = D * twin.params["steps_per_problem"] + 4  # crosses a reset
    rng = np.random.default_rng(seed)
    actions = np.stack([random_actions(rng, n_steps) for _ in range(lanes)])[..., None]
    got = cuda_rollout(twin, actions, seed, lanes)
    want = njit_rollout(twin, actions, seed, lanes)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert (want[2] == 2).sum() == lanes  # one truncation per lane, reset in the kernel


def njit_rollout(twin, actions, seed, lanes):
    """What cuda_rollout records, from the njit kernels."""
    reset, step = twin.make_kernels("njit")
    n_steps = actions.shape[1]
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


# ----------------------------------------------------------- backends


# numba compiles a fused kernel per setting (tens of seconds each): one setting there, every
# problem on the CUDA simulator (which interprets the same kernel source)
BACKEND_CASES = [("numba", "defaults")] + [
    ("cuda", s) for s in ("quadratic-noisy", "linreg-noisy", "logreg-noisy", "mlp-noisy")
]


@pytest.mark.parametrize("backend,setting", BACKEND_CASES)
def test_backends_match_numpy(backend, setting):
    """One generation crossing episode boundaries: actions, rewards, fitness, genomes."""
    from srml.backends import make_backend
    from srml.config import Config
    from srml.task import make_task

    if backend == "cuda":
        from srml.backends.cuda_backend import simulated

        if not simulated():
            pytest.skip("NUMBA_ENABLE_CUDASIM=0 and this test does not use a real GPU")
    kwargs = SETTINGS.get(setting, {})  # "defaults": the env's own defaults
    full = get_twin(ENV, **kwargs).params
    batch = 4 if backend == "cuda" else 8
    D = sizes(full["problem"], full["dim"], hidden=full.get("hidden", 4)).D
    lifetime = D * full["steps_per_problem"] * 2 + 5
    cfg = Config(env=ENV, env_kwargs=kwargs, batch=batch, pool_size=batch, lifetime=lifetime)
    task = make_task(cfg)
    assert task.twin is not None
    genomes = task.layout.init(np.random.default_rng(7), batch, 0.5)
    ref = make_backend("numpy", task, batch).run(genomes, seed=11, record=True)
    out = make_backend(backend, task, batch).run(genomes, seed=11, record=True)
    np.testing.assert_allclose(out.actions, ref.actions, atol=1e-3)
    np.testing.assert_allclose(out.rewards, ref.rewards, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(out.firsts, ref.firsts)
    np.testing.assert_array_equal(ref.episodes, 3)
    np.testing.assert_allclose(out.fitness, ref.fitness, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.genomes, ref.genomes, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_cli_run(tmp_path, backend):
    """`srml run --env srml/LearnedOptimizer-v0` on its defaults (numba: in this process, so
    the fused kernel compiled once serves this test and the parity test above)."""
    out = tmp_path / "run"
    args = ["run", "--env", ENV, "--total-steps", "20000", "--pool-size", "16", "--batch", "8",
            "--backend", backend, "--no-progress", "--out", str(out)]  # fmt: skip
    if backend == "numba":
        from srml.cli import main

        assert main(args) == 0
    else:
        p = subprocess.run(
            [sys.executable, "-m", "srml", *args], capture_output=True, text=True, timeout=300
        )
        assert p.returncode == 0, p.stderr
    for name in ("config.toml", "log.jsonl", "pool.npz", "pool_reward.png"):
        assert (out / name).stat().st_size > 0, name
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["env_steps"] >= 20000
    assert np.isfinite(rows[-1]["pool_fitness_max"])
    assert f'env = "{ENV}"' in (out / "config.toml").read_text()


# ----------------------------------------------------------- baselines


def adam_policy_return(kwargs, lr, seed, episodes):
    """Adam run THROUGH the env: action = -(lr / update_scale) * feature 1 (Adam's direction)."""
    env = gymnasium.make(ENV, **kwargs)
    scale = env.unwrapped.twin.params["update_scale"]
    returns = []
    obs, _ = env.reset(seed=seed)
    for _ in range(episodes):
        ret, trunc = 0.0, False
        while not trunc:
            obs, r, _, trunc, _ = env.step(np.array([-lr / scale * obs[1]], np.float32))
            ret += r
        returns.append(ret)
        obs, _ = env.reset()
    return np.array(returns)


@pytest.mark.parametrize(
    "setting", ["quadratic-noisy", "linreg-noisy", "logreg-noisy", "mlp-noisy"]
)
def test_adam_through_the_env_equals_the_baseline(setting):
    """The env's moments, features, gradient noise and return are Adam's on the same problem."""
    kwargs = SETTINGS[setting]
    p = optimizers.env_params(**kwargs)
    lr = 0.5 * p["update_scale"]  # |Adam's direction| <= ~1: the action stays inside [-1, 1]
    got = adam_policy_return(kwargs, lr, seed=4, episodes=3)
    probs = optimizers.problems(4, 1, episodes=3, **kwargs)
    ev = optimizers.evaluate("adam", lr, probs, p["steps_per_problem"], p["loss_floor"], eps=1e-12)
    np.testing.assert_allclose(got, ev.returns, rtol=1e-4, atol=1e-4)
    assert ev.losses.shape == (3, p["steps_per_problem"] + 1)


@pytest.mark.parametrize("problem", ["quadratic", "linreg"])
def test_tuned_adam_reduces_the_loss_by_a_large_factor(problem):
    lr, scores = optimizers.tune_lr("adam", n=16, problem=problem)
    assert lr in optimizers.LR_GRID and scores[lr] == max(scores.values())
    assert optimizers.LR_GRID[0] < lr < optimizers.LR_GRID[-1]  # an interior optimum
    probs = optimizers.problems(0, 32, problem=problem)  # held-out seed
    tuned = optimizers.evaluate("adam", lr, probs, 20, 1e-6)
    ratio = tuned.losses[:, -1] / tuned.losses[:, 0]
    assert np.median(ratio) < 0.1  # more than 10x down in 20 steps
    default = optimizers.evaluate("adam", optimizers.DEFAULT_ADAM_LR, probs, 20, 1e-6)
    assert default.mean_return < 0.5 < 2.0 < tuned.mean_return
    sgd_lr, _ = optimizers.tune_lr("sgd", n=16, problem=problem)
    sgd = optimizers.evaluate("sgd", sgd_lr, probs, 20, 1e-6)
    assert np.median(sgd.losses[:, -1] / sgd.losses[:, 0]) < 0.5


def test_baselines_are_deterministic_and_seeded():
    a = optimizers.evaluate("adam", 0.1, optimizers.problems(3, 4, noise=0.2), 10, 1e-6)
    b = optimizers.evaluate("adam", 0.1, optimizers.problems(3, 4, noise=0.2), 10, 1e-6)
    c = optimizers.evaluate("adam", 0.1, optimizers.problems(4, 4, noise=0.2), 10, 1e-6)
    np.testing.assert_array_equal(a.losses, b.losses)
    assert not np.array_equal(a.losses, c.losses)
    # a diverging learning rate scores badly but finitely or -inf, never NaN
    bad = optimizers.evaluate("sgd", 1e3, optimizers.problems(3, 4, problem="linreg"), 10, 1e-6)
    assert not np.isnan(bad.returns).any() and (bad.returns < 0).all()
