"""The one run loop: a method (or an island driver) x a backend -> log rows, checkpoints,
progress, hooks. ``srml run``, ``--resume``, Ray islands, every experiment and
``Method.run()`` in a notebook all go through :func:`drive`.

A *driver* is anything with ``cfg``, ``generation``, ``env_steps``,
``finished``, ``advance(t0) -> rows`` (one or more generations; the last row is
the run's own, island rows come before it) and ``state() -> (arrays, meta)``.
A :class:`srml.method.Method` is wrapped by :class:`MethodDriver`; the island
driver (:mod:`srml.run.islands`) is one itself.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import SrmlError
from ..fitness import finite_max, finite_mean
from . import rundir
from .sinks import TensorBoard, append_csv


class RunInterrupted(SrmlError):
    """SIGINT, SIGTERM or SIGHUP stopped a run; its checkpoint was written first."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


def log_row(method, rollout, wall_s: float, gen_s: float) -> dict:
    """The row every run writes per generation (``srml run``, islands, experiments alike)."""
    return {
        "generation": method.generation,
        "env_steps": method.env_steps,
        "wall_s": round(wall_s, 4),
        "steps_per_s": rollout.env_steps / max(gen_s, 1e-9),
        "pool_size": method.population_size(),
        **{f"pool_fitness_{k}": v for k, v in method.population_stats().items()},
        "batch_fitness_mean": finite_mean(rollout.fitness),
        "batch_fitness_max": finite_max(rollout.fitness),
        "batch_episodes_mean": float(rollout.episodes.mean()),
        "nonfinite": int(rollout.nonfinite),
        **method.row_extras(rollout),
    }


class MethodDriver:
    """A method as a driver of the loop: one generation per ``advance``."""

    def __init__(self, method):
        self.method, self.cfg = method, method.cfg

    @property
    def generation(self) -> int:
        return self.method.generation

    @property
    def env_steps(self) -> int:
        return self.method.env_steps

    @property
    def finished(self) -> bool:
        return self.method.finished

    def advance(self, t0: float) -> list[dict]:
        g0 = time.perf_counter()
        res = self.method.step()
        now = time.perf_counter()
        row = log_row(self.method, res, now - t0, now - g0)
        if self.method.generation == 1:  # say once what actually ran
            row |= {"env_id": self.method.task.env_id, "backend": self.method.backend.name}
        return [row]

    @property
    def records(self) -> dict[str, dict]:
        """name -> row of the last generation (lineage ...), computed only when written (a
        lineage of a million founders costs more than a GPU generation)."""
        return self.method.records()

    def state(self) -> tuple[dict, dict]:
        return self.method.state()


def as_driver(obj):
    return obj if hasattr(obj, "advance") else MethodDriver(obj)


def drive(obj, out: Path | None, callback=None, progress: bool | None = None,
          wall_offset: float = 0.0) -> list[dict]:  # fmt: skip
    """Run generations until the config's limits; returns this call's log rows.

    With ``out``: each row goes to log.jsonl and progress.csv (and TensorBoard), a
    checkpoint every ``checkpoint_every`` generations, at the end and when a signal stops
    the run, then the figure. Without: nothing is written. ``callback(obj, row)`` runs after
    every step (True stops the run early, as a finished one)."""
    driver = as_driver(obj)
    cfg = driver.cfg
    out = Path(out) if out is not None else None
    tb = TensorBoard(out) if out is not None and cfg.tensorboard else None
    show = cfg.progress if progress is None else progress
    bar = Progress(cfg, driver.env_steps) if show else None
    rows: list[dict] = []
    t0 = time.perf_counter() - wall_offset
    warned = False
    try:
        with stop_signals(out is not None) as stop:
            while not driver.finished:
                before = driver.generation
                try:
                    new = driver.advance(t0)
                except SrmlError as e:
                    if out is None or not (out / "log.jsonl").exists():
                        raise  # a failed start: new_run_dir removes what it made
                    raise SrmlError(
                        f"{e} (in generation {before + 1}; the run is kept up to its last "
                        f"checkpoint: srml run --resume {out})"
                    ) from None
                rows += new
                main = new[-1]
                if out is not None:
                    write_rows(out, new, driver, tb)
                # the callback's own records (an experiment's evaluations) come before the
                # checkpoint, so a checkpoint never precedes what its generation wrote
                stop_now = callback is not None and callback(obj, main)
                if out is not None:
                    every = cfg.checkpoint_every
                    if driver.generation // every > before // every:
                        rundir.save_checkpoint(out / "pool.npz", *driver.state())
                warned = warn_nonfinite(main, warned)
                if bar is not None:
                    bar.update(driver.env_steps, main)
                if stop_now:
                    break
                if stop.signum:
                    _interrupted(driver, out, stop.signum)
    finally:
        if bar is not None:
            bar.close()
        if tb is not None:
            tb.close()
    if out is not None:
        finish(driver, out)
    return rows


def write_rows(out: Path, rows: list[dict], driver, tb) -> None:
    try:
        for row in rows:
            rundir.append_line(out / "log.jsonl", row)
            append_csv(out / "progress.csv", row)
            if tb is not None:
                tb.write(row)
        for name, rec in getattr(driver, "records", {}).items():
            rec = {"generation": driver.generation, "env_steps": driver.env_steps, **rec}
            rundir.append_line(out / f"{name}.jsonl", rec)
    except OSError as e:
        raise SrmlError(
            f"cannot write to {out}: {e.strerror or e} (the last checkpoint is intact: free "
            f"space, then srml run --resume {out})"
        ) from None


def finish(driver, out: Path) -> None:
    """Final checkpoint and figure."""
    from ..plot import plot_runs  # matplotlib: imported only when a figure is drawn

    try:
        rundir.save_checkpoint(out / "pool.npz", *driver.state())
        plot_runs([out], out / "pool_reward.png")
    except OSError as e:
        raise SrmlError(
            f"cannot write to {out}: {e.strerror or e} (free space, then srml run --resume {out})"
        ) from None


def _interrupted(driver, out: Path | None, signum: int) -> None:
    name = signal.Signals(signum).name
    if out is None:
        raise RunInterrupted(f"interrupted by {name} at generation {driver.generation}", signum)
    rundir.save_checkpoint(out / "pool.npz", *driver.state())
    raise RunInterrupted(
        f"interrupted by {name}; checkpoint written at generation {driver.generation}: "
        f"srml run --resume {out}",
        signum,
    )


class _Stop:
    signum = 0


@contextmanager
def stop_signals(enabled: bool):
    """While a run writes a directory: SIGINT/SIGTERM/SIGHUP only ask the loop to stop after
    the generation in flight (a compiled kernel cannot be interrupted cleanly), so the
    checkpoint matches the log. A second Ctrl-C stops at once."""
    stop = _Stop()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    wanted = [signal.SIGINT, signal.SIGTERM] + (
        [signal.SIGHUP] if hasattr(signal, "SIGHUP") else []
    )

    def handler(signum, frame):
        if stop.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.signum = signum

    old = {s: signal.signal(s, handler) for s in wanted}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


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


class Progress:
    """A tqdm bar over env steps: 'compiling' until the first generation is done, then the
    pool's median/max fitness and the step rate."""

    def __init__(self, cfg, initial: int = 0):
        from tqdm import tqdm

        per_gen = cfg.batch * cfg.lifetime * max(cfg.workers, 1)
        limits = [cfg.total_steps] if cfg.total_steps else []
        if cfg.generations:
            limits.append(cfg.generations * per_gen)
        self.bar = tqdm(
            total=min(limits),
            initial=initial,
            unit="step",
            unit_scale=True,
            desc=f"{cfg.method} {cfg.env}",
            leave=True,
            dynamic_ncols=True,
            mininterval=0.5,
        )
        self.bar.set_postfix_str("compiling kernels / first generation", refresh=True)

    def update(self, env_steps: int, row: dict) -> None:
        self.bar.update(min(env_steps, self.bar.total) - self.bar.n)
        self.bar.set_postfix_str(
            f"pool median/max={row['pool_fitness_median']:.4g}/{row['pool_fitness_max']:.4g}",
            refresh=False,
        )

    def close(self) -> None:
        self.bar.close()


def run_in(method, out: Path, callback=None, progress: bool | None = None) -> list[dict]:
    """A new run of ``method`` in the run directory ``out`` (created; refused if not empty)."""
    with rundir.new_run_dir(Path(out), method.cfg):
        return drive(method, out, callback=callback, progress=progress)
