"""``srml bench``: agent-steps per second on the peers' workload.

The workload of ``../shared/peers/``: a population of one-layer, one-head SRWMs
with d_in 8 on CartPole (observation, one-hot previous action, previous
reward, constant 1: no episode flag), weights N(0, 0.1^2), sampled actions,
acting for a fixed number of steps. The first execution compiles (numba) and
is timed apart; the figure is the best of the timed repeats. The last line
printed is ``agent_steps_per_s=<number>``.
"""

from __future__ import annotations

import resource
import time

import numpy as np

from .backends import make_backend
from .config import Config
from .task import make_task


def bench(
    env: str, backend: str, pop: int, lifetime: int, repeats: int = 3, twin="auto", threads: int = 0,
    layout: str = "lanes", fast_exp: bool = False,
) -> dict:  # fmt: skip
    cfg = Config(
        env=env, backend=backend, batch=pop, pool_size=pop, lifetime=lifetime, twin=twin,
        episode_flag=False, threads=threads, fast_exp=fast_exp,
    )  # fmt: skip
    cfg.validate()
    task = make_task(cfg)
    t0 = time.perf_counter()
    options = {"layout": layout} if backend == "numba" else {}
    engine = make_backend(backend, task, pop, threads, **options)
    genomes = task.layout.init(np.random.default_rng(0), pop, 0.1)
    engine.run(genomes, seed=0)
    first_s = time.perf_counter() - t0
    best = float("inf")
    for k in range(repeats):
        t = time.perf_counter()
        engine.run(genomes, seed=k + 1)
        best = min(best, time.perf_counter() - t)
    engine.close()
    return {
        "env": task.env_id,
        "backend": backend,
        "kernel": (layout + (" fast_exp" if fast_exp else "")) if backend == "numba" else "",
        "network": task.layout.describe(),
        "pop": pop,
        "lifetime": lifetime,
        "threads": getattr(engine, "threads", 1),
        "first_run_s": first_s,
        "best_s": best,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "agent_steps_per_s": pop * lifetime / best,
    }


def report(r: dict) -> str:
    return (
        f"srml {r['backend']}{' ' + r['kernel'] if r.get('kernel') else ''} {r['env']} P={r['pop']} T={r['lifetime']} {r['network']} "
        f"threads={r['threads']} first_run_s={r['first_run_s']:.2f} "
        f"peak_rss_mb={r['peak_rss_mb']:.0f}\nagent_steps_per_s={r['agent_steps_per_s']:.4e}"
    )
