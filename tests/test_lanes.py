"""The numba backend's lanes layout (srml/backends/numba_lanes.py): bit for bit the per-agent
kernel with the C library's exp, the polynomial exp's error, fast_exp against the numpy
reference, and one-line errors."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from test_backends import compare_with_reference

from srml.backends import make_backend
from srml.backends.numba_lanes import LANES, exp_lanes, tanh_lanes
from srml.config import Config
from srml.errors import SrmlError
from srml.task import make_task


def test_fast_exp_is_within_1e7_relative_over_the_normal_range():
    x = np.arange(-87.33, 88.72, 1e-4).astype(np.float32)  # every result a normal float32
    ref = np.exp(x.astype(np.float64))
    rel = np.abs(exp_lanes(x, fast=True).astype(np.float64) - ref) / ref
    assert rel.max() < 1e-7


def test_fast_exp_edges_are_the_c_librarys():
    x = np.array([np.nan, np.inf, -np.inf, -200.0, 100.0, 88.73, 0.0, -0.0], np.float32)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(exp_lanes(x, fast=True), np.exp(x))
    x = np.array([-103.0, -95.0, -90.0, -87.5], np.float32)  # subnormal results
    np.testing.assert_allclose(exp_lanes(x, fast=True), np.exp(x.astype(np.float64)), atol=1.5e-45)


def test_exp_is_zero_below_exp_zero_without_calling_the_c_library():
    """Below EXP_ZERO the kernels (per agent and lanes) return 0 without calling expf, whose
    underflow path is slow: the C library's expf is 0 there too (every float32 in [-110, -104)
    and a sample down to -inf), so no bit changes; elsewhere it is the C library's."""
    import numba

    from srml.kernels import EXP_ZERO, make_exp

    @numba.njit
    def c_exp(x, out):  # the C library's expf, as the kernels call it
        for i in range(x.size):
            out[i] = math.exp(x[i])

    lo = np.float32(-110.0).view(np.int32)
    below = np.arange(EXP_ZERO.view(np.int32) + 1, lo + 1, dtype=np.int32).view(np.float32)
    far = -np.logspace(2.05, 38.5, 2000, dtype=np.float32)
    below = np.concatenate([below, far, np.array([-np.inf], np.float32)])
    out = np.empty_like(below)
    c_exp(below, out)
    assert below.max() < EXP_ZERO and len(below) > 700_000 and not out.any()
    exp = make_exp(numba.njit)
    x = np.array([np.nan, -np.inf, -1e30, -200.0, EXP_ZERO, -103.5, -100.0, -88.0, -1.0, 0.0,
                  3.0, 88.0, 89.0], np.float32)  # fmt: skip
    want = np.empty_like(x)
    c_exp(x, want)
    with np.errstate(over="ignore"):
        want[x < EXP_ZERO] = 0
    for got in (np.array([exp(v) for v in x], np.float32), exp_lanes(x, fast=False)):
        np.testing.assert_array_equal(got, want)
    assert want[5] > 0 and want[4] == 0  # subnormal results stay; EXP_ZERO itself gives 0


def test_fast_tanh_is_within_2e7_relative():
    # both formulas and the switch between them at |x| = 0.625; float32 tanhf is 1.1e-7 here
    x = np.arange(-12.0, 12.0, 1e-5).astype(np.float32)
    x = x[x != 0]
    ref = np.tanh(x.astype(np.float64))
    rel = np.abs(tanh_lanes(x, fast=True).astype(np.float64) - ref) / np.abs(ref)
    assert rel.max() < 2e-7


def test_fast_tanh_edges():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-45, 44.0, -45.0, 1e4], np.float32)
    got = tanh_lanes(x, fast=True)
    np.testing.assert_array_equal(got, np.tanh(x))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(x))  # tanh(-0) = -0


def _runs(env, settings, batch, lifetime):
    cfg = Config(env=env, batch=batch, pool_size=batch, lifetime=lifetime, **settings)
    task = make_task(cfg)
    genomes = task.layout.init(np.random.default_rng(5), batch, 0.5)
    return [
        make_backend("numba", task, batch, layout=layout).run(genomes, seed=3, record=True)
        for layout in ("lanes", "agent")
    ]


# batch LANES + 6: one full block and one with 58 idle lanes; each case compiles two kernels
# (~40-60 s on 2 cores), so CI runs two; the deep networks and Box actions (checked against
# the reference in test_backends and test_variants) run with `pytest -m slow`
SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "env,settings",
    [
        ("srml/CartPole-v1", {}),
        # 2 heads of 17 inputs: a dot product of CHUNK terms and one more (make_lane_dots)
        ("srml/MountainCar-v0", {"heads": 2, "sample_keys": True, "noise_inputs": 25,
                                 "beta": "per_block", "noise_hold": 7, "input_norm": "softmax",
                                 "update": "tanh", "fitness_from": 0.5, "sample_actions": False}),
        pytest.param("srml/Pendulum-v1", {"hidden": [6], "heads": 2, "beta": "per_block",
                                          "sample_keys": True, "noise_inputs": 3,
                                          "noise_hold": 7}, marks=SLOW),
        pytest.param("srml/MountainCarContinuous-v0", {"update": "tanh", "input_norm": "layer",
                                                       "hidden": [5, 4]}, marks=SLOW),
        # delta updates with 17 inputs, then 32 (two CHUNKs)
        pytest.param("srml/CartPole-v1", {"hidden": [32], "fitness_from": 0.5, "noise_inputs": 8,
                                          "noise_hold": 0, "noise_to_y": False}, marks=SLOW),
    ],
)  # fmt: skip
def test_lanes_equal_the_per_agent_kernel_bit_for_bit(env, settings):
    lanes, agent = _runs(env, settings, LANES + 6, 60)
    for field in ("genomes", "fitness", "episodes", "nonfinite", "actions", "rewards", "firsts"):
        np.testing.assert_array_equal(getattr(lanes, field), getattr(agent, field), err_msg=field)
    assert not np.array_equal(lanes.genomes[0], lanes.genomes[1])


def test_fast_exp_matches_the_numpy_reference():
    # every exp and tanh of the lanes: softmaxes, sigmoid rates, actions, the squashed hidden
    # layer and the tanh update values
    settings = {"fast_exp": True, "hidden": [6], "update": "tanh"}
    compare_with_reference(settings, "srml/CartPole-v1", "numba", 16, 60)


def test_fast_exp_changes_results_only_at_float_tolerance():
    cfg = Config(env="srml/CartPole-v1", batch=LANES, pool_size=LANES, lifetime=40)
    genomes = make_task(cfg).layout.init(np.random.default_rng(2), LANES, 0.5)
    runs = []
    for fast in (False, True):
        task = make_task(Config(**{**cfg.__dict__, "fast_exp": fast}))
        runs.append(make_backend("numba", task, LANES).run(genomes, seed=1))
    np.testing.assert_array_equal(runs[0].fitness, runs[1].fitness)
    np.testing.assert_allclose(runs[0].genomes, runs[1].genomes, rtol=1e-4, atol=1e-4)
    assert not np.array_equal(runs[0].genomes, runs[1].genomes)  # another exp


def test_bad_layout_and_fast_exp_fail_in_one_line():
    with pytest.raises(SrmlError, match="applies to the numba backend"):
        Config(backend="numpy", fast_exp=True).validate()
    task = make_task(Config(batch=4, pool_size=4, lifetime=5))
    with pytest.raises(SrmlError, match="unknown numba layout"):
        make_backend("numba", task, 4, layout="rows")
    fast = make_task(Config(batch=4, pool_size=4, lifetime=5, fast_exp=True))
    with pytest.raises(SrmlError, match="agent layout"):
        make_backend("numba", fast, 4, layout="agent")
    generic = make_task(Config(batch=4, pool_size=4, lifetime=5, fast_exp=True, twin="off"))
    with pytest.raises(SrmlError, match="needs a compiled twin"):
        make_backend("numba", generic, 4)
    for argv in (["run", "--backend", "numpy", "--fast-exp"],
                 ["bench", "--backend", "numpy", "--layout", "agent"]):  # fmt: skip
        p = subprocess.run([sys.executable, "-m", "srml", *argv], capture_output=True, text=True)
        assert p.returncode == 2, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
