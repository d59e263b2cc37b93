"""Bandits: does FME learn to learn, and does it need the reward as an input?

Claims tested (Kirsch & Schmidhuber 2022): (a) self-modification alone turns
random genomes into working learners, (b) FME beats a fixed hill-climber,
(c) with the reward as an input the network learns within its lifetime.
Compared at equal env steps on bandits whose arms are redrawn every episode
(so only what the agent learns from rewards inside an episode helps):

- fme: FME, the network sees its previous reward;
- fme_no_reward: the same without the reward input (cannot beat chance);
- hill_climber: the fixed hill-climber (no self-modification);
- hill_climber_sm, openai_es: a hill-climber and OpenAI-ES searching the
  initial weights of the same self-modifying network (explicit meta-optimizers);
- random_search: random self-modifying genomes, keep the best.

Writes results.json (final held-out fitness per method, and the in-lifetime
reward curves), pool_reward.png, eval_fitness.png, lineage.png and
lifetime_reward.png: the reward at each pull of an episode on held-out tasks
(a curve that rises within the episode is learning inside the lifetime).

    python experiments/bandits.py --quick --out /tmp/bandits
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from srml import plot  # noqa: E402


def lifetime_rewards(plan, runs) -> dict:
    """Reward at each pull of an episode, on the held-out tasks of the last evaluation."""
    out = {}
    for env, by_label in runs.items():
        for label, rs in by_label.items():
            pulls = int(rs[0]["cfg"].env_kwargs.get("episode_steps", 20))
            Y = np.stack([common.reward_by_pull(r["final_rollout"], pulls) for r in rs])
            mean, lo, hi = plot.bootstrap_band(Y)
            late = Y[:, pulls // 2 :].mean(1)  # second half of each episode
            out[f"{common.env_slug(env)}/{label}"] = {
                "pull": list(range(1, pulls + 1)),
                "reward_mean": mean.tolist(),
                "ci95_lo": lo.tolist(),
                "ci95_hi": hi.tolist(),
                "per_seed": Y.tolist(),
                "first_pull": common.summarize(Y[:, 0]),
                "second_half": common.summarize(late),
                "within_episode_gain": common.summarize(late - Y[:, 0]),
            }
    return out


def lifetime_figure(plan, runs, curves: dict, out: Path) -> Path:
    fig, axes = plot.panels(len(runs), title="reward at each pull of an episode, held-out tasks")
    for ax, env in zip(axes, runs, strict=True):
        series = {}
        for label in runs[env]:
            c = curves[f"{common.env_slug(env)}/{label}"]
            series[label] = (np.array(c["pull"]), np.array(c["per_seed"]))
        plot.draw_lifetime_reward(ax, series, title=common.env_slug(env))
    return plot.save_figure(fig, out / "lifetime_reward.png")


@common.main_guard
def main(argv=None) -> int:
    args = common.parse_args(__doc__, __file__, argv)
    plan = common.load_plan(args)
    runs = common.run_plan(plan, args.out, jobs=args.jobs)
    results = common.results_dict(plan, runs, common.command_line(__file__, argv))
    results["lifetime_reward"] = lifetime_rewards(plan, runs)
    common.write_results(args.out, results)
    common.standard_figures(plan, runs, args.out)
    lifetime_figure(plan, runs, results["lifetime_reward"], args.out)
    print(f"{args.out / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
