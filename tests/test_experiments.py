"""The experiment scripts in quick mode, as a user runs them, and the helpers they share."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = [
    "bandits",
    "classic_control",
    "ablations",
    "self_improvement",
    "tune_baselines",
    "fme_from_one",
    "learned_optimizer",
]
sys.path.insert(0, str(ROOT / "experiments"))
import common  # noqa: E402


def run_script(name, *args):
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / f"{name}.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def expected_runs(name) -> int:
    """How many env x method pairs the quick mode of experiment ``name`` names."""
    args = common.parse_args("", str(ROOT / "experiments" / f"{name}.py"), ["--quick"])
    methods = None
    if name == "tune_baselines":
        import tomllib

        import tune_baselines

        methods = tune_baselines.grid_methods(tomllib.loads(args.config.read_text())["grid"])
        methods = {k: {x: y for x, y in v.items() if x != "family"} for k, v in methods.items()}
    plan = common.load_plan(args, methods=methods)
    families = len(plan.extra.get("families", [None]))  # learned_optimizer: problem families
    return len(plan.envs) * len(plan.methods) * families


class _QuickRuns(dict):
    """name -> (process, out dir) of that experiment's quick mode, run on first use (so a
    ``-k`` selection runs only the experiments its tests read)."""

    def __init__(self, tmp_path_factory):
        super().__init__()
        self.tmp = tmp_path_factory

    def __missing__(self, name):
        d = self.tmp.mktemp(name)
        self[name] = (run_script(name, "--quick", "--out", d), d)
        return self[name]


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Every experiment's quick mode, each run once for the tests below."""
    return _QuickRuns(tmp_path_factory)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_quick_mode_writes_results_and_figures(quick_runs, name):
    p, out = quick_runs[name]
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads((out / "results.json").read_text())
    assert r["experiment"] == name and r["mode"] == "quick"
    assert r["env_steps"] > 0 and len(r["seeds"]) >= 1
    assert len(r["methods"]) == expected_runs(name)  # every env x method reported
    for key, m in r["methods"].items():
        lo, hi = m["ci95"]
        assert len(m["per_seed"]) == len(r["seeds"]), key
        assert all(math.isfinite(v) for v in m["per_seed"]), key
        assert lo <= m["final_fitness_mean"] <= hi, key
        assert m["final_fitness_mean"] == pytest.approx(np.mean(m["per_seed"])), key
    logs = sorted(out.glob("*/*/seed*/log.jsonl"))
    assert len(logs) == len(r["methods"]) * len(r["seeds"])
    steps = {json.loads(log.read_text().splitlines()[-1])["env_steps"] for log in logs}
    assert steps == {r["env_steps"]}  # every method and seed used the same number of env steps
    if name != "tune_baselines":
        figs = ["pool_reward.png", "eval_fitness.png"]
        figs += [] if name == "fme_from_one" else ["lineage.png"]  # one founder: no lineage panel
        for fig in figs:
            assert (out / fig).stat().st_size > 5000, fig


def test_bandits_in_lifetime_curves(quick_runs):
    _, out = quick_runs["bandits"]
    r = json.loads((out / "results.json").read_text())
    assert (out / "lifetime_reward.png").stat().st_size > 5000
    assert set(r["lifetime_reward"]) == set(r["methods"])
    for c in r["lifetime_reward"].values():
        assert len(c["reward_mean"]) == len(c["pull"]) == 20  # the bandits' episode length
        assert all(0.0 <= v <= 1.0 for v in c["reward_mean"])  # rewards are 0 or 1


def test_self_improvement_measures_every_snapshot_on_every_test_task(quick_runs):
    _, out = quick_runs["self_improvement"]
    r = json.loads((out / "results.json").read_text())
    assert len(r["snapshots"]) == 2  # the quick mode's test tasks
    for table in r["snapshots"].values():
        fractions = [s["fraction"] for s in table.values()]
        assert fractions == [0.3, 1.0]
        steps = [s["env_steps"] for s in table.values()]
        assert steps[0] < steps[1]
    assert len(list(out.glob("*/fme/seed0/snapshots/*.npz"))) == 2


def test_tuning_reports_the_best_setting_of_each_baseline(quick_runs):
    _, out = quick_runs["tune_baselines"]
    r = json.loads((out / "results.json").read_text())
    for key, best in r["best"].items():
        env, family = key.split("/")
        rivals = [m for k, m in r["methods"].items() if k.startswith(f"{env}/{family},")]
        assert best["final_fitness_mean"] == max(m["final_fitness_mean"] for m in rivals)


def test_learned_optimizer_compares_every_run_with_the_optimizers(quick_runs):
    _, out = quick_runs["learned_optimizer"]
    r = json.loads((out / "results.json").read_text())
    for fig in ("loss_curves.png", "loss_ratio.png", "across_problems.png"):
        assert (out / fig).stat().st_size > 5000, fig
    x = r["evaluation"]
    n_test = x["eval_lanes"] * x["eval_problems"]
    for family, by_setting in r["learned_optimizer"].items():
        assert list(by_setting) == x["settings"]
        for s, e in by_setting.items():
            assert set(e["baselines"]) == {"adam_1e-3", "adam_tuned", "sgd_tuned"}
            assert e["baselines"]["adam_1e-3"]["lr"] == 1e-3
            for label, m in e["methods"].items():
                assert [p["seed"] for p in m["per_seed"]] == r["seeds"], (family, s, label)
                for p in m["per_seed"]:
                    assert 0.0 <= p["wins_vs_adam_tuned"] <= 1.0
                    assert p["ratio_vs_adam_tuned"] > 0 and math.isfinite(p["mean_return"])
                    assert len(p["median_curve"]) >= 2
                    if label != x["twin"]:  # paired with the ES-trained twin of its seed
                        assert p["ratio_vs_twin"] > 0 and 0.0 <= p["wins_vs_twin"] <= 1.0
        for a in r["across_problems"][family].values():
            assert len(a["return_mean_over_seeds"]) == x["across_problems"]
    # every run's test returns cover the same test problems as the optimizers'
    lo_eval = json.loads(next(out.glob("*/fme/seed*/lo_eval.json")).read_text())
    assert all(len(v["returns"]) == n_test for v in lo_eval["settings"].values())
    assert set(r["aim"]) == {f"quadratic/{label}" for label in r["method_specs"]}
    assert "| quadratic | fme | 0 |" in (out / "table.md").read_text()


def test_learned_optimizer_families_take_env_kwargs_at_the_plans_precedence(tmp_path):
    import learned_optimizer

    cfg = tmp_path / "lo.toml"
    cfg.write_text(
        'envs = ["srml/LearnedOptimizer-v0"]\n[methods.fme]\n'
        "[config]\nenv_kwargs = {dim = 4, steps_per_problem = 10}\n"
        "[quick]\nfamily_kwargs = {linreg = {n_data = 12}}\n"
        "[quick.config]\ntotal_steps = 1000\nenv_kwargs = {dim = 6}\n"
    )
    args = common.parse_args("", "learned_optimizer.py", ["--quick", "--config", str(cfg)])
    plan = common.load_plan(args)
    assert plan.run_config(learned_optimizer.ENV, "fme", 0)[1].env_kwargs == {"dim": 6}
    assert learned_optimizer.family_kwargs(plan, "quadratic") == {"dim": 6, "problem": "quadratic"}
    assert learned_optimizer.family_kwargs(plan, "linreg") == {
        "dim": 6, "n_data": 12, "problem": "linreg"
    }  # fmt: skip


def test_srml_plot_draws_experiment_runs_across_seeds_and_lineage(quick_runs, tmp_path):
    _, out = quick_runs["ablations"]
    runs = sorted(out.glob("CartPole-v1/*/seed*"))
    p = subprocess.run(
        [sys.executable, "-m", "srml", "plot", *runs, "--across-seeds", "-o", tmp_path / "a.png"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "a.png").stat().st_size > 5000
    fme = sorted(out.glob("CartPole-v1/fme/seed*"))
    p = subprocess.run(
        [sys.executable, "-m", "srml", "plot", *fme, "--lineage", "-o", tmp_path / "l.png"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "l.png").stat().st_size > 5000


def test_a_bad_plan_is_refused_in_one_line_before_any_run(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        'envs = ["CartPole-v1"]\n[methods.x]\nmethod = "cma_es"\n[quick.config]\ntotal_steps = 1000\n'
    )
    p = run_script("classic_control", "--quick", "--config", cfg, "--out", tmp_path / "o")
    assert p.returncode == 2 and "unknown method 'cma_es'" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_pull_index_and_reward_by_pull():
    firsts = np.array([[1, 1], [0, 0], [0, 1], [1, 0], [0, 0]], bool)
    np.testing.assert_array_equal(
        common.pull_index(firsts), [[0, 0], [1, 1], [2, 0], [0, 1], [1, 2]]
    )

    class R:
        rewards = np.array([[0, 1], [1, 1], [1, 0], [0, 0], [1, 1]], float)

    R.firsts = firsts
    np.testing.assert_allclose(common.reward_by_pull(R, 3), [0.25, 0.75, 1.0])


def test_bootstrap_band_brackets_the_mean_and_narrows_with_agreement():
    from srml.plot import bootstrap_band

    rng = np.random.default_rng(0)
    wide = rng.normal(0.0, 1.0, size=(5, 40))
    mean, lo, hi = bootstrap_band(wide)
    np.testing.assert_allclose(mean, wide.mean(0))
    assert np.all(lo <= mean) and np.all(mean <= hi) and np.all(hi - lo > 0)
    _, lo2, hi2 = bootstrap_band(wide * 0.1)
    np.testing.assert_allclose(hi2 - lo2, 0.1 * (hi - lo), rtol=1e-9)  # same resamples, scaled
    one = bootstrap_band(wide[:1])
    np.testing.assert_array_equal(one[1], one[2])  # one seed: no band


def test_killed_experiment_resumes_to_the_same_results(quick_runs, tmp_path):
    """SIGKILL an experiment mid-way, run it again with the same --out: every run continues
    from its checkpoint (or is read back), and the results equal an uninterrupted run's."""
    import os
    import signal
    import time

    _, ref = quick_runs["ablations"]
    out = tmp_path / "abl"
    cmd = [sys.executable, str(ROOT / "experiments" / "ablations.py"), "--quick", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*/*/seed*/log.jsonl"))) < 3:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "results.json").exists()  # it was stopped part-way
    p = run_script("ablations", "--quick", "--out", out)
    assert p.returncode == 0, p.stderr[-2000:]
    a = json.loads((ref / "results.json").read_text())
    b = json.loads((out / "results.json").read_text())
    for key, m in a["methods"].items():
        assert b["methods"][key]["per_seed"] == m["per_seed"], key
        assert b["methods"][key]["pool_median_final"] == m["pool_median_final"], key
    for npz in ref.glob("*/*/seed*/pool.npz"):
        with np.load(npz) as x, np.load(out / npz.relative_to(ref)) as y:
            for k in x.files:
                if k != "meta":
                    np.testing.assert_array_equal(x[k], y[k], err_msg=f"{npz} {k}")


def test_wilson_and_sign_test():
    lo, hi = common.wilson(8, 10)
    assert 0.49 < lo < 0.5 and 0.94 < hi < 0.95  # the textbook values 0.490, 0.943
    assert common.wilson(0, 10)[0] == 0.0 and common.wilson(10, 10)[1] == 1.0
    assert common.sign_test(10, 0) == pytest.approx(2 / 2**10)
    assert common.sign_test(5, 5) == 1.0


def test_a_seed_without_finite_held_out_fitness_is_kept_and_counted(tmp_path):
    s = common.summarize([1.0, None, 3.0, float("nan")])
    assert s["final_fitness_mean"] == 2.0 and s["nonfinite_seeds"] == 2
    assert len(s["per_seed"]) == 4 and math.isnan(s["per_seed"][1])
    path = common.write_results(tmp_path, {"s": s, "inf": float("inf")})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    back = json.loads(text)
    assert back["s"]["per_seed"] == [1.0, None, 3.0, None] and back["inf"] is None
    import fme_from_one

    assert fme_from_one.worst_aware_difference(float("nan"), 20.0) < 0  # overflow loses
    assert fme_from_one.worst_aware_difference(20.0, float("nan")) > 0
    assert fme_from_one.worst_aware_difference(float("nan"), float("nan")) == 0
    assert fme_from_one.worst_aware_difference(30.0, 20.0) == 10.0


def test_fme_from_one_reports_per_seed_success_and_pairs(quick_runs):
    _, out = quick_runs["fme_from_one"]
    r = json.loads((out / "results.json").read_text())
    for by_label in r["from_one"].values():
        for e in by_label.values():
            assert e["seeds"] == r["seeds"] and len(e["per_seed_final"]) == len(e["seeds"])
            if "threshold" in e:
                k = sum(e["success"])
                assert e["success_rate"] == k / len(e["seeds"])
                lo, hi = e["success_wilson95"]
                assert lo <= e["success_rate"] <= hi
                solved = [m >= e["threshold"] and f >= e["threshold"]
                          for m, f in zip(e["per_seed_pool_median"], e["per_seed_final"],
                                          strict=True)]  # fmt: skip
                assert e["success"] == solved
    for by_label in r["paired"].values():
        for p in by_label.values():
            assert p["wins"] + p["losses"] + p["ties"] == len(r["seeds"])
    rev = r["reversal"]["hill_climber"]
    assert len(rev["p_good_per_seed"]) == len(r["seeds"])
    assert all(0 <= v <= 1 for row in rev["p_good_per_seed"] for v in row if v == v)
    assert (out / "success.png").stat().st_size > 5000 and (out / "reversal.png").exists()
