"""Classic control: FME against OpenAI-ES and a hill-climber at equal env steps.

CartPole, Acrobot, MountainCar and Pendulum (srml's compiled twins of
Gymnasium's tasks, same dynamics). Fitness is the mean return per episode
begun in a lifetime (the unfinished episode counts), higher is better.

- fme: FME with its documented defaults (no tuning);
- openai_es: OpenAI-ES on a fixed network (the standard ES baseline);
- openai_es_sm: OpenAI-ES on the initial weights of the self-modifying network;
- hill_climber: the fixed hill-climber.

Baseline step sizes come from experiments/tune_baselines.py (tuning seeds,
CartPole). Writes results.json, pool_reward.png (population median, mean
over seeds with a bootstrap 95% band), eval_fitness.png (held-out fitness of
the deployed genomes) and lineage.png (FME, seed 0).

    python experiments/classic_control.py --quick --out /tmp/cc
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

# Gymnasium's reward_threshold ("solved") per env, for the table; Pendulum has none.
THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MountainCar-v0": -110.0}


@common.main_guard
def main(argv=None) -> int:
    args = common.parse_args(__doc__, __file__, argv)
    plan = common.load_plan(args)
    runs = common.run_plan(plan, args.out, jobs=args.jobs)
    results = common.results_dict(plan, runs, common.command_line(__file__, argv))
    results["thresholds"] = {
        common.env_slug(e): THRESHOLDS.get(common.env_slug(e)) for e in plan.envs
    }
    common.write_results(args.out, results)
    common.standard_figures(plan, runs, args.out)
    print(f"{args.out / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
