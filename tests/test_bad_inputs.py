"""A table of bad inputs and faults (everything issue 10 lists): each ends with exit code 2,
exactly one line on stderr, no traceback, and no file created or changed."""

import hashlib
import json
import shutil
import sys
import textwrap
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from srml.cli import main

SHORT = ["--batch=8", "--pool-size=16", "--lifetime=20", "--generations=3", "--no-progress",
         "--backend=numpy"]  # fmt: skip

ENVS = textwrap.dedent("""
    import time
    import gymnasium as gym
    import numpy as np

    class Base(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return self.observation_space.low * 0, {}

        def step(self, action):
            self.t += 1
            return self.observation_space.low * 0, 0.0, False, self.t >= 10, {}

    class ResetRaises(Base):
        def reset(self, seed=None, options=None):
            raise RuntimeError("no license server")

    class Hangs(Base):
        def step(self, action):
            time.sleep(60)

    class BadObs(Base):
        observation_space = gym.spaces.Discrete(3)

        def reset(self, seed=None, options=None):
            gym.Env.reset(self, seed=seed)
            return 7, {}

        def step(self, action):
            return 7, 0.0, False, False, {}

    class TextAct(Base):
        action_space = gym.spaces.Text(3)

    for name in ("ResetRaises", "Hangs", "BadObs", "TextAct"):
        gym.register(f"bad/{name}-v0", entry_point=globals()[name])
""")

Case = namedtuple("Case", "id args needle")


def cases():
    c = [
        # seeds and numbers
        Case("seed-negative", ["--seed", "-1"], "--seed must be between"),
        Case("seed-huge", ["--seed", str(2**64)], "--seed must be between"),
        Case("init-std-inf", ["--init-std", "inf"], "must be finite"),
        Case("sigma-nan", ["--sigma", "nan"], "must be finite"),
        Case("init-std-negative", ["--init-std", "-1"], "--init-std must be > 0"),
        Case("lifetime-absurd", ["--lifetime", "1e23"], "agent-steps per generation"),
        Case("lifetime-zero", ["--lifetime", "0"], "lifetime"),
        Case("batch-over-pool", ["--batch", "64", "--pool-size", "10"], "larger than"),
        Case("unknown-flag", ["--no-such-flag"], "no-such-flag"),
        # main's network variants
        Case("noise-inputs-over", ["--noise-inputs", "65"], "--noise-inputs must be between"),
        Case("noise-hold-negative", ["--noise-hold", "-2"], "--noise-hold must be >= 0"),
        Case("fitness-from-one", ["--fitness-from", "1"], "--fitness-from must be in [0, 1)"),
        Case("update-unknown", ["--update", "sin"], "unknown --update 'sin'"),
        Case("credit-unknown", ["--credit", "max"], "unknown --credit 'max'"),
        Case("input-norm-unknown", ["--input-norm", "batch"], "unknown --input-norm 'batch'"),
        Case("toml-noise-bool", ["--config", "{work}/noise.toml"], "'noise_inputs' must be"),
        # TOML files
        Case("toml-inf", ["--config", "{work}/inf.toml"], "--init-std must be finite"),
        Case("toml-nan-int", ["--config", "{work}/nan_int.toml"], "'lifetime' must be an integer"),
        Case("toml-element-type", ["--config", "{work}/hidden.toml"], "list of integers"),
        Case("toml-negative-seed", ["--config", "{work}/seed.toml"], "--seed must be between"),
        Case("toml-bool-int", ["--config", "{work}/boolint.toml"], "must be an integer"),
        Case("toml-not-utf8", ["--config", "{work}/latin1.toml"], "not UTF-8"),
        Case("toml-directory", ["--config", "{work}"], "is a directory"),
        Case("toml-missing", ["--config", "{work}/nope.toml"], "not found"),
        Case("toml-bad", ["--config", "{work}/broken.toml"], "not valid TOML"),
        Case("toml-unknown-key", ["--config", "{work}/unknown.toml"], "unknown config key"),
        # envs
        Case("env-colon", ["--env", ":"], "use an env id"),
        Case("env-no-module", ["--env", ":CartPole-v1"], "use an env id"),
        Case("env-no-id", ["--env", "badenvs:"], "use an env id"),
        Case("env-unknown", ["--env", "NoSuchEnv-v0"], "NoSuchEnv"),
        Case("env-module-missing", ["--env", "no_such_module:X-v0"], "cannot import"),
        Case("env-module-raises", ["--env", "raising:X-v0"], "raised on import"),
        Case("env-module-syntax", ["--env", "syntax:X-v0"], "syntax error"),
        Case(
            "env-kwargs-twin",
            ["--env", "Pendulum-v1", "--env-kwargs", '{"g": "x"}'],
            "bad env kwargs",
        ),  # fmt: skip
        Case("env-kwargs-unknown", ["--env-kwargs", '{"gravity": 3}'], "gravity"),
        Case(
            "env-kwargs-gym",
            ["--env", "Pendulum-v1", "--twin", "off", "--env-kwargs", '{"g": "x"}'],
            "raised in step",
        ),  # fmt: skip
        Case(
            "max-episode-steps-0",
            ["--twin", "off", "--env-kwargs", '{"max_episode_steps": 0}'],
            "max_episode_steps",
        ),  # fmt: skip
        Case("render-mode-human", ["--env-kwargs", '{"render_mode": "human"}'], "render_mode"),
        Case("env-kwargs-not-json", ["--env-kwargs", "{g: 1}"], "not JSON"),
        Case("space-unsupported", ["--env", "badenvs:bad/TextAct-v0"], "unsupported action"),
        Case(
            "env-reset-raises",
            ["--env", "badenvs:bad/ResetRaises-v0"],
            "raised in reset: RuntimeError: no license server (in generation 1)",
        ),  # fmt: skip
        Case(
            "env-step-hangs",
            ["--env", "badenvs:bad/Hangs-v0", "--step-timeout", "0.5"],
            "did not return from step within --step-timeout 0.5 s",
        ),  # fmt: skip
        Case(
            "obs-out-of-space",
            ["--env", "badenvs:bad/BadObs-v0"],
            "observation 7, outside its space Discrete(3)",
        ),  # fmt: skip
        # --out
        Case("out-file", ["--out", "{work}/precious.txt"], "is a file"),
        Case("out-under-file", ["--out", "{work}/precious.txt/run"], "is a file"),
        Case("out-not-empty", ["--out", "{work}/full"], "is not empty"),
        Case("out-holds-run", ["--out", "{work}/run"], "already holds a run"),
        Case("out-too-long", ["--out", "{work}/" + "x" * 300], "longer than 255 bytes"),
        Case("out-from-toml-not-empty", ["--config", "{work}/out.toml"], "is not empty"),
        # islands
        Case("migrants-over-pool", ["--workers", "2", "--migrants", "17"], "--migrants"),
        Case("workers-1000", ["--workers", "1000"], "cores"),
        Case("ray-address-alone", ["--ray-address", "auto"], "only applies to island runs"),
    ]
    return c


def files(root: Path) -> dict:
    """Every file and directory under root with its bytes' hash and mode."""
    out = {}
    for p in sorted(root.rglob("*")):
        if "__pycache__" in p.parts:
            continue
        st = p.lstat()
        data = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[str(p.relative_to(root))] = (data, st.st_mode, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("done") / "run"
    assert main(["run", *SHORT, "--out", str(out)]) == 0
    return out


@pytest.fixture
def work(tmp_path, monkeypatch, finished_run):
    """A working directory with things a bad input must not touch, and env modules."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "precious.txt").write_text("mine")
    (work / "full").mkdir()
    (work / "full" / "notes.txt").write_text("mine too")
    shutil.copytree(finished_run, work / "run")
    for name, text in {
        "inf.toml": "init_std = inf\n",
        "nan_int.toml": "lifetime = nan\n",
        "hidden.toml": 'hidden = ["a"]\n',
        "seed.toml": "seed = -3\n",
        "boolint.toml": "batch = true\n",
        "broken.toml": "batch = = 3\n",
        "unknown.toml": "colour = 3\n",
        "out.toml": f'out = "{work / "full"}"\n',
        "noise.toml": "noise_inputs = true\n",
    }.items():
        (work / name).write_text(name and text)
    (work / "latin1.toml").write_bytes('env = "CartPöle"\n'.encode("latin-1"))
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "badenvs.py").write_text(ENVS)
    (mods / "raising.py").write_text("raise RuntimeError('the module is broken')\n")
    (mods / "syntax.py").write_text("def (:\n")
    monkeypatch.syspath_prepend(str(mods))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.chdir(work)
    return work


def check_one_line(code, capsys, needle):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert lines[0].startswith("srml: error: ") and needle in lines[0], err


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.id)
def test_bad_run_input(case, work, capsys):
    before = files(work)
    args = [a.replace("{work}", str(work)) for a in case.args]
    out = [] if any(a.startswith("--out") for a in args) or "--config" in args else \
        ["--out", str(work / "new")]  # fmt: skip
    code = main(["run", *SHORT, *out, *args])
    check_one_line(code, capsys, case.needle)
    assert files(work) == before  # nothing created, nothing changed


def test_unusable_out_is_refused_before_anything_is_built(work, capsys, monkeypatch):
    import srml.run.launch as launch
    import srml.run.rundir as rundir

    def never(cfg):
        raise AssertionError("the method was built before --out was checked")

    monkeypatch.setattr(launch, "build_method", never)
    before = files(work)
    monkeypatch.setattr(rundir.os, "access", lambda path, mode: False)  # as if read-only
    check_one_line(main(["run", *SHORT, "--out", str(work / "new")]), capsys, "not writable")
    monkeypatch.undo()
    monkeypatch.chdir(work)
    monkeypatch.setattr(launch, "build_method", never)
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 1000))
    check_one_line(
        main(["run", *SHORT, "--out", str(work / "new")]), capsys, "its file system has 1000 B"
    )
    assert files(work) == before


def test_cuda_islands_without_a_gpu_stop_at_once(work, capsys, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")  # as on a machine without the simulator
    before = files(work)
    code = main(["run", *SHORT, "--workers", "2", "--backend", "cuda", "--out", "new"])
    check_one_line(code, capsys, "--backend cuda needs")
    assert files(work) == before


def craft(run: Path, change) -> None:
    with np.load(run / "pool.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    meta = change(meta)
    np.savez(run / "pool.npz", meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)


@pytest.mark.parametrize(
    "change,needle",
    [
        (lambda m: m | {"generation": "3"}, "generation must be a count"),
        (lambda m: m | {"generation": -1}, "generation must be a count"),
        (lambda m: m | {"env_steps": 1.5}, "env_steps must be a count"),
        (lambda m: m | {"rng": 3}, "malformed RNG state"),
        (lambda m: m | {"version": "1"}, "malformed version"),
        (lambda m: m | {"config": 7}, "no usable config"),
        (lambda m: [m], "not an srml checkpoint"),
    ],
    ids=["gen-str", "gen-neg", "steps-float", "rng-int", "version-str", "config-int", "list"],
)
def test_crafted_checkpoint_metadata(work, capsys, change, needle):
    run = work / "run"
    craft(run, change)
    before = files(work)
    check_one_line(main(["run", "--resume", str(run), "--generations", "5"]), capsys, needle)
    assert files(work) == before


@pytest.mark.parametrize(
    "args,needle",
    [
        (["plot", "{work}/run", "-o", "{work}/full"], "is a directory"),
        (["plot", "{work}/run", "-o", "{work}/x.jpg"], "use a .png, .pdf or .svg"),
        (["plot", "{work}/run", "-o", "{work}/nodir/x.png"], "does not exist"),
        (["plot", "{work}/full"], "not a run directory"),
        (["plot", "{work}/noenvsteps", "-o", "{work}/x.png"], "has no env_steps"),
        (["plot", "{work}/notobject", "-o", "{work}/x.png"], "not a JSON object"),
        (["bench", "--pop", "1000000000000"], "choose less"),
        (["bench", "--pop", "1000000000", "--lifetime", "1"], "lower --pop"),
        (["bench", "--pop", "0"], "must be >= 1"),
        (["eval", "{work}/full"], "not a run directory"),
        (["export", "{work}/run", "-o", "{work}/agent.txt"], "must end in .npz"),
    ],
    ids=[
        "plot-o-dir",
        "plot-o-jpg",
        "plot-o-nodir",
        "plot-not-run",
        "plot-no-env-steps",
        "plot-not-object",
        "bench-pop-steps",
        "bench-pop-memory",
        "bench-pop-0",
        "eval-not-run",
        "export-suffix",
    ],  # fmt: skip
)
def test_bad_input_to_other_commands(work, capsys, args, needle):
    for name, line in (("noenvsteps", '{"generation": 1}\n'), ("notobject", "[1, 2]\n")):
        (work / name).mkdir()
        (work / name / "log.jsonl").write_text(line)
    before = files(work)
    code = main([a.replace("{work}", str(work)) for a in args])
    check_one_line(code, capsys, needle)
    assert files(work) == before


def test_a_small_single_run_pool_is_not_refused_by_an_island_setting(work, capsys):
    assert main(["run", *SHORT, "--pool-size", "4", "--batch", "4", "--out", "small"]) == 0
