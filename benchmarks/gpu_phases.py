"""Where an end-to-end FME generation spends its time on one GPU (the device pool).

    python benchmarks/gpu_phases.py [--pops 16384 131072 1048576] [--generations 8]
    python benchmarks/gpu_phases.py --simulate      # numba's CUDA simulator, tiny sizes

Runs FME on the cuda backend with the pool on the device (the peers' workload, as
``benchmarks/gpu.py``), skips the founding generation and the first draws (CuPy compiles
its kernels on first use), then times each phase of a generation with the device
synchronised around it: ``ask`` (selection + gather), ``copy`` (the kernel's private
copy), ``kernel`` (which also flags the agents with non-finite weights or return),
``finish`` (fitness from those flags on the device, fitness and episodes to the host: the
backend's own ``finish``), ``tell`` (credit + insertion + eviction) and ``log row`` (pool
statistics, lineages). Prints milliseconds per generation per phase and the kernel's share,
the pieces of ``ask`` and of the log row each alone, and the kernel alone on the loop's last
(evolved) batch and on fresh founders, with the backend's division and the other one
(``SRML_CUDA_DIV``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial

import numpy as np

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--pops", type=int, nargs="+", default=[16384, 131072, 1048576])
ap.add_argument("--generations", type=int, default=8)
ap.add_argument("--simulate", action="store_true")
ARGS = ap.parse_args()
if ARGS.simulate:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    ARGS.pops, LIFETIME = [8], 12
else:
    LIFETIME = 500

from srml import FME, Config  # noqa: E402
from srml.backends.cuda_backend import CudaBackend  # noqa: E402
from srml.fitness import finite_max, finite_mean  # noqa: E402
from srml.fme import FMEOptions  # noqa: E402
from srml.run.loop import log_row  # noqa: E402


def phases_of(P: int) -> None:
    cfg = Config(env="CartPole-v1", backend="cuda", batch=P, pool_size=2 * P, founders=P,
                 lifetime=LIFETIME, episode_flag=False, init_std=0.1, progress=False,
                 total_steps=0, generations=10**9)  # fmt: skip
    fme = FME(cfg, options=FMEOptions(device_pool=True))
    be, xp = fme.backend, fme.pool.xp

    def sync():
        if xp is not np:
            xp.cuda.runtime.deviceSynchronize()

    for _ in range(5):  # founders, then draws: CuPy compiles on first use
        log_row(fme, fme.step(), 0.0, 1.0)
    sync()
    phases: dict[str, float] = {}
    clock = [time.perf_counter()]

    def mark(name):
        sync()
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - clock[0]
        clock[0] = now

    for _ in range(ARGS.generations):
        clock[0] = time.perf_counter()
        genomes = fme.ask()
        mark("ask")
        d = be.device_genomes(genomes)
        mark("copy")
        d_ret, d_eps, d_ok = be.launch(d, 1234 + fme.generation)
        mark("kernel")
        roll = be.finish(d, d_ret, d_eps, d_ok, keep_on_device=True)
        mark("finish")
        fme.tell(roll)
        mark("tell")
        log_row(fme, roll, 0.0, 1.0)
        mark("log row")
    # the pieces of ask and of the log row, each alone on the final state (best of 3)
    rule = (cfg.selection, cfg.temperature)
    rows = fme.pool.sample(np.random.default_rng(3), P, *rule)
    pool = fme.pool
    pieces = {
        "ask: uniforms (host)": partial(np.random.default_rng(3).random, P),
        "ask: selection (device)": partial(draw, pool, P, rule),
        "ask: gather": partial(pool.gather, rows),
        "log row: pool statistics": fme.population_stats,
        "log row: lineages": pool.lineage_summary,
        "log row: batch columns (host)": partial(log_row_batch_columns, roll),
    }
    for name, piece in pieces.items():
        best = float("inf")
        for _ in range(3):
            sync()
            t0 = time.perf_counter()
            piece()
            sync()
            best = min(best, time.perf_counter() - t0)
        print(f"P={P}: {name}: {best * 1e3:.3f} ms")
    # the kernel alone on the last batch it ran, and on fresh founders of the same size:
    # does the evolved pool itself make the kernel slower? Both with the backend's division
    # and with the plain one (evolved softmaxes underflow: srml.kernels.make_div)
    last = be.device_genomes(genomes)
    fresh = be.device_genomes(
        fme.pool.batch(fme.task.layout.init(np.random.default_rng(5), P, cfg.init_std))
    )
    other = "plain" if be.variant.div != "plain" else "guarded"
    kernels = [(f"{be.variant.div} division", be),
               (f"{other} division", CudaBackend(fme.task, P, div=other))]  # fmt: skip
    for kname, k in kernels:
        k.launch(fresh.copy(), 98)  # compiles
        for name, arr in (("evolved batch", last), ("fresh founders", fresh)):
            best = float("inf")
            for rep in range(3):
                a = arr.copy()
                sync()
                t0 = time.perf_counter()
                k.launch(a, 99 + rep)
                sync()
                best = min(best, time.perf_counter() - t0)
            print(f"P={P}: kernel alone on the {name}, {kname}: {best * 1e3:.2f} ms")
    n, total = ARGS.generations, sum(phases.values())
    print(f"P={P}: {total / n * 1e3:.2f} ms/generation, "
          f"{P * LIFETIME * n / total:.3e} env steps/s; kernel {phases['kernel'] / total:.0%}")  # fmt: skip
    for k, v in phases.items():
        print(f"  {k:8s} {v / n * 1e3:9.3f} ms")
    fme.close()
    del fme, last, fresh, d, roll, pool, pieces, kernels, rows
    if xp is not np:
        xp.get_default_memory_pool().free_all_blocks()


def draw(pool, k: int, rule: tuple):
    """A selection draw as ``ask`` makes it (uniforms from a fresh generator)."""
    return pool.sample(np.random.default_rng(3), k, *rule)


def log_row_batch_columns(roll) -> tuple:
    """The log row's columns over the batch (srml.run.loop.log_row's)."""
    return finite_mean(roll.fitness), finite_max(roll.fitness), float(roll.episodes.mean())


def main() -> int:
    for P in ARGS.pops:
        phases_of(P)
    return 0


if __name__ == "__main__":
    sys.exit(main())
