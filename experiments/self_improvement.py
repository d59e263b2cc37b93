"""Self-improving self-modification: do genomes from later in an FME run learn faster?

One FME run per seed on a bandit. At fixed fractions of the budget the pool's
deployed genomes (its highest-fitness members) are saved. Afterwards every
snapshot is run on held-out tasks (seeds never used in training, and other
bandit families with the same input and output sizes) with its per-step
rewards recorded. Within an episode the first pull carries no information, so
a snapshot whose reward rises faster over the following pulls learns faster
within its lifetime; a snapshot that is only better from the first pull on
has a better fixed policy, not a better learning rule.

Writes results.json (per snapshot and test task: held-out fitness, reward at
pull 1, mean over pulls 2-5, mean over the second half of the episode, and
the whole curve) and lifetime_reward.png (one panel per test task), plus the
training run's pool_reward.png, eval_fitness.png and lineage.png.

    python experiments/self_improvement.py --quick --out /tmp/si
"""

from __future__ import annotations

import io
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from srml import plot  # noqa: E402
from srml.backends import make_backend  # noqa: E402
from srml.errors import SrmlError  # noqa: E402
from srml.evaluation import heldout_seed  # noqa: E402
from srml.run.rundir import atomic_write_bytes  # noqa: E402
from srml.task import make_task  # noqa: E402


class Snapshots:
    """The generation hook: saves the deployed genomes when the run passes each fraction, as
    RUN_DIR/snapshots/snap<i>.npz (kept across a resume: recomputed generations are exact)."""

    def __init__(self, fractions: list[float]):
        self.fractions = sorted(fractions)

    def __call__(self, method, run_dir: Path) -> None:
        total = method.cfg.total_steps
        for i, frac in enumerate(self.fractions):
            path = run_dir / "snapshots" / f"snap{i}.npz"
            if method.env_steps >= frac * total and not path.exists():
                path.parent.mkdir(exist_ok=True)
                buf = io.BytesIO()
                np.savez(buf, genomes=method.candidates(), env_steps=method.env_steps)
                atomic_write_bytes(path, buf.getvalue())

    def load(self, run_dir: Path) -> list[tuple[float, int, np.ndarray]]:
        out = []
        for i, frac in enumerate(self.fractions):
            with np.load(run_dir / "snapshots" / f"snap{i}.npz") as z:
                out.append((frac, int(z["env_steps"]), z["genomes"]))
        return out


def test_curves(cfg, genomes: np.ndarray, test: dict, k: int):
    """Run ``genomes`` (tiled over the batch) on a held-out task; (fitness, reward by pull)."""
    tcfg = replace(cfg, env=test["env"], env_kwargs=test.get("env_kwargs", {}))
    task = make_task(tcfg)
    if task.layout.size != genomes.shape[1]:
        raise SrmlError(
            f"test task {test['env']} needs genomes of {task.layout.size} weights, not {genomes.shape[1]}"
        )
    backend = make_backend(tcfg.backend, task, tcfg.batch, tcfg.threads)
    try:
        lanes = genomes[np.arange(tcfg.batch) % len(genomes)]
        res = backend.run(lanes, heldout_seed(cfg.seed, 1000 + k), record=True)
    finally:
        backend.close()
    pulls = int(tcfg.env_kwargs.get("episode_steps", 20))
    return float(np.mean(res.fitness)), common.reward_by_pull(res, pulls)


def snapshot_label(frac: float, steps: int) -> str:
    return f"{frac:.0%} of budget ({steps / 1e6:.2g}M steps)"


@common.main_guard
def main(argv=None) -> int:
    args = common.parse_args(__doc__, __file__, argv)
    plan = common.load_plan(args)
    if len(plan.envs) != 1 or len(plan.methods) != 1:
        raise SrmlError("self_improvement runs one method on one env (the snapshots' source)")
    hook = Snapshots(plan.extra.get("snapshots", [0.05, 0.25, 1.0]))
    tests = plan.extra.get("test_envs") or [{"env": plan.envs[0]}]
    runs = common.run_plan(plan, args.out, hook=hook, jobs=args.jobs)
    results = common.results_dict(plan, runs, common.command_line(__file__, argv))
    [rs] = [rs for by in runs.values() for rs in by.values()]

    snaps: dict = {}
    fig, axes = plot.panels(
        len(tests), title="snapshots of one FME run: reward at each pull, held-out tasks"
    )
    for j, (ax, test) in enumerate(zip(axes, tests, strict=True)):
        name = common.env_slug(test["env"]) + "".join(
            f",{k}={v}" for k, v in test.get("env_kwargs", {}).items()
        )
        series, table = {}, {}
        for i, frac in enumerate(hook.fractions):
            fits, curves, steps = [], [], []
            for r in rs:
                f, s, genomes = hook.load(r["run_dir"])[i]
                fit, curve = test_curves(r["cfg"], genomes, test, j)
                fits.append(fit), curves.append(curve), steps.append(s)
            Y = np.stack(curves)
            label = snapshot_label(frac, int(np.mean(steps)))
            series[label] = (np.arange(1, Y.shape[1] + 1), Y)
            mean, lo, hi = plot.bootstrap_band(Y)
            table[label] = {
                "fraction": frac,
                "env_steps": int(np.mean(steps)),
                "held_out_fitness": common.summarize(fits),
                "first_pull": common.summarize(Y[:, 0]),
                "pulls_2_to_5": common.summarize(Y[:, 1:5].mean(1)),
                "second_half": common.summarize(Y[:, Y.shape[1] // 2 :].mean(1)),
                "reward_by_pull": mean.tolist(),
                "ci95_lo": lo.tolist(),
                "ci95_hi": hi.tolist(),
            }
        snaps[name] = table
        plot.draw_lifetime_reward(ax, series, title=name)
    plot.save_figure(fig, args.out / "lifetime_reward.png")
    results["snapshots"] = snaps
    common.write_results(args.out, results)
    common.standard_figures(plan, runs, args.out)
    print(f"{args.out / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
