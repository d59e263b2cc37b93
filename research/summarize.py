"""Tables from probe.py's JSON lines: per variant, per-seed pool median / held-out, success
count with a Wilson 95% interval, and the instruments' final readings (medians over seeds).

    python research/summarize.py research/results/screen1.jsonl [--markdown]
"""

from __future__ import annotations

import argparse
import json
import math
from collections import OrderedDict


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def med(v):
    v = sorted(x for x in v if x is not None and x == x)
    if not v:
        return float("nan")
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--steps", type=float, default=0, help="only runs of this many steps")
    a = ap.parse_args(argv)
    groups: dict = OrderedDict()
    for fn in a.files:
        for line in open(fn):
            r = json.loads(line)
            if a.steps and r["steps"] != int(a.steps):
                continue
            key = (r["env"], r["name"], r["steps"])
            groups.setdefault(key, {})[r["seed"]] = r  # a rerun of a seed replaces it
    print(
        "| env | variant | steps | per-seed pool median / held-out | solved | Wilson 95% | "
        "wchg | sib | div | norm | colres | rep | rec~rerun |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (env, name, steps), runs in groups.items():
        rs = [runs[s] for s in sorted(runs)]
        k = sum(r["success"] for r in rs)
        lo, hi = wilson(k, len(rs))
        per = ", ".join(f"{r['seed']}: {r['pool_median']:.0f}/{r['held_out']:.0f}" for r in rs)
        fin = [r["curve"][-1] for r in rs]

        def m(key, fmt="{:.3g}", fin=fin):
            return fmt.format(med([f.get(key) for f in fin]))

        print(
            f"| {env} | {name} | {steps / 1e6:.0f}M | {per} | {k}/{len(rs)} | "
            f"[{lo:.2f}, {hi:.2f}] | {m('weight_change')} | {m('sibling_spread')} | {m('diversity')} | {m('norm')} | "
            f"{m('column_residual')} | {m('repeatability', '{:.2f}')} | "
            f"{m('recorded_vs_rerun', '{:.2f}')} |"
        )


if __name__ == "__main__":
    main()
