"""Ablations of FME: one founder (the paper's literal setup) vs a full pool; selection rules;
self-modification switched off.

- fme: the defaults (the pool starts full of random founders, proportional selection);
- one_founder: the pool starts from ONE random genome (founders = 1);
- rank, softmax: the other selection rules (all monotonic in fitness);
- frozen: self-modification off, so FME can only re-select founders (no mutation either):
  whatever fme gains over frozen comes from the genomes rewriting themselves.

Writes results.json, pool_reward.png, eval_fitness.png and lineage.png.

    python experiments/ablations.py --quick --out /tmp/abl
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


@common.main_guard
def main(argv=None) -> int:
    args = common.parse_args(__doc__, __file__, argv)
    plan = common.load_plan(args)
    runs = common.run_plan(plan, args.out, jobs=args.jobs)
    results = common.results_dict(plan, runs, common.command_line(__file__, argv))
    common.write_results(args.out, results)
    common.standard_figures(plan, runs, args.out)
    print(f"{args.out / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
