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
from ..methods import check_method, make_method
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


def start(cfg: Config, out: Path | None = None) -> Path:
    """Run ``cfg`` in a new run directory; returns it."""
    auto = recipe_values(cfg)
    cfg = cfg.validate()  # config.toml records the resolved values
    if auto and recipe_of(cfg) == "from_one" and cfg.progress:
        given = ", ".join(f"{k}={v}" for k, v in auto.items())
        print(f"srml: one founder: the from-one recipe sets {given} (set any of them to "
              "override; README, 'Defaults and why')", file=sys.stderr)  # fmt: skip
    check_method(cfg.method, cfg.method_options)
    out = Path(out or cfg.out or default_out(cfg))
    if (out / "log.jsonl").exists():
        raise SrmlError(f"{out} already holds a run; choose another --out (or --resume {out})")
    if cfg.workers:
        return run_islands(cfg, out)
    method = build_method(cfg)  # env, spaces, memory, backend: before any file exists
    try:
        with rundir.new_run_dir(out, cfg):
            say_twin(method.task, cfg)
            if cfg.progress:
                print(f"srml: writing {out}", file=sys.stderr)
            drive(method, out)
    finally:
        method.close()
    return out


def say_twin(task, cfg: Config) -> None:
    if task.twin is not None and task.env_id != cfg.env:
        print(
            f"srml: {cfg.env} runs on srml's compiled twin {task.env_id} "
            "(--twin off runs Gymnasium's own)",
            file=sys.stderr,
        )


def run_islands(cfg: Config, out: Path) -> Path:
    """A new island run (``--workers N``) in ``out``."""
    driver = Islands(cfg, out)  # Ray importable, env valid, memory enough: before any file
    try:
        driver.connect()  # a bad --ray-address stops here, before any file
        with rundir.new_run_dir(Path(out), cfg):
            driver.run()
    finally:
        driver.shutdown()
    return out
