"""Exact resume: a run killed with SIGKILL at random moments and resumed ends with the same
pool bytes as one never interrupted; --resume refuses what it cannot continue, changing nothing."""

import json
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from srml.cli import main
from srml.config import Config
from srml.run import rundir as runlog
from srml.run.launch import start as run

# numpy backend: no compilation in every resumed process; checkpoints every 3 generations so
# most kills land between checkpoints and resume has generations to recompute
ARGS = [
    "--backend=numpy",
    "--batch=16",
    "--pool-size=48",
    "--lifetime=100",
    "--generations=40",
    "--checkpoint-every=3",
    "--no-progress",
    "--seed=11",
]


def srml_popen(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "srml", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def pool_arrays(path):
    with np.load(path) as z:
        meta = json.loads(z["meta"].tobytes())
        return {k: z[k] for k in z.files if k != "meta"}, meta


def snapshot(run_dir):
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


def checkpoint_generation(run_dir):
    try:
        return runlog.load_checkpoint(run_dir / "pool.npz")[1]["generation"]
    except Exception:  # none yet
        return 0


def test_sigkill_at_random_moments_then_resume_gives_the_same_pool(tmp_path):
    ref = tmp_path / "ref"
    t = time.monotonic()
    p = srml_popen("run", *ARGS, "--out", ref)
    assert p.wait(timeout=300) == 0, p.stderr.read()
    duration = time.monotonic() - t
    work = json.loads((ref / "log.jsonl").read_text().splitlines()[-1])["wall_s"]
    per_gen, startup = work / 40, duration - work

    out = tmp_path / "killed"
    moments, kills = random.Random(2024), []
    proc = srml_popen("run", *ARGS, "--out", out)
    for _attempt in range(12):
        if len(kills) < 3:  # kill at a random moment of the work this process has left
            if not (out / "config.toml").exists():  # a new run: from its first write on
                while proc.poll() is None and not (out / "config.toml").exists():
                    time.sleep(0.002)
                left = per_gen * 40
            else:  # a resume: from its start, recomputing from the last checkpoint
                left = startup + per_gen * (40 - checkpoint_generation(out))
            delay = moments.uniform(0.0, left)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                kills.append(round(delay, 2))
        code = proc.wait(timeout=300)
        if code == 0:
            break
        assert code == -signal.SIGKILL, proc.stderr.read()
        proc = srml_popen("run", "--resume", out)
    else:
        pytest.fail(f"no resume completed; killed at {kills}")
    assert len(kills) >= 2, f"too few kills landed mid-run: {kills}"
    print("killed after", kills, "s; uninterrupted run", round(duration, 2), "s")

    a, meta_a = pool_arrays(ref / "pool.npz")
    b, meta_b = pool_arrays(out / "pool.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), f"{k} differs after kills at {kills}"
    for k in ("generation", "env_steps", "rng"):
        assert meta_a[k] == meta_b[k]
    # the log has every generation exactly once and every line parses
    lines = (out / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["generation"] for line in lines] == list(range(1, 41))
    assert (out / "pool_reward.png").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no stale temp files


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 6-generation run (checkpoint at generation 6)."""
    out = tmp_path_factory.mktemp("base") / "run"
    run(small(generations=6), out)
    return out


def small(**kw):
    return Config(
        backend="numpy",
        batch=8,
        pool_size=16,
        lifetime=30,
        progress=False,
        checkpoint_every=4,
        **kw,
    )


def resume_cli(capsys, run_dir, *flags):
    code = main(["run", "--resume", str(run_dir), *map(str, flags)])
    return code, capsys.readouterr().err.strip().splitlines()


def test_extending_a_finished_run_equals_the_longer_run(finished_run, tmp_path, capsys):
    out = tmp_path / "ext"
    shutil.copytree(finished_run, out)
    code, err = resume_cli(capsys, out, "--generations", "9", "--no-progress")
    assert code == 0, err
    longer = run(small(generations=9), tmp_path / "longer")
    a, _ = pool_arrays(out / "pool.npz")
    b, _ = pool_arrays(longer / "pool.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert "generations = 9" in (out / "config.toml").read_text()


def test_resuming_a_complete_run_changes_nothing(finished_run, tmp_path, capsys):
    out = tmp_path / "done"
    shutil.copytree(finished_run, out)
    before = snapshot(out)
    code, err = resume_cli(capsys, out, "--no-progress", "--checkpoint-every", "2")
    assert code == 0 and "already complete" in err[0], err
    assert snapshot(out) == before


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--batch", "4"], "--batch 4 contradicts the saved run's batch = 8"),
        (["--seed", "3"], "--seed 3 contradicts the saved run's seed = 0"),
        (["--env", "Acrobot-v1"], "env"),
        (["--generations", "3"], "--generations 3 is below the saved run's generations = 6"),
        (["--out", "/elsewhere"], "--out /elsewhere contradicts --resume"),
        (["--workers", "2"], "--workers 2 contradicts"),
    ],
    ids=["batch", "seed", "env", "fewer-generations", "out", "workers"],
)
def test_resume_with_contradicting_flags_exits_2_naming_the_key(
    finished_run, tmp_path, capsys, flags, needle
):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    before = snapshot(out)
    code, err = resume_cli(capsys, out, *flags)
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert snapshot(out) == before


def test_resume_with_a_contradicting_config_file(finished_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    (tmp_path / "c.toml").write_text("lifetime = 31\n")
    before = snapshot(out)
    code = main(["run", "--resume", str(out), "--config", str(tmp_path / "c.toml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "lifetime" in err[0], err
    assert snapshot(out) == before


def _truncate(p):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _foreign_npz(p):
    np.savez(p, weights=np.zeros(3))


def _text(p):
    p.write_text("not a checkpoint\n")


def _newer(p):
    arrays, meta = runlog.load_checkpoint(p)
    runlog.save_checkpoint(p, arrays, {**meta, "version": runlog.CHECKPOINT_VERSION + 1})


def _other_run(p):
    arrays, meta = runlog.load_checkpoint(p)
    meta["config"] = meta["config"].replace("lifetime = 30", "lifetime = 99")
    runlog.save_checkpoint(p, arrays, meta)


def _no_pool(p):
    arrays, meta = runlog.load_checkpoint(p)
    runlog.save_checkpoint(p, {k: v for k, v in arrays.items() if k != "pool_genomes"}, meta)


@pytest.mark.parametrize(
    "damage,needle",
    [
        (_truncate, "unreadable (truncated or not srml's)"),
        (_foreign_npz, "unreadable (truncated or not srml's)"),
        (_text, "unreadable (truncated or not srml's)"),
        (_newer, "newer than this srml understands"),
        (_other_run, "does not belong to this run: its lifetime is 99"),
        (_no_pool, "incomplete"),
    ],
    ids=["truncated", "foreign-npz", "text", "newer-version", "other-run", "missing-array"],
)
def test_resume_refuses_a_bad_checkpoint_and_changes_nothing(
    finished_run, tmp_path, capsys, damage, needle
):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    damage(out / "pool.npz")
    before = snapshot(out)
    code, err = resume_cli(capsys, out, "--generations", "8", "--no-progress")
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert snapshot(out) == before


def test_resume_of_what_is_not_a_run(tmp_path, capsys):
    code, err = resume_cli(capsys, tmp_path / "nothing")
    assert code == 2 and "no such run directory" in err[0]
    (tmp_path / "empty").mkdir()
    code, err = resume_cli(capsys, tmp_path / "empty")
    assert code == 2 and "not a run directory (no config.toml)" in err[0]
    assert list((tmp_path / "empty").iterdir()) == []


def test_resume_without_a_checkpoint_starts_over_exactly(finished_run, tmp_path, capsys):
    """Killed before its first checkpoint: resume recomputes from generation 0."""
    out = tmp_path / "early"
    shutil.copytree(finished_run, out)
    (out / "pool.npz").unlink()
    (out / "pool_reward.png").unlink()
    lines = (out / "log.jsonl").read_text().splitlines(keepends=True)
    (out / "log.jsonl").write_text("".join(lines[:2]) + lines[2][:17])  # a torn last line
    code, err = resume_cli(capsys, out, "--no-progress")
    assert code == 0, err
    a, _ = pool_arrays(out / "pool.npz")
    b, _ = pool_arrays(finished_run / "pool.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    gens = [json.loads(line)["generation"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert gens == [1, 2, 3, 4, 5, 6]


def test_a_run_in_use_is_not_resumed(finished_run, tmp_path, capsys):
    out = tmp_path / "busy"
    shutil.copytree(finished_run, out)
    before = snapshot(out)
    with runlog.lock_run_dir(out):  # as a live `srml run` holds it
        code, err = resume_cli(capsys, out, "--generations", "8")
    assert code == 2 and len(err) == 1 and "in use by another srml process" in err[0], err
    assert snapshot(out) == before
