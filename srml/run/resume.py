"""``srml run --resume RUN_DIR``: continue a stopped run exactly where its checkpoint left it.

A checkpoint (``pool.npz``) holds the pool, the founders still to be
evaluated, the sampling RNG's state, the generation and step counters, and the
config. Every rollout's seed is derived from (seed, generation), so the
generations between the checkpoint and the moment the run stopped are
recomputed bit for bit: an interrupted and resumed run ends with the same
pool bytes as one that never stopped (same backend, same machine type).

Everything is checked before anything is written: a run directory without
config.toml, a truncated, foreign or newer checkpoint, or flags that
contradict the saved config stop with one line and leave every file as it was.
Only then is ``log.jsonl`` trimmed back to the checkpoint's generation (rows
after it are recomputed) and the run continues.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import fields
from pathlib import Path

from ..config import Config, from_dict, from_saved, load_toml
from ..errors import SrmlError
from ..methods import make_method
from . import rundir
from .islands import Islands
from .loop import drive, writing
from .sinks import rewrite_csv

EXTENDABLE = ("total_steps", "generations")
"""Limits --resume may raise (0 means no limit): a longer run continues the same trajectory."""
FREE = (
    "progress",
    "checkpoint_every",
    "threads",
    "ray_address",
    "worker_cpus",
    "tensorboard",
    "step_timeout",
)
"""Settings --resume may change: they do not change what the run computes."""


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _limit(v: int) -> float:
    return float("inf") if v == 0 else v


def merge_config(saved: Config, given: dict, run_dir: Path) -> Config:
    """The saved config with the settings given on the command line, or SrmlError naming the
    first key the given settings contradict."""
    given = {k.replace("-", "_"): v for k, v in given.items()}
    out = given.pop("out", None)
    if out is not None and Path(out).resolve() != run_dir.resolve():
        raise SrmlError(f"--out {out} contradicts --resume {run_dir} (leave --out out)")
    new = from_dict(given, base=saved)
    for key in given:
        a, b = getattr(saved, key), getattr(new, key)
        if a == b or key in FREE:
            continue
        if key in EXTENDABLE:
            if _limit(b) >= _limit(a):
                continue
            raise SrmlError(
                f"{_flag(key)} {b} is below the saved run's {key} = {a}: --resume can only "
                "extend a run"
            )
        allowed = ", ".join(_flag(k) for k in (*EXTENDABLE, *FREE))
        raise SrmlError(
            f"{_flag(key)} {b!r} contradicts the saved run's {key} = {a!r} "
            f"(with --resume only {allowed} may change)"
        )
    new.out = str(run_dir)
    return new


def checkpoint_config(meta: dict, path: Path) -> Config:
    if not isinstance(meta.get("config"), str):
        raise SrmlError(f"checkpoint {path} has no usable config (not TOML text)")
    try:
        return from_saved(tomllib.loads(meta["config"]))
    except (KeyError, TypeError, tomllib.TOMLDecodeError, SrmlError) as e:
        raise SrmlError(f"checkpoint {path} has no usable config ({e})") from None


def check_same_run(cfg: Config, ckpt_cfg: Config, path: Path) -> None:
    """The checkpoint must come from this run: every setting that shapes it must agree."""
    for f in fields(Config):
        if f.name in (*EXTENDABLE, *FREE, "out"):
            continue
        a, b = getattr(ckpt_cfg, f.name), getattr(cfg, f.name)
        if a != b:
            raise SrmlError(
                f"checkpoint {path} does not belong to this run: its {f.name} is {a!r}, "
                f"config.toml says {b!r}"
            )


def read_run(run_dir: Path, given: dict) -> tuple[Config, tuple[dict, dict] | None, list[dict]]:
    """Read and check a run directory: (config, checkpoint or None, log rows). Writes nothing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SrmlError(f"--resume {run_dir}: no such run directory")
    if not (run_dir / "config.toml").exists():
        raise SrmlError(f"--resume {run_dir}: not a run directory (no config.toml)")
    rundir.refuse_symlinks(run_dir)
    saved = from_saved(load_toml(run_dir / "config.toml"))
    cfg = merge_config(saved, given, run_dir).validate()
    ckpt = run_dir / "pool.npz"
    state = rundir.load_checkpoint(ckpt) if ckpt.exists() else None
    if state is not None:
        check_same_run(cfg, checkpoint_config(state[1], ckpt), ckpt)
        if "generation" not in state[1]:
            raise SrmlError(f"checkpoint {ckpt} is incomplete: no generation counter")
    log = run_dir / "log.jsonl"
    rows = rundir.read_log(log) if log.exists() else []
    return cfg, state, rows


def resume(run_dir: Path, given: dict | None = None) -> Path:
    """Continue the run in ``run_dir`` (see the module docstring); returns ``run_dir``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SrmlError(f"--resume {run_dir}: no such run directory")
    with rundir.lock_run_dir(run_dir):  # refuse to resume a run that is still running
        return _resume(run_dir, given or {})


def _resume(run_dir: Path, given: dict) -> Path:
    cfg, state, rows = read_run(run_dir, given)
    if cfg.workers:
        return resume_islands(cfg, run_dir, state, rows)
    method = make_method(cfg.method, cfg, **cfg.method_options)
    try:
        if state is not None:
            restore(method, state, run_dir / "pool.npz")
        offset = prepare_to_continue(cfg, run_dir, rows, method.generation, method.finished)
        if offset is not None:
            drive(method, run_dir, wall_offset=offset)
    finally:
        method.close()
    return run_dir


def restore(method, state: tuple[dict, dict], path: Path) -> None:
    """Load a checkpoint into a method; anything malformed is refused in one line."""
    try:
        method.load_state(*state)
    except SrmlError as e:
        raise SrmlError(f"checkpoint {path} is incomplete or does not fit this run: {e}") from None
    except (KeyError, ValueError, TypeError) as e:
        raise SrmlError(f"checkpoint {path} is incomplete: {e}") from None


def prepare_to_continue(
    cfg: Config,
    run_dir: Path,
    rows: list[dict],
    generation: int,
    finished: bool,
    quiet: bool = False,
) -> float | None:
    """The first writes of a resume, once every check has passed: trim the log back to the
    checkpoint's generation and save the (possibly extended) config. Returns the wall time
    the run had used, or None if the run is already complete (its figure is drawn if a crash
    left it missing)."""
    kept = [r for r in rows if r.get("generation", -1) <= generation]
    if finished:
        if kept and not (run_dir / "pool_reward.png").exists():
            from ..plot import plot_runs

            plot_runs([run_dir], run_dir / "pool_reward.png")
        if not quiet:
            print(
                f"srml: {run_dir} is already complete at generation {generation}; "
                "raise --generations or --total-steps to extend it",
                file=sys.stderr,
            )
        return None
    if not quiet:
        print(f"srml: resuming {run_dir} from generation {generation}", file=sys.stderr)
    with writing(run_dir):
        rundir.remove_stale_temps(run_dir)  # left by a process killed mid-write
        rundir.trim_records(run_dir, generation)
        if (run_dir / "progress.csv").exists():
            rewrite_csv(run_dir / "progress.csv", kept)
        cfg.save(run_dir / "config.toml")
    walls = [r["wall_s"] for r in kept if "island" not in r and "wall_s" in r]
    return walls[-1] if walls else 0.0


def resume_islands(cfg: Config, run_dir: Path, state, rows: list[dict]) -> Path:
    """Continue an island run from its checkpoint."""
    driver = Islands(cfg, run_dir)
    try:
        if state is not None:
            driver.restore(state, run_dir / "pool.npz")
        if not driver.finished:
            driver.connect()  # before the first write: a bad --ray-address changes nothing
        offset = prepare_to_continue(cfg, run_dir, rows, driver.generation, driver.finished)
        if offset is not None:
            driver.run(offset)
    finally:
        driver.shutdown()
    return run_dir
