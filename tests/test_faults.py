"""Bad input and faults not covered by test_cli.py: each ends in one clear line (exit 2, no run
files left by a failed start) or a logged warning while the run goes on."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from srml import memory
from srml.cli import main
from srml.config import Config
from srml.errors import SrmlError
from srml.fme import FME

SHORT = ["--batch=8", "--pool-size=16", "--lifetime=20", "--generations=3", "--no-progress"]

ENVS = textwrap.dedent("""
    import gymnasium as gym
    import numpy as np

    class Base(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return np.zeros(2, np.float32), {}

        def step(self, action):
            self.t += 1
            return np.zeros(2, np.float32), self.reward(), False, self.t >= 10, {}

    class Raises(Base):
        def step(self, action):
            raise ValueError("the simulator lost its license")

    class RaisesLater(Base):
        calls = 0  # per process: the 9th generation's steps (8 lanes x 20 steps each) raise

        def step(self, action):
            type(self).calls += 1
            if type(self).calls > 8 * 20 * 8:
                raise ValueError("the simulator crashed")
            return super().step(action)

        def reward(self):
            return 1.0

    class NanReward(Base):
        def reward(self):
            return float("nan")

    class Negative(Base):
        def reward(self):
            return -5.0 + self.np_random.uniform()

    for name in ("Raises", "RaisesLater", "NanReward", "Negative"):
        gym.register(f"faulty/{name}-v0", entry_point=globals()[name])
""")


@pytest.fixture
def envdir(tmp_path):
    (tmp_path / "faulty.py").write_text(ENVS)
    return tmp_path


def srml(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "srml", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(cwd)},
    )


def rows_of(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_env_raising_in_step_on_the_default_backend(envdir):
    """The user's env bug is named in one line; the failed start leaves no run directory."""
    out = envdir / "never"
    p = srml("run", "--env", "faulty:faulty/Raises-v0", *SHORT, "--out", out, cwd=envdir)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "faulty/Raises-v0" in lines[0] and "raised in step" in lines[0]
    assert "lost its license" in lines[0]
    assert not out.exists()


def test_env_raising_mid_run_keeps_the_run_and_says_how_to_resume(envdir):
    out = envdir / "run"
    p = srml(
        "run", "--backend=numpy", "--env", "faulty:faulty/RaisesLater-v0", *SHORT,
        "--generations=20", "--checkpoint-every=4", "--out", out, cwd=envdir,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "the simulator crashed" in lines[0] and "in generation 9" in lines[0]
    assert f"srml run --resume {out}" in lines[0]
    assert [r["generation"] for r in rows_of(out)] == list(range(1, 9))
    with np.load(out / "pool.npz") as z:
        assert json.loads(z["meta"].tobytes())["generation"] == 8


def test_nan_rewards_get_worst_fitness_and_the_run_goes_on(envdir):
    out = envdir / "run"
    p = srml(
        "run", "--backend=numpy", "--env", "faulty:faulty/NanReward-v0", *SHORT, "--out", out,
        cwd=envdir,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    warnings = [line for line in p.stderr.splitlines() if "non-finite" in line]
    assert len(warnings) == 1 and "fitness -inf" in warnings[0], p.stderr  # said once
    rows = rows_of(out)
    assert [r["generation"] for r in rows] == [1, 2, 3]
    assert all(r["nonfinite"] == 8 for r in rows)  # every genome of every batch
    with np.load(out / "pool.npz") as z:
        assert np.all(z["pool_fitness"] == -np.inf)


def test_inf_genomes_get_worst_fitness_and_are_never_preferred():
    fme = FME(Config(backend="numpy", batch=16, pool_size=32, lifetime=20, generations=6))
    fme.founders[:3] = np.inf
    fme.founders[3, 5] = -np.inf
    res = fme.step()  # the founders' evaluation
    assert res.nonfinite == 4
    assert np.all(res.fitness[:4] == -np.inf) and np.isfinite(res.fitness[4:]).all()
    from srml.run.loop import log_row

    assert log_row(fme, res, 1.0, 1.0)["nonfinite"] == 4
    while not fme.finished:
        fme.step()  # the run goes on
    bad = ~np.isfinite(fme.pool.fitness[: fme.pool.size])
    assert fme.pool.probabilities()[bad].sum() == 0  # never drawn while finite ones exist
    assert fme.pool.fitness_stats()["min"] > -np.inf  # statistics over finite members


def test_negative_fitness_with_proportional_selection_runs(envdir, monkeypatch):
    monkeypatch.syspath_prepend(str(envdir))
    fme = FME(
        Config(
            env="faulty:faulty/Negative-v0",
            backend="numpy",
            selection="proportional",
            batch=16,
            pool_size=32,
            lifetime=20,
            generations=5,
        )
    )
    while not fme.finished:
        fme.step()
    f = fme.pool.fitness[: fme.pool.size]
    assert np.all(f < 0) and np.isfinite(f).all()
    p = fme.pool.probabilities("proportional")
    order = np.argsort(f)
    assert np.all(p > 0) and np.all(np.diff(p[order]) >= 0)  # higher fitness, higher chance


def test_a_pool_that_cannot_fit_is_refused_up_front(tmp_path, capsys):
    out = tmp_path / "never"
    code = main(["run", "--pool-size", str(10**10), "--batch", "8", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "a pool of 10000000000 genomes" in err[0] and "TB of memory" in err[0]
    assert "lower --pool-size" in err[0]
    assert not out.exists()


def test_memory_estimate():
    G = 100
    pool = memory.pool_bytes(1000, G)
    assert pool == 1000 * (4 * G + memory.PER_MEMBER)
    need = memory.run_bytes(1000, G, founders=1000, batch=10)
    assert need == 3 * pool + 4 * G * (1000 + 40)
    memory.check_memory(need, "x", available=need)  # fits exactly
    with pytest.raises(SrmlError, match=r"x needs about 1\.7 MB of memory but only 1\.0 KB"):
        memory.check_memory(need, "x", available=1024)
    assert memory.available_bytes() > 0


def test_workers_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    out = tmp_path / "never"
    code = main(["run", "--workers", "2", *SHORT, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "--workers needs Ray" in err[0] and "pip install" in err[0]
    assert not out.exists()


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--ray-address", "auto"], "--ray-address only applies to island runs"),
        (["--workers", "2", "--migrants", "17"], "--migrants must be between 0 and"),
        (["--workers", "2", "--migrate-every", "0"], "--migrate-every must be >= 1"),
        (["--workers", "-1"], "--workers must be >= 0"),
        (["--workers", "2", "--ray-address", "127.0.0.1:1"], "no Ray cluster answers at"),
    ],
    ids=["address-without-workers", "too-many-migrants", "migrate-every-0", "neg-workers", "addr"],
)
def test_bad_island_settings(tmp_path, capsys, flags, needle):
    if "127.0.0.1:1" in flags:
        pytest.importorskip("ray", reason="the address check runs once Ray is importable")
    out = tmp_path / "never"
    code = main(["run", *SHORT, *flags, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not out.exists()
