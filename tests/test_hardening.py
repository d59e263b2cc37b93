"""Issue 10's faults and frictions not in the bad-input table: code in the current directory
never runs, appends are whole or nothing under a full disk (then resume is exact), symlinks
cannot redirect writes, files get ordinary modes, huge rewards, --out from a TOML file, the
help text and the default run directory."""

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import srml.run.rundir as rundir
from srml.cli import main
from srml.config import Config
from srml.errors import SrmlError
from srml.run.launch import default_out

SHORT = ["--batch=8", "--pool-size=16", "--lifetime=20", "--no-progress", "--backend=numpy"]

SHADOW = """
import pathlib
pathlib.Path(__file__).with_suffix(".RAN").write_text("shadow module ran")
raise SystemExit("shadow module ran")
"""


def _run(cmd, cwd, tty=False):
    """``cmd`` in ``cwd``; with ``tty``, stderr is a terminal (so the progress bar, tqdm, is
    drawn) and comes back as ``stderr`` all the same."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if not tty:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=300, env=env)
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # not 0 columns
    chunks = []

    def drain():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child and our copy of the terminal are closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=slave, text=True, cwd=cwd,
                           timeout=300, env=env)  # fmt: skip
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    p.stderr = b"".join(chunks).decode(errors="replace")
    return p


@pytest.mark.parametrize("how", ["console-script", "python-m"])
def test_modules_in_the_current_directory_never_shadow_libraries(tmp_path, how):
    for name in ("numpy", "tqdm", "matplotlib", "gymnasium", "numba"):
        (tmp_path / f"{name}.py").write_text(SHADOW)
    exe = shutil.which("srml", path=str(Path(sys.executable).parent))
    cmd = [exe] if how == "console-script" else [sys.executable, "-m", "srml"]
    p = _run([*cmd, "run", *SHORT, "--generations=3", "--progress", "--out", "r"], tmp_path,
             tty=True)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "compiling kernels" in p.stderr and "%|" in p.stderr  # tqdm's bar was drawn
    p = _run([*cmd, "plot", "r", "-o", "r.png"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert not list(tmp_path.glob("*.RAN"))
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


# --- a full disk: appends whole or nothing, atomic files intact, resume exact --------------


class DiskFull:
    """os.write and os.fsync of srml's run directory code fail with ENOSPC from the k-th
    call on; the first failing os.write writes half its bytes first (a short write)."""

    def __init__(self, monkeypatch, k):
        self.calls, self.k = 0, k
        real_write, real_fsync = os.write, os.fsync

        def write(fd, data):
            self.calls += 1
            if self.calls == self.k:
                real_write(fd, bytes(data[: len(data) // 2]))
                return len(data) // 2
            if self.calls > self.k:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        def fsync(fd):
            self.calls += 1
            if self.calls >= self.k:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_fsync(fd)

        monkeypatch.setattr(rundir.os, "write", write)
        monkeypatch.setattr(rundir.os, "fsync", fsync)


def pool_arrays(run):
    with np.load(run / "pool.npz") as z:
        return {k: z[k] for k in z.files if k != "meta"}


def whole_lines(path):
    text = path.read_text()
    assert text == "" or text.endswith("\n"), text[-80:]
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(["run", *SHORT, "--generations=12", "--checkpoint-every=3", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("k", [1, 4, 9, 17, 30, 41])
def test_full_disk_at_any_write_then_resume_is_exact(reference, tmp_path, monkeypatch, capsys, k):
    out = tmp_path / "run"
    args = ["run", *SHORT, "--generations=12", "--checkpoint-every=3", "--out", str(out)]
    with monkeypatch.context() as m:
        DiskFull(m, k)
        code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("srml: error")]
    assert code == 2 and errors == err[-1:] and "No space left on device" in err[-1], err
    err = err[-1:]
    if not (out / "log.jsonl").exists():  # before the first row: nothing is left behind
        assert not out.exists() or not any(out.iterdir())
        return
    assert err[0].endswith(f"srml run --resume {out}"), err
    for name in ("log.jsonl", "lineage.jsonl"):  # no torn line anywhere
        if (out / name).exists():
            whole_lines(out / name)
    assert main(["plot", str(out), "-o", str(tmp_path / "p.png")]) == 0  # the log still plots
    assert main(["run", "--resume", str(out)]) == 0, capsys.readouterr().err
    ref, got = pool_arrays(reference), pool_arrays(out)
    assert ref.keys() == got.keys()
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    assert [r["generation"] for r in whole_lines(out / "log.jsonl")] == list(range(1, 13))


def test_a_short_append_is_cut_back(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    rundir.append_line(log, {"generation": 1})
    with monkeypatch.context() as m:
        DiskFull(m, 1)
        with pytest.raises(OSError):
            rundir.append_line(log, {"generation": 2, "pad": "x" * 100})
    assert log.read_text() == '{"generation": 1}\n'


# --- symlinks, modes ---------------------------------------------------------------------


def test_symlinks_in_a_run_directory_never_redirect_writes(reference, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (run / "log.jsonl").unlink()
    (run / "log.jsonl").symlink_to(outside)
    assert main(["run", "--resume", str(run), "--generations", "20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "log.jsonl is a symlink" in err[0], err
    assert outside.read_text() == "precious"
    with pytest.raises(SrmlError, match="is a symlink"):  # appends never follow one
        rundir.append_line(run / "log.jsonl", {"generation": 99})
    (run / "pool_reward.png").unlink()
    (run / "pool_reward.png").symlink_to(outside)
    rundir.atomic_write_bytes(run / "pool_reward.png", b"new")  # replaces the link itself
    assert outside.read_text() == "precious" and not (run / "pool_reward.png").is_symlink()


def test_run_files_get_ordinary_modes(tmp_path):
    old = os.umask(0o022)
    try:
        assert rundir.FILE_MODE == 0o666 & ~old or old != 0o022
        out = tmp_path / "run"
        assert main(["run", *SHORT, "--generations=3", "--out", str(out)]) == 0
        assert main(["run", "--resume", str(out), "--generations=4"]) == 0
    finally:
        os.umask(old)
    for p in out.iterdir():
        assert p.stat().st_mode & 0o777 == rundir.FILE_MODE, p


def test_checkpoints_record_library_versions(reference):
    with np.load(reference / "pool.npz") as z:
        meta = json.loads(z["meta"].tobytes())
    assert set(meta["versions"]) >= {"srml", "numpy", "numba", "gymnasium"}


# --- numbers ------------------------------------------------------------------------------

HUGE = """
import gymnasium as gym
import numpy as np


class Huge(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        sign = 1.0 if self.np_random.uniform() < 0.5 else -1.0
        return np.zeros(1, np.float32), sign * 1e306 * (1 + int(action)), False, True, {}


gym.register("huge/Huge-v0", entry_point=Huge)
"""


@pytest.mark.parametrize("selection", ["proportional", "softmax", "rank"])
def test_huge_finite_rewards_select_and_plot(tmp_path, monkeypatch, capsys, selection):
    (tmp_path / "hugeenv.py").write_text(HUGE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    code = main(["run", *SHORT, "--env", "hugeenv:huge/Huge-v0", "--generations=6",
                 "--selection", selection, "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert (out / "pool_reward.png").exists()
    from srml.pool import SELECTIONS

    f = np.array([1e306, -1e306, 1.7e308, -1.7e308, 3.0, np.inf])
    for rule in SELECTIONS.values():
        w = rule(f)
        p = w / w.sum()
        assert np.isfinite(p).all() and p[-1] == 0 and p[2] == p.max()


def test_selection_below_the_huge_threshold_is_unchanged():
    from srml.pool import proportional

    f = np.array([1.0, 5.0, 1e100])
    lo, span = f.min(), f.max() - f.min()
    np.testing.assert_array_equal(proportional(f), f - lo + 0.01 * span)


def test_credit_of_huge_records_stays_finite():
    """Lineage credit's running mean of records near float64's limit (their sum overflowed
    to inf, the worst record); below the threshold it is unchanged, bit for bit."""
    from srml.pool import Pool

    p = Pool(4, 1)
    p.insert(np.zeros((3, 1), np.float32), np.array([1.5e308, -1.7e308, 2.0]))
    p.credit(np.array([0, 0, 1, 2]), np.array([1.7e308, 1.6e308, -1.6e308, 4.0]))
    np.testing.assert_allclose(p.fitness[:3], [1.6e308, -1.65e308, 3.0], rtol=1e-12)
    q = Pool(2, 1)
    q.insert(np.zeros((2, 1), np.float32), np.array([0.1, 7.3]))
    q.credit(np.array([0, 0, 1]), np.array([0.7, 0.2, 1e100]))
    assert q.fitness[0] == (0.1 * 1 + (0.7 + 0.2)) / 3 and q.fitness[1] == (7.3 + 1e100) / 2


@pytest.mark.parametrize("rule", ["proportional", "softmax", "rank"])
def test_device_pool_selects_among_huge_fitness_as_the_cpu_pool(rule):
    """The GPU pool's selection rules (run here on numpy) scale huge fitness as the CPU pool's
    do: finite probabilities, equal to the CPU pool's."""
    from srml.device_pool import DEVICE_SELECTIONS
    from srml.pool import SELECTIONS

    for f in (np.array([1e306, -1e306, 1.7e308, -1.7e308, 3.0]),
              np.array([1e306, -1e306, 1.7e308, -1.7e308, 3.0, np.inf]),
              np.array([1.0, 5.0, 1e100])):  # fmt: skip
        dev = DEVICE_SELECTIONS[rule](np, f, 1.0)
        host = SELECTIONS[rule](f)
        np.testing.assert_array_equal(dev, host)
        p = dev / dev.sum()
        assert np.isfinite(p).all()


def test_progress_without_a_terminal_is_plain_lines(tmp_path, capsys):
    """stderr not a terminal (capsys; a log file, a batch job): whole lines, no carriage
    returns; compiling said first, then generations with steps of the right total."""
    assert main(["run", *SHORT, "--generations=3", "--progress", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err, err
    lines = err.splitlines()
    i = next(n for n, line in enumerate(lines) if "compiling kernels" in line)
    assert "0 of 480 env steps" in lines[i]
    assert lines[i + 1].startswith("srml: generation 1: 160/480 env steps (33%), pool median/max=")
    assert any(line.startswith("srml: generation 3: 480/480 env steps (100%)") for line in lines)
    assert all(line.startswith("srml: ") for line in lines), err


# --- out, help, version -------------------------------------------------------------------


def test_out_from_a_toml_is_said_and_a_saved_config_repeats_into_a_new_dir(
    reference, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    toml = tmp_path / "shared.toml"
    toml.write_text(f'out = "{tmp_path / "there"}"\ngenerations = 3\n')
    assert main(["run", *SHORT, "--config", str(toml)]) == 0
    err = capsys.readouterr().err
    assert f"out = '{tmp_path / 'there'}' comes from {toml}" in err, err
    assert (tmp_path / "there" / "log.jsonl").exists()
    saved = tmp_path / "saved"
    shutil.copytree(reference, saved)
    before = (saved / "log.jsonl").read_bytes()
    assert main(["run", "--config", str(saved / "config.toml"), "--generations", "2"]) == 0
    err = capsys.readouterr().err
    assert "saved run's config; the repeat gets a new directory" in err, err
    assert (saved / "log.jsonl").read_bytes() == before
    (new,) = (tmp_path / "runs").iterdir()
    assert len(whole_lines(new / "log.jsonl")) == 2


def test_default_out_names_the_seed_and_never_collides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config(env="mymod:My/Env-v0", seed=7)
    a = default_out(cfg)
    assert a.name.startswith("My_Env-v0-s7-") and ":" not in str(a)
    a.mkdir(parents=True)
    b = default_out(cfg)
    assert b != a and not b.exists()


def test_help_shows_defaults_and_version(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "(default: 1000)" in text and "(default: auto)" in text
    assert "--step-timeout" in text and "(default: 60.0)" in text
    for flag in ("--selection {auto,proportional,rank,softmax}", "--update {delta,tanh}",
                 "--credit {auto,none,mean,lineage}", "--twin {auto,off}"):  # fmt: skip
        assert flag in text, flag
    with pytest.raises(SystemExit):
        main(["--version"])
    from srml import __version__

    assert capsys.readouterr().out.strip() == f"srml {__version__}"


def test_plot_across_seeds_groups_by_config_and_writes_pdf(reference, tmp_path, capsys):
    runs = []
    for i, extra in enumerate([[], ["--seed=1"], ["--env=Acrobot-v1"]]):
        out = tmp_path / f"r{i}"
        assert main(["run", *SHORT, "--generations=3", *extra, "--out", str(out)]) == 0
        runs.append(str(out))
    capsys.readouterr()
    assert main(["plot", *runs, "--across-seeds", "-o", str(tmp_path / "a.pdf")]) == 0
    err = capsys.readouterr().err
    assert "CartPole-v1" in err and "2 run(s)" in err and "Acrobot-v1" in err, err
    assert (tmp_path / "a.pdf").read_bytes()[:4] == b"%PDF"
