"""Drive an FME run to its end: run directory, log, checkpoints, progress, figure."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np

from . import runlog
from .config import Config
from .errors import SrmlError
from .fme import FME


def default_out(cfg: Config) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.env.replace('/', '_')}-{stamp}"


def log_row(fme: FME, res, wall_s: float, gen_s: float) -> dict:
    stats = fme.pool.fitness_stats()
    finite = res.fitness[np.isfinite(res.fitness)]
    return {
        "generation": fme.generation,
        "env_steps": fme.env_steps,
        "wall_s": round(wall_s, 4),
        "steps_per_s": res.env_steps / max(gen_s, 1e-9),
        "pool_size": fme.pool.size,
        **{f"pool_fitness_{k}": v for k, v in stats.items()},
        "batch_fitness_mean": float(finite.mean()) if len(finite) else float("nan"),
        "batch_fitness_max": float(finite.max()) if len(finite) else float("nan"),
        "batch_episodes_mean": float(res.episodes.mean()),
        "nonfinite": res.nonfinite,
    }


def run(cfg: Config, out: Path | None = None) -> Path:
    """Run FME as configured; returns the run directory."""
    cfg.validate()
    out = Path(out or cfg.out or default_out(cfg))
    if (out / "log.jsonl").exists():
        raise SrmlError(f"{out} already holds a run; choose another --out (or --resume {out})")
    if cfg.workers:
        from .distributed import run_islands

        return run_islands(cfg, out)
    fme = FME(cfg)  # builds the env and backend first: a bad config leaves no directory behind
    with new_run_dir(out, cfg):
        if fme.task.env_id != cfg.env and fme.task.twin is not None:
            print(
                f"srml: {cfg.env} runs on srml's compiled twin {fme.task.env_id} "
                "(--twin off runs Gymnasium's own)",
                file=sys.stderr,
            )
        return drive(fme, cfg, out)


@contextmanager
def new_run_dir(out: Path, cfg: Config):
    """Create the run directory and config.toml; if the run fails before its first log line
    (an env that raises in its first step, Ctrl-C ...), remove what was created."""
    made_dir = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    with runlog.lock_run_dir(out):  # a second process on the same --out is refused
        if (out / "log.jsonl").exists():  # another run got here first
            raise SrmlError(f"{out} already holds a run; choose another --out")
        had_config = (out / "config.toml").exists()
        cfg.out = str(out)
        try:
            cfg.save(out / "config.toml")
            yield
        except BaseException:
            if not (out / "log.jsonl").exists():
                if not had_config:
                    (out / "config.toml").unlink(missing_ok=True)
                if made_dir and not any(out.iterdir()):
                    out.rmdir()
            raise


def drive(fme: FME, cfg: Config, out: Path, wall_offset: float = 0.0) -> Path:
    """Run generations until the config's limits, logging each and checkpointing; then plot.

    Used by a new run and by ``--resume`` (which restores ``fme`` from the checkpoint first)."""
    log_path, ckpt = out / "log.jsonl", out / "pool.npz"
    bar = _progress(cfg, initial=fme.env_steps)
    t0 = time.perf_counter() - wall_offset
    warned = False
    try:
        while not fme.finished:
            g0 = time.perf_counter()
            try:
                res = fme.step()
            except SrmlError as e:
                if not log_path.exists():
                    raise  # a failed start: new_run_dir removes what it made
                raise SrmlError(
                    f"{e} (in generation {fme.generation + 1}; the run is kept up to its last "
                    f"checkpoint: srml run --resume {out})"
                ) from None
            now = time.perf_counter()
            row = log_row(fme, res, now - t0, now - g0)
            if fme.generation == 1:  # say once what actually ran
                row |= {"env_id": fme.task.env_id, "backend": fme.backend.name}
            runlog.append_line(log_path, row)
            warned = warn_nonfinite(row, warned)
            if fme.generation % cfg.checkpoint_every == 0:
                runlog.save_checkpoint(ckpt, *fme.state())
            if bar is not None:
                bar.update(res.env_steps)
                bar.set_postfix(
                    pool=f"{row['pool_fitness_median']:.1f}/{row['pool_fitness_max']:.1f}",
                    sps=f"{row['steps_per_s']:.2e}",
                )
    finally:
        if bar is not None:
            bar.close()
        fme.backend.close()
    runlog.save_checkpoint(ckpt, *fme.state())
    from .plot import plot_runs

    plot_runs([out], out / "pool_reward.png")
    return out


def warn_nonfinite(row: dict, warned: bool) -> bool:
    """Say once per run, on stderr, that genomes went non-finite (every row counts them)."""
    if row.get("nonfinite") and not warned:
        print(
            f"srml: warning: {row['nonfinite']} genome(s) had non-finite weights or rewards in "
            f"generation {row['generation']}; they get fitness -inf and the run goes on "
            "(the 'nonfinite' column of log.jsonl counts them)",
            file=sys.stderr,
        )
        return True
    return warned


def _progress(cfg: Config, initial: int = 0):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    total = cfg.total_steps or cfg.generations * cfg.batch * cfg.lifetime * max(cfg.workers, 1)
    return tqdm(
        total=total,
        initial=initial,
        unit="step",
        unit_scale=True,
        desc=f"FME {cfg.env}",
        leave=True,
    )
