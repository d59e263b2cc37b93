"""How often the kernels' softmax divisions see zero or subnormal terms, per warp of agents.

    python benchmarks/softmax_underflow.py [--trained 2e7] [--pop 1024] [--lifetime 500]

Runs the numpy reference (the same arithmetic as the compiled kernels) on srml's default
CartPole network, once on fresh genomes and once on the pool of ``srml run``'s default job
after ``--trained`` env steps (as ``benchmarks/lanes.py --trained``), and records every softmax's
terms before normalisation (key, query and action softmaxes). Prints the share of terms that
are exactly 0, subnormal, or below ``srml.kernels.DIV_TINY``, and, grouping agents in warps of
32 as the GPU runs them, the share of (warp, step, division site) triples where at least one
lane's numerator is 0 or subnormal: a warp at such a site waits for that lane's division,
which the GPU's IEEE float32 division may send to its slow subroutine (why the cuda kernels
guard it: :func:`srml.kernels.make_div`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lanes import trained_pool  # noqa: E402

import srml.srwm as srwm  # noqa: E402
from srml.backends import make_backend  # noqa: E402
from srml.config import Config  # noqa: E402
from srml.kernels import DIV_TINY  # noqa: E402
from srml.task import make_task  # noqa: E402

WARP = 32


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trained", type=float, default=2e7, help="env steps of the trained pool")
    ap.add_argument("--pop", type=int, default=1024, help="agents (a multiple of 32)")
    ap.add_argument("--lifetime", type=int, default=500)
    args = ap.parse_args()
    if args.pop % WARP:
        ap.error(f"--pop must be a multiple of {WARP}")
    terms: list[np.ndarray] = []
    softmax = srwm.softmax

    def recording(z):  # the terms the kernels divide by their sum
        e = np.exp(z - z.max(-1, keepdims=True))
        terms.append(e.reshape(e.shape[0], -1, e.shape[-1]))
        return softmax(z)

    srwm.softmax = recording
    cfg = Config(batch=args.pop, pool_size=args.pop, lifetime=args.lifetime)
    task = make_task(cfg)
    sources = [("fresh genomes", task.layout.init(np.random.default_rng(0), args.pop, 0.1))]
    genomes, note = trained_pool(cfg, int(args.trained), args.pop)
    sources.append((note, genomes))
    print(f"P={args.pop} T={args.lifetime}, srml's default CartPole network, numpy reference")
    for name, g in sources:
        terms.clear()
        make_backend("numpy", task, args.pop).run(g, seed=1)
        n = zero = sub = tiny = 0
        sites = site_zero = site_sub = site_either = 0
        for e in terms:
            z, s = e == 0, (e > 0) & (e < np.float32(2.0**-126))
            n, zero, sub, tiny = (
                n + e.size,
                zero + z.sum(),
                sub + s.sum(),
                tiny + (e < DIV_TINY).sum(),
            )
            w = (e.shape[0] // WARP, WARP, *e.shape[1:])
            zw, sw = z.reshape(w).any(1), s.reshape(w).any(1)
            sites += zw.size
            site_zero, site_sub = site_zero + zw.sum(), site_sub + sw.sum()
            site_either += (zw | sw).sum()
        print(f"{name}: {n} terms: {zero / n:.1%} zero, {sub / n:.2%} subnormal, "
              f"{tiny / n:.1%} below DIV_TINY; division sites of a warp with a zero lane "
              f"{site_zero / sites:.1%}, with a subnormal lane {site_sub / sites:.1%}, "
              f"either {site_either / sites:.1%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
