"""The public Python API: ask/tell for every method, load_run, Agent, eval/play/export."""

import csv
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import srml
from srml.backends import make_backend
from srml.config import Config
from srml.errors import SrmlError
from srml.methods import METHODS, make_method
from srml.task import make_task

SMALL = dict(batch=16, pool_size=32, lifetime=40, progress=False, backend="numpy")
OPTS = {"hill_climber": {}, "openai_es": {"lr": 0.05}}


def _cfg(name, **kw):
    extra = {"sigma": 0.1} if name in ("hill_climber", "openai_es") else {}
    return Config(**{"env": "CartPole-v1", "seed": 4, "generations": 5, **SMALL, **extra, **kw})


def _same_state(a, b):
    (xa, ma), (xb, mb) = a.state(), b.state()
    assert xa.keys() == xb.keys()
    for k in xa:
        np.testing.assert_array_equal(xa[k], xb[k], err_msg=k)
    assert ma["generation"] == mb["generation"] and ma["env_steps"] == mb["env_steps"]
    assert ma["rng"] == mb["rng"]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_ask_tell_round_trip_equals_run(name):
    a = make_method(name, _cfg(name), **OPTS.get(name, {}))
    while not a.finished:
        genomes = a.ask()
        assert genomes.shape == (16, a.task.layout.size) and genomes.dtype == np.float32
        a.tell(a.evaluate(genomes))
    b = make_method(name, _cfg(name), **OPTS.get(name, {}))
    rows = b.run()
    assert [r["generation"] for r in rows] == [1, 2, 3, 4, 5]
    _same_state(a, b)
    assert a.best(2).shape[1] == a.task.layout.size


@pytest.mark.parametrize("name", sorted(METHODS))
def test_state_round_trip_continues_exactly(name):
    a = make_method(name, _cfg(name), **OPTS.get(name, {}))
    a.run()
    b = make_method(name, _cfg(name, generations=3), **OPTS.get(name, {}))
    b.run()
    c = make_method(name, _cfg(name), **OPTS.get(name, {}))
    c.load_state(*b.state())
    c.run()
    _same_state(a, c)


def test_ask_tell_misuse_is_refused():
    m = srml.FME(_cfg("fme"))
    with pytest.raises(SrmlError, match="without ask"):
        m.tell(m.evaluate(m.founders[:16]))
    g = m.ask()
    with pytest.raises(SrmlError, match="twice"):
        m.ask()
    m.tell(m.evaluate(g))
    assert m.generation == 1 and m.env_steps == 16 * 40


def test_load_state_refuses_a_mismatched_checkpoint():
    a = srml.FME(_cfg("fme"))
    a.step()
    arrays, meta = a.state()
    bad = dict(arrays, founders=np.zeros((3, 5), np.float32))  # the heap-corrupting case
    with pytest.raises(SrmlError, match="founders"):
        srml.FME(_cfg("fme")).load_state(bad, meta)
    with pytest.raises(SrmlError, match="hill_climber"):
        make_method("hill_climber", _cfg("hill_climber")).load_state(arrays, meta)


def test_load_run_continues_a_run_bit_exactly(tmp_path):
    full = srml.FME(_cfg("fme", generations=6, checkpoint_every=2))
    full.run(out=tmp_path / "full")
    part = srml.FME(_cfg("fme", generations=3, checkpoint_every=2))
    part.run(out=tmp_path / "part")
    run = srml.load_run(tmp_path / "part")
    assert run.method.generation == 3 and len(run.log) == 3
    assert run.config.generations == 3
    run = run.resume(generations=6)
    assert [r["generation"] for r in run.log] == [1, 2, 3, 4, 5, 6]
    _same_state(run.method, srml.load_run(tmp_path / "full").method)


def test_run_directory_has_progress_csv_and_lineage(tmp_path):
    srml.FME(_cfg("fme")).run(out=tmp_path / "r")
    with open(tmp_path / "r" / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["generation"]) for r in rows] == [1, 2, 3, 4, 5]
    log = srml.load_run(tmp_path / "r").log
    assert float(rows[-1]["pool_fitness_median"]) == pytest.approx(log[-1]["pool_fitness_median"])
    lineage = [json.loads(x) for x in (tmp_path / "r" / "lineage.jsonl").read_text().splitlines()]
    assert len(lineage) == 5 and sum(lineage[-1]["counts"]) == 32
    assert log[-1]["lineages"] == len(lineage[-1]["founders"])


@pytest.mark.parametrize("env", ["Acrobot-v1", "Pendulum-v1"])
def test_agent_actions_equal_the_reference(env):
    """Gymnasium's own env (no twin) stepped by an Agent, beside the numpy reference backend
    running the same genome on lane 0 of a vector env with the same seed: same actions,
    across an episode boundary (weights carried over)."""
    cfg = Config(env=env, twin="off", batch=1, pool_size=1, lifetime=520, init_std=0.5)
    task = make_task(cfg)
    genome = task.layout.init(np.random.default_rng(1), 1, 0.5)
    ref = make_backend("numpy", task, 1).run(genome, seed=9, record=True)
    agent = srml.Agent.from_config(genome[0], cfg)
    env_ = gym.make(env)
    obs, _ = env_.reset(seed=9)
    agent.reset(seed=9)
    reward, first, acts = 0.0, True, []
    for _ in range(cfg.lifetime):
        a = agent.act(obs, reward, first)
        acts.append(a)
        obs, reward, term, trunc, _ = env_.step(a)
        first = term or trunc
        if first:
            obs, _ = env_.reset()
    acts = np.asarray(acts)
    assert ref.firsts[1:].any()  # an episode boundary was crossed
    if task.codec.discrete_act:
        np.testing.assert_array_equal(acts, ref.actions[:, 0])
    else:
        np.testing.assert_allclose(acts, ref.actions[:, 0], rtol=1e-5, atol=1e-5)
    assert not np.array_equal(agent.weights[0], agent.genome)  # it rewrote itself


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    cfg = Config(
        env="CartPole-v1", seed=0, total_steps=4_000_000, batch=256, pool_size=512,
        lifetime=500, progress=False, threads=1,
    )  # fmt: skip
    srml.FME(cfg).run(out=out)
    return out


def srml_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "srml", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=600,
    )  # fmt: skip


def test_eval_export_load_and_play_in_gymnasiums_own_env(trained, tmp_path):
    p = srml_cli("eval", trained, "--top", "4", "--lifetimes", "64", "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert len(report["members"]) == 4
    best = report["best"]
    assert best["reevaluated_mean"] == max(m["reevaluated_mean"] for m in report["members"])
    table = srml_cli("eval", trained, "--top", "4", "--lifetimes", "64")
    assert table.returncode == 0 and "best (re-evaluated): rank" in table.stdout

    p = srml_cli("export", trained, "--rank", best["rank"], "-o", tmp_path / "agent.npz")
    assert p.returncode == 0, p.stderr
    agent = srml.Agent.load(tmp_path / "agent.npz")  # no run directory needed
    assert agent.gym_id == "CartPole-v1"
    # 32 lifetimes of 500 steps in Gymnasium's CartPole-v1 (not the twin): fitness as srml
    # measures it (mean return per episode begun) agrees with the held-out estimate
    env = gym.make("CartPole-v1")
    fits = []
    for k in range(32):
        obs, _ = env.reset(seed=1000 + k)
        agent.reset(seed=1000 + k)
        reward, first, total, episodes = 0.0, True, 0.0, 0
        for _ in range(500):
            episodes += first
            obs, reward, term, trunc, _ = env.step(agent.act(obs, reward, first))
            total += reward
            first = term or trunc
            if first:
                obs, _ = env.reset()
        fits.append(total / episodes)
    mean, se = np.mean(fits), np.std(fits, ddof=1) / np.sqrt(len(fits))
    se_eval = best["reevaluated_ci95"] / 1.96
    assert abs(mean - best["reevaluated_mean"]) <= 3 * np.hypot(se, se_eval) + 1e-6, (
        mean,
        se,
        best,
    )

    p = srml_cli("play", trained, "--episodes", "2")
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("episode") == 2


def test_play_video(trained, tmp_path):
    pytest.importorskip("moviepy", reason="the video extra (moviepy, pygame) is not installed")
    pytest.importorskip("pygame", reason="the video extra (moviepy, pygame) is not installed")
    video = tmp_path / "cartpole.mp4"
    p = srml_cli("play", trained, "--episodes", "2", "--video", video)
    assert p.returncode == 0, p.stderr
    data = video.read_bytes()
    assert len(data) > 1000 and b"ftyp" in data[:64]  # an MP4 container


def test_play_video_without_the_extra_says_so(trained, tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_moviepy(name, *a, **k):
        if name in ("moviepy", "pygame"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_moviepy)
    from srml.cli import main

    assert main(["play", str(trained), "--video", str(tmp_path / "v.mp4")]) == 2
    assert not (tmp_path / "v.mp4").exists()


def test_tensorboard_sink(tmp_path):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")
    srml.FME(_cfg("fme", tensorboard=True)).run(out=tmp_path / "r")
    events = list((tmp_path / "r" / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_method_flag_runs_a_baseline_from_the_cli(tmp_path):
    p = srml_cli(
        "run", "--method", "hill_climber", "--sigma", "0.1", "--backend", "numpy",
        "--batch", "8", "--pool-size", "8", "--lifetime", "20", "--generations", "3",
        "--no-progress", "--out", tmp_path / "hc",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert 'method = "hill_climber"' in (tmp_path / "hc" / "config.toml").read_text()
    run = srml.load_run(tmp_path / "hc")
    assert run.method.name == "hill_climber" and run.method.generation == 3
    bad = srml_cli("run", "--method", "sgd", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "unknown method 'sgd'" in bad.stderr
    assert not (tmp_path / "x").exists()


def test_readme_python_example_runs_as_printed(tmp_path):
    import pathlib
    import re

    pytest.importorskip("moviepy", reason="the README example records a video (video extra)")
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "srml.FME(cfg)" in b)
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env={**__import__("os").environ, "SDL_VIDEODRIVER": "dummy"},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "agent.npz").exists() and list((tmp_path / "videos").glob("*.mp4"))
    assert srml.Agent.load(tmp_path / "agent.npz").gym_id == "CartPole-v1"
