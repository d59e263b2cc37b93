"""The run directory format, written so a crash or a full disk never corrupts it.

A run directory holds ``config.toml`` (the whole resolved config),
``log.jsonl`` (one row per generation), ``progress.csv`` (the same rows for
pandas), ``pool.npz`` (the checkpoint), ``pool_reward.png``, and per-generation
records of some methods (``lineage.jsonl``; experiments add ``eval.jsonl``).

- Whole files (config, checkpoint, figures) are written to a temporary file in
  the same directory, flushed to disk, then renamed over the target: a reader
  sees the old file or the new one, never half of one.
- A JSONL line is appended whole or not at all: a short write (a full disk) is
  cut back off before the error is raised, and a line torn by a crash can only
  be the last one; it is skipped when read and trimmed on resume.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import SrmlError

CHECKPOINT_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """pool arrays + a JSON ``meta`` (counters, RNG state, config) as one .npz, atomically."""
    buf = io.BytesIO()
    meta = {"format": "srml-checkpoint", "version": CHECKPOINT_VERSION, **meta}
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint; a truncated, foreign or newer one is refused in one line."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except FileNotFoundError:
        raise SrmlError(f"no checkpoint at {path}") from None
    except Exception as e:
        raise SrmlError(f"checkpoint {path} is unreadable (truncated or not srml's): {e}") from None
    if meta.get("format") != "srml-checkpoint":
        raise SrmlError(f"{path} is not an srml checkpoint")
    if meta.get("version", 0) > CHECKPOINT_VERSION:
        raise SrmlError(
            f"checkpoint {path} has version {meta['version']}, newer than this srml "
            f"understands ({CHECKPOINT_VERSION}); upgrade srml"
        )
    return arrays, meta


JSONL_FILES = ("log.jsonl", "lineage.jsonl", "eval.jsonl")
"""Per-generation records; resume trims each back to the checkpoint's generation."""


def append_bytes(path: Path, data: bytes) -> None:
    """Append ``data`` whole or not at all: on a short or failed write (a full disk), the file
    is cut back to its old length before the error propagates, so no partial line remains."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        done = 0
        try:
            while done < len(data):
                n = os.write(fd, data[done:])
                if n <= 0:
                    raise OSError(f"short write to {path}")
                done += n
        except BaseException:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


def append_line(path: Path, row: dict) -> None:
    """Append one row as a JSON line (strict JSON: NaN and infinities become null)."""
    append_bytes(path, (json.dumps(_strict(row), allow_nan=False) + "\n").encode())


def _strict(v):
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else None
    if isinstance(v, dict):
        return {k: _strict(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_strict(x) for x in v]
    if isinstance(v, np.generic):
        return _strict(v.item())
    return v


def read_log(path: Path) -> list[dict]:
    """All complete lines of a log.jsonl (a torn last line is skipped)."""
    rows = []
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise SrmlError(f"no log at {path}") from None
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # torn by a crash mid-write
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise SrmlError(f"{path} has a corrupt line: {line[:60]!r}") from None
    return rows


def trim_log(path: Path, generation: int) -> None:
    """Keep only complete lines with generation <= the checkpoint's (for resume)."""
    rows = [r for r in read_log(path) if r.get("generation", -1) <= generation]
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def trim_records(run_dir: Path, generation: int) -> None:
    """Trim every per-generation record of a run directory back to ``generation``."""
    for name in JSONL_FILES:
        if (Path(run_dir) / name).exists():
            trim_log(Path(run_dir) / name, generation)


@contextmanager
def lock_run_dir(path: Path):
    """Hold an exclusive lock on a run directory while a process writes it.

    A second ``srml run --out DIR`` or ``--resume DIR`` on a directory in use
    is refused instead of interleaving two runs' writes. The lock is the
    kernel's (flock on the directory itself), so a killed process releases it
    and no stale lock file is ever left behind. Where flock is missing
    (Windows) or unsupported (some network file systems), nothing is locked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SrmlError(
                f"{path} is in use by another srml process; wait for it to end"
            ) from None
        except OSError:
            pass  # a file system without flock: run unlocked
        yield
    finally:
        os.close(fd)  # closing releases the lock


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete temporary files an atomic write left when its process was killed mid-write."""
    names = ("config.toml", "pool.npz", "pool_reward.png", "progress.csv", *JSONL_FILES)
    stale = [p for p in Path(path).iterdir() if any(p.name.startswith(f".{n}.") for n in names)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


OWN_FILES = ("config.toml", "pool.npz", "pool_reward.png", "progress.csv", *JSONL_FILES)


@contextmanager
def new_run_dir(out: Path, cfg):
    """Create the run directory and config.toml for a new run. If the run fails before its
    first log line (an env that raises in its first step, Ctrl-C ...), remove what was created.

    A directory holding a run, or any file srml did not write, is refused: nothing of the
    user's is ever overwritten."""
    out = Path(out)
    if (out / "log.jsonl").exists():
        raise SrmlError(f"{out} already holds a run; choose another --out (or --resume {out})")
    if out.exists() and not out.is_dir():
        raise SrmlError(f"--out {out} is a file, not a directory")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in OWN_FILES)
        if foreign or any((out / n).exists() for n in OWN_FILES):
            shown = ", ".join((foreign or [n for n in OWN_FILES if (out / n).exists()])[:3])
            raise SrmlError(f"--out {out} is not empty ({shown}); choose a new or empty directory")
    made_dir = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SrmlError(f"cannot create --out {out}: {e.strerror or e}") from None
    with lock_run_dir(out):  # a second process on the same --out is refused
        if (out / "log.jsonl").exists():  # another run got here first
            raise SrmlError(f"{out} already holds a run; choose another --out")
        cfg.out = str(out)
        try:
            try:
                cfg.save(out / "config.toml")
            except OSError as e:
                raise SrmlError(f"cannot write to --out {out}: {e.strerror or e}") from None
            yield out
        except BaseException:
            if not (out / "log.jsonl").exists():
                for name in OWN_FILES:
                    (out / name).unlink(missing_ok=True)
                if made_dir and not any(out.iterdir()):
                    out.rmdir()
            raise
