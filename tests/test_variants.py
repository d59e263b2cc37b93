"""Issue 13's FME variants: the reference against the equations, every backend against the
reference (numba fused, numba generic, cuda on the simulator), config validation, lineage
credit, input normalisation and the instruments."""

import gymnasium as gym
import numpy as np
import pytest
from test_backends import compare_with_reference

from srml import instruments, rng
from srml.backends import make_backend
from srml.config import Config
from srml.errors import SrmlError
from srml.fme import FME
from srml.pool import Pool
from srml.srwm import Codec, Layout, forward
from srml.task import make_task


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def one_agent_step(W, x, d_out, update="delta", u=None):
    """W <- W + sigmoid(b) outer(v(W pq) - v(W pk), pk), v = identity or tanh; with u, pk is
    one-hot at the index drawn from softmax(k)."""
    d_in = len(x)
    out = W @ x
    y, k, q = out[:d_out], out[d_out : d_out + d_in], out[d_out + d_in : d_out + 2 * d_in]
    lr = 1 / (1 + np.exp(-out[d_out + 2 * d_in :]))
    pk, pq = _softmax(k), _softmax(q)
    if u is not None:
        idx = min(int((np.cumsum(pk) < u).sum()), d_in - 1)
        pk = np.eye(d_in)[idx]
    v = np.tanh if update == "tanh" else (lambda z: z)
    return y, W + lr * np.outer(v(W @ pq) - v(W @ pk), pk)


@pytest.mark.parametrize("update,keys", [("tanh", False), ("delta", True), ("tanh", True)])
def test_reference_matches_one_agent_transcription(update, keys):
    r = np.random.default_rng(0)
    d_in, d_out, B, T = 7, 3, 5, 40
    layout = Layout(d_in, d_out, update=update, sample_keys=keys)
    genomes = layout.init(r, B, 0.5)
    Ws = [g.reshape(layout.layers[0].rows, d_in).astype(np.float64) for g in genomes.copy()]
    views = layout.views(genomes)
    for _ in range(T):
        x = r.standard_normal((B, d_in)).astype(np.float32)
        u = r.random((B, layout.key_slots)) if keys else None
        y = forward(views, layout, x, u=u)
        for i in range(B):
            y_ref, Ws[i] = one_agent_step(
                Ws[i], x[i].astype(np.float64), d_out, update, None if u is None else u[i, 0]
            )
            np.testing.assert_allclose(y[i], y_ref, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(views[0][i, 0], Ws[i], rtol=1e-4, atol=1e-5)


def test_tanh_update_leaves_the_column_space_and_delta_does_not():
    r = np.random.default_rng(1)
    res = {}
    for update in ("delta", "tanh"):
        layout = Layout(9, 2, update=update)
        g0 = layout.init(r, 4, 1.0)
        g = g0.copy()
        views = layout.views(g)
        for _ in range(50):
            forward(views, layout, r.standard_normal((4, 9)).astype(np.float32))
        res[update] = instruments.column_residual(g, g0, layout)
    assert res["delta"] < 1e-4 < 1e-2 < res["tanh"]


def test_noise_inputs_are_reproducible_uniforms_after_the_constant():
    task = make_task(Config(noise_inputs=3, batch=4, pool_size=4))
    assert task.codec.d_in == 4 + 2 + 1 + 1 + 1 + 3
    keys = rng.lane_keys(5, np.arange(4))
    u = rng.step_uniforms(keys, rng.STREAM_NOISE, 7, 3)
    assert u.shape == (4, 3) and np.all((u >= 0) & (u < 1))
    np.testing.assert_array_equal(u[:, 1], rng.uniforms(keys, rng.STREAM_NOISE, 7 * 3 + 1))
    x = task.codec.encode(
        np.zeros((4, 4)), task.codec.no_action(4), np.zeros(4), np.zeros(4), 12, 2 * u - 1
    )
    np.testing.assert_array_equal(x[:, 8], 1.0)
    np.testing.assert_allclose(x[:, 9:12], 2 * u - 1)


def test_noise_hold_keeps_each_draw_for_its_steps():
    codec = make_task(Config(noise_inputs=2, noise_hold=7, batch=4, pool_size=4)).codec
    assert [codec.noise_draw(t) for t in (0, 6, 7, 13, 14)] == [0, 0, 1, 1, 2]
    once = make_task(Config(noise_inputs=2, noise_hold=0, batch=4, pool_size=4)).codec
    assert {once.noise_draw(t) for t in range(1000)} == {0}


def test_noise_hold_changes_the_reference_run_as_the_draws_say():
    """One draw per lifetime (hold 0) is the same run as a hold of the whole lifetime, and
    another run than fresh noise every step."""
    runs = {}
    for hold in (0, 1, 40):
        cfg = Config(noise_inputs=3, noise_hold=hold, noise_to_y=True, batch=6, pool_size=6,
                     lifetime=40)  # fmt: skip
        task = make_task(cfg)
        genome = task.layout.init(np.random.default_rng(3), 6, 1.0)
        runs[hold] = make_backend("numpy", task, 6).run(genome, seed=11)
    np.testing.assert_array_equal(runs[0].genomes, runs[40].genomes)
    np.testing.assert_array_equal(runs[0].fitness, runs[40].fitness)
    assert not np.array_equal(runs[0].genomes, runs[1].genomes)


VARIANTS = {
    "tanh-noise-keys-window": {
        "update": "tanh", "noise_inputs": 2, "noise_to_y": True, "sample_keys": True,
        "fitness_from": 0.5,
    },
    "deep-heads-keys-blocks-hold7": {
        "hidden": [6], "heads": 2, "sample_keys": True, "noise_inputs": 3, "beta": "per_block",
        "noise_hold": 7,
    },
    "lifetime-noise-to-update-only-lineage": {  # the from-one recipe
        "noise_inputs": 8, "noise_hold": 0, "noise_to_y": False, "beta": "per_block",
        "credit": "lineage",
    },
    "layer-norm-noise-to-update-only": {
        "input_norm": "layer", "noise_inputs": 2, "noise_to_y": False,
    },
    "softmax-norm-heads-noise-padded": {
        "input_norm": "softmax", "heads": 2, "noise_inputs": 2, "noise_to_y": True,
    },
}  # fmt: skip


def _compare(env, backend, variant, batch, lifetime, twin="auto"):
    compare_with_reference(VARIANTS[variant], env, backend, batch, lifetime, twin)


# every variant on a discrete or a continuous env, the deep one and each input norm on both
# (each case compiles a fused kernel: 30-60 s on 2 cores)
CASES = [
    ("srml/Pendulum-v1", "tanh-noise-keys-window"),
    ("srml/CartPole-v1", "deep-heads-keys-blocks-hold7"),
    ("srml/Pendulum-v1", "deep-heads-keys-blocks-hold7"),
    ("srml/CartPole-v1", "lifetime-noise-to-update-only-lineage"),
    ("srml/CartPole-v1", "layer-norm-noise-to-update-only"),
    ("srml/Pendulum-v1", "layer-norm-noise-to-update-only"),
    ("srml/CartPole-v1", "softmax-norm-heads-noise-padded"),
    ("srml/Pendulum-v1", "softmax-norm-heads-noise-padded"),
]


@pytest.mark.parametrize("env,variant", CASES)
def test_numba_fused_matches_numpy(env, variant):
    _compare(env, "numba", variant, batch=16, lifetime=60)


@pytest.mark.parametrize("env,variant", CASES)
def test_cuda_kernels_match_numpy(env, variant):
    from srml.backends.cuda_backend import simulated

    if not simulated():
        pytest.skip("NUMBA_ENABLE_CUDASIM=0 and this test does not use a real GPU")
    _compare(env, "cuda", variant, batch=4, lifetime=25)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_numba_generic_path_matches_numpy(variant):
    _compare("CartPole-v1", "numba", variant, batch=8, lifetime=60, twin="off")


def test_fitness_window_counts_whole_episodes_ending_in_the_second_half():
    cfg = Config(batch=8, pool_size=8, lifetime=100)
    task = make_task(cfg)
    genomes = task.layout.init(np.random.default_rng(3), 8, 1.0)
    full = make_backend("numpy", task, 8).run(genomes, 5, record=True)
    task.fitness_start = 50
    half = make_backend("numpy", task, 8).run(genomes, 5)
    for lane in range(8):
        starts = list(np.flatnonzero(full.firsts[:, lane])) + [100]
        rets = [full.rewards[a:b, lane].sum() for a, b in zip(starts[:-1], starts[1:], strict=True)]
        ends = [b - 1 for b in starts[1:]]  # last step of each episode
        kept = [r for r, e in zip(rets, ends, strict=True) if e >= 50]
        assert half.fitness[lane] == pytest.approx(np.mean(kept))
    np.testing.assert_array_equal(half.genomes, full.genomes)


@pytest.mark.parametrize(
    "kw,needle",
    [
        ({"update": "sin"}, "--update"),
        ({"noise_inputs": -2}, "--noise-inputs"),
        ({"noise_hold": -3}, "--noise-hold"),
        ({"fitness_from": 1.0}, "--fitness-from"),
        ({"credit": "max"}, "--credit"),
        ({"input_norm": "batch"}, "--input-norm"),
    ],
)
def test_config_refuses_bad_variants_in_one_line(kw, needle):
    with pytest.raises(SrmlError, match=needle) as e:
        Config(**kw).validate()
    assert "\n" not in str(e.value)


def test_codec_refuses_an_unknown_input_norm_in_one_line():
    with pytest.raises(SrmlError, match="input_norm 'batch'.*none, layer, softmax") as e:
        Codec(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2), input_norm="batch")
    assert "\n" not in str(e.value)


def _encoded(norm, b=6, noise_inputs=2, width=14):
    """Codec.encode of random inputs: obs Box(3) (values up to +-50: far from normalised),
    previous action Discrete(2) features, reward, flag, 1, ``noise_inputs`` noise, padding."""
    S = gym.spaces
    r = np.random.default_rng(4)
    codec = Codec(S.Box(-np.inf, np.inf, (3,)), S.Discrete(2), noise_inputs=noise_inputs,
                  input_norm=norm)  # fmt: skip
    obs = (50 * r.standard_normal((b, 3))).astype(np.float32)
    prev = codec.features(r.integers(0, 2, b))
    rew, first = r.standard_normal(b).astype(np.float32), r.random(b) < 0.5
    noise = (2 * r.random((b, noise_inputs)) - 1).astype(np.float32)
    x = codec.encode(obs, prev, rew, first, width, noise)
    raw = np.concatenate([obs, prev, rew[:, None], first[:, None]], axis=1).astype(np.float64)
    return codec, x, raw, noise


@pytest.mark.parametrize("norm", ["none", "layer", "softmax"])
def test_input_norm_touches_only_the_env_and_history_inputs(norm):
    codec, x, raw, noise = _encoded(norm)
    c = codec.normed
    assert c == 3 + 2 + 1 + 1 and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, c], 1.0)  # the bias stays a bias
    np.testing.assert_array_equal(x[:, c + 1 : c + 3], noise)  # noise as drawn
    np.testing.assert_array_equal(x[:, c + 3 :], 0.0)  # padding
    z = x[:, :c].astype(np.float64)
    if norm == "none":
        np.testing.assert_array_equal(z, raw.astype(np.float32))
    elif norm == "layer":  # one lane at a time, in float64: (x - mean) / sqrt(var + 1e-5)
        for i in range(len(x)):
            want = (raw[i] - raw[i].mean()) / np.sqrt(raw[i].var() + 1e-5)
            np.testing.assert_allclose(z[i], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(z.mean(1), 0.0, atol=1e-6)
        np.testing.assert_allclose(z.var(1), 1.0, rtol=1e-4)
    else:
        for i in range(len(x)):
            e = np.exp(raw[i] - raw[i].max())
            np.testing.assert_allclose(z[i], e / e.sum(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(z.sum(1), 1.0, rtol=1e-6)


def test_noise_to_y_false_still_keeps_noise_out_of_the_actions_with_input_norm():
    cfg = Config(noise_inputs=2, noise_to_y=False, input_norm="layer", batch=4, pool_size=4)
    task = make_task(cfg)
    assert task.layout.y_blind == (9, 11) and task.codec.normed == 8
    g = task.layout.init(np.random.default_rng(0), 4, 1.0)
    obs = np.random.default_rng(1).standard_normal((4, 4))
    args = (obs, task.codec.no_action(4), np.ones(4), np.zeros(4, bool), 11)
    x1 = task.codec.encode(*args, noise=np.full((4, 2), 0.5, np.float32))
    x2 = task.codec.encode(*args, noise=np.full((4, 2), -0.9, np.float32))
    np.testing.assert_array_equal(x1[:, :9], x2[:, :9])  # the noise does not enter the norm
    y1 = forward(task.layout.views(g.copy()), task.layout, x1)
    y2 = forward(task.layout.views(g.copy()), task.layout, x2)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("norm", ["layer", "softmax"])
def test_compiled_input_norm_matches_the_reference(norm):
    """kernels.make_input_norm (run_agent's, on the CPU) against srwm.normalize_inputs."""
    import numba

    from srml.kernels import make_input_norm
    from srml.srwm import normalize_inputs

    n = 7
    r = np.random.default_rng(5)
    z = (20 * r.standard_normal((9, n + 3))).astype(np.float32)
    norm_k = make_input_norm(numba.njit, norm, n)
    got = z.copy()
    for row in got:
        norm_k(row)
    np.testing.assert_allclose(got[:, :n], normalize_inputs(z[:, :n], norm), rtol=1e-5,
                               atol=1e-6)  # fmt: skip
    np.testing.assert_array_equal(got[:, n:], z[:, n:])  # only the first n entries


def test_credit_mean_folds_children_into_the_parent_record():
    p = Pool(4, 2)
    p.insert(np.zeros((3, 2), np.float32), np.array([10.0, 20.0, 30.0]))
    p.credit(np.array([0, 0, 2]), np.array([4.0, 7.0, -np.inf]))
    np.testing.assert_allclose(p.fitness[:3], [(10 + 4 + 7) / 3, 20, 30])
    assert list(p.runs[:3]) == [3, 1, 1]
    p.credit(np.array([0]), np.array([1.0]))
    assert p.fitness[0] == pytest.approx((21 + 1) / 4)
    state = p.state()
    del state["runs"]  # a checkpoint written before lineage credit existed
    assert list(Pool.from_state(state, 2).runs[:3]) == [1, 1, 1]


def test_noise_to_y_false_keeps_noise_out_of_the_actions():
    cfg = Config(noise_inputs=2, noise_to_y=False, batch=4, pool_size=4)
    task = make_task(cfg)
    assert task.layout.y_blind == (9, 11)
    g = task.layout.init(np.random.default_rng(0), 4, 1.0)
    x = np.ones((4, 11), np.float32)
    x2 = x.copy()
    x2[:, 9:] = -1.0
    y1 = forward(task.layout.views(g.copy()), task.layout, x)
    y2 = forward(task.layout.views(g.copy()), task.layout, x2)
    np.testing.assert_array_equal(y1, y2)


def test_pool_rows_of_ids():
    p = Pool(3, 1)
    p.insert(np.zeros((3, 1), np.float32), np.zeros(3))
    p.sample(np.random.default_rng(0), 3)
    p.insert(np.zeros((1, 1), np.float32), np.zeros(1))  # evicts one of ids 0-2, gets id 3
    rows = p.rows_of(np.array([0, 1, 2, 3, -1, 99]))
    assert (rows[3] >= 0) and p.ids[rows[3]] == 3 and rows[4] == rows[5] == -1
    assert sum(r >= 0 for r in rows[:3]) == 2


@pytest.mark.parametrize("credit", ["mean", "lineage"])
def test_fme_with_credit_updates_parents_and_stays_reproducible(credit):
    cfg = Config(founders=1, pool_size=64, batch=16, lifetime=50, generations=6, credit=credit)
    runs = []
    for _ in range(2):
        fme = FME(cfg, backend=None)
        while not fme.finished:
            fme.step()
        runs.append(fme.pool)
    assert runs[0].runs[: runs[0].size].max() > 1
    np.testing.assert_array_equal(runs[0].fitness, runs[1].fitness)


def test_instruments():
    r = np.random.default_rng(0)
    g = r.standard_normal((10, 30)).astype(np.float32)
    assert instruments.weight_change(g, g) == 0
    assert instruments.weight_change(g, 2 * g) == pytest.approx(1.0)
    assert instruments.diversity(np.repeat(g[:1], 5, 0), r) == pytest.approx(0, abs=1e-6)
    assert instruments.diversity(g, r) > 1
    alive, eff = instruments.lineages(np.array([0, 0, 1, 1]))
    assert alive == 2 and eff == pytest.approx(2.0)
    assert instruments.lineages(np.array([3, 3, 3]))[1] == pytest.approx(1.0)


def test_sibling_spread_groups_children_by_parent():
    r = np.random.default_rng(1)
    parents = r.standard_normal((3, 20)).astype(np.float32)
    ids = np.array([7, 7, 7, 9, 9, 4])  # parent 4 ran once: no spread to read
    before = parents[[0, 0, 0, 1, 1, 2]]
    after = before + r.standard_normal(before.shape).astype(np.float32)
    by_rows = instruments.sibling_spread(before, after)
    assert by_rows > 0
    assert instruments.sibling_spread(before, after, parents=ids) == pytest.approx(by_rows)
    clones = instruments.sibling_spread(before, before, parents=ids)  # children all alike
    assert clones == 0
    one = instruments.sibling_spread(before, after, parents=ids, max_groups=1, rng=r)
    kid_sets = [after[:3], after[3:5]]
    expected = [  # the spread of whichever single parent was drawn
        np.mean([np.linalg.norm(a - b) for i, a in enumerate(k) for b in k[i + 1 :]])
        / np.linalg.norm(p)
        for k, p in zip(kid_sets, parents[:2], strict=True)
    ]
    assert min(abs(one - e) for e in expected) < 1e-5
    assert np.isnan(instruments.sibling_spread(before[3:], after[3:], parents=np.arange(3)))


def test_batch_readings_sample_large_batches():
    r = np.random.default_rng(2)
    before = r.standard_normal((2000, 16)).astype(np.float32)
    after = 1.5 * before  # every genome changes by half its norm
    row = instruments.batch_readings(before, after, np.arange(2000) // 4, r, n=100)
    assert row["weight_change"] == pytest.approx(0.5, rel=1e-5)
    assert row["sibling_spread"] > 0


def test_pool_instruments_of_a_one_founder_run():
    cfg = Config(founders=1, pool_size=64, batch=16, lifetime=50, generations=5, beta="single")
    fme = FME(cfg)
    while not fme.finished:
        fme.step()
    row = instruments.pool_instruments(
        fme.pool, fme.founders, fme.task.layout, np.random.default_rng(0)
    )
    assert instruments.lineages(fme.pool.founder[: fme.pool.size]) == (1, pytest.approx(1.0))
    assert row["column_residual"] < 1e-3  # one learning rate: the founder's column space
    assert row["diversity"] > 0 and row["weight_norm"] > 0


def test_founders_choose_the_recipe_of_the_auto_fields():
    from srml.config import RECIPES

    one = Config(founders=1).validate()
    for key, value in RECIPES["from_one"].items():
        assert getattr(one, key) == value
    assert not one.noise_to_y  # the noise never reaches the action rows by default
    filled = Config().validate()
    for key, value in RECIPES["classic"].items():
        assert getattr(filled, key) == value
    mine = Config(founders=1, beta="single", selection="softmax", noise_inputs=0).validate()
    assert (mine.beta, mine.selection, mine.noise_inputs, mine.credit) == (
        "single",
        "softmax",
        0,
        "lineage",
    )  # what a user sets wins; the rest follows the recipe
    task = make_task(Config(founders=1))  # unvalidated configs resolve the same way
    assert task.codec.noise_inputs == RECIPES["from_one"]["noise_inputs"]
    assert task.codec.noise_hold == RECIPES["from_one"]["noise_hold"]
    assert task.layout.beta == "per_block"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_agent_acts_as_the_reference_lane_with_every_variant(variant):
    """An Agent draws the noise inputs and sampled keys a backend's lane draws (before, it
    left the noise inputs NaN and failed on sampled keys)."""
    import srml

    v = {k: x for k, x in VARIANTS[variant].items() if k not in ("credit", "fitness_from")}
    cfg = Config(env="MountainCar-v0", twin="off", batch=1, pool_size=1, lifetime=230, **v)
    task = make_task(cfg)
    genome = task.layout.init(np.random.default_rng(1), 1, 0.5)
    ref = make_backend("numpy", task, 1).run(genome, seed=9, record=True)
    agent = srml.Agent.from_config(genome[0], cfg)
    env = gym.make("MountainCar-v0")  # 200-step episodes, same-step resets as the reference
    obs, _ = env.reset(seed=9)
    agent.reset(seed=9)
    reward, first, acts = 0.0, True, []
    for _ in range(cfg.lifetime):
        a = agent.act(obs, reward, first)
        acts.append(a)
        obs, reward, term, trunc, _ = env.step(a)
        first = term or trunc
        if first:
            obs, _ = env.reset()
    assert ref.firsts[1:].any()  # an episode boundary was crossed
    np.testing.assert_array_equal(np.asarray(acts), ref.actions[:, 0])
    np.testing.assert_allclose(agent.weights[0], ref.genomes[0], rtol=1e-5, atol=1e-5)


def test_a_run_saved_before_noise_hold_keeps_fresh_noise_every_step():
    """config.toml written before --noise-hold existed ran with noise drawn every step; reading
    it back must not give it the from-one recipe's once-per-lifetime draw."""
    from srml.config import from_dict, from_saved

    old = {"founders": 1, "noise_inputs": 2, "beta": "per_block", "credit": "lineage"}
    assert from_saved(old).validate().noise_hold == 1
    assert from_dict(old).validate().noise_hold == 0  # a new config takes the recipe
    assert from_saved({**old, "noise_hold": 5}).noise_hold == 5
