"""Baselines (and FME through the same interface) on problems with a known answer.

A fake backend scores a genome by -||genome - target||^2, so the best genome is
known. It "self-modifies" like an SRWM would (the genome it returns has moved
a little) only when the task lets genomes rewrite themselves.
"""

import numpy as np
import pytest

from srml import rng
from srml.backends.base import finalize
from srml.config import Config
from srml.errors import SrmlError
from srml.evaluation import EVAL_STREAM
from srml.evaluation import evaluate_deployed as evaluate
from srml.methods import METHODS, centered_ranks, make_method

B, S = 32, 10
TARGET = 0.5


class Quadratic:
    """fitness = -||g - TARGET||^2 (+ optional Gaussian noise); remembers what it ran."""

    name = "quadratic"

    def __init__(self, task, noise=0.0, drift=0.05):
        self.task, self.noise, self.drift = task, noise, drift
        self.calls = []  # (genomes, fitness, seed) of every run

    def run(self, genomes, seed, record=False):
        g = np.array(genomes, np.float32, copy=True)
        r = np.random.default_rng(seed)
        fitness = -((g - TARGET) ** 2).sum(1).astype(float)
        if self.noise:
            fitness = fitness + self.noise * r.standard_normal(len(g))
        out = g.copy()
        if self.task.self_modify:  # a lifetime of "self-modification": the genome moves
            out += np.float32(self.drift) * r.standard_normal(g.shape, dtype=np.float32)
        self.calls.append((g, fitness, seed))
        return finalize(out, fitness, np.ones(len(g)), len(g) * S)

    def close(self):
        pass


def true_fitness(genomes):
    return float(-((np.asarray(genomes) - TARGET) ** 2).sum(1).mean())


OPTIONS = {"openai_es": {"lr": 0.05}}


def build(name, noise=0.0, options=None, **cfg):
    kw = dict(env="srml/SwappingBandit-v0", batch=B, pool_size=2 * B, lifetime=S)
    kw |= dict(generations=60, progress=False, init_std=1.0, backend="numpy")
    if name in ("hill_climber", "openai_es"):
        kw |= dict(sigma=0.1)
    kw |= cfg
    c = Config(**kw)
    from srml.task import make_task

    backend = Quadratic(make_task(c), noise)
    return make_method(name, c, backend=backend, **(options or OPTIONS.get(name, {}))), backend


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_improves_a_quadratic_at_equal_env_steps(name):
    m, _ = build(name)
    m.step()
    m.step()
    start = true_fitness(m.candidates())
    while not m.finished:
        m.step()
    assert m.env_steps == 60 * B * S  # equal budgets: B lifetimes of S steps per generation
    assert true_fitness(m.candidates()) > start + 0.2 * abs(start), (
        start,
        true_fitness(m.candidates()),
    )


@pytest.mark.parametrize("name", sorted(METHODS))
def test_same_seed_same_solution_and_budget_stops_the_run(name):
    a, _ = build(name, total_steps=7 * B * S, generations=0)
    b, _ = build(name, total_steps=7 * B * S, generations=0)
    for m in (a, b):
        while not m.finished:
            m.step()
    assert a.generation == 7 and a.env_steps == 7 * B * S
    np.testing.assert_array_equal(a.candidates(), b.candidates())
    assert a.candidates().ndim == 2 and a.candidates().shape[1] == a.task.layout.size


@pytest.mark.parametrize("name", sorted(METHODS))
def test_evaluation_uses_held_out_seeds_and_changes_nothing(name):
    m, backend = build(name, noise=1.0)
    for _ in range(3):
        m.step()
    steps, sol = m.env_steps, m.candidates().copy()
    res = evaluate(m, k=4)
    assert m.env_steps == steps and m.generation == 3
    np.testing.assert_array_equal(m.candidates(), sol)
    seed = backend.calls[-1][2]
    assert seed == rng.derive_seed(m.cfg.seed, EVAL_STREAM, 4)
    assert seed not in {s for _, _, s in backend.calls[:-1]}  # never a training seed
    assert len(res.fitness) == B  # the deployed genomes tiled over the batch


@pytest.mark.parametrize("reevaluate", [True, False])
def test_hill_climber_never_accepts_a_worse_genome(reevaluate):
    m, backend = build("hill_climber", 0.3, {"reevaluate": reevaluate}, self_modify=False)
    m.step()
    history = [m.fitness]
    accepted = 0
    for _ in range(150):
        before = m.genome.copy()
        m.step()
        genomes, fitness, _ = backend.calls[-1]
        reference = fitness[0] if reevaluate else history[-1]  # what a mutant must not fall below
        if np.array_equal(m.genome, before):
            assert np.all(fitness[int(reevaluate) :] < reference)  # every mutant was worse
        else:
            accepted += 1
            row = np.flatnonzero((genomes == m.genome).all(1))[0]
            assert fitness[row] >= reference and fitness[row] == fitness[int(reevaluate) :].max()
        history.append(m.fitness)
    assert 0 < accepted < 150  # both branches were exercised
    if not reevaluate:  # strict elitism: the recorded fitness never goes down
        assert np.all(np.diff(history) >= 0)


def test_hill_climber_keeps_the_genome_it_ran_not_the_one_it_became():
    m, _ = build("hill_climber", self_modify=True)  # the fake backend moves genomes
    for _ in range(5):
        m.step()
    assert true_fitness(m.candidates()) == pytest.approx(m.fitness, rel=1e-5)


@pytest.mark.parametrize("name", ["hill_climber", "openai_es"])
def test_init_random_starts_from_one_random_genome_like_fme_from_one(name):
    """init = random: the first generation already varies ONE random genome (FME's
    --founders 1 start); init = best first runs B random genomes and keeps the best."""
    m, backend = build(name, options={**OPTIONS.get(name, {}), "init": "random"})
    start = m.candidates().copy()
    assert start.shape == (1, m.task.layout.size) and np.abs(start).max() > 0
    m.step()
    genomes = backend.calls[0][0]
    spread = np.abs(genomes - start).max(1)
    assert spread.max() < 1.0  # mutants or perturbations of that one genome, sigma 0.1
    best, backend_b = build(name)
    best.step()
    first = backend_b.calls[0][0]
    assert len(np.unique(first, axis=0)) == B  # B independent random genomes
    assert np.abs(first - first[:1]).max() > 1.0
    with pytest.raises(SrmlError, match="init must be best or random"):
        build(name, options={"init": "one"})


def test_openai_es_is_antithetic_and_climbs_the_quadratic():
    m, backend = build("openai_es", generations=200)
    m.step()
    start = float(((m.theta - TARGET) ** 2).sum())
    theta = m.theta.copy()
    m.step()
    genomes = backend.calls[-1][0]
    pair_sums = genomes[: B // 2] + genomes[B // 2 :]
    np.testing.assert_allclose(pair_sums, np.broadcast_to(2 * theta, pair_sums.shape), atol=1e-5)
    while not m.finished:
        m.step()
    assert float(((m.theta - TARGET) ** 2).sum()) < 0.1 * start


def test_centered_ranks():
    f = np.array([3.0, -np.inf, 10.0, 3.5, np.nan])
    u = centered_ranks(f)
    assert u.min() == -0.5 and u.max() == 0.5 and abs(u.sum()) < 1e-12
    assert u[2] == 0.5 and u[0] < u[3]  # monotonic in fitness
    assert max(u[1], u[4]) < u[0]  # non-finite fitness ranks below every finite one


def test_random_search_keeps_the_best_it_has_seen():
    m, backend = build("random_search")
    for _ in range(10):
        m.step()
        seen = np.concatenate([f for _, f, _ in backend.calls])
        np.testing.assert_array_equal(m.archive_fitness, np.sort(seen)[::-1][:16])
        assert true_fitness(m.candidates()) == pytest.approx(m.archive_fitness.mean(), rel=1e-5)


def test_bad_method_settings_are_refused_in_one_line():
    c = Config(env="srml/SwappingBandit-v0", batch=B, pool_size=2 * B, lifetime=S, generations=1)
    with pytest.raises(SrmlError, match="unknown method"):
        make_method("cma_es", c)
    with pytest.raises(SrmlError, match="unknown option"):
        make_method("openai_es", c, learning_rate=0.1)
    with pytest.raises(SrmlError, match="sigma"):
        make_method("hill_climber", c)
    with pytest.raises(SrmlError, match="even"):
        make_method("openai_es", Config(**{**c.__dict__, "batch": 31, "sigma": 0.1}))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_methods_run_a_real_bandit(name):
    """Through a real backend: the frozen baselines get their genomes back unchanged."""
    sigma = 0.1 if name in ("hill_climber", "openai_es") else 0.0
    c = Config(env="srml/SwappingBandit-v0", batch=16, pool_size=32, lifetime=40, generations=3,
               sigma=sigma, self_modify=False, backend="numpy", progress=False)  # fmt: skip
    m = make_method(name, c)
    res = [m.step() for _ in range(3)][-1]
    assert np.isfinite(res.fitness).all() and 0 <= res.fitness.min() <= res.fitness.max() <= 20
    e = evaluate(m, 0, record=True)
    assert e.rewards.shape == (40, 16)
    np.testing.assert_array_equal(e.genomes, m.candidates()[np.arange(16) % len(m.candidates())])
