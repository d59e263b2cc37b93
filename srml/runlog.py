"""Run directories: config.toml, log.jsonl, pool.npz, written so a crash never corrupts them.

- Whole files (config, checkpoint, figures) are written to a temporary file in
  the same directory, flushed to disk, then renamed over the target: a reader
  sees the old file or the new one, never half of one.
- log.jsonl gets one complete line per ``write`` call; a line cut short by a
  crash is dropped when the log is read (and trimmed on resume).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import SrmlError

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


def append_line(path: Path, row: dict) -> None:
    """Append one JSON line in a single write, flushed, so every full line parses."""
    data = (json.dumps(row) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


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
    names = ("config.toml", "log.jsonl", "pool.npz", "pool_reward.png")
    stale = [p for p in Path(path).iterdir() if any(p.name.startswith(f".{n}.") for n in names)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
