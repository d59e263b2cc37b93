"""Tune the baselines' step sizes before comparing them with FME (so they get a fair chance).

Runs every combination in the TOML's [grid.*] tables on tuning seeds that the
experiments never use, and reports the best setting per method and env by
final held-out fitness. FME gets no tuning (it runs its documented defaults).

    python experiments/tune_baselines.py --quick --out /tmp/tune
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def grid_methods(grid: dict) -> dict:
    """[grid.NAME] tables of lists -> one method entry per combination, labelled by its values."""
    methods = {}
    for family, spec in grid.items():
        keys = sorted(k for k, v in spec.items() if isinstance(v, list))
        fixed = {k: v for k, v in spec.items() if not isinstance(v, list)}
        for values in itertools.product(*(spec[k] for k in keys)):
            label = family + "".join(f",{k}={v}" for k, v in zip(keys, values, strict=True))
            combo = dict(zip(keys, values, strict=True))
            methods[label] = {"method": family, **fixed, **combo, "family": family}
    return methods


@common.main_guard
def main(argv=None) -> int:
    args = common.parse_args(__doc__, __file__, argv)
    import tomllib

    with open(args.config, "rb") as f:
        grid = tomllib.load(f).get("grid", {})
    methods = grid_methods(grid)
    families = {label: m.pop("family") for label, m in methods.items()}
    plan = common.load_plan(args, methods=methods)
    runs = common.run_plan(plan, args.out, jobs=args.jobs)
    results = common.results_dict(plan, runs, common.command_line(__file__, argv))
    best = {}
    for env_label, s in results["methods"].items():
        env, label = env_label.split("/", 1)
        key = f"{env}/{families[label]}"
        if key not in best or s["final_fitness_mean"] > best[key]["final_fitness_mean"]:
            best[key] = {"setting": label, **s}
    results["best"] = best
    common.write_results(args.out, results)
    for key, b in best.items():
        print(f"best {key}: {b['setting']} -> {b['final_fitness_mean']:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
