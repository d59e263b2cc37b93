"""What the experiment scripts share: the TOML plan, method x env x seed runs, results.json.

An experiment's TOML file holds:

    experiment = "bandits"            # name written to results.json
    envs = ["srml/SwappingBandit-v0"]
    [config]                          # srml Config fields every run shares
    [env_config."srml/BernoulliBandit-v0"]   # Config fields for one env only
    [methods.NAME]                    # one entry per compared method:
    method = "fme"                    #   registry name (default: NAME)
    sigma = 0.1                       #   Config fields and the method's Options fields
    [full] / [quick]                  # the two modes: seeds, evals, anything the script reads,
    [full.config] / [quick.config]    #   and Config fields for that mode (e.g. total_steps)

Precedence for a run's Config: [config] < [env_config.ENV] < [MODE.config] <
[methods.NAME] < command-line --backend. Every run is a run directory
``OUT/<env>/<method>/seed<k>/`` with config.toml (method and options included), log.jsonl
(same columns as ``srml run``: the population's fitness as pool_fitness_*),
eval.jsonl (held-out fitness of the deployed genomes) and, for FME, lineage.jsonl
(how many pool members descend from each founder, every generation), so
``srml plot`` reads them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from srml import plot
from srml.config import Config, from_dict
from srml.errors import SrmlError
from srml.evaluation import evaluate_deployed
from srml.fitness import finite_mean
from srml.methods import METHODS, make_method, option_names
from srml.run.loop import drive, run_in
from srml.run.resume import prepare_to_continue, read_run, restore
from srml.run.rundir import append_line, atomic_write_bytes, lock_run_dir, read_log

CONFIG_FIELDS = {f.name for f in fields(Config)}


@dataclass
class Plan:
    """One experiment in one mode, resolved from its TOML file."""

    experiment: str
    """Name written to results.json."""
    mode: str
    """quick (a smoke test, under a minute) or full (the reference runs)."""
    envs: list[str]
    """Gymnasium ids the methods run on."""
    seeds: list[int]
    """Every method runs once per seed (Config.seed); seeds are shared across methods."""
    evals: int
    """Held-out evaluations of each run's deployed genomes, evenly spaced over the budget."""
    config: dict
    """Config fields shared by every run (after the mode's overrides)."""
    env_config: dict
    """env id -> Config fields for that env."""
    methods: dict
    """label -> {"method": registry name, **Config fields, **Options fields}."""
    extra: dict = field(default_factory=dict)
    """The mode's other keys, for the script (e.g. snapshots)."""
    mode_config: dict = field(default_factory=dict)
    """Config fields of the mode ([full.config] / [quick.config]), above env_config."""
    mode_env_config: dict = field(default_factory=dict)
    """env id -> Config fields of the mode for that env ([full.env_config."ENV"]), above
    mode_config (e.g. a budget per env)."""

    def run_config(self, env: str, label: str, seed: int) -> tuple[str, Config, dict]:
        """(method name, Config, options) of one run."""
        spec = dict(self.methods[label])
        name = spec.pop("method", label)
        if name not in METHODS:
            raise SrmlError(
                f"[methods.{label}]: unknown method {name!r}; choose from {sorted(METHODS)}"
            )
        options = {k: spec.pop(k) for k in list(spec) if k in option_names(name)}
        unknown = set(spec) - CONFIG_FIELDS
        if unknown:
            raise SrmlError(f"[methods.{label}]: unknown keys {sorted(unknown)}")
        merged = {
            **self.config, **self.env_config.get(env, {}), **self.mode_config,
            **self.mode_env_config.get(env, {}), **spec, "env": env, "seed": seed,
        }  # fmt: skip
        merged.setdefault("progress", False)
        return name, from_dict(merged).validate(), options


def parse_args(doc: str, script: str, argv=None, modes: tuple = ()) -> argparse.Namespace:
    """The flags every experiment takes; ``modes`` names extra TOML sections a flag selects
    (e.g. ``--tune`` runs the [tune] section instead of [full])."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="the smoke-test mode (under a minute)")
    for m in modes:
        p.add_argument(f"--{m}", action="store_true", help=f"run the [{m}] section of the TOML")
    p.add_argument(
        "--out", type=Path, default=None, help="output directory (results.json, figures)"
    )
    p.add_argument(
        "--config",
        type=Path,
        default=Path(script).with_suffix(".toml"),
        help="the experiment's TOML",
    )
    p.add_argument("--backend", default=None, help="override the backend of every run")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the seeds")
    p.add_argument("--envs", nargs="+", default=None, help="run only these envs of the plan")
    p.add_argument(
        "--methods", nargs="+", default=None, help="run only these method labels of the plan"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="train this many runs at once, one process and one numba thread each; results "
        "are then read back from the run directories in order (the same numbers as --jobs 1)",
    )
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    chosen = [m for m in modes if getattr(args, m)]
    if len(chosen) + args.quick > 1:
        p.error("choose at most one of --quick" + "".join(f", --{m}" for m in modes))
    args.mode = "quick" if args.quick else (chosen[0] if chosen else "full")
    if args.out is None:
        args.out = (
            Path("runs")
            / "experiments"
            / (Path(script).stem + ("" if args.mode == "full" else f"-{args.mode}"))
        )
    return args


def load_plan(args: argparse.Namespace, methods: dict | None = None) -> Plan:
    try:
        with open(args.config, "rb") as f:
            d = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SrmlError(f"cannot read {args.config}: {e}") from None
    mode = getattr(args, "mode", "quick" if args.quick else "full")
    if mode not in d:
        raise SrmlError(f"{args.config} has no [{mode}] section")
    m = dict(d.get(mode, {}))
    config = dict(d.get("config", {}))
    mode_config = dict(m.pop("config", {}))
    mode_env_config = dict(m.pop("env_config", {}))
    if args.backend:
        mode_config["backend"] = args.backend
    plan = Plan(
        experiment=d.get("experiment", Path(args.config).stem),
        mode=mode,
        envs=list(m.pop("envs", d.get("envs", [config.get("env", Config.env)]))),
        seeds=list(args.seeds or m.pop("seeds", [0])),
        evals=int(m.pop("evals", 5)),
        config=config,
        env_config=d.get("env_config", {}),
        methods=methods if methods is not None else d.get("methods", {}),
        extra={k: v for k, v in m.items() if k != "seeds"},
        mode_config=mode_config,
        mode_env_config=mode_env_config,
    )
    if not plan.methods:
        raise SrmlError(f"{args.config} names no [methods.*]")
    if getattr(args, "envs", None):
        missing = sorted(set(args.envs) - set(plan.envs))
        if missing:
            raise SrmlError(f"--envs {missing} not in the plan's envs {plan.envs}")
        plan.envs = [e for e in plan.envs if e in args.envs]
    if getattr(args, "methods", None):
        missing = sorted(set(args.methods) - set(plan.methods))
        if missing:
            raise SrmlError(f"--methods {missing} not in the plan's methods {sorted(plan.methods)}")
        plan.methods = {k: v for k, v in plan.methods.items() if k in args.methods}
    for env in plan.envs:  # refuse a bad plan before any run starts
        for label in plan.methods:
            _, cfg, _ = plan.run_config(env, label, plan.seeds[0])
            if cfg.total_steps <= 0:
                raise SrmlError(f"{env} {label}: experiments need total_steps > 0 (equal budgets)")
    return plan


def env_slug(env: str) -> str:
    return env.split("/")[-1].split(":")[-1]


def run_one(name: str, cfg: Config, options: dict, evals: int, run_dir: Path, hook=None) -> dict:
    """Train one method for its budget through srml's run loop, evaluating its deployed
    genomes ``evals`` times on held-out seeds (the last time with per-step actions and
    rewards recorded), and return its curves.

    The run directory is a run directory like ``srml run``'s (config.toml, log.jsonl,
    progress.csv, pool.npz checkpoints, lineage.jsonl for FME) plus eval.jsonl. Running
    the experiment again continues a run that was stopped (exactly, from its checkpoint) and
    reads a finished one back instead of repeating it. ``hook(method, run_dir)`` is called
    after every generation (self-improvement saves snapshots there).
    """
    cfg = replace(cfg, method=name, method_options=dict(options))
    method = make_method(name, cfg, **options)
    eval_at = [math.ceil(cfg.total_steps * k / evals) for k in range(1, evals + 1)]
    final = {}

    def after_generation(m, row) -> None:
        done = len(read_log(run_dir / "eval.jsonl")) if (run_dir / "eval.jsonl").exists() else 0
        while done < evals and (m.env_steps >= eval_at[done] or m.finished):
            last = done == evals - 1
            e = evaluate_deployed(m, done, record=last)  # the last one traced
            if last:
                final["rollout"] = e
            append_line(run_dir / "eval.jsonl", {
                "generation": m.generation,
                "env_steps": m.env_steps,
                "eval_fitness_mean": finite_mean(e.fitness),
                "eval_fitness_sem": float(np.std(e.fitness[np.isfinite(e.fitness)]) / np.sqrt(max(np.isfinite(e.fitness).sum(), 1))),
                "nonfinite": int(e.nonfinite),
            })  # fmt: skip
            done += 1
        if hook is not None:
            hook(m, run_dir)

    t0 = time.perf_counter()
    try:
        if (run_dir / "config.toml").exists():  # a run started before: continue or read back
            saved, state, rows = read_run(run_dir, {"progress": False})
            if saved.method != name or saved.method_options != cfg.method_options:
                raise SrmlError(f"{run_dir} holds another method's run; choose another --out")
            if state is not None:
                restore(method, state, run_dir / "pool.npz")
            offset = prepare_to_continue(
                saved, run_dir, rows, method.generation, method.finished, quiet=True
            )
            if offset is not None:
                with lock_run_dir(run_dir):
                    drive(method, run_dir, callback=after_generation, progress=False,
                          wall_offset=offset)  # fmt: skip
        else:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            run_in(method, run_dir, callback=after_generation, progress=False)
        if "rollout" not in final:  # read back: the last evaluation again (it is deterministic)
            final["rollout"] = evaluate_deployed(method, evals - 1, record=True)
    finally:
        method.close()
    log = [r for r in read_log(run_dir / "log.jsonl") if "island" not in r]
    evals_done = read_log(run_dir / "eval.jsonl")
    curve = np.array([(r["env_steps"], r["pool_fitness_median"]) for r in log], float)
    return {
        "method": method,
        "curve": curve,
        "evals": evals_done,
        "final": evals_done[-1]["eval_fitness_mean"],
        "final_rollout": final["rollout"],  # the last held-out evaluation, per-step rewards
        "wall_s": log[-1]["wall_s"] if log else time.perf_counter() - t0,
        "env_steps": method.env_steps,
    }


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    """Wilson score interval (95% by default) for a success rate of k in n."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test p-value (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def summarize(values, seed: int = 0) -> dict:
    """Mean over seeds with a bootstrap 95% interval of that mean."""
    v = np.asarray(values, float)
    mean, lo, hi = plot.bootstrap_band(v[:, None], seed=seed)
    return {
        "final_fitness_mean": float(mean[0]),
        "ci95": [float(lo[0]), float(hi[0])],
        "per_seed": [float(x) for x in v],
    }


def _train(args: tuple) -> str:
    """A worker of ``run_plan(jobs > 1)``: train one run to its end (one numba thread)."""
    name, cfg, options, evals, run_dir, hook = args
    try:
        import numba

        numba.set_num_threads(1)
    except (ImportError, ValueError):
        pass
    r = run_one(name, cfg, options, evals, run_dir, hook)
    return f"held-out {r['final']:.2f}, pool median {r['curve'][-1, 1]:.2f} in {r['wall_s']:.0f}s"


def run_plan(plan: Plan, out: Path, hook=None, jobs: int = 1) -> dict:
    """Every env x method x seed; returns {env: {label: [run summaries, one per seed]}}.
    ``jobs > 1`` trains the runs in that many processes first; the loop below then reads each
    finished run back from its directory (one deterministic held-out evaluation each)."""
    out.mkdir(parents=True, exist_ok=True)
    todo = [
        (env, label, seed) for env in plan.envs for label in plan.methods for seed in plan.seeds
    ]
    if jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        work = {}
        for env, label, seed in todo:
            name, cfg, options = plan.run_config(env, label, seed)
            run_dir = out / env_slug(env) / label / f"seed{seed}"
            work[(env, label, seed)] = (name, cfg, options, plan.evals, run_dir, hook)
        # fork: the workers inherit the imported modules (nothing is compiled yet)
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("fork")) as ex:
            futures = {ex.submit(_train, w): k for k, w in work.items()}
            for i, f in enumerate(as_completed(futures), 1):
                env, label, seed = futures[f]
                print(f"[trained {i}/{len(todo)}] {env_slug(env)} {label} seed {seed}: "
                      f"{f.result()}", file=sys.stderr, flush=True)  # fmt: skip
    runs: dict = {}
    for n, (env, label, seed) in enumerate(todo, 1):
        name, cfg, options = plan.run_config(env, label, seed)
        run_dir = out / env_slug(env) / label / f"seed{seed}"
        r = run_one(name, cfg, options, plan.evals, run_dir, hook)
        r |= {"run_dir": run_dir, "cfg": cfg, "name": name, "seed": seed}
        runs.setdefault(env, {}).setdefault(label, []).append(r)
        print(
            f"[{n}/{len(todo)}] {env_slug(env)} {label} seed {seed}: "
            f"held-out fitness {r['final']:.2f}, pool median {r['curve'][-1, 1]:.2f}, "
            f"{r['env_steps'] / 1e6:.1f}M steps in {r['wall_s']:.0f}s",
            file=sys.stderr,
            flush=True,
        )
    return runs


def results_dict(plan: Plan, runs: dict, command: str) -> dict:
    """The results.json core: per env/method the final held-out fitness over seeds."""
    methods, envs = {}, {}
    for env, by_label in runs.items():
        for label, rs in by_label.items():
            s = summarize([r["final"] for r in rs])
            s["pool_median_final"] = float(np.mean([r["curve"][-1, 1] for r in rs]))
            s["method"] = rs[0]["name"]
            s["wall_s"] = float(sum(r["wall_s"] for r in rs))
            methods[f"{env_slug(env)}/{label}"] = s
            envs.setdefault(env_slug(env), {})[label] = s
    first = next(iter(next(iter(runs.values())).values()))[0]
    return {
        "experiment": plan.experiment,
        "mode": plan.mode,
        "env_steps": int(first["env_steps"]),
        "seeds": plan.seeds,
        "command": command,
        "backend": first["cfg"].backend,
        "final_fitness": "held-out: mean fitness of each run's deployed genomes over "
        "`batch` fresh lifetimes on seeds never used in training, at the end of the budget",
        "methods": methods,
        "envs": envs,
        "config": {k: v for k, v in asdict(first["cfg"]).items() if k not in ("out", "seed")},
        "method_specs": plan.methods,
    }


def write_results(out: Path, results: dict) -> Path:
    path = out / "results.json"
    atomic_write_bytes(path, (json.dumps(results, indent=2) + "\n").encode())
    return path


def standard_figures(plan: Plan, runs: dict, out: Path) -> list[Path]:
    """pool_reward.png, eval_fitness.png and (with FME runs) lineage.png, one panel per env."""
    made = []
    n = len(runs)
    fig, axes = plot.panels(n, title=f"{plan.experiment}: population median fitness")
    for ax, (env, by_label) in zip(axes, runs.items(), strict=True):
        series = {}
        for label, rs in by_label.items():
            x = rs[0]["curve"][:, 0]
            series[label] = (
                x,
                np.stack([np.interp(x, r["curve"][:, 0], r["curve"][:, 1]) for r in rs]),
            )
        plot.draw_seed_bands(ax, series, ylabel="population median fitness", title=env_slug(env))
    made.append(plot.save_figure(fig, out / "pool_reward.png"))

    fig, axes = plot.panels(n, title=f"{plan.experiment}: held-out fitness of the deployed genomes")
    for ax, (env, by_label) in zip(axes, runs.items(), strict=True):
        series = {}
        for label, rs in by_label.items():
            x = np.array([e["env_steps"] for e in rs[0]["evals"]], float)
            Y = np.array([[e["eval_fitness_mean"] for e in r["evals"]] for r in rs])
            series[label] = (x, Y)
        plot.draw_seed_bands(ax, series, ylabel="held-out fitness", title=env_slug(env))
        for line in ax.get_lines():
            line.set_marker("o")
            line.set_markersize(3)
    made.append(plot.save_figure(fig, out / "eval_fitness.png"))

    lineage_runs = [  # FME runs that started from more than one founder
        (env, label, rs[0]) for env, by in runs.items() for label, rs in by.items()
        if (rs[0]["run_dir"] / "lineage.jsonl").exists() and len(rs[0]["method"].founders) > 1
    ]  # fmt: skip
    if lineage_runs:
        fig, axes = plot.panels(
            len(lineage_runs), title="lineage: founders' descendants in the pool"
        )
        for ax, (env, label, r) in zip(axes, lineage_runs, strict=True):
            x, counts = plot.read_lineage(r["run_dir"])
            plot.draw_lineage(ax, x, counts, title=f"{env_slug(env)} {label} seed {r['seed']}")
        made.append(plot.save_figure(fig, out / "lineage.png"))
    return made


def pull_index(firsts: np.ndarray) -> np.ndarray:
    """(S, B) position of each step within its episode (0 on an episode's first step)."""
    pos = np.zeros(firsts.shape, np.int64)
    c = np.zeros(firsts.shape[1], np.int64)
    for t in range(len(firsts)):
        c = np.where(firsts[t], 0, c + 1)
        pos[t] = c
    return pos


def reward_by_pull(rollout, max_pulls: int) -> np.ndarray:
    """Mean reward at each position within an episode, over every lane and episode: (max_pulls,)."""
    pos = pull_index(rollout.firsts)
    r = rollout.rewards
    return np.array([r[pos == k].mean() if (pos == k).any() else np.nan for k in range(max_pulls)])


def command_line(script: str, argv=None) -> str:
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python", f"experiments/{Path(script).name}", *map(str, args)])


def main_guard(fn):
    """Run ``fn(argv)``; bad input ends with one line on stderr and exit code 2."""

    def wrapped(argv=None):
        try:
            return fn(argv)
        except SrmlError as e:
            print(f"{Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
            return 2

    return wrapped
