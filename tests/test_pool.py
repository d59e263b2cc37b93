"""Pool: selection is monotonic in fitness for every rule, LRU eviction, non-finite fitness never wins."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srml.pool import SELECTIONS, Pool


def _pool(fitness):
    p = Pool(len(fitness), 3)
    p.insert(np.zeros((len(fitness), 3), np.float32), np.asarray(fitness, float))
    return p


@pytest.mark.parametrize("rule", sorted(SELECTIONS))
def test_empirical_frequencies_are_monotonic_in_fitness(rule):
    fitness = np.array([1.0, 5.0, 2.0, 9.0, 3.0])
    pool = _pool(fitness)
    counts = np.bincount(pool.sample(np.random.default_rng(0), 200_000, rule), minlength=5)
    order = np.argsort(fitness)
    assert np.all(np.diff(counts[order]) > 0), counts[order]
    # the empirical frequencies match the rule's probabilities
    np.testing.assert_allclose(counts / counts.sum(), pool.probabilities(rule), atol=0.005)


@pytest.mark.parametrize("rule", sorted(SELECTIONS))
@settings(max_examples=50, deadline=None)
@given(f=st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=20))
def test_probabilities_never_prefer_worse(rule, f):
    p = _pool(f).probabilities(rule)
    f = np.asarray(f)
    assert np.all(p >= 0) and np.isclose(p.sum(), 1)
    i, j = np.argmax(f), np.argmin(f)
    assert p[i] >= p[j]
    # equal fitness, equal probability
    for a in range(len(f)):
        for b in range(len(f)):
            if f[a] > f[b]:
                assert p[a] >= p[b] - 1e-12


@pytest.mark.parametrize("rule", sorted(SELECTIONS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_fitness_never_wins(rule, bad):
    pool = _pool([1.0, bad, 0.5, bad])
    p = pool.probabilities(rule)
    assert p[1] == 0 and p[3] == 0
    idx = pool.sample(np.random.default_rng(1), 10_000, rule)
    assert not np.isin(idx, [1, 3]).any()


def test_all_nonfinite_falls_back_to_uniform():
    p = _pool([np.nan, np.nan]).probabilities("proportional")
    np.testing.assert_allclose(p, [0.5, 0.5])


def test_negative_fitness_with_proportional_selection():
    p = _pool([-100.0, -50.0, -10.0]).probabilities("proportional")
    assert np.all(p > 0) and p[2] > p[1] > p[0]


def test_lru_evicts_least_recently_used():
    pool = Pool(4, 2)
    pool.insert(np.arange(8, dtype=np.float32).reshape(4, 2), np.array([1.0, 2, 3, 4]))
    assert pool.size == 4
    pool.last_used[:] = [5, 1, 7, 3]  # rows 1 then 3 are the least recently used
    rows = pool.insert(np.full((2, 2), 9, np.float32), np.array([10.0, 11.0]))
    assert sorted(rows.tolist()) == [1, 3]
    np.testing.assert_array_equal(pool.fitness, [1, 10, 3, 11])
    assert pool.size == 4


def test_sampling_marks_members_used_and_lineage_is_kept():
    pool = Pool(10, 2)
    pool.insert(np.zeros((3, 2), np.float32), np.array([1.0, 2, 3]), founder=np.array([0, 1, 2]))
    idx = pool.sample(np.random.default_rng(0), 2)
    assert np.all(pool.last_used[idx] == pool.clock)
    rows = pool.insert(
        np.ones((2, 2), np.float32), np.array([5.0, 6]), pool.ids[idx], pool.founder[idx], born=1
    )
    np.testing.assert_array_equal(pool.parent[rows], pool.ids[idx])
    np.testing.assert_array_equal(pool.founder[rows], pool.founder[idx])
    assert len(set(pool.ids[: pool.size])) == pool.size  # ids are unique


def test_state_roundtrip():
    pool = _pool([1.0, 2.0, 3.0])
    pool.sample(np.random.default_rng(0), 2)
    again = Pool.from_state(pool.state(), pool.genomes.shape[1])
    for name in Pool.ARRAYS:
        np.testing.assert_array_equal(getattr(again, name), getattr(pool, name))
    assert (again.size, again.clock, again.next_id) == (pool.size, pool.clock, pool.next_id)


def test_rank_temperature_sets_selection_pressure():
    f = np.random.default_rng(3).normal(size=1000)
    pool = _pool(f)
    linear = pool.probabilities("rank", 1.0)
    r = np.argsort(np.argsort(f)) + 1.0
    np.testing.assert_allclose(linear, r / r.sum())  # T = 1: linear ranking, as before
    best = int(np.argmax(f))
    pressure = [pool.probabilities("rank", t)[best] * len(f) for t in (1.0, 0.5, 0.25, 0.1)]
    assert pressure[0] == pytest.approx(2.0, rel=0.01)  # the best: 2x the mean weight
    assert pressure[2] == pytest.approx(5.0, rel=0.02)  # rank^4: (1/T + 1)x
    assert np.all(np.diff(pressure) > 0)  # colder, stronger
    p = pool.probabilities("rank", 0.25)
    order = np.argsort(f)
    assert np.all(np.diff(p[order]) > 0)  # still monotonic in fitness


def test_fitness_statistics_skip_nonfinite_values_and_equal_numpys_over_the_rest():
    """The log's batch and pool columns: non-finite values are left out; over the rest the
    same bits as numpy's own mean/max/quantiles of the finite values (all-finite arrays
    take a path without the masked copy)."""
    from srml.fitness import finite_max, finite_mean, stats

    rng = np.random.default_rng(3)
    for f in (rng.normal(100, 50, 1001), rng.normal(size=40).astype(np.float32)[::2]):
        for bad in ((), (np.nan, -np.inf, np.inf)):
            g = np.array(f, np.float64)
            g[: len(bad)] = bad
            ok = g[np.isfinite(g)]
            assert finite_mean(g) == np.mean(ok) and finite_max(g) == np.max(ok)
            s = stats(g)
            assert s["median"] == np.quantile(ok, 0.5) and s["min"] == ok.min()
    nothing = np.array([np.nan, np.inf])
    assert np.isnan(finite_mean(nothing)) and np.isnan(finite_max(nothing))
    assert all(np.isnan(v) for v in stats(nothing).values())
