"""Run directories from Python: :func:`load_run` and what ``srml eval`` reports.

run = srml.load_run("runs/CartPole-v1-s0-...")
run.config, run.log[-1]["pool_fitness_median"], run.method.pool
run.dataframe()                       # the log as a pandas DataFrame (pandas needed)
genomes = run.method.best(4, reevaluate=True)
run = run.resume(total_steps=40_000_000)   # continue it, exactly as srml run --resume
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Config
from .errors import SrmlError
from .evaluation import reevaluate
from .method import Method
from .methods import make_method
from .run import rundir
from .run.resume import read_run, restore, resume


@dataclass
class Run:
    """A run directory read back: its config, its method at the last checkpoint, its log."""

    path: Path
    config: Config
    method: Method
    log: list[dict]

    @property
    def pool(self):
        """The pool (FME runs)."""
        if not hasattr(self.method, "pool"):
            raise SrmlError(f"a {self.method.name} run has no pool")
        return self.method.pool

    def dataframe(self):
        """The log as a pandas DataFrame."""
        try:
            import pandas as pd
        except ImportError:
            raise SrmlError("Run.dataframe() needs pandas: pip install pandas") from None
        return pd.DataFrame(self.log)

    def resume(self, **extend) -> Run:
        """Continue the run in its directory (e.g. ``total_steps=...`` to extend it), exactly
        as ``srml run --resume``; returns the run read back afterwards."""
        self.method.close()
        resume(self.path, extend)
        return load_run(self.path)


def load_run(run_dir, progress: bool = False) -> Run:
    """Read a run directory (single runs; island runs: see ``srml plot``/``eval``)."""
    path = Path(run_dir)
    cfg, state, rows = read_run(path, {"progress": progress})
    if state is None:
        raise SrmlError(f"{path} has no checkpoint (pool.npz) yet")
    if cfg.workers:
        raise SrmlError(f"{path} is an island run (--workers {cfg.workers}); load_run reads "
                        "single runs (srml eval and srml play read both)")  # fmt: skip
    method = make_method(cfg.method, cfg, **cfg.method_options)
    restore(method, state, path / "pool.npz")
    rows = [r for r in rows if r.get("generation", -1) <= method.generation]
    return Run(path, cfg, method, rows)


def eval_report(run: Run, top: int = 8, lifetimes: int = 64, seed: int = 0) -> dict:
    """Re-evaluate the ``top`` members with the highest recorded fitness for ``lifetimes``
    fresh lifetimes each on held-out seeds; the best is the re-evaluated best."""
    m = run.method
    genomes, recorded = m.candidates(), m.candidates_fitness()
    if hasattr(m, "pool"):  # FME: any number of members, by recorded fitness
        rows = m.pool.best(top)
        genomes, recorded = m.pool.genomes[rows], m.pool.fitness[rows]
    genomes, recorded = genomes[:top], recorded[:top]
    if len(genomes) == 0:
        raise SrmlError(f"{run.path}: nothing to evaluate yet")
    table = reevaluate(m, genomes, lifetimes, k=seed)
    members = [
        {
            "rank": i,
            "recorded": _num(recorded[i]),
            "reevaluated_mean": _num(table["mean"][i]),
            "reevaluated_ci95": _num(table["ci95"][i]),
            "nonfinite": int(table["nonfinite"][i]),
        }
        for i in range(len(genomes))
    ]
    best = int(np.argmax(np.where(np.isfinite(table["mean"]), table["mean"], -np.inf)))
    return {
        "run_dir": str(run.path),
        "env": run.config.env,
        "method": run.config.method,
        "generation": m.generation,
        "env_steps": m.env_steps,
        "lifetimes": lifetimes,
        "seed": seed,
        "members": members,
        "best": members[best],
    }


def _num(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


__all__ = ["Run", "eval_report", "load_run", "rundir"]
