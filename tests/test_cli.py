"""The CLI end to end, as a user runs it, and its answers to bad input."""

import json
import subprocess
import sys
import textwrap

import pytest

SHORT = [
    "--batch",
    "16",
    "--pool-size",
    "32",
    "--lifetime",
    "50",
    "--generations",
    "4",
    "--no-progress",
]


def srml(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "srml", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_run_writes_the_four_files_and_plot_overlays(tmp_path):
    out = tmp_path / "run"
    p = srml("run", "--env", "CartPole-v1", *SHORT, "--out", out)
    assert p.returncode == 0, p.stderr
    for name in ("config.toml", "log.jsonl", "pool.npz", "pool_reward.png"):
        assert (out / name).stat().st_size > 0, name
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == [1, 2, 3, 4]
    keys = {
        "generation",
        "env_steps",
        "wall_s",
        "steps_per_s",
        "pool_size",
        "pool_fitness_min",
        "pool_fitness_mean",
        "pool_fitness_median",
        "pool_fitness_max",
        "batch_fitness_mean",
    }
    assert keys <= rows[0].keys()
    assert rows[-1]["env_steps"] == 4 * 16 * 50
    assert 'env = "CartPole-v1"' in (out / "config.toml").read_text()
    assert (out / "pool_reward.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    p = srml("run", *SHORT, "--seed", "1", "--out", tmp_path / "run2")
    assert p.returncode == 0, p.stderr
    png = tmp_path / "both.png"
    p = srml("plot", out, tmp_path / "run2", "-o", png)
    assert p.returncode == 0, p.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_file_and_flags(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        textwrap.dedent("""
        env = "Acrobot-v1"
        batch = 8
        pool_size = 16
        lifetime = 20
        generations = 2
        progress = false
    """)
    )
    out = tmp_path / "r"
    p = srml("run", "--config", cfg, "--lifetime", "30", "--out", out)
    assert p.returncode == 0, p.stderr
    text = (out / "config.toml").read_text()
    assert 'env = "Acrobot-v1"' in text and "lifetime = 30" in text and "batch = 8" in text


BAD = [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv"),
    (["--batch", "64", "--pool-size", "10"], "larger than --pool-size"),
    (["--lifetime", "0"], "lifetime"),
    (["--lifetime", "-5"], "lifetime"),
    (["--selection", "best"], "selection"),
    (["--backend", "fortran"], "backend"),
    (["--env", "srml_test/DictObs-v0"], "Text"),
    (["--no-such-flag"], "no-such-flag"),
    (["--env", "srml/BernoulliBandit-v0", "--env-kwargs", '{"n_arms": -3}'], "n_arms"),
    (["--init-std", "-1"], "init-std"),
    (["--threads", "-1"], "threads"),
    (["--env", "srml/BernoulliBandit-v0", "--env-kwargs", '{"arms": 3}'], "arms"),
]


@pytest.mark.parametrize("args,needle", BAD, ids=[b[1] for b in BAD])
def test_bad_input_exits_2_with_one_line(tmp_path, args, needle):
    out = tmp_path / "never"
    # the custom env with a Text inside a Dict observation space is registered by a tiny module
    (tmp_path / "dictenv.py").write_text(
        textwrap.dedent("""
        import gymnasium as gym
        class DictObs(gym.Env):
            observation_space = gym.spaces.Dict({"a": gym.spaces.Text(2)})
            action_space = gym.spaces.Discrete(2)
        gym.register("srml_test/DictObs-v0", entry_point=DictObs)
    """)
    )
    cmd = [*args]
    if "srml_test/DictObs-v0" in args:
        cmd[cmd.index("srml_test/DictObs-v0")] = "dictenv:srml_test/DictObs-v0"
    p = subprocess.run(
        [sys.executable, "-m", "srml", "run", *SHORT, "--out", str(out), *cmd],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)},
    )
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert needle in lines[0] and "Traceback" not in p.stderr
    assert not out.exists()  # a failed start leaves nothing behind


def test_readme_custom_env_example_runs_as_printed(tmp_path):
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    code = next(
        b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "class GuessSign" in b
    )
    cmd = next(
        line for line in re.findall(r"```bash\n(.*?)```", readme, re.S) if "GuessSign" in line
    )
    (tmp_path / "myenv.py").write_text(code)
    args = cmd.split()[1:]  # drop the leading "srml"
    args[args.index("--total-steps") + 1] = "20000"  # same command, a test-sized budget
    p = srml(
        *args, "--batch", "20", "--pool-size", "40", "--no-progress", "--out", "r", cwd=tmp_path
    )
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "r" / "pool_reward.png").exists()


def test_one_founder_says_what_the_recipe_set_and_records_it(tmp_path):
    out = tmp_path / "one"
    args = ["--founders", "1", "--backend", "numpy", "--batch", "8", "--pool-size", "16"]
    p = srml("run", *args, "--lifetime", "10", "--generations", "2", "--beta", "single",
             "--out", out)  # fmt: skip
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stderr.splitlines() if "from-one recipe" in x)
    assert "noise_inputs=8" in line and "noise_hold=0" in line and "selection=rank" in line
    assert "beta" not in line
    cfg = (out / "config.toml").read_text()
    assert 'beta = "single"' in cfg and 'credit = "lineage"' in cfg and "noise_inputs = 8" in cfg
    assert "noise_hold = 0" in cfg
