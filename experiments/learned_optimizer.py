"""Learned optimizers (issue 11): an SRWM meta-trained by FME as a per-parameter update rule,
against Adam, SGD and the same SRWM meta-trained by OpenAI-ES.

On ``srml/LearnedOptimizer-v0`` the agent is the update rule: the env shows a problem's
parameters one at a time, the action is that parameter's update, and a problem's return is
the log-factor by which its loss went down (``envs/learned_optimizer.py``). Every method
trains for the same env-step budget on problems of one family (``families`` in the TOML:
quadratic, linreg, ...) at the env's default size (dim 8, 20 optimizer steps per problem):

- fme, fme_* : FME with its defaults, and the FME settings that won the tuning runs
  (``learned_optimizer_tune.toml``: tuning seeds, validation problems);
- openai_es: OpenAI-ES (antithetic, centered ranks, Adam) meta-training the initial weights of
  the same self-modifying network: the explicit meta-optimizer FME does without.

What each run deploys (FME: the 16 pool members with the highest recorded fitness, re-run on
validation problems drawn from the run's own held-out seeds, the best one kept; ES: its mean)
is then run on TEST problems (lanes of ``test_seed``, never used in training or tuning), in
lifetimes of ``eval_problems`` problems, at each setting in ``settings``:

- train: the training setting; dim4x: 4x the parameters; horizon2x/horizon5x: 2x / 5x the
  optimizer steps per problem (the env's per-parameter design needs no change for either).

The very same problems are solved by Adam at lr 1e-3, and by Adam and SGD with the learning
rate tuned per family and setting on tuning problems (``srml.optimizers.tune_lr``, seeds 100
and 101). Per problem, the final loss ratio is ``(L_K + f L_0)`` of the rule over that of the
baseline (``f`` = the env's loss_floor, 1e-6), i.e. ``exp(return_baseline - return_rule)``; per
run we report its median over the test problems and the share of problems the rule wins.

Across problems: the training setting again with lifetimes of ``across_problems`` problems,
the return at each position of the lifetime (the weights are never reset in a lifetime, so a
return that rises with the position is learning across problems).

Writes results.json (the usual per-method held-out fitness, plus ``learned_optimizer``: per
family, setting, method and seed the ratios, win shares, returns and curves; ``baselines``;
``across_problems``; ``aim``: issue 11's aim, per seed), table.md, and the figures
pool_reward.png, eval_fitness.png, lineage.png, loss_curves.png (median normalised loss over
optimizer steps on the test problems), loss_ratio.png (per-seed median final-loss ratio to
tuned Adam and to Adam 1e-3) and across_problems.png.

    python experiments/learned_optimizer.py --quick --out /tmp/lo
    python experiments/learned_optimizer.py --jobs 2   # two runs at a time (same numbers)
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from srml.envs.learned_optimizer import sizes  # noqa: E402

from srml import optimizers, plot  # noqa: E402
from srml.backends import make_backend  # noqa: E402
from srml.errors import SrmlError  # noqa: E402
from srml.evaluation import heldout_seed  # noqa: E402
from srml.run.rundir import atomic_write_bytes  # noqa: E402
from srml.task import make_task  # noqa: E402

ENV = "srml/LearnedOptimizer-v0"
SETTINGS = {  # name -> (dim multiplier, steps_per_problem multiplier)
    "train": (1, 1),
    "dim4x": (4, 1),
    "horizon2x": (1, 2),
    "horizon5x": (1, 5),
}
BASELINES = ("adam_1e-3", "adam_tuned", "sgd_tuned")
VALIDATION = 999  # held-out evaluation number of the validation problems (per training seed)


# ------------------------------------------------------------------ problems and settings


def family_kwargs(plan, family: str) -> dict:
    """The env kwargs a family trains on: the plan's env_kwargs (the topmost of the layers
    ``common.Plan.run_config`` merges), updated by the family's own (``family_kwargs.FAMILY``
    in the mode's section) and its problem."""
    layers = (plan.config, plan.env_config.get(ENV, {}), plan.mode_config,
              plan.mode_env_config.get(ENV, {}))  # fmt: skip
    base = {}
    for layer in layers:
        base = dict(layer.get("env_kwargs", base))
    return {**base, **plan.extra.get("family_kwargs", {}).get(family, {}), "problem": family}


def setting_kwargs(train_kwargs: dict, setting: str) -> dict:
    if setting not in SETTINGS:
        raise SrmlError(f"unknown setting {setting!r}; choose from {sorted(SETTINGS)}")
    m_dim, m_steps = SETTINGS[setting]
    p = optimizers.env_params(**train_kwargs)
    kw = dict(train_kwargs)
    if m_dim != 1:
        kw["dim"] = int(p["dim"]) * m_dim
    if m_steps != 1:
        kw["steps_per_problem"] = int(p["steps_per_problem"]) * m_steps
    return kw


def shape_of(env_kwargs: dict) -> tuple[int, int, float]:
    """(parameters D, optimizer steps K, loss_floor) of a setting."""
    p = optimizers.env_params(**env_kwargs)
    D = sizes(p["problem"], p["dim"], p["n_data"], p["rotations"], p["hidden"]).D
    return D, int(p["steps_per_problem"]), float(p["loss_floor"])


def normalised_curve(losses: np.ndarray, floor: float) -> np.ndarray:
    """(n, K + 1) losses -> (L_k + f L_0) / L_0, the quantity the env's return measures."""
    L0 = losses[:, :1]
    with np.errstate(invalid="ignore", over="ignore"):
        c = (losses + floor * L0) / L0
    return np.where(np.isfinite(c), c, np.inf)


# --------------------------------------------------------------------------- the rule


def run_rule(cfg, genome, env_kwargs, lanes, n_problems, seed, backend) -> dict:
    """One genome on ``lanes`` lanes of ``seed`` for lifetimes of ``n_problems`` problems:
    per-problem returns (lanes, n_problems) and normalised loss curves (lanes, n_problems, K+1)."""
    D, K, floor = shape_of(env_kwargs)
    c = replace(
        cfg, env_kwargs=env_kwargs, lifetime=n_problems * D * K, batch=lanes, backend=backend
    )
    be = make_backend(backend, make_task(c), lanes, c.threads)
    try:
        r = be.run(np.repeat(np.asarray(genome, np.float32)[None], lanes, axis=0), seed, True)
    finally:
        be.close()
    if not r.firsts[:: D * K].all():
        raise SrmlError("a problem did not start where expected")
    rew = np.asarray(r.rewards, np.float64).reshape(n_problems, K, D, lanes)
    per_step = rew.sum(axis=2)  # (P, K, lanes): the reward of optimizer step k
    returns = per_step.sum(axis=1).T  # (lanes, P)
    cum = np.concatenate([np.zeros((n_problems, 1, lanes)), np.cumsum(per_step, axis=1)], 1)
    with np.errstate(over="ignore"):
        curves = (1.0 + floor) * np.exp(-cum)  # (L_k + f L_0) / L_0
    curves = np.transpose(curves, (2, 0, 1))  # (lanes, P, K + 1)
    bad = ~np.isfinite(returns)
    returns[bad] = -np.inf
    return {"returns": returns, "curves": curves}


def choose_genome(method, cfg, train_kwargs, x) -> tuple[np.ndarray, dict]:
    """The genome a run deploys: its single candidate, or (FME) the candidate with the best
    mean return on validation problems of the run's own held-out seeds (never test problems)."""
    cands = np.asarray(method.candidates(), np.float32)
    if len(cands) == 1:
        return cands[0], {"candidates": 1}
    seed = heldout_seed(cfg.seed, VALIDATION)
    scores = [
        float(np.mean(run_rule(cfg, g, train_kwargs, x["val_lanes"], x["eval_problems"],
                               seed, cfg.backend)["returns"]))
        for g in cands
    ]  # fmt: skip
    best = int(np.argmax(scores))
    return cands[best], {
        "candidates": len(cands),
        "validation_return": scores,
        "chosen": best,
        "recorded_fitness": [float(v) for v in method.candidates_fitness()],
    }


def eval_run(r, plan, family, x) -> dict:
    """The held-out measurements of one trained run (cached in its run directory)."""
    path = r["run_dir"] / "lo_eval.json"
    if path.exists():
        return json.loads(path.read_text())
    cfg = r["cfg"]
    train_kwargs = family_kwargs(plan, family)
    genome, chosen = choose_genome(r["method"], cfg, train_kwargs, x)
    out = {"chosen": chosen, "settings": {}}
    P, lanes, seed = x["eval_problems"], x["eval_lanes"], x["test_seed"]
    for s in x["settings"]:
        kw = setting_kwargs(train_kwargs, s)
        backend = cfg.backend if s == "train" else x["other_backend"]
        if s == "train":  # the across-problems lifetime; its first P problems are the test
            res = run_rule(cfg, genome, kw, lanes, max(P, x["across_problems"]), seed, backend)
            out["across_problems"] = res["returns"].mean(0).tolist()
            out["across_problems_per_lane"] = res["returns"].tolist()
        else:
            res = run_rule(cfg, genome, kw, lanes, P, seed, backend)
        R = res["returns"][:, :P]
        C = res["curves"][:, :P].reshape(lanes * P, -1)
        out["settings"][s] = {
            "returns": R.reshape(-1).tolist(),  # lane-major, like optimizers.problems
            "median_curve": np.median(C, axis=0).tolist(),
        }
    atomic_write_bytes(path, (json.dumps(out) + "\n").encode())
    return out


# ---------------------------------------------------------------------------- baselines


def baselines(plan, family, x, out: Path) -> dict:
    """Adam 1e-3, tuned Adam and tuned SGD on the test problems of every setting (cached)."""
    path = out / family / "baselines.json"
    cache = json.loads(path.read_text()) if path.exists() else {}
    train_kwargs = family_kwargs(plan, family)
    P, lanes, seed = x["eval_problems"], x["eval_lanes"], x["test_seed"]
    for s in x["settings"]:
        if s in cache:
            continue
        kw = setting_kwargs(train_kwargs, s)
        _, K, floor = shape_of(kw)
        probs = optimizers.problems(seed, lanes, episodes=P, **kw)
        entry = {}
        for name in BASELINES:
            method = name.split("_")[0]
            if name.endswith("tuned"):
                lr, scores = optimizers.tune_lr(method, n=x["tune_problems"], **kw)
            else:
                lr, scores = optimizers.DEFAULT_ADAM_LR, None
            ev = optimizers.evaluate(method, lr, probs, K, floor)
            entry[name] = {
                "lr": lr,
                "returns": ev.returns.tolist(),
                "median_curve": np.median(normalised_curve(ev.losses, floor), axis=0).tolist(),
                "mean_return": float(np.mean(ev.returns)),
                "tuning_returns": scores,  # lr -> mean return on the tuning problems
            }
        cache[s] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (json.dumps(cache) + "\n").encode())
    return cache


def compare(rule: np.ndarray, base: np.ndarray) -> dict:
    """Per-problem final-loss ratio rule / baseline = exp(R_base - R_rule) (floored losses)."""
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = np.exp(np.asarray(base) - np.asarray(rule))
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    return {
        "median_ratio": float(np.median(ratio)),
        "win_share": float(np.mean(np.asarray(rule) > np.asarray(base))),
    }


# ------------------------------------------------------------------------------ summary


def lo_results(plan, runs, evals, base, x) -> dict:
    res, twin = {}, x["twin"]
    for family, by_label in runs.items():
        fam = res[family] = {}
        for s in x["settings"]:
            b = base[family][s]
            entry = fam[s] = {
                "baselines": {
                    k: {"lr": v["lr"], "mean_return": v["mean_return"],
                        "median_curve": v["median_curve"]}
                    for k, v in b.items()
                },
                "methods": {},
            }  # fmt: skip
            for bn in ("adam_1e-3", "sgd_tuned"):  # baselines against tuned Adam, for scale
                entry["baselines"][bn]["vs_adam_tuned"] = compare(
                    b[bn]["returns"], b["adam_tuned"]["returns"]
                )
            for label, rs in by_label.items():
                per_seed = []
                for r in rs:
                    e = evals[family][label][r["seed"]]["settings"][s]
                    R = np.array(e["returns"])
                    row = {"seed": r["seed"], "mean_return": float(np.mean(R))}
                    for bn in BASELINES:
                        c = compare(R, b[bn]["returns"])
                        row[f"ratio_vs_{bn}"] = c["median_ratio"]
                        row[f"wins_vs_{bn}"] = c["win_share"]
                    if label != twin and twin in by_label:  # the ES-trained twin, same seed
                        c = compare(R, evals[family][twin][r["seed"]]["settings"][s]["returns"])
                        row["ratio_vs_twin"] = c["median_ratio"]
                        row["wins_vs_twin"] = c["win_share"]
                    row["median_curve"] = e["median_curve"]
                    per_seed.append(row)
                entry["methods"][label] = {
                    "per_seed": per_seed,
                    "median_over_seeds": {
                        k: float(np.median([p[k] for p in per_seed]))
                        for k in per_seed[0]
                        if k not in ("seed", "median_curve")
                    },
                }
    return res


def across_problems(runs, evals, base, x) -> dict:
    out = {}
    for family, by_label in runs.items():
        fam = out[family] = {}
        for label, rs in by_label.items():
            Y = np.array([evals[family][label][r["seed"]]["across_problems"] for r in rs])
            diffs = []
            for r in rs:  # later problems minus the first, paired per lane
                L = np.array(evals[family][label][r["seed"]]["across_problems_per_lane"])
                diffs.append(float(np.mean(L[:, 1:].mean(1) - L[:, 0])))
            fam[label] = {
                "position": list(range(1, Y.shape[1] + 1)),
                "return_mean_over_seeds": Y.mean(0).tolist(),
                "per_seed": Y.tolist(),
                "later_minus_first": common.summarize(diffs),
            }
    return out


def aim(lo: dict, x) -> dict:
    """Issue 11's aim, per FME run: final loss below Adam 1e-3's (median ratio < 1) on the
    training setting, and within 2x of tuned Adam (median ratio <= 2) at 4x the dim."""
    out = {}
    for family in x["aim_families"]:
        if family not in lo or "dim4x" not in lo[family]:
            continue
        for label in lo[family]["train"]["methods"]:
            rows = []
            tr = lo[family]["train"]["methods"][label]["per_seed"]
            d4 = lo[family]["dim4x"]["methods"][label]["per_seed"]
            for a, b in zip(tr, d4, strict=True):
                beats = a["ratio_vs_adam_1e-3"] < 1.0
                within = b["ratio_vs_adam_tuned"] <= 2.0
                rows.append({
                    "seed": a["seed"],
                    "train_ratio_vs_adam_1e-3": a["ratio_vs_adam_1e-3"],
                    "dim4x_ratio_vs_adam_tuned": b["ratio_vs_adam_tuned"],
                    "beats_adam_1e-3": beats,
                    "within_2x_tuned_adam_at_4x_dim": within,
                    "met": beats and within,
                })  # fmt: skip
            out[f"{family}/{label}"] = {"per_seed": rows, "seeds_met": sum(r["met"] for r in rows)}
    return out


def table(lo: dict, x) -> str:
    """Markdown: one row per family x method x seed."""
    cols = [("train", "adam_1e-3"), ("train", "adam_tuned")] + [
        (s, "adam_tuned") for s in x["settings"] if s != "train"
    ]
    cols += [(s, "twin") for s in x["settings"]]
    head = ["family", "method", "seed", "return (train)"] + [
        f"{s}: ratio / wins vs {b.replace('_', ' ') if b != 'twin' else x['twin']}" for s, b in cols
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for family, fam in lo.items():
        for label, m in fam["train"]["methods"].items():
            for i, row in enumerate(m["per_seed"]):
                cells = [family, label, str(row["seed"]), f"{row['mean_return']:.2f}"]
                for s, b in cols:
                    p = fam[s]["methods"][label]["per_seed"][i]
                    if f"ratio_vs_{b}" not in p:
                        cells.append("-")
                        continue
                    cells.append(f"{p[f'ratio_vs_{b}']:.2f} / {100 * p[f'wins_vs_{b}']:.0f}%")
                lines.append("| " + " | ".join(cells) + " |")
        for bn in ("adam_1e-3", "sgd_tuned"):
            cells = [family, bn, "-", f"{fam['train']['baselines'][bn]['mean_return']:.2f}"]
            for s, b in cols:
                if b == "twin":
                    cells.append("-")
                elif b == "adam_tuned":
                    c = fam[s]["baselines"][bn]["vs_adam_tuned"]
                    cells.append(f"{c['median_ratio']:.2f} / {100 * c['win_share']:.0f}%")
                else:
                    cells.append("1 / -" if bn == b else "-")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ figures


def loss_curve_figure(lo: dict, x, out: Path) -> Path:
    import matplotlib.pyplot as plt

    fams, sets = list(lo), list(x["settings"])
    fig, axes = plt.subplots(len(fams), len(sets), figsize=(3.6 * len(sets), 3.0 * len(fams)),
                             dpi=100, squeeze=False)  # fmt: skip
    for i, family in enumerate(fams):
        for j, s in enumerate(sets):
            ax, e = axes[i, j], lo[family][s]
            for n, (label, m) in enumerate(e["methods"].items()):
                Y = np.array([p["median_curve"] for p in m["per_seed"]])
                k = np.arange(Y.shape[1])
                for y in Y:
                    ax.plot(k, y, color=f"C{n}", alpha=0.25, lw=0.7)
                ax.plot(k, np.exp(np.log(Y).mean(0)), color=f"C{n}", lw=1.8,
                        label=f"{label} ({len(Y)} seeds)")  # fmt: skip
            for bn, style in zip(BASELINES, ("k:", "k--", "k-."), strict=True):
                y = np.array(e["baselines"][bn]["median_curve"])
                lr = e["baselines"][bn]["lr"]
                ax.plot(np.arange(len(y)), y, style, lw=1.2, label=f"{bn} (lr {lr:.3g})")
            ax.set_yscale("log")
            ax.set_title(f"{family}, {s}", fontsize=9)
            ax.set_xlabel("optimizer step")
            if j == 0:
                ax.set_ylabel("median (L_k + f L_0) / L_0")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=5.5)
    fig.suptitle("held-out test problems: median normalised loss (thin: one training seed)")
    return plot.save_figure(fig, out / "loss_curves.png")


def ratio_figure(lo: dict, x, out: Path) -> Path:
    import matplotlib.pyplot as plt

    fams, sets = list(lo), list(x["settings"])
    fig, axes = plt.subplots(1, len(fams), figsize=(4.8 * len(fams), 3.4), dpi=100, squeeze=False)
    for ax, family in zip(axes[0], fams, strict=True):
        labels = list(lo[family]["train"]["methods"])
        width = 0.8 / max(len(labels), 1)
        for n, label in enumerate(labels):
            for j, s in enumerate(sets):
                rows = lo[family][s]["methods"][label]["per_seed"]
                xs = (
                    j
                    + (n - (len(labels) - 1) / 2) * width
                    + np.linspace(-0.1, 0.1, len(rows)) * width
                )
                ax.scatter(xs, [r["ratio_vs_adam_tuned"] for r in rows], s=12, color=f"C{n}",
                           label=label if j == 0 else None)  # fmt: skip
                ax.scatter(xs, [r["ratio_vs_adam_1e-3"] for r in rows], s=12, marker="x",
                           color=f"C{n}", alpha=0.6)  # fmt: skip
        ax.axhline(1.0, color="k", lw=0.8)
        ax.axhline(2.0, color="k", lw=0.8, ls="--")
        ax.set_xticks(range(len(sets)), sets, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("median final-loss ratio, rule / baseline")
        ax.set_title(f"{family}: dots vs tuned Adam, x vs Adam 1e-3", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return plot.save_figure(fig, out / "loss_ratio.png")


def across_figure(ap: dict, out: Path) -> Path:
    fig, axes = plot.panels(len(ap), title="return per problem by its position in a lifetime")
    for ax, (family, by_label) in zip(axes, ap.items(), strict=True):
        series = {
            label: (np.array(v["position"]), np.array(v["per_seed"]))
            for label, v in by_label.items()
        }
        plot.draw_seed_bands(ax, series, xlabel="problem within the lifetime",
                             ylabel="return (ln loss-reduction factor)", title=family)  # fmt: skip
    return plot.save_figure(fig, out / "across_problems.png")


# --------------------------------------------------------------------------------- main


def extras(plan) -> dict:
    e = plan.extra
    x = {
        "families": list(e.get("families", ["quadratic", "linreg"])),
        "settings": list(e.get("settings", ["train", "dim4x", "horizon5x"])),
        "test_seed": int(e.get("test_seed", 12345)),
        "eval_lanes": int(e.get("eval_lanes", 64)),
        "eval_problems": int(e.get("eval_problems", 4)),
        "across_problems": int(e.get("across_problems", 10)),
        "val_lanes": int(e.get("val_lanes", 32)),
        "tune_problems": int(e.get("tune_problems", 32)),
        "other_backend": str(e.get("other_backend", "numpy")),
        "aim_families": list(e.get("aim_families", ["quadratic", "linreg"])),
        "twin": str(e.get("twin", "openai_es")),  # the ES-trained twin the others are paired with
    }
    if "train" not in x["settings"]:
        raise SrmlError("settings must include 'train'")
    if x["test_seed"] in optimizers.TUNE_SEEDS:
        raise SrmlError(f"test_seed {x['test_seed']} is a tuning seed of srml.optimizers")
    return x


def train_and_eval(plan, family, label, seed, x, out: Path) -> tuple[dict, dict]:
    """Train one run (or read it back from its directory) and measure it on the test
    problems (or read its cached measurements back)."""
    name, cfg, options = plan.run_config(ENV, label, seed)
    cfg = replace(cfg, env_kwargs=family_kwargs(plan, family))
    run_dir = out / family / label / f"seed{seed}"
    r = common.run_one(name, cfg, options, plan.evals, run_dir)
    r |= {"run_dir": run_dir, "cfg": r["method"].cfg, "name": name, "seed": seed}
    return r, eval_run(r, plan, family, x)


def _worker(args: tuple) -> str:
    """A worker of ``--jobs N``: one run trained and measured (one numba thread), its
    results left in its run directory for the main process to read back in order."""
    try:
        import numba

        numba.set_num_threads(1)
    except (ImportError, ValueError):
        pass
    r, e = train_and_eval(*args)
    tr = np.mean(e["settings"]["train"]["returns"])
    return f"test return {tr:.2f}, {r['env_steps'] / 1e6:.1f}M steps in {r['wall_s']:.0f}s"


def train_all(plan, x, out: Path, jobs: int = 1) -> tuple[dict, dict]:
    """Every family x method x seed, trained and measured; with ``jobs > 1`` in that many
    processes first (like ``common.run_plan``), then read back in order (same numbers)."""
    todo = [(f, label, s) for f in x["families"] for label in plan.methods for s in plan.seeds]
    if jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # fork: the workers inherit the imported modules (nothing is compiled yet)
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("fork")) as ex:
            futures = {ex.submit(_worker, (plan, *k, x, out)): k for k in todo}
            for i, fut in enumerate(as_completed(futures), 1):
                f, label, seed = futures[fut]
                print(f"[trained {i}/{len(todo)}] {f} {label} seed {seed}: {fut.result()}",
                      file=sys.stderr, flush=True)  # fmt: skip
    runs: dict = {}
    evals: dict = {}
    for n, (family, label, seed) in enumerate(todo, 1):
        r, e = train_and_eval(plan, family, label, seed, x, out)
        runs.setdefault(family, {}).setdefault(label, []).append(r)
        evals.setdefault(family, {}).setdefault(label, {})[seed] = e
        tr = np.mean(e["settings"]["train"]["returns"])
        print(
            f"[{n}/{len(todo)}] {family} {label} seed {seed}: test return {tr:.2f}, "
            f"{r['env_steps'] / 1e6:.1f}M steps in {r['wall_s']:.0f}s",
            file=sys.stderr,
            flush=True,
        )
    return runs, evals


@common.main_guard
def main(argv=None) -> int:
    args = common.parse_args(__doc__, __file__, argv)
    plan = common.load_plan(args)
    x = extras(plan)
    args.out.mkdir(parents=True, exist_ok=True)
    runs, evals = train_all(plan, x, args.out, jobs=args.jobs)
    base = {f: baselines(plan, f, x, args.out) for f in x["families"]}
    results = common.results_dict(plan, runs, common.command_line(__file__, argv))
    lo = lo_results(plan, runs, evals, base, x)
    results["learned_optimizer"] = lo
    results["across_problems"] = across_problems(runs, evals, base, x)
    results["aim"] = aim(lo, x)
    results["evaluation"] = {k: v for k, v in x.items()} | {
        "ratio": "per test problem, (L_K + f L_0) of the rule over the baseline's "
        "(= exp(return_baseline - return_rule)); per run its median over the test problems",
        "wins": "share of test problems where the rule's return is higher",
        "chosen": {
            f"{f}/{label}/seed{s}": e["chosen"]
            for f, by in evals.items()
            for label, by_seed in by.items()
            for s, e in by_seed.items()
        },
    }
    common.write_results(args.out, results)
    (args.out / "table.md").write_text(table(lo, x))
    common.standard_figures(plan, runs, args.out)
    loss_curve_figure(lo, x, args.out)
    ratio_figure(lo, x, args.out)
    across_figure(results["across_problems"], args.out)
    print(f"{args.out / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
