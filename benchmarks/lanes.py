"""The numba backend's fused kernels side by side, interleaved in one process.

    python benchmarks/lanes.py [--pop 1024] [--repeats 10] [--threads 1]
                               [--update delta|tanh] [--hidden N ...] [--trained STEPS]

Runs the per-agent kernel, the lanes layout and the lanes with ``--fast-exp`` on the peers'
workload (one-layer one-head SRWM, d_in 8, CartPole, lifetime 500, sampled actions, the same
genomes and seed; ``--update tanh`` and ``--hidden`` time those variants instead), one after
another ``--repeats`` times, and prints each one's best agent-steps/s and its ratio to the
per-agent kernel. Interleaving keeps a busy machine's drift out of the ratios better than
separate processes do.

The genomes are fresh (N(0, 0.1^2), as the peers'), or with ``--trained STEPS`` the pool of
``srml run``'s default job (FME, srml's default CartPole network, seed 0) after that many env
steps, tiled to ``--pop``, run on that network: a trained pool runs at another speed than
fresh genomes (its peaked softmaxes underflow exp). 20000000 is the default job's whole run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from srml.backends import make_backend
from srml.config import Config
from srml.task import make_task

KERNELS = {
    "agent": ("agent", False),
    "lanes": ("lanes", False),
    "lanes --fast-exp": ("lanes", True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pop", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="numba threads, 0 = all (default: 1)")
    ap.add_argument("--lifetime", type=int, default=500)
    ap.add_argument("--update", choices=("delta", "tanh"), default="delta")
    ap.add_argument("--hidden", type=int, nargs="*", default=[], help="hidden layer widths")
    ap.add_argument("--trained", type=int, default=0, metavar="STEPS",
                    help="time the pool of an FME run of STEPS env steps (default: fresh genomes)")  # fmt: skip
    args = ap.parse_args()
    engines = {}
    net = {} if args.trained else {"episode_flag": False}  # trained: srml's default network
    for name, (layout, fast) in KERNELS.items():
        cfg = Config(batch=args.pop, pool_size=args.pop, lifetime=args.lifetime,
                     fast_exp=fast, update=args.update, hidden=args.hidden, **net)  # fmt: skip
        task = make_task(cfg)
        engines[name] = make_backend("numba", task, args.pop, args.threads, layout=layout)
    genomes, source = task.layout.init(np.random.default_rng(0), args.pop, 0.1), "fresh"
    if args.trained:
        genomes, source = trained_pool(cfg, args.trained, args.pop)
    for e in engines.values():
        e.run(genomes, seed=1)  # compile
    best = dict.fromkeys(engines, float("inf"))
    for _ in range(args.repeats):
        for name, e in engines.items():
            t = time.perf_counter()
            e.run(genomes, seed=1)
            best[name] = min(best[name], time.perf_counter() - t)
    threads = engines["agent"].threads
    n = args.pop * args.lifetime
    print(f"P={args.pop} T={args.lifetime} threads={threads} best of {args.repeats}, interleaved"
          f" (update {args.update}, hidden {args.hidden}; genomes {source})")  # fmt: skip
    for name, s in best.items():
        print(
            f"{name:<18} {n / s:.3e} agent-steps/s  {best['agent'] / s:.2f}x the per-agent kernel"
        )


def trained_pool(cfg: Config, steps: int, pop: int) -> tuple[np.ndarray, str]:
    """The pool of ``srml run``'s default job after ``steps`` env steps (``cfg``'s network
    options, FME's defaults otherwise), tiled to ``pop``."""
    from srml import FME

    net = {k: getattr(cfg, k) for k in ("update", "hidden")}
    fme = FME(Config(total_steps=steps, seed=0, progress=False, **net))
    fme.run()
    f, pool = fme.population_fitness(), fme.pool.genomes[: fme.pool.size]
    fme.close()
    note = f"trained {steps:.0e} env steps, pool median {np.median(f):.0f}"
    return np.resize(pool, (pop, pool.shape[1])), note


if __name__ == "__main__":
    main()
