"""Every GPU path on numba's CUDA simulator (conftest.py sets NUMBA_ENABLE_CUDASIM=1), at small
sizes: each kernel variant (rows, coalesced (G, B), shared-memory genome with local or shared
scratch, lean buffers) and its finite flags, the coalesced fallback for a genome too large
for shared memory, the device's finish against finalize, the device pool (every selection
rule, insertion, LRU eviction, checkpoints, log statistics) against the CPU pool, FME
generations on the device pool against the host pool and the numpy reference, the
benchmark's smoke mode; and, with the simulator off on this GPU-less machine, the one-line
failures of every cuda path.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from srml import rng
from srml.backends import DeviceBatch, make_backend
from srml.config import Config
from srml.errors import SrmlError
from srml.fme import FME, FMEOptions
from srml.kernels import NetSpec
from srml.pool import SELECTIONS, Pool
from srml.task import make_task

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _simulator_only(request):
    if request.node.get_closest_marker("nosim"):
        return
    from srml.backends.cuda_backend import simulated

    if not simulated():
        pytest.skip("NUMBA_ENABLE_CUDASIM=0 and this test does not use a real GPU")


def _cuda(task, batch, **variant):
    from srml.backends.cuda_backend import CudaBackend

    return CudaBackend(task, batch, **variant)


VARIANTS = [
    dict(layout="rows", lean=False, div="plain"),  # the original kernel
    dict(layout="rows"),
    dict(layout="coalesced"),
    dict(layout="shared", threads_per_block=32),
    dict(layout="shared", threads_per_block=64, lean=False),
    dict(layout="shared", scratch="shared"),
    dict(layout="shared", div="plain"),  # the float32 division everywhere, as on the CPU
    dict(layout="shared", smem="rows"),  # a padded row of shared memory per agent
]


def _reference(env, batch, lifetime, seed=11, **cfg):
    task = make_task(Config(env=env, batch=batch, pool_size=batch, lifetime=lifetime, **cfg))
    genomes = task.layout.init(np.random.default_rng(7), batch, 0.5)
    ref = make_backend("numpy", task, batch).run(genomes, seed=seed, record=True)
    return task, genomes, ref


def _assert_matches(out, ref, genomes):
    np.testing.assert_array_equal(out.actions, ref.actions)
    np.testing.assert_allclose(out.rewards, ref.rewards, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(out.firsts, ref.firsts)
    np.testing.assert_array_equal(out.episodes, ref.episodes)
    np.testing.assert_allclose(out.fitness, ref.fitness, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(out.genomes), ref.genomes, rtol=1e-3, atol=1e-3)
    assert not np.allclose(np.asarray(out.genomes), genomes)


@pytest.mark.parametrize("env,cfg", [("CartPole-v1", {}), ("Pendulum-v1", {"hidden": [3]})])
def test_every_kernel_variant_matches_numpy_and_each_other(env, cfg):
    """All variants: the numpy reference's actions, rewards, fitness and genomes; and
    bit-identical genomes, returns and episodes among themselves."""
    task, genomes, ref = _reference(env, 3, 20, **cfg)
    outs = []
    for v in VARIANTS:
        b = _cuda(task, 3, **v)
        assert b.variant.layout == v["layout"]  # these fit: no fallback
        out = b.run(genomes, seed=11, record=True)
        if task.codec.discrete_act:
            _assert_matches(out, ref, genomes)
        else:
            np.testing.assert_allclose(out.actions, ref.actions, atol=1e-3)
            np.testing.assert_allclose(out.fitness, ref.fitness, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(out.genomes, ref.genomes, rtol=1e-3, atol=1e-3)
        outs.append(out)
    for out in outs[1:]:
        np.testing.assert_array_equal(out.genomes, outs[0].genomes)
        np.testing.assert_array_equal(out.fitness, outs[0].fitness)
        np.testing.assert_array_equal(out.episodes, outs[0].episodes)


def test_guarded_division_gives_the_float32_divisions_bits():
    """make_div's guarded form (the GPU kernels' default) returns float32 division's bits on
    every subnormal numerator, tiny normal ones, zeros, NaN and infinities, over divisors in the
    softmaxes' range [1, n] and awkward ones; its float64 path is what makes that hold (a
    float32 rescaling there rounds twice and fails this)."""
    import numba

    from srml.kernels import DIV_TINY, make_div

    jit = numba.njit(error_model="numpy")  # as the kernels: IEEE division, no Python check

    def looped(div):
        @jit
        def run(p, s, out):
            for i in range(p.size):
                out[i] = div(p[i], s)

        return run

    plain, guarded = looped(make_div(jit)), looped(make_div(jit, True))
    subnormal = np.arange(1, 2**23, dtype=np.uint32).view(np.float32)  # every one
    lo, hi = (np.float32(2.0**e).view(np.uint32) for e in (-126, -98))
    tiny = np.arange(lo, hi, 97, dtype=np.uint32).view(np.float32)
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, 0.5, -1.0, -1e-40, DIV_TINY,
                        np.nextafter(DIV_TINY, np.float32(0))], np.float32)  # fmt: skip
    awkward = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 1e-40, 2.0**100], np.float32)
    softmax_sums = np.array([1.0, 1.0000001, 3.0, 7.9999995, 18.39, 30.9], np.float32)
    cases = [(subnormal, s) for s in softmax_sums]
    cases += [(np.concatenate([tiny, special, -subnormal[::1001]]), s)
              for s in np.concatenate([softmax_sums, awkward])]  # fmt: skip
    n = 0
    for p, s in cases:
        a, b = np.empty_like(p), np.empty_like(p)
        plain(p, s, a)
        guarded(p, s, b)
        same = (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))
        assert same.all(), (s, p[~same][:4], a[~same][:4], b[~same][:4])
        n += p.size
    assert n > 50_000_000


def test_division_variants_agree_on_peaked_softmaxes(monkeypatch):
    """Genomes whose softmaxes underflow (as evolved ones do): the guarded and the plain
    division give bit-identical genomes, returns and episodes; the batch does reach the
    guarded paths (zero, subnormal and tiny terms in the numpy reference's softmaxes), and
    every division of each kernel is the variant's."""
    import srml.kernels
    import srml.srwm as srwm
    from srml.backends import cuda_kernels

    built = []
    make_div = srml.kernels.make_div

    def spy(jit, guarded=False):
        built.append(guarded)
        return make_div(jit, guarded)

    monkeypatch.setattr(srml.kernels, "make_div", spy)
    monkeypatch.setattr(cuda_kernels, "_CACHE", {})

    terms = []
    softmax = srwm.softmax

    def recording(z):
        terms.append(np.exp(z - z.max(-1, keepdims=True)).ravel())
        return softmax(z)

    monkeypatch.setattr(srwm, "softmax", recording)
    task = make_task(Config(env="CartPole-v1", batch=4, pool_size=4, lifetime=20))
    genomes = task.layout.init(np.random.default_rng(7), 4, 30.0)
    with np.errstate(all="ignore"):
        make_backend("numpy", task, 4).run(genomes, seed=11)
    e = np.concatenate(terms)
    assert (e == 0).mean() > 0.2 and ((e > 0) & (e < np.float32(2.0**-126))).any()
    guarded = _cuda(task, 4).run(genomes, seed=11)
    assert built and all(built)  # the softmaxes, the action draw (layer and agent)
    built.clear()
    plain = _cuda(task, 4, div="plain").run(genomes, seed=11)
    assert built and not any(built)
    assert np.isfinite(guarded.genomes).all()
    np.testing.assert_array_equal(guarded.genomes, plain.genomes)
    np.testing.assert_array_equal(guarded.fitness, plain.fitness)
    np.testing.assert_array_equal(guarded.episodes, plain.episodes)


def test_large_genome_falls_back_to_the_coalesced_layout():
    """A genome too large for a block's shared memory runs the coalesced (G, B) kernel."""
    from srml.backends.cuda_kernels import STATIC_SHARED_BYTES, Variant, resolve, shared_bytes

    task, genomes, ref = _reference("CartPole-v1", 2, 12, hidden=[24])
    G = task.layout.size
    assert G * 32 * 4 > STATIC_SHARED_BYTES
    b = _cuda(task, 2, layout="shared", threads_per_block=32)
    assert b.requested.layout == "shared" and b.variant.layout == "coalesced"
    _assert_matches(b.run(genomes, seed=11, record=True), ref, genomes)
    # shared scratch that does not fit falls back to the shared genome alone first
    small = make_task(Config(env="CartPole-v1", batch=2, pool_size=2))
    v = Variant("shared", 64, "shared")
    spec, twin = NetSpec.of(small.layout, small.codec), small.twin
    assert shared_bytes(spec, twin, v, small.layout.size) > STATIC_SHARED_BYTES
    assert resolve(spec, twin, v, small.layout.size) == Variant("shared", 64, "local")
    rows = Variant("shared", 32, smem="rows")  # padded rows too large: coalesced, plain columns
    assert resolve(spec, twin, rows, G) == Variant("coalesced", 32, smem="columns")


def test_variant_options_and_env(monkeypatch):
    from srml.backends.cuda_backend import variant_from

    assert variant_from().layout == "shared" and variant_from().threads == 32
    monkeypatch.setenv("SRML_CUDA_THREADS", "64")
    monkeypatch.setenv("SRML_CUDA_LAYOUT", "coalesced")
    monkeypatch.setenv("SRML_CUDA_LEAN", "0")
    v = variant_from()
    assert (v.layout, v.threads, v.lean) == ("coalesced", 64, False)
    assert variant_from(threads_per_block=128).threads == 128  # an argument wins
    assert variant_from().div == "guarded"
    monkeypatch.setenv("SRML_CUDA_DIV", "plain")
    assert variant_from().div == "plain" and variant_from(div="guarded").div == "guarded"
    assert variant_from(layout="shared", smem="rows").smem == "rows"
    for bad in (dict(threads_per_block=48), dict(layout="tiled"), dict(scratch="shared"),
                dict(div="fast"), dict(smem="tiles"), dict(layout="coalesced", smem="rows"),
                dict(layout="shared", scratch="shared", smem="rows")):  # fmt: skip
        with pytest.raises(SrmlError) as e:
            variant_from(**bad)
        assert "\n" not in str(e.value)
    monkeypatch.setenv("SRML_CUDA_THREADS", "many")
    with pytest.raises(SrmlError, match="SRML_CUDA_THREADS"):
        variant_from()


def test_device_batch_in_device_batch_out():
    """A DeviceBatch runs without leaving the device, is not modified, and gives the host
    path's results; lane keys computed on the device are rng.lane_keys."""
    from srml.backends.cuda_backend import device_lane_keys

    task, genomes, ref = _reference("CartPole-v1", 3, 15)
    b = _cuda(task, 3)
    batch = DeviceBatch(np.ascontiguousarray(genomes.T), np)
    before = batch.data.copy()
    out = b.run(batch, seed=11, record=True)
    assert isinstance(out.genomes, DeviceBatch) and out.genomes.shape == genomes.shape
    np.testing.assert_array_equal(batch.data, before)
    host = b.run(genomes, seed=11)
    np.testing.assert_array_equal(out.genomes.to_host(), host.genomes)
    np.testing.assert_array_equal(np.asarray(out.genomes), host.genomes)
    np.testing.assert_array_equal(out.fitness, host.fitness)
    _assert_matches(out, ref, genomes)
    with np.errstate(over="ignore"):
        lanes = np.arange(1000, dtype=np.uint64) * np.uint64(rng._GOLDEN)
    np.testing.assert_array_equal(
        device_lane_keys(np, 12345, lanes), rng.lane_keys(12345, np.arange(1000))
    )


def test_nonfinite_genomes_get_minus_inf_on_device():
    task, genomes, _ = _reference("CartPole-v1", 3, 5)
    genomes[1, 0] = np.inf
    for g in (genomes, DeviceBatch(np.ascontiguousarray(genomes.T), np)):
        out = _cuda(task, 3).run(g, seed=1)
        assert out.fitness[1] == -np.inf and out.nonfinite == 1
        assert np.isfinite(out.fitness[[0, 2]]).all()


def test_simulator_globals_hold_a_warning_registry_before_a_launch():
    """The simulator iterates a device function's module globals at every call, in many Python
    threads; a first warning in that module adds __warningregistry__ to them mid-iteration
    ("dictionary changed size during iteration", once a flaky failure of the test above). The
    backend adds the registry to every module its kernel reaches before any launch."""
    import sys

    import srml.kernels

    task = make_task(Config(env="CartPole-v1", batch=3, pool_size=3, lifetime=5))
    modules = (srml.kernels, rng, sys.modules["srml.envs.cartpole"])  # the twin's step lives there
    for m in modules:
        vars(m).pop("__warningregistry__", None)
    _cuda(task, 3)
    assert all("__warningregistry__" in vars(m) for m in modules)


def test_kernel_finite_flags_equal_numpy_isfinite():
    """Every variant flags, as it writes the genomes back, exactly the agents whose rewritten
    weights and return numpy finds all finite (planted NaN and inf rows included)."""
    task, genomes, _ = _reference("CartPole-v1", 4, 6)
    genomes[1, 0] = np.nan
    genomes[2, -1] = -np.inf
    flags = []
    for v in VARIANTS:
        b = _cuda(task, 4, **v)
        d = b.device_genomes(genomes)
        d_ret, _, d_ok = b.launch(d, seed=3)
        weights = np.isfinite(d).all(axis=0 if b.variant.transposed else 1)
        assert d_ok.dtype == np.bool_
        np.testing.assert_array_equal(d_ok, weights & np.isfinite(d_ret))
        flags.append(d_ok)
    assert flags[0][[0, 3]].all() and not flags[0][1:3].any()
    for f in flags[1:]:
        np.testing.assert_array_equal(f, flags[0])


@pytest.mark.parametrize("array_module", ["numpy", "fake cupy"])
def test_finish_on_the_device_equals_finalize(array_module, monkeypatch):
    """The backend's finish (fitness from the kernel's flags, on the device) gives exactly the
    Rollout base.finalize gives on the host: non-finite returns, flagged genomes, no
    episodes."""
    import srml.backends.cuda_backend as cb
    from srml.backends.base import finalize

    if array_module != "numpy":
        monkeypatch.setattr(cb, "device_array_module", _fake_cupy)
    task, _, _ = _reference("CartPole-v1", 6, 5)
    b = _cuda(task, 6)
    r = np.random.default_rng(4)
    d = r.normal(size=(task.layout.size, 6)).astype(np.float32)
    d[3, 4] = np.inf  # a blown-up weight the flag reports
    ret = np.array([12.5, np.nan, np.inf, -3.0, 7.0, 1e308])
    eps = np.array([3, 2, 1, 0, 5, 1], np.int64)
    ok = np.isfinite(d).all(axis=0) & np.isfinite(ret)
    for keep in (True, False):
        got = b.finish(d, ret, eps, ok, keep)
        want = finalize(np.ascontiguousarray(d.T), ret, eps, 6 * task.lifetime, None, ok)
        assert isinstance(got.genomes, DeviceBatch) == keep
        np.testing.assert_array_equal(np.asarray(got.genomes), want.genomes)
        np.testing.assert_array_equal(got.fitness, want.fitness)
        np.testing.assert_array_equal(got.episodes, want.episodes)
        assert (got.nonfinite, got.env_steps) == (want.nonfinite, want.env_steps) == (3, 30)
        assert type(got.fitness) is np.ndarray and got.fitness.dtype == np.float64


# --- the device pool -----------------------------------------------------------------------


def _fitness_cases():
    r = np.random.default_rng(0)
    yield r.normal(size=50) * 30
    yield np.round(r.normal(size=50) * 3)  # many ties
    f = r.normal(size=40)
    f[[3, 7]] = [np.nan, -np.inf]
    yield f
    yield np.full(9, np.nan)  # nothing finite: uniform
    yield np.full(5, 2.5)  # no spread


@pytest.mark.parametrize("rule", sorted(SELECTIONS))
def test_device_selection_weights_equal_the_cpu_pool(rule):
    from srml.device_pool import DEVICE_SELECTIONS

    for f in _fitness_cases():
        for temp in (1.0, 0.3):
            np.testing.assert_array_equal(
                DEVICE_SELECTIONS[rule](np, f, temp), SELECTIONS[rule](f, temp)
            )


@pytest.mark.parametrize("array_module", ["numpy", "fake cupy"])
def test_device_fitness_stats_equal_numpy_stats(array_module):
    """The device pool's log-row statistics (one sort, numpy's interpolation on the host)
    equal srml.fitness.stats bit for bit: ties, sizes 1..40, huge values, NaN and inf
    members, nothing finite."""
    import math

    from srml.device_pool import DevicePool
    from srml.fitness import stats

    xp = np if array_module == "numpy" else _fake_cupy()
    r = np.random.default_rng(1)
    cases = [np.full(7, np.nan), np.array([5.0]), *_fitness_cases()]
    for n in [*range(1, 41), 1001]:
        f = r.normal(size=n) * 10 ** r.uniform(-3, 3)
        g = r.normal(size=n)
        g[r.integers(0, n, size=max(1, n // 4))] = r.choice([np.nan, np.inf, -np.inf])
        cases += [f, np.round(f), r.normal(size=n) * 1e300, g]
    for f in cases:
        pool = DevicePool(len(f), 2, xp)
        pool.insert(np.zeros((len(f), 2), np.float32), f)
        got, want = pool.fitness_stats(), stats(f)
        assert got.keys() == want.keys()
        for k, v in want.items():
            assert type(got[k]) is float
            assert got[k] == v or (math.isnan(got[k]) and math.isnan(v)), (len(f), k)


def _random_history(pool_cls, seed, rule, *args):
    """A fixed script of inserts and draws (ties in the LRU clock, eviction, non-finite
    fitness) run on a pool; returns the pool, the draws and the Generator."""
    script = np.random.default_rng(seed)
    g = np.random.default_rng(100 + seed)
    pool = pool_cls(13, 5, *args)
    draws = []
    for step in range(12):
        k = int(script.integers(1, 9))
        genomes = script.normal(size=(k, 5)).astype(np.float32)
        fitness = np.round(script.normal(size=k) * 4)
        if step == 4:
            fitness[0] = -np.inf
        parent = founder = None
        if pool.size:
            idx = pool.sample(g, k, rule, 0.7)
            draws.append(np.asarray(idx).copy())
            parent, founder = np.asarray(pool.ids)[np.asarray(idx)], None
        pool.insert(genomes, fitness, parent, founder, born=step)
    return pool, draws, g


@pytest.mark.parametrize("rule", sorted(SELECTIONS))
def test_device_pool_draws_inserts_and_evicts_like_the_cpu_pool(rule):
    from srml.device_pool import DevicePool

    for seed in range(3):
        cpu, cpu_draws, g1 = _random_history(Pool, seed, rule)
        dev, dev_draws, g2 = _random_history(DevicePool, seed, rule, np)
        assert len(cpu_draws) == len(dev_draws) > 0
        for a, b in zip(cpu_draws, dev_draws, strict=True):
            np.testing.assert_array_equal(a, b)
        assert g1.bit_generator.state == g2.bit_generator.state  # same RNG stream consumed
        sc, sd = cpu.state(), dev.state()
        assert sc.keys() == sd.keys()
        for k in sc:
            assert sc[k].dtype == sd[k].dtype
            np.testing.assert_array_equal(sc[k], sd[k], err_msg=k)
        np.testing.assert_array_equal(dev.genomes, cpu.genomes)  # host snapshots
        np.testing.assert_array_equal(dev.fitness, cpu.fitness)
        np.testing.assert_array_equal(dev.best(4), cpu.best(4))
        np.testing.assert_array_equal(dev.take([2, 0]), cpu.genomes[[2, 0]])
        back = DevicePool.from_state(sc, 5, np).state()  # checkpoints are interchangeable
        for k in sc:
            np.testing.assert_array_equal(back[k], sc[k])


def _fme(backend="cuda", device_pool=True, **kw):
    cfg = dict(env="CartPole-v1", batch=4, pool_size=8, lifetime=24, progress=False, seed=2)
    cfg.update(kw)
    return FME(Config(backend=backend, **cfg), options=FMEOptions(device_pool=device_pool))


@pytest.mark.parametrize(
    "kw", [{"selection": "proportional"}, {"selection": "rank"}, {"selection": "softmax"},
           {"sigma": 0.3, "founders": 3}],
)  # fmt: skip
def test_fme_on_the_device_pool_equals_the_host_pool(kw):
    """Same seeds, same kernel: the device pool's FME generations are the host pool's, bit for
    bit (founding, drawing, eviction, mutation noise); the batch stays on the device."""
    from srml.device_pool import DevicePool

    a, b = _fme(**kw), _fme(device_pool=False, **kw)
    assert isinstance(a.pool, DevicePool) and isinstance(b.pool, Pool)
    for _ in range(5):
        genomes = a.ask()
        assert isinstance(genomes, DeviceBatch)
        ra = a.evaluate(genomes)
        assert isinstance(ra.genomes, DeviceBatch)
        a.tell(ra)
        b.step()
    sa, sb = a.state()[0], b.state()[0]
    for k in sb:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    np.testing.assert_array_equal(a.population_fitness(), b.population_fitness())
    for x, y in zip(a.pool.lineage(), b.pool.lineage(), strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.candidates(), b.candidates())
    np.testing.assert_array_equal(a.candidates_fitness(), b.candidates_fitness())


def test_fme_on_the_device_pool_follows_the_numpy_reference():
    """FME generations with the cuda backend and its device pool against the CPU path
    (numpy reference backend, host pool) on the same seeds: same draws and lineage, fitness
    and genomes to float tolerance."""
    a, b = _fme(), _fme(backend="numpy")
    for _ in range(4):
        a.step(), b.step()
    sa, sb = a.state()[0], b.state()[0]
    for k in ("pool_ids", "pool_parent", "pool_founder", "pool_last_used", "pool_born"):
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    np.testing.assert_allclose(sa["pool_fitness"], sb["pool_fitness"], rtol=1e-4)
    np.testing.assert_allclose(sa["pool_genomes"], sb["pool_genomes"], rtol=1e-3, atol=1e-3)


def test_next_selection_uniforms_drawn_ahead_are_used_only_where_exact(monkeypatch):
    """With the device pool the host draws the next generation's selection uniforms in a
    thread while the device runs (on a copy of the run's generator). Used where the run's
    generator has not moved since; where it has (a user drew from it between generations),
    drawn afresh: either way every draw is the host pool's."""
    a, b = _fme(), _fme(device_pool=False)
    used = []
    drawn_ahead = type(a)._drawn_ahead
    monkeypatch.setattr(a, "_drawn_ahead", lambda: used.append(drawn_ahead(a)) or used[-1])
    for g in range(6):  # 8 founders in batches of 4: generations 2-5 draw from the pool
        if g == 4:  # the generator moves between two generations
            np.testing.assert_array_equal(a.random_genomes(2), b.random_genomes(2))
        a.step(), b.step()
    assert [u is not None for u in used] == [False, True, False, True]  # 2: none drawn yet
    assert a._ahead is not None  # the next draw is under way; the run's generator untouched
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    for k, v in b.state()[0].items():
        np.testing.assert_array_equal(a.state()[0][k], v, err_msg=k)
    a.close()
    assert a._drawer is None


def test_device_pool_checkpoint_resumes_on_either_pool():
    a = _fme()
    for _ in range(3):
        a.step()
    arrays, meta = a.state()
    b, c = _fme(), _fme(device_pool=False)
    b.load_state(arrays, meta), c.load_state(arrays, meta)
    for m in (a, b, c):
        for _ in range(2):
            m.step()
    for m in (b, c):
        for k, v in a.state()[0].items():
            np.testing.assert_array_equal(m.state()[0][k], v, err_msg=k)


def test_fme_run_loop_on_the_device_pool(tmp_path):
    """The run machinery (log rows, checkpoint, lineage records) with the device pool."""
    fme = _fme(generations=3)
    rows = fme.run(out=tmp_path / "run")
    assert len(rows) == 3 and rows[-1]["pool_size"] == 8 and rows[0]["backend"] == "cuda"
    assert rows[-1]["lineages"] >= 1
    from srml.run import rundir

    arrays, meta = rundir.load_checkpoint(tmp_path / "run" / "pool.npz")
    assert arrays["pool_genomes"].shape == (8, fme.task.layout.size)


# --- the benchmark's smoke mode ----------------------------------------------------------------


def test_gpu_benchmark_smoke_mode(tmp_path):
    out = tmp_path / "RESULTS_GPU.md"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--simulate", "--out", str(out),
         "--skip", "numba"],  # srml bench's numba path is tests/test_bench.py's
        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    text = out.read_text()
    for section in ("kernel alone", "end to end", "parity", "time to solve", "simulator"):
        assert section in text.lower(), section
    assert "FAILED" not in text, text
    parity = text.split("## Parity")[1].split("## Time to solve")[0]
    assert '"pool_identical": true' in parity and "false" not in parity, parity  # parity held
    assert "summary (SIMULATOR)" in p.stdout


def test_gpu_phases_smoke_mode(tmp_path):
    """benchmarks/gpu_phases.py runs end to end on the simulator and prints every phase, the
    pieces of ask and of the log row, and the kernel alone with both divisions."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_phases.py"), "--simulate",
         "--generations", "2"], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for line in ("ask: selection (device)", "log row: lineages", "evolved batch, guarded division",
                 "fresh founders, plain division", "ms/generation", "log row  "):  # fmt: skip
        assert line in p.stdout, (line, p.stdout)


# --- without a GPU and without the simulator: one line each -------------------------------------


def _no_gpu(args, timeout=120):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    t = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    return p, time.perf_counter() - t


def _has_gpu() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.mark.nosim
@pytest.mark.parametrize(
    "args",
    [
        ["-m", "srml", "run", "--backend", "cuda", "--generations", "1", "--out", "{out}"],
        ["-m", "srml", "bench", "--backend", "cuda", "--pop", "32", "--lifetime", "5"],
        [
            "-m",
            "srml",
            "run",
            "--backend",
            "cuda",
            "--workers",
            "2",
            "--generations",
            "1",
            "--out",
            "{out}",
        ],
        [str(ROOT / "benchmarks" / "gpu.py"), "--out", "{out}"],
    ],
    ids=["run", "bench", "workers", "benchmark"],
)
def test_cuda_without_gpu_fails_in_one_line(args, tmp_path):
    if _has_gpu():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "o"
    p, took = _no_gpu([sys.executable, *(a.replace("{out}", str(out)) for a in args)])
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2, p.stdout + p.stderr
    assert len(err) == 1 and ("GPU" in err[0] or "CuPy" in err[0]), p.stderr
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr
    assert not out.exists()
    if "--workers" in args:
        assert took < 20, took  # no waiting for a GPU Ray cannot give


@pytest.mark.nosim
def test_cuda_backend_without_gpu_raises_one_line():
    code = (
        "from srml.config import Config\nfrom srml.task import make_task\n"
        "from srml.backends import make_backend\nfrom srml.errors import SrmlError\n"
        "try:\n    make_backend('cuda', make_task(Config(batch=4, pool_size=4)), 4)\n"
        "except SrmlError as e:\n    print('ERR', e)\n"
    )
    if _has_gpu():
        pytest.skip("this machine has a GPU")
    p, _ = _no_gpu([sys.executable, "-c", code])
    assert p.returncode == 0 and p.stdout.startswith("ERR ") and p.stdout.count("\n") == 1


@pytest.mark.nosim
def test_numpy_without_row_stack_is_patched_for_numba_cuda():
    """numpy 2.5 removed np.row_stack, which numba-cuda 0.30 overloads at its first compile:
    srml puts the alias (np.vstack) back before loading numba's CUDA target."""
    code = (
        "import numpy as np\ndel np.row_stack\nassert not hasattr(np, 'row_stack')\n"
        "import srml.backends.cuda_backend\nassert np.row_stack is np.vstack\nprint('ok')\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() == "ok", p.stderr


@pytest.mark.nosim
def test_compile_failure_is_one_line():
    from srml.backends.cuda_compat import numba_cuda_error

    e = numba_cuda_error(AttributeError("module 'numpy' has no attribute 'row_stack'\nmore"))
    assert "\n" not in str(e) and "numpy<2.5" in str(e) and "AttributeError" in str(e)
    e = numba_cuda_error(RuntimeError("NVVM failed"))
    assert "\n" not in str(e) and "cuda12" in str(e)


def _fake_cupy():
    """numpy under another name, with CuPy's asnumpy: drives the code paths srml takes on a
    real GPU (xp is not numpy) through the simulator."""
    import types

    fake = types.ModuleType("fakecupy")
    fake.__dict__.update({k: v for k, v in np.__dict__.items() if not k.startswith("__")})
    fake.asnumpy = lambda a: np.array(a, copy=True)
    return fake


def test_device_paths_with_a_non_numpy_array_module(monkeypatch):
    """The branches taken where the array module is CuPy (host copies through asnumpy, pool
    statistics computed on the device, masks for non-finite fitness) give the host pool's
    results."""
    import srml.backends.cuda_backend as cb

    fake = _fake_cupy()
    monkeypatch.setattr(cb, "device_array_module", lambda: fake)
    a, b = _fme(selection="rank"), _fme(selection="rank", device_pool=False)
    assert a.pool.xp is fake and a.backend.xp is fake
    for _ in range(4):
        a.step(), b.step()
    a.pool.d_fitness[1] = -np.inf  # a blown-up member
    b.pool.fitness[1] = -np.inf
    assert a.population_stats() == b.population_stats()
    ra, rb = a.row_extras(None), b.row_extras(None)
    assert ra["lineages"] == rb["lineages"]
    assert abs(ra["lineages_effective"] - rb["lineages_effective"]) < 1e-9
    for k, v in b.state()[0].items():
        np.testing.assert_array_equal(a.state()[0][k], v, err_msg=k)
    a.step(), b.step()
    np.testing.assert_array_equal(a.pool.genomes, b.pool.genomes)
    out = a.backend.run(a.ask(), seed=1)
    assert isinstance(out.genomes, DeviceBatch) and out.genomes.to_host().shape == (4, 189)


@pytest.mark.nosim
def test_real_cuda_target_compiles_the_kernels(tmp_path):
    """numba's real CUDA target (not the simulator) compiles the original and the default
    kernel for sm_90 and ptxas assembles them, without a GPU. Needs numba-cuda[cu12]."""
    import importlib.util

    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed (pip install 'numba-cuda[cu12]')")
    out = tmp_path / "r.md"
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cuda_resources.py"), "--quick", "--out",
         str(out)], capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    if p.returncode == 2 and "ptxas not found" in p.stderr:
        pytest.skip(p.stderr.strip())
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [r for r in out.read_text().splitlines() if r.startswith("| rows") or "shared 32" in r]
    assert len(rows) == 2 and all(r.split("|")[2].strip().isdigit() for r in rows), rows


def test_island_operations_on_the_device_pool():
    """What a Ray island does with its FME's pool (emigrants by best(), immigrants inserted from
    host arrays, the pool's fitness for the merged row) works on the device pool as on the host
    pool."""
    from srml.run.islands import best

    a, b = _fme(), _fme(device_pool=False)
    for _ in range(3):
        a.step(), b.step()
    for x, y in zip(best(a.pool, 3), best(b.pool, 3), strict=True):
        np.testing.assert_array_equal(x, y)
    genomes, fitness = best(b.pool, 2)
    for m in (a, b):
        m.pool.insert(genomes, fitness, born=m.generation - 1)
        m.step()
    for k, v in b.state()[0].items():
        np.testing.assert_array_equal(a.state()[0][k], v, err_msg=k)
    np.testing.assert_array_equal(a.pool.fitness[: a.pool.size], b.pool.fitness[: b.pool.size])
