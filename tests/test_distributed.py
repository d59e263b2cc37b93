"""Ray islands: a 2-worker run logs and plots both islands, migration moves the best genomes,
a killed worker is replaced without losing its island, and an island run resumes exactly."""

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from srml.config import Config
from srml.run.islands import Islands, IslandWorker, best

ray = pytest.importorskip(
    "ray", reason="Ray is an optional extra (pip install -e '.[ray]'); island tests need it"
)

# numpy backend, Gymnasium's CartPole: nothing to compile in each fresh worker process
SMALL = dict(
    backend="numpy",
    twin="off",
    batch=32,
    pool_size=64,
    lifetime=200,
    migrate_every=2,
    migrants=4,
    checkpoint_every=4,
    progress=False,
    seed=7,
)
FLAGS = [
    "--backend=numpy",
    "--twin=off",
    "--batch=32",
    "--pool-size=64",
    "--lifetime=200",
    "--migrate-every=2",
    "--migrants=4",
    "--checkpoint-every=4",
    "--no-progress",
    "--seed=7",
]


def srml(*args, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "srml", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def rows_of(run):
    """The log's complete lines (polled while a run appends: a line being written is skipped)."""
    from srml.run.rundir import read_log

    return read_log(run / "log.jsonl")


def arrays(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k != "meta"}, json.loads(z["meta"].tobytes())


def assert_same_pools(a, b):
    (xa, _), (xb, _) = arrays(a), arrays(b)
    assert xa.keys() == xb.keys()
    for k in xa:
        np.testing.assert_array_equal(xa[k], xb[k], err_msg=k)


def test_migration_sends_the_best_to_the_next_island():
    """Plain IslandWorker objects (no Ray): what one island sends, the next one holds."""
    toml = Config(workers=2, **SMALL).to_toml()
    a, b = IslandWorker(toml, 0, 1), IslandWorker(toml, 1, 1)
    out_a, out_b = a.run(3, 0.0, 4), b.run(3, 0.0, 4)
    assert [r["island"] for r in out_a["rows"]] == [0, 0, 0]
    assert [r["generation"] for r in out_b["rows"]] == [1, 2, 3]
    # islands have their own seeds: their pools differ
    assert not np.array_equal(a.fme.pool.fitness, b.fme.pool.fitness)
    genomes, fitness = out_a["emigrants"]
    pool_a = a.fme.pool.fitness[: a.fme.pool.size]
    np.testing.assert_array_equal(fitness, np.sort(pool_a)[::-1][:4])
    arrays_b, _ = b.immigrate(out_a["emigrants"])
    assert arrays_b["pool_genomes"].shape == (64, a.fme.task.layout.size)
    for g, f in zip(genomes, fitness, strict=True):
        rows = np.flatnonzero((arrays_b["pool_genomes"] == g).all(axis=1))
        assert len(rows) == 1 and arrays_b["pool_fitness"][rows[0]] == f
    assert b.immigrate(None)[0]["pool_genomes"].shape[0] == 64  # nothing sent: nothing changes
    # non-finite members never migrate
    a.fme.pool.fitness[: a.fme.pool.size] = -np.inf
    a.fme.pool.fitness[0] = 1.0
    g, f = best(a.fme.pool, 4)
    assert len(f) == 1 and f[0] == 1.0


def test_two_workers_on_a_local_ray_log_and_plot_both_islands(tmp_path):
    """The CLI as a user runs it: `srml run --workers 2` starts (and stops) its own local Ray."""
    out = tmp_path / "run"
    p = srml("run", "--workers", "2", "--generations", "4", *FLAGS, "--out", out)
    assert p.returncode == 0, p.stderr
    rows = rows_of(out)
    for g in range(1, 5):
        at = [r for r in rows if r["generation"] == g]
        islands = sorted(r["island"] for r in at if "island" in r)
        merged = [r for r in at if "island" not in r]
        assert islands == [0, 1] and len(merged) == 1, at
        m, i0, i1 = merged[0], *(r for r in at if "island" in r)
        assert m["env_steps"] == i0["env_steps"] + i1["env_steps"] == g * 2 * 32 * 200
        assert m["pool_size"] == i0["pool_size"] + i1["pool_size"]
        assert m["pool_fitness_max"] == max(i0["pool_fitness_max"], i1["pool_fitness_max"])
        assert m["workers"] == 2 and m["restarts"] == 0
    assert rows[-1]["env_steps"] == 4 * 2 * 32 * 200
    assert (out / "pool_reward.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    x, meta = arrays(out / "pool.npz")
    assert meta["generation"] == 4 and len(meta["islands"]) == 2
    assert x["island0_pool_genomes"].shape[0] == x["island1_pool_genomes"].shape[0] == 64


def test_plot_draws_each_island(tmp_path, monkeypatch):
    """The run's figure has the merged curve plus one line per island."""
    import srml.plot as plot

    run = tmp_path / "r"
    run.mkdir()
    base = {f"pool_fitness_{k}": 1.0 for k in ("min", "q10", "median", "q90", "max")}
    lines = []
    for g in (1, 2):
        lines += [{"island": i, "generation": g, "env_steps": g * 10, **base} for i in (0, 1)]
        lines.append({"generation": g, "env_steps": g * 20, **base})
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    figs = []
    monkeypatch.setattr(plot.plt, "close", figs.append)
    plot.plot_runs([run], tmp_path / "p.png")
    labels = [t.get_text() for t in figs[0].axes[0].get_legend().get_texts()]
    assert labels == ["r", "r island 0 (median)", "r island 1 (median)"]
    island_line = figs[0].axes[0].get_lines()[2]
    assert list(island_line.get_xdata()) == [20, 40]  # at the merged step count


ENV_MODULES = {
    "srml_test_startdies": """
import os

import gymnasium as gym


class DiesAtStart(gym.Env):
    # CartPole whose first worker to make it dies (os._exit) while starting; never the driver

    metadata = {"render_modes": []}

    def __init__(self, once, driver):
        if os.getpid() != driver:
            try:
                os.unlink(once)
            except FileNotFoundError:
                pass
            else:
                os._exit(1)
        self.inner = gym.make("CartPole-v1")
        self.observation_space = self.inner.observation_space
        self.action_space = self.inner.action_space

    def reset(self, seed=None, options=None):
        return self.inner.reset(seed=seed, options=options)

    def step(self, action):
        return self.inner.step(action)


gym.register("test/DiesAtStart-v0", entry_point=DiesAtStart)
""",
    "srml_test_badreset": """
import gymnasium as gym
import numpy as np


class BadReset(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        raise RuntimeError("no license server")


gym.register("test/BadReset-v0", entry_point=BadReset)
""",
    "srml_test_badenv": """
import gymnasium as gym
import numpy as np


class Explodes(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        return np.zeros(1, np.float32), {}

    def step(self, action):
        raise RuntimeError("boom")


gym.register("test/Explodes-v0", entry_point=Explodes)
""",
    "srml_test_crashy": """
import os

import gymnasium as gym


class Crashy(gym.Env):
    # CartPole whose worker process dies (os._exit) while the file `crash` exists

    metadata = {"render_modes": []}

    def __init__(self, crash):
        self.inner = gym.make("CartPole-v1")
        self.observation_space = self.inner.observation_space
        self.action_space = self.inner.action_space
        self.crash = crash

    def reset(self, seed=None, options=None):
        return self.inner.reset(seed=seed, options=options)

    def step(self, action):
        if os.path.exists(self.crash):
            os._exit(1)
        return self.inner.step(action)


gym.register("test/Crashy-v0", entry_point=Crashy)
""",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local Ray for the in-process tests; CLI runs join it with --ray-address. Ray adds
    the driver's current directory to its workers' path, so ray.init runs in the directory of
    the test envs' modules (and the driver imports them from sys.path)."""
    mods = tmp_path_factory.mktemp("envs")
    for name, code in ENV_MODULES.items():
        (mods / f"{name}.py").write_text(code)
    sys.path.insert(0, str(mods))
    cwd = os.getcwd()
    os.chdir(mods)
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    finally:
        os.chdir(cwd)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    sys.path.remove(str(mods))


def main_in_thread(argv):
    """srml's CLI in this process (the driver joins the test's Ray), on a thread."""
    from srml.cli import main

    result = []
    thread = threading.Thread(target=lambda: result.append(main(argv)))
    thread.start()
    return thread, result


@pytest.fixture(scope="module")
def reference(cluster, tmp_path_factory):
    """An uninterrupted 8-generation island run."""
    out = tmp_path_factory.mktemp("reference")
    Islands(Config(workers=2, generations=8, **SMALL), out).run()
    return out


def test_killed_worker_is_replaced_and_no_island_is_lost(cluster, reference, tmp_path):
    out = tmp_path / "killed"
    out.mkdir()
    driver = Islands(Config(workers=2, generations=8, **SMALL), out)
    done = []
    thread = threading.Thread(target=lambda: done.append(driver.run()))
    thread.start()
    deadline = time.monotonic() + 120
    while not ((out / "log.jsonl").exists() and (rows := rows_of(out))) or (
        rows[-1]["generation"] < 2
    ):
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.005)
    pid = next(r["worker"] for r in rows_of(out) if r.get("island") == 1)
    ray.kill(driver.actors[1])  # mid-run: generations 3 and 4 are being computed
    thread.join(timeout=180)
    assert done == [out], "the run did not finish"
    rows = rows_of(out)
    assert [r["generation"] for r in rows if "island" not in r] == list(range(1, 9))
    assert rows[-1]["restarts"] == 1
    island1 = [r for r in rows if r.get("island") == 1]
    assert island1[-1]["restarts"] == 1
    assert [r["worker"] for r in island1 if "worker" in r][-1] != pid  # a new process took over
    # no pool lost: both islands are complete and identical to the uninterrupted run's
    _, meta = arrays(out / "pool.npz")
    assert meta["restarts"] == [0, 1] and meta["generation"] == 8
    assert_same_pools(out / "pool.npz", reference / "pool.npz")


def test_island_driver_killed_then_resumed_and_extended_is_exact(cluster, reference, tmp_path):
    """The `srml run` process itself is killed with SIGKILL mid-run (its workers die with it);
    `--resume`, joining the running cluster and raising --generations from 6 to 8, ends with
    the pools of the uninterrupted 8-generation run."""
    out = tmp_path / "run"
    args = ["--workers", "2", "--generations", "6", *FLAGS, "--ray-address", cluster]
    proc = subprocess.Popen(
        [sys.executable, "-m", "srml", "run", *args, "--out", str(out)], stderr=subprocess.PIPE
    )
    kill_after = random.Random().randint(2, 3)  # a generation of the run's first half
    deadline = time.monotonic() + 120
    # the log may exist with no complete line yet (created, first line being written)
    while not ((out / "log.jsonl").exists() and (rows := rows_of(out))) or (
        rows[-1]["generation"] < kill_after
    ):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    saved = arrays(out / "pool.npz")[1]["generation"] if (out / "pool.npz").exists() else 0
    assert saved < 6
    p = srml("run", "--resume", out, "--generations", "8", "--ray-address", cluster)
    assert p.returncode == 0, p.stderr
    assert f"resuming {out} from generation {saved}" in p.stderr
    assert_same_pools(out / "pool.npz", reference / "pool.npz")
    assert [r["generation"] for r in rows_of(out) if "island" not in r] == list(range(1, 9))


def test_env_error_in_an_island_is_one_line(cluster, tmp_path, capsys):
    out = tmp_path / "never"
    thread, code = main_in_thread(
        ["run", "--workers", "2", "--env", "srml_test_badenv:test/Explodes-v0", *FLAGS,
         "--generations", "3", "--out", str(out)]
    )  # fmt: skip
    thread.join(timeout=120)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == [2] and len(lines) == 1, lines
    assert "island" in lines[0] and "raised in step" in lines[0] and "boom" in lines[0]
    assert not out.exists()  # failed in the first generation: nothing left behind


def test_a_worker_that_keeps_dying_stops_the_run_resumably(cluster, tmp_path, capsys, monkeypatch):
    """Process deaths (os._exit in the env, not ray.kill): the island is restarted, and when it
    keeps dying the run stops with one line, its last state saved; --resume finishes it once the
    cause is gone."""
    import srml.run.islands

    monkeypatch.setattr(srml.run.islands, "MAX_ATTEMPTS", 2)  # the product allows 4
    crash, out = tmp_path / "CRASH", tmp_path / "run"
    thread, code = main_in_thread(
        ["run", "--workers", "2", "--env", "srml_test_crashy:test/Crashy-v0", "--env-kwargs",
         json.dumps({"crash": str(crash)}), *FLAGS, "--generations", "8", "--out", str(out)]
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not ((out / "log.jsonl").exists() and (rows := rows_of(out))) or (
        rows[-1]["generation"] < 2
    ):
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.005)
    crash.touch()  # from now on every worker that steps the env dies
    thread.join(timeout=120)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == [2], lines
    assert "died 2 times" in lines[-1] and f"srml run --resume {out}" in lines[-1], lines
    restarts = [line for line in lines[:-1] if "restarting it" in line]
    assert restarts and len(restarts) == len(lines) - 1, lines  # one line per restart, no noise
    _, meta = arrays(out / "pool.npz")
    saved = meta["generation"]
    assert 2 <= saved < 8 and sum(meta["restarts"]) >= 2
    crash.unlink()
    thread, code = main_in_thread(["run", "--resume", str(out)])
    thread.join(timeout=120)
    err = capsys.readouterr().err
    assert code == [0] and f"resuming {out} from generation {saved}" in err, err
    x, meta = arrays(out / "pool.npz")
    assert meta["generation"] == 8
    assert x["island0_pool_genomes"].shape[0] == x["island1_pool_genomes"].shape[0] == 64
    assert [r["generation"] for r in rows_of(out) if "island" not in r] == list(range(1, 9))


def test_a_worker_dying_while_it_starts_is_replaced(cluster, tmp_path, capsys):
    once, out = tmp_path / "ONCE", tmp_path / "run"
    once.touch()
    kwargs = json.dumps({"once": str(once), "driver": os.getpid()})
    thread, code = main_in_thread(
        ["run", "--workers", "2", "--env", "srml_test_startdies:test/DiesAtStart-v0",
         "--env-kwargs", kwargs, *FLAGS, "--generations", "2", "--out", str(out)]
    )  # fmt: skip
    thread.join(timeout=180)
    err = capsys.readouterr().err
    assert code == [0], err
    assert "died while starting" in err and "Traceback" not in err, err
    assert not once.exists()
    rows = [r for r in rows_of(out) if "island" not in r]
    assert [r["generation"] for r in rows] == [1, 2] and rows[-1]["restarts"] == 1


def test_env_raising_in_reset_in_an_island_is_one_line(cluster, tmp_path, capsys):
    out = tmp_path / "never"
    thread, code = main_in_thread(
        ["run", "--workers", "2", "--env", "srml_test_badreset:test/BadReset-v0", *FLAGS,
         "--generations", "3", "--out", str(out)]
    )  # fmt: skip
    thread.join(timeout=120)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == [2] and len(lines) == 1, lines
    assert "island" in lines[0] and "raised in reset" in lines[0], lines
    assert "no license server" in lines[0] and "in generation 1" in lines[0], lines
    assert not out.exists()


def test_a_crafted_island_checkpoint_is_refused_in_the_driver(tmp_path):
    """Every island's arrays are checked against the config before any worker sees them."""
    from srml.errors import SrmlError
    from srml.fme import FME
    from srml.run.islands import island_config, pack, unpack

    cfg = Config(workers=2, generations=2, **SMALL)
    states = [FME(island_config(cfg, i)).state() for i in range(2)]
    G = states[0][0]["pool_genomes"].shape[1]
    arrays, meta = pack(cfg, 0, 0, states, [0, 0])
    unpack(arrays, meta, cfg, G, tmp_path)  # as written: accepted
    bad = dict(arrays, island1_founders=arrays["island1_founders"][:, :3].copy())
    with pytest.raises(SrmlError, match=r"island 1: .*'founders' should be float32"):
        unpack(bad, meta, cfg, G, tmp_path)
    bad = dict(arrays, island0_pool_last_used=arrays["island0_pool_last_used"].astype(float))
    with pytest.raises(SrmlError, match="island 0: .*last_used"):
        unpack(bad, meta, cfg, G, tmp_path)
    for change, needle in [
        ({"generation": "0"}, "malformed counters"),
        ({"restarts": [0]}, "malformed restarts"),
        ({"islands": [meta["islands"][0], 3]}, "island 1's metadata"),
        ({"islands": [meta["islands"][0], {**meta["islands"][1], "rng": 1}]}, "RNG state"),
    ]:
        with pytest.raises(SrmlError, match=needle):
            unpack(arrays, {**meta, **change}, cfg, G, tmp_path)
