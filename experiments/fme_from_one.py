"""FME from ONE random genome (the paper's setup): which variants work, on how many seeds.

Every FME variant starts its pool from a single random founder (``founders = 1``)
and is compared, at equal env steps, with a fixed-sigma hill-climber of the same
network and with OpenAI-ES. Variants and baselines were tuned on tuning seeds
(``--tune``: seeds 100-104, never used below); the table uses held-out seeds 0-9.

Per env and method, results.json holds: ``seeds``, ``per_seed_final`` (held-out
fitness of the deployed genomes: the 16 highest recorded, over fresh lifetimes on
seeds never used in training), ``per_seed_pool_median``, ``success`` per seed
(pool median AND held-out >= the env's threshold at the end of the budget),
``success_rate`` with a Wilson 95% interval, ``steps_to_threshold`` (when the pool
median first reached it), ``env_steps``; paired comparisons with the hill-climber
(wins, losses, sign-test p). On srml/ReversalBandit-v0 (no threshold: it is compared
with the hill-climber) the held-out rollouts give the choice of the good arm around the
reversal, the regret per pull and the recovery after the reversal. Snapshots of the
best FME variant at 10% and 100% of the budget measure claim (b) of the paper: does a
later genome's own lifetime improve it more than an earlier one's, at equal fitness?

Figures: success.png (success rate per method with Wilson intervals, per-seed finals),
pool_reward.png and eval_fitness.png (mean over seeds), reversal.png, gain.png.

    python experiments/fme_from_one.py --quick --out /tmp/f1      # smoke test
    python experiments/fme_from_one.py --out runs/experiments/fme_from_one
    python experiments/fme_from_one.py --tune --out runs/experiments/fme_from_one_tune
"""

from __future__ import annotations

import io
import sys
import tomllib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from srml.envs import get_twin  # noqa: E402

from srml import plot  # noqa: E402
from srml.errors import SrmlError  # noqa: E402
from srml.evaluation import heldout_seed, reevaluate  # noqa: E402
from srml.rng import lane_keys  # noqa: E402
from srml.run.rundir import atomic_write_bytes  # noqa: E402

GAIN_AT = (0.1, 1.0)  # snapshots for claim (b): fractions of the budget


class Snapshots:
    """Generation hook: saves a sample of the pool (genomes + recorded fitness) of the methods
    named in ``labels`` when the run passes each fraction of its budget."""

    def __init__(self, labels: set[str], fractions=GAIN_AT, size: int = 64):
        self.labels, self.fractions, self.size = labels, fractions, size

    def __call__(self, method, run_dir: Path) -> None:
        if run_dir.parent.name not in self.labels or not hasattr(method, "pool"):
            return
        for i, frac in enumerate(self.fractions):
            path = run_dir / "snapshots" / f"pool{i}.npz"
            if method.env_steps >= frac * method.cfg.total_steps and not path.exists():
                pool = method.pool
                n = pool.size
                rows = np.random.default_rng(i).choice(n, min(self.size, n), replace=False)
                path.parent.mkdir(exist_ok=True)
                buf = io.BytesIO()
                fitness = method.population_fitness()[rows]
                np.savez(buf, genomes=pool.take(rows), fitness=fitness, env_steps=method.env_steps)
                atomic_write_bytes(path, buf.getvalue())


def success_table(plan, runs: dict, thresholds: dict) -> dict:
    """Per env and method: per-seed outcomes, success rate with its Wilson interval."""
    out = {}
    for env, by_label in runs.items():
        slug = common.env_slug(env)
        thr = thresholds.get(slug)
        for label, rs in by_label.items():
            finals = [float(r["final"]) for r in rs]
            medians = [float(r["curve"][-1, 1]) for r in rs]
            entry = {
                "method": rs[0]["name"],
                "seeds": [int(r["seed"]) for r in rs],
                "per_seed_final": finals,
                "per_seed_pool_median": medians,
                "env_steps": int(rs[0]["env_steps"]),
                "final": common.summarize(finals),
            }
            if thr is not None:
                ok = [m >= thr and f >= thr for m, f in zip(medians, finals, strict=True)]
                hit = []
                for r in rs:
                    above = np.flatnonzero(r["curve"][:, 1] >= thr)
                    hit.append(int(r["curve"][above[0], 0]) if len(above) else None)
                entry |= {
                    "threshold": thr,
                    "success": ok,
                    "success_rate": sum(ok) / len(ok),
                    "success_wilson95": common.wilson(sum(ok), len(ok)),
                    "steps_to_threshold": hit,
                }
            out.setdefault(slug, {})[label] = entry
    return out


def worst_aware_difference(f: float, ref: float) -> float:
    """f - ref, where a non-finite value ranks below every finite one (-inf/+inf), and two
    non-finite values tie (0)."""
    fin_f, fin_r = np.isfinite(f), np.isfinite(ref)
    if fin_f and fin_r:
        return f - ref
    if not fin_f and not fin_r:
        return 0.0
    return -np.inf if not fin_f else np.inf


def paired(table: dict, reference: str) -> dict:
    """Each method against ``reference`` seed by seed (held-out fitness): wins, losses, p."""
    out = {}
    for slug, by_label in table.items():
        if reference not in by_label:
            continue
        ref = dict(
            zip(by_label[reference]["seeds"], by_label[reference]["per_seed_final"], strict=True)
        )
        for label, e in by_label.items():
            if label == reference:
                continue
            # a seed whose held-out fitness is not finite (overflowed weights) lost to a finite one
            d = [
                worst_aware_difference(f, ref[s])
                for s, f in zip(e["seeds"], e["per_seed_final"], strict=True)
                if s in ref
            ]
            wins, losses = sum(x > 0 for x in d), sum(x < 0 for x in d)
            out.setdefault(slug, {})[label] = {
                "vs": reference,
                "wins": wins,
                "losses": losses,
                "ties": len(d) - wins - losses,
                "sign_test_p": common.sign_test(wins, losses),
                "mean_difference": common.summarize(d) if d else None,
            }
    return out


def reversal_curves(runs: dict, window=(-8, 16)) -> dict:
    """On srml/ReversalBandit-v0: the share of pulls on the good arm at each pull relative to
    the reversal, the regret per pull and the recovery after it, from the last held-out
    evaluation of every run (the twin's own reset kernel tells the good arm and the reversal
    pull of every lane and episode)."""
    out = {}
    for env, by_label in runs.items():
        if "ReversalBandit" not in env:
            continue
        for label, rs in by_label.items():
            curves, regrets = [], []
            for r in rs:
                c, reg = _aligned_choice(r, window)
                curves.append(c)
                regrets.append(reg)
            Y = np.array(curves)
            pre = Y[:, : -window[0]].mean(1)
            post = Y[:, -window[0] :]
            recovery = [int(np.argmax(p >= 0.5)) if (p >= 0.5).any() else None for p in post]
            out[label] = {
                "pull_from_reversal": list(range(*window)),
                "p_good_per_seed": Y.tolist(),
                "p_good_before": common.summarize(pre),
                "regret_per_pull": common.summarize(regrets),
                "pulls_to_recover": recovery,
            }
    return out


def _aligned_choice(r: dict, window) -> tuple[np.ndarray, float]:
    roll, cfg = r["final_rollout"], r["cfg"]
    twin = get_twin("srml/ReversalBandit-v0", **cfg.env_kwargs)
    reset, _ = twin.make_kernels(None)
    p_good, p_bad = twin.params["p_good"], twin.params["p_bad"]
    seed = heldout_seed(cfg.seed, len(r["evals"]) - 1)  # the last evaluation is the recorded one
    keys = lane_keys(seed, np.arange(roll.firsts.shape[1]))
    S, B = roll.firsts.shape
    hits = {k: [] for k in range(*window)}
    regret = []
    state, obs = np.zeros(twin.state_dim), np.zeros(1, np.float32)
    for lane in range(B):
        episode, pull = -1, 0
        for t in range(S):
            if roll.firsts[t, lane]:
                episode += 1
                pull = 0
                reset(state, obs, keys[lane], episode)
                start, rev = int(state[0]), int(state[2])
            good = start if pull < rev else 1 - start
            chose_good = int(roll.actions[t, lane]) == good
            regret.append((p_good - p_bad) * (not chose_good))
            k = pull - rev
            if window[0] <= k < window[1]:
                hits[k].append(chose_good)
            pull += 1
    curve = np.array([np.mean(hits[k]) if hits[k] else np.nan for k in range(*window)])
    return curve, float(np.mean(regret))


def self_improvement_gain(runs: dict, labels: set[str], lifetimes: int = 16) -> dict:
    """Claim (b): for pool members saved early and late in a run, the fitness gain one
    lifetime of self-modification brings (child minus parent, both re-evaluated on held-out
    seeds), at equal parent fitness (binned by the parent's re-evaluated fitness)."""
    from srml.methods import make_method

    out = {}
    for env, by_label in runs.items():
        for label, rs in by_label.items():
            if label not in labels:
                continue
            rows = []
            for r in rs:
                snaps = sorted((r["run_dir"] / "snapshots").glob("pool*.npz"))
                if len(snaps) < 2:
                    continue
                cfg = r["cfg"]
                m = make_method(r["name"], cfg, **r["method"].options.__dict__)
                try:
                    for i, path in enumerate(snaps):
                        with np.load(path) as z:
                            parents = z["genomes"][: cfg.batch]  # one lifetime each, one run
                        res = m.evaluate(np.resize(parents, (cfg.batch, parents.shape[1])),
                                         seed=heldout_seed(cfg.seed, 7000 + i))  # fmt: skip
                        children = res.genomes[: len(parents)]
                        fp = reevaluate(m, parents, lifetimes, k=8000 + i)["mean"]
                        fc = reevaluate(m, children, lifetimes, k=9000 + i)["mean"]
                        rows += [(r["seed"], i, a, b) for a, b in zip(fp, fc, strict=True)]
                finally:
                    m.close()
            if not rows:
                continue
            arr = np.array(rows, float)
            ok = np.isfinite(arr[:, 2]) & np.isfinite(arr[:, 3])
            arr = arr[ok]
            edges = np.quantile(arr[:, 2], [0, 0.25, 0.5, 0.75, 1.0])
            bins = []
            for lo, hi in zip(edges[:-1], edges[1:], strict=True):
                sel = (arr[:, 2] >= lo) & (arr[:, 2] <= hi)
                b = {"parent_fitness": [float(lo), float(hi)]}
                for i, name in enumerate(("early", "late")):
                    g = arr[sel & (arr[:, 1] == i)]
                    d = g[:, 3] - g[:, 2]
                    b[name] = {"n": int(len(g)), "gain": common.summarize(d) if len(d) else None}
                bins.append(b)
            out[f"{common.env_slug(env)}/{label}"] = {
                "snapshots_at": list(GAIN_AT),
                "lifetimes": lifetimes,
                "bins": bins,
            }
    return out


def best_per_family(table: dict, families: dict) -> dict:
    """Tuning: per env and family, the setting with the most seeds solved, then the highest
    mean held-out fitness."""
    best = {}
    for slug, by_label in table.items():
        for label, e in by_label.items():
            key = f"{slug}/{families[label]}"
            score = (e.get("success_rate", 0.0), e["final"]["final_fitness_mean"])
            if key not in best or score > best[key]["score"]:
                best[key] = {"setting": label, "score": score, **e}
    return best


def figures(table: dict, reversal: dict, out: Path) -> list[Path]:
    made = []
    envs = [e for e in table if any("success_rate" in v for v in table[e].values())]
    if envs:
        fig, axes = plot.panels(len(envs), title="FME from one founder: success on held-out seeds")
        for ax, slug in zip(axes, envs, strict=True):
            labels = list(table[slug])
            for i, label in enumerate(labels):
                e = table[slug][label]
                if "success_rate" not in e:
                    continue
                lo, hi = e["success_wilson95"]
                ax.bar(i, e["success_rate"], color=f"C{i % 10}", alpha=0.7)
                ax.errorbar(i, e["success_rate"], [[e["success_rate"] - lo], [hi - e["success_rate"]]],
                            color="k", capsize=3)  # fmt: skip
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
            ax.set_ylim(0, 1)
            ax.set_ylabel("share of seeds solved (Wilson 95%)")
            ax.set_title(
                f"{slug} (threshold {table[slug][labels[0]].get('threshold')})", fontsize=10
            )
            ax.grid(alpha=0.3, axis="y")
        made.append(plot.save_figure(fig, out / "success.png"))
    if reversal:
        fig, (ax,) = plot.panels(1, width=6, height=3.8)
        series = {}
        for label, r in reversal.items():
            series[label] = (np.array(r["pull_from_reversal"]), np.array(r["p_good_per_seed"]))
        plot.draw_seed_bands(ax, series, xlabel="pull relative to the reversal",
                             ylabel="P(choose the good arm)",
                             title="ReversalBandit: held-out choices around the reversal")  # fmt: skip
        ax.axvline(0, color="k", lw=0.8, ls=":")
        made.append(plot.save_figure(fig, out / "reversal.png"))
    return made


@common.main_guard
def main(argv=None) -> int:
    args = common.parse_args(__doc__, __file__, argv, modes=("tune",))
    spec = tomllib.loads(Path(args.config).read_text())
    methods = None
    if args.mode == "tune":  # every combination of the [grid.*] tables, on the tuning seeds
        from tune_baselines import grid_methods

        methods = grid_methods(spec.get("grid", {}))
        families = {label: m.pop("family") for label, m in methods.items()}
    plan = common.load_plan(args, methods=methods)
    thresholds = spec.get("thresholds", {})
    fme_labels = {lb for lb, m in plan.methods.items() if m.get("method", lb) == "fme"}
    gain_labels = set(spec.get("gain_methods", [])) if args.mode != "tune" else set()
    hook = Snapshots(gain_labels) if gain_labels else None
    runs = common.run_plan(plan, args.out, hook=hook, jobs=args.jobs)
    results = common.results_dict(plan, runs, common.command_line(__file__, argv))
    table = success_table(plan, runs, thresholds)
    results["from_one"] = table
    references = spec.get("reference") or []
    references = [references] if isinstance(references, str) else list(references)
    if references and args.mode != "tune":  # "paired": against the first; every one below
        by_ref = {ref: paired(table, ref) for ref in references}
        results["paired"] = by_ref[references[0]]
        results["paired_by_reference"] = by_ref
    reversal = reversal_curves(runs)
    if reversal:
        results["reversal"] = reversal
    if gain_labels:
        n = spec.get(args.mode, {}).get("gain_lifetimes", 16)  # quick: fewer (a smoke test)
        results["self_improvement_gain"] = self_improvement_gain(runs, gain_labels, n)
    if args.mode == "tune":
        results["best"] = best_per_family(table, families)
    results["fme_variants"] = sorted(fme_labels)
    common.write_results(args.out, results)
    common.standard_figures(plan, runs, args.out)
    figures(table, reversal, args.out)
    for slug, by_label in table.items():
        for label, e in by_label.items():
            rate = f", solved {sum(e['success'])}/{len(e['success'])}" if "success" in e else ""
            print(f"{slug} {label}: held-out {np.round(e['per_seed_final'], 1).tolist()}{rate}",
                  file=sys.stderr)  # fmt: skip
    print(f"{args.out / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SrmlError as e:
        print(f"fme_from_one.py: error: {e}", file=sys.stderr)
        sys.exit(2)
