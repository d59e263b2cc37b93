"""Every standard Gymnasium space: observations flattened as gymnasium.spaces.flatten does,
actions decoded into the space (Discrete with start, Box of any shape, MultiDiscrete,
MultiBinary, Tuple and Dict of them), the numba generic path equal to the numpy reference,
the Agent equal to both, and FME learning on each."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces as S

import srml
from srml.backends import make_backend
from srml.config import Config
from srml.errors import SrmlError
from srml.srwm import Codec
from srml.task import make_task

SPACES = {
    "box2d": S.Box(-1.0, 1.0, (2, 2), np.float32),
    "dstart": S.Discrete(4, start=1),
    "md": S.MultiDiscrete([3, 2]),
    "md2d": S.MultiDiscrete([[2, 3], [3, 2]], start=[[1, 0], [-1, 2]]),
    "mb": S.MultiBinary((2, 2)),
    "tuple": S.Tuple((S.Discrete(2), S.Box(0.0, 1.0, (2,), np.float32))),
    "dict": S.Dict({"a": S.Discrete(2), "b": S.Box(0.0, 1.0, (2,), np.float32)}),
    "nested": S.Dict(
        {"x": S.Tuple((S.MultiBinary(2), S.Discrete(3, start=-1))), "y": S.MultiDiscrete([2, 2])}
    ),  # fmt: skip
}


class SpaceEnv(gym.Env):
    """Observation and action spaces by name; reward 1 - mean |flatten(action) -
    flatten(observation)| when they have the same flat size (a copying task), else a
    function of the action alone. Refuses any action outside its space."""

    def __init__(self, obs="box2d", act="dstart", episode=8, bad_obs=False):
        self.observation_space, self.action_space = SPACES[obs], SPACES[act]
        self.episode, self.bad_obs = episode, bad_obs

    def _observe(self):
        self.observation_space.seed(int(self.np_random.integers(2**31)))  # reproducible
        self.obs = self.observation_space.sample()
        if self.bad_obs:
            self.obs = self.observation_space.n + self.observation_space.start  # one past
        return self.obs

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._observe(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        a = S.flatten(self.action_space, action).astype(float)
        o = S.flatten(self.observation_space, self.obs).astype(float)
        r = 1 - np.abs(a - o).mean() if len(a) == len(o) else float(np.tanh(a.sum()))
        self.t += 1
        return self._observe(), float(r), False, self.t >= self.episode, {}


gym.register("spaces/Env-v0", entry_point=SpaceEnv)


def cfg_for(obs, act, **kw):
    base = dict(env="spaces/Env-v0", env_kwargs={"obs": obs, "act": act}, batch=8,
                pool_size=16, lifetime=30, progress=False)  # fmt: skip
    return Config(**(base | kw))


def lanes(space, b, seed):
    space.seed(seed)
    return [space.sample() for _ in range(b)]


def batched(space, items):
    return gym.vector.utils.concatenate(
        space, items, gym.vector.utils.create_empty_array(space, len(items))
    )


@pytest.mark.parametrize("name", sorted(SPACES))
def test_observations_are_flattened_as_gymnasium_does(name):
    space = SPACES[name]
    codec = Codec(space, S.Discrete(2))
    items = lanes(space, 5, 0)
    x = codec.flat_obs(batched(space, items), 5)
    want = np.stack([S.flatten(space, v) for v in items]).astype(np.float32)
    np.testing.assert_array_equal(x, want)
    assert codec.obs_dim == S.flatdim(space)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_actions_lie_in_the_space_and_their_features_are_flatten(name):
    space = SPACES[name]
    codec = Codec(S.Box(-1, 1, (1,)), space)
    y = np.random.default_rng(0).normal(0, 3, (64, codec.act_dim)).astype(np.float32)
    keys = srml.rng.lane_keys(1, np.arange(64))
    for sample in (True, False):
        a = codec.decode(y, codec.uniforms(keys, 3), sample)
        acts = [codec.unbatch(a, i) for i in range(64)]
        assert all(space.contains(v) for v in acts), acts[:3]
        want = np.stack([S.flatten(space, v) for v in acts]).astype(np.float32)
        np.testing.assert_array_equal(codec.features(a), want)
    if name == "dstart":  # start=1: actions are 1..4, every one of them drawn
        assert sorted({int(v) for v in acts}) == [1, 2, 3, 4]


def test_multibinary_bits_follow_their_sigmoid():
    codec = Codec(S.Box(-1, 1, (1,)), S.MultiBinary(2))
    y = np.tile(np.array([[2.0, -2.0]], np.float32), (4000, 1))
    keys = srml.rng.lane_keys(0, np.arange(4000))
    bits = codec.decode(y, codec.uniforms(keys, 0), True)
    np.testing.assert_allclose(bits.mean(0), 1 / (1 + np.exp([-2.0, 2.0])), atol=0.03)


def test_discrete_observation_outside_its_space_is_refused_not_aliased():
    cfg = cfg_for("dstart", "dstart", env_kwargs={"obs": "dstart", "act": "dstart",
                                                  "bad_obs": True})  # fmt: skip
    task = make_task(cfg)
    with pytest.raises(SrmlError, match=r"spaces/Env-v0.*observation 5, outside its space"):
        make_backend("numpy", task, 8).run(task.layout.init(np.random.default_rng(0), 8, 1), 0)


PAIRS = [("box2d", "box2d"), ("dstart", "dstart"), ("md", "md"), ("md2d", "mb"),
         ("mb", "mb"), ("dict", "tuple"), ("nested", "dict"), ("tuple", "nested")]  # fmt: skip


VARIANT = dict(noise_inputs=2, noise_to_y=False, sample_keys=True, update="tanh", hidden=[6],
               heads=2, beta="per_block")  # fmt: skip
"""main's network variants, all at once: with every space they must agree as well."""


@pytest.mark.parametrize(
    "obs,act,variant",
    [(o, a, {}) for o, a in PAIRS] + [("nested", "dict", VARIANT)],
    ids=[f"{o}-{a}" for o, a in PAIRS] + ["nested-dict-variants"],
)
def test_numba_generic_path_matches_the_reference(obs, act, variant):
    task = make_task(cfg_for(obs, act, **variant))
    genomes = task.layout.init(np.random.default_rng(7), 8, 1.0)
    ref = make_backend("numpy", task, 8).run(genomes, seed=11, record=True)
    out = make_backend("numba", task, 8).run(genomes, seed=11, record=True)
    np.testing.assert_allclose(out.actions, ref.actions, atol=1e-5)
    np.testing.assert_allclose(out.rewards, ref.rewards, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out.firsts, ref.firsts)
    np.testing.assert_allclose(out.fitness, ref.fitness, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.genomes, ref.genomes, rtol=1e-4, atol=1e-4)
    assert not np.allclose(out.genomes, genomes)


@pytest.mark.parametrize(
    "obs,act,variant",
    [("dict", "tuple", {}), ("dstart", "dstart", {}), ("md", "mb", {}), ("nested", "md", VARIANT)],
    ids=["dict-tuple", "dstart-dstart", "md-mb", "nested-md-variants"],
)
def test_agent_acts_as_the_reference_lane(obs, act, variant):
    cfg = cfg_for(obs, act, batch=1, pool_size=1, lifetime=20, **variant)
    task = make_task(cfg)
    genome = task.layout.init(np.random.default_rng(1), 1, 1.0)
    ref = make_backend("numpy", task, 1).run(genome, seed=9, record=True)
    agent = srml.Agent.from_config(genome[0], cfg)
    env = SpaceEnv(obs, act)
    o, _ = env.reset(seed=9)
    agent.reset(seed=9)
    reward, first, feats = 0.0, True, []
    for _ in range(cfg.lifetime):
        a = agent.act(o, reward, first)
        assert env.action_space.contains(a)
        feats.append(S.flatten(env.action_space, a))
        o, reward, term, trunc, _ = env.step(a)
        first = term or trunc
        if first:
            o, _ = env.reset()
    want = ref.actions[:, 0]
    if task.codec.discrete_act:
        want = np.stack([S.flatten(env.action_space, int(v)) for v in want])
    np.testing.assert_allclose(np.stack(feats), want.reshape(len(feats), -1), atol=1e-6)


@pytest.mark.parametrize("obs,act", [("box2d", "box2d"), ("dstart", "dstart"), ("md", "md"),
                                     ("mb", "mb"), ("dict", "tuple")])  # fmt: skip
def test_fme_learns_to_copy_its_observation(obs, act):
    """A copying task in each space: the pool's median fitness after selection clearly beats
    the founders' mean (what random genomes score)."""
    cfg = cfg_for(obs, act, batch=32, pool_size=64, lifetime=24, generations=40, seed=1)
    fme = srml.FME(cfg)
    rows = fme.run()
    founders = np.mean([r["batch_fitness_mean"] for r in rows[:2]])
    assert rows[-1]["pool_fitness_median"] > founders + 0.05, (founders, rows[-1])


def test_unsupported_space_is_refused_in_one_line_naming_it():
    with pytest.raises(SrmlError, match=r"unsupported action space Text\("):
        Codec(S.Box(-1, 1, (1,)), S.Dict({"a": S.Discrete(2), "t": S.Text(3)}))
