"""Every backend agrees with the numpy reference on the same seeds, to float tolerance.

One generation per (backend, env, network variant): actions, rewards, episode
starts, fitness and the rewritten genomes are compared with the numpy backend's.
The cuda backend runs its real kernels on numba's CUDA simulator (conftest.py).
"""

import numpy as np
import pytest
from srml.envs import TWINS

from srml.backends import BACKENDS, make_backend
from srml.config import Config
from srml.errors import SrmlError
from srml.task import make_task

VARIANTS = {
    "default": {},
    "deep-heads-blocks": {"hidden": [6], "heads": 2, "beta": "per_block"},
    "argmax-noreward": {"sample_actions": False, "reward_input": False, "episode_flag": False},
    "frozen": {"self_modify": False},
}


def compare_with_reference(settings, env, backend, batch, lifetime, twin="auto"):
    """One generation of ``backend`` against the numpy reference, on the same genomes and seed,
    with the network and fitness ``settings`` (Config fields); test_variants uses it too."""
    cfg = Config(env=env, batch=batch, pool_size=batch, lifetime=lifetime, twin=twin, **settings)
    task = make_task(cfg)
    genomes = task.layout.init(np.random.default_rng(7), batch, 0.5)
    ref = make_backend("numpy", task, batch).run(genomes, seed=11, record=True)
    out = make_backend(backend, task, batch).run(genomes, seed=11, record=True)
    assert out.actions.shape == ref.actions.shape and out.actions.dtype == ref.actions.dtype
    if task.codec.discrete_act:
        np.testing.assert_array_equal(out.actions, ref.actions)
    else:
        np.testing.assert_allclose(out.actions, ref.actions, atol=1e-3)
    np.testing.assert_allclose(out.rewards, ref.rewards, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(out.firsts, ref.firsts)
    np.testing.assert_array_equal(out.episodes, ref.episodes)
    np.testing.assert_allclose(out.fitness, ref.fitness, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.genomes, ref.genomes, rtol=1e-3, atol=1e-3)
    if settings.get("self_modify") is False:
        np.testing.assert_array_equal(out.genomes, genomes)
    else:
        assert not np.allclose(out.genomes, genomes)  # the genomes did rewrite themselves


def _compare(env, backend, variant, batch, lifetime, twin="auto"):
    compare_with_reference(VARIANTS[variant], env, backend, batch, lifetime, twin)


# every twin with the default network; every network variant on a Discrete and a Box env
# (each case compiles its own kernel: the matrix is kept to what covers distinct code)
# (srml/LearnedOptimizer-v0 has its own backend cases in test_envs_learned_optimizer.py: its
# fused kernel takes several times longer to compile than the others')
CASES = [(env, "default") for env in sorted(TWINS) if env != "srml/LearnedOptimizer-v0"] + [
    (env, v)
    for env in ("srml/CartPole-v1", "srml/Pendulum-v1")
    for v in sorted(VARIANTS)
    if v != "default"
]


# deep-heads-blocks on numba: test_variants' deep-heads-keys-blocks-hold7 is the same network
# with sampled keys and held noise on top (each case compiles a kernel: ~20 s of CI apiece)
@pytest.mark.parametrize("env,variant", [c for c in CASES if c[1] != "deep-heads-blocks"])
def test_numba_fused_matches_numpy(env, variant):
    # Box envs: float32 rounding differences grow chaotically with time; 60 steps keep them
    # well inside the tolerance while crossing several episode boundaries in the fast envs
    _compare(env, "numba", variant, batch=16, lifetime=60)


@pytest.mark.parametrize("env,variant", CASES)
def test_cuda_kernels_match_numpy(env, variant):
    from srml.backends.cuda_backend import simulated

    if not simulated():
        pytest.skip("NUMBA_ENABLE_CUDASIM=0 and this test does not use a real GPU")
    _compare(env, "cuda", variant, batch=4, lifetime=25)


@pytest.mark.parametrize("env", ["CartPole-v1", "Acrobot-v1", "MountainCarContinuous-v0"])
def test_numba_generic_path_matches_numpy(env):
    """Gymnasium's own env (no twin): compiled SRWM step driving the vector env."""
    _compare(env, "numba", "default", batch=8, lifetime=60, twin="off")


def test_registry_is_complete():
    assert set(BACKENDS) == {"numpy", "numba", "cuda"}


def test_cuda_refuses_envs_without_twin():
    task = make_task(Config(env="CartPole-v1", twin="off", batch=4, pool_size=4))
    with pytest.raises(SrmlError, match="twin"):
        make_backend("cuda", task, 4)


@pytest.mark.parametrize("layout", ["lanes", "agent"])
def test_numba_results_do_not_depend_on_thread_count(layout):
    """Agents are independent and their random numbers are keyed by lane: any split is exact
    (batch 130: three blocks of lanes, the last partial, over two threads)."""
    import numba

    task = make_task(Config(env="CartPole-v1", batch=130, pool_size=130, lifetime=80))
    genomes = task.layout.init(np.random.default_rng(3), 130, 1.0)
    before = numba.get_num_threads()
    try:
        runs = [
            make_backend("numba", task, 130, threads=t, layout=layout).run(genomes, seed=5)
            for t in (1, numba.config.NUMBA_NUM_THREADS)
        ]
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(runs[0].genomes, runs[1].genomes)
    np.testing.assert_array_equal(runs[0].fitness, runs[1].fitness)
