"""Start a new run from a Config: ``srml run`` and :func:`srml.run`.

Everything that can be refused is checked before the run directory exists
(method, options, env, spaces, memory, ``--out``); a failed start leaves no
file created or changed.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from ..config import Config, recipe_of, recipe_values
from ..errors import SrmlError
from ..memory import human, pool_bytes
from ..methods import METHODS, check_method, make_method
from ..task import make_task
from . import rundir
from .islands import Islands
from .loop import drive


def default_out(cfg: Config) -> Path:
    """runs/<env>-s<seed>-<timestamp>[-k]: never an existing directory, safe as a file name."""
    env = cfg.env.split(":")[-1].replace("/", "_")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{env}-s{cfg.seed}-{stamp}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def build_method(cfg: Config):
    """The method a config names, with its options (unknown ones refused in one line)."""
    return make_method(cfg.method, cfg, **cfg.method_options)


def start(cfg: Config, out: Path | None = None, note: str = "") -> Path:
    """Run ``cfg`` in a new run directory; returns it. ``note`` (where ``out`` came from) is
    said once the directory is made."""
    auto = recipe_values(cfg)
    cfg = cfg.validate()  # config.toml records the resolved values
    if auto and recipe_of(cfg) == "from_one":  # said with the other notes, once the run starts
        given = ", ".join(f"{k}={v}" for k, v in auto.items())
        line = f"srml: one founder: the from-one recipe sets {given} (set any of them to override)"
        note = f"{note}\n{line}" if note else line
    check_method(cfg.method, cfg.method_options)
    out = Path(out or cfg.out or default_out(cfg))
    rundir.check_out(out)  # names, a file in the way, permissions: before the env is made
    if cfg.workers:
        return run_islands(cfg, out, note)
    task = make_task(cfg)  # env and spaces: cheap, and the genome size the checks below need
    METHODS[cfg.method].check_resources(cfg, task)  # memory first: a run that cannot fit at all
    rundir.check_out(out, checkpoint_bytes(cfg, task.layout.size))
    warnings = preflight_warnings(cfg, task)
    method = build_method(cfg)  # memory, backend: before any file exists
    try:
        with rundir.new_run_dir(out, cfg):
            for line in ([note] if note else []) + warnings:
                print(line, file=sys.stderr)
            say_twin(method.task, cfg)
            if cfg.progress:
                print(f"srml: writing {out}", file=sys.stderr)
            drive(method, out)
    finally:
        method.close()
    return out


GENOME_WARN = 100_000
"""Weights per genome above which a run is warned about its size (Taxi's one-hot of 500
states gives 521,725: a pool of 1000 is a 2 GB checkpoint)."""

RATES = {"fused": 5e6, "cuda": 1e8, "generic": 1e6}
"""Rough agent-steps/s per backend thread (see README, Speed): enough to say that a generation
takes days, not to plan by."""

MAX_GENERATION_S = 30 * 86400
"""A first generation estimated to take longer than this is refused: it is a typo."""


def checkpoint_bytes(cfg: Config, genome_size: int) -> int:
    """pool.npz of a run (every island's for island runs), twice while it is replaced."""
    one = pool_bytes(cfg.pool_size, genome_size) + 4 * genome_size * cfg.n_founders
    return 2 * max(cfg.workers, 1) * one + (1 << 20)


def generation_seconds(cfg: Config, task) -> float:
    if cfg.backend == "cuda":
        rate = RATES["cuda"]
    elif cfg.backend == "numba" and task.twin is not None:
        rate = RATES["fused"] * (cfg.worker_cpus if cfg.workers else (cfg.threads or 2))
    else:
        rate = RATES["generic"]
    return cfg.batch * cfg.lifetime / rate


def preflight_warnings(cfg: Config, task) -> list[str]:
    """One-line warnings said before a run starts: a generation estimated to take hours, a
    budget the founders' evaluation uses up, a genome large enough to matter."""
    out = []
    secs = generation_seconds(cfg, task)
    per_gen = cfg.batch * cfg.lifetime * max(cfg.workers, 1)
    if secs > MAX_GENERATION_S:
        raise SrmlError(
            f"--batch {cfg.batch} x --lifetime {cfg.lifetime} = {per_gen:.3g} agent-steps per "
            f"generation would take about {human_time(secs)}; lower --lifetime"
        )
    if secs > 3600:
        out.append(
            f"srml: warning: one generation is {per_gen:.3g} agent-steps, about "
            f"{human_time(secs)} on the {cfg.backend} backend; lower --lifetime or --batch for "
            "a run that reports sooner"
        )
    if cfg.method == "fme":
        founder_gens = -(-cfg.n_founders // cfg.batch)
        limits = [(cfg.generations, f"--generations {cfg.generations}")] if cfg.generations else []
        if cfg.total_steps:
            gens = -(-cfg.total_steps // per_gen)
            over = gens * per_gen - cfg.total_steps
            said = f" ({gens * per_gen} steps: whole generations, {over} past it)" if over else ""
            limits.append((gens, f"--total-steps {cfg.total_steps}{said}"))
        gens, what = min(limits)
        if gens <= founder_gens:
            out.append(
                f"srml: warning: {what} stops the run after {gens} generation(s), but "
                f"evaluating the {cfg.n_founders} founders takes {founder_gens}: nothing is "
                "ever selected; raise the budget or lower --founders"
            )
    G = task.layout.size
    if G > GENOME_WARN:
        out.append(
            f"srml: warning: each genome has {G:,} weights ({human(4 * G)}); the checkpoint "
            f"will be about {human(checkpoint_bytes(cfg, G) // 2)}; a smaller input helps "
            f"(the network sees {task.codec.obs_dim} observation values: an embedding or fewer "
            "features instead of a large one-hot), as do fewer --hidden units"
        )
    return out


def human_time(s: float) -> str:
    for unit, n in (("years", 365 * 86400), ("days", 86400), ("hours", 3600), ("min", 60)):
        if s >= n:
            return f"{s / n:.3g} {unit}"
    return f"{s:.3g} s"


def say_twin(task, cfg: Config) -> None:
    if task.twin is not None and task.env_id != cfg.env:
        print(
            f"srml: {cfg.env} runs on srml's compiled twin {task.env_id} "
            "(--twin off runs Gymnasium's own)",
            file=sys.stderr,
        )


def run_islands(cfg: Config, out: Path, note: str = "") -> Path:
    """A new island run (``--workers N``) in ``out``."""
    driver = Islands(cfg, out)  # Ray importable, env valid, memory enough: before any file
    rundir.check_out(out, checkpoint_bytes(cfg, driver.task.layout.size))
    warnings = preflight_warnings(cfg, driver.task)
    try:
        driver.connect()  # a bad --ray-address stops here, before any file
        with rundir.new_run_dir(Path(out), cfg):
            for line in ([note] if note else []) + warnings:
                print(line, file=sys.stderr)
            driver.run()
    finally:
        driver.shutdown()
    return out
