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
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import SrmlError

CHECKPOINT_VERSION = 1


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; set back at once
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
"""What open() would give a new file: mkstemp's 0600 would hide a run from its group."""


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a power loss must not undo it); a no-op where
    directories cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; nothing better can be done
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it, rename it over ``path``.
    A symlink at ``path`` is replaced, never followed: nothing outside the directory is
    written through it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def library_versions() -> dict[str, str]:
    """srml's and its numeric libraries' versions, recorded in every checkpoint."""
    import platform

    import gymnasium
    import numba

    from .. import __version__

    return {
        "srml": __version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "gymnasium": gymnasium.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """pool arrays + a JSON ``meta`` (counters, RNG state, config) as one .npz, atomically."""
    buf = io.BytesIO()
    meta = {
        "format": "srml-checkpoint",
        "version": CHECKPOINT_VERSION,
        "versions": library_versions(),
        **meta,
    }
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
    if not isinstance(meta, dict) or meta.get("format") != "srml-checkpoint":
        raise SrmlError(f"{path} is not an srml checkpoint")
    if not isinstance(meta.get("version", 0), int):
        raise SrmlError(f"checkpoint {path} has a malformed version: {meta['version']!r}")
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
    # O_NOFOLLOW: a symlink planted in a run directory must not redirect the log elsewhere
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as e:
        if os.path.islink(path):
            raise SrmlError(f"{path} is a symlink; srml writes only its own files") from None
        raise e
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
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SrmlError(f"no log at {path}") from None
    except UnicodeDecodeError:
        raise SrmlError(f"{path} is not a log srml wrote (not UTF-8 text)") from None
    except OSError as e:
        raise SrmlError(f"cannot read {path}: {e.strerror or e}") from None
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # torn by a crash mid-write
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise SrmlError(f"{path} has a corrupt line: {line[:60]!r}") from None
        if not isinstance(row, dict):
            raise SrmlError(f"{path} has a line that is not a JSON object: {line[:60]!r}")
        rows.append(row)
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


def refuse_symlinks(run_dir: Path) -> None:
    """A run directory's own files must be files: a symlink could redirect a write (or a
    resume's trim) to anything the user can write."""
    links = [n for n in OWN_FILES if (Path(run_dir) / n).is_symlink()]
    if links:
        raise SrmlError(
            f"{run_dir}/{links[0]} is a symlink; srml writes only its own files (replace it "
            "with the file it points to)"
        )


def _refuse_unusable(out: Path) -> None:
    if (out / "log.jsonl").exists():
        raise SrmlError(f"{out} already holds a run; choose another --out (or --resume {out})")
    if out.exists() and not out.is_dir():
        raise SrmlError(f"--out {out} is a file, not a directory")
    if out.is_dir():
        try:
            names = sorted(p.name for p in out.iterdir())
        except OSError as e:
            raise SrmlError(f"--out {out} cannot be read: {e.strerror or e}") from None
        if names:
            raise SrmlError(
                f"--out {out} is not empty ({', '.join(names[:3])}); choose a new or empty "
                "directory"
            )


NAME_MAX = 255  # bytes in one path component on every common file system
MIN_FREE = 1 << 20


def check_out(out: Path, need_bytes: int = MIN_FREE) -> None:
    """Refuse an ``--out`` that cannot hold a run, before anything is compiled or written: not
    empty, a file or under one, not writable, a name too long, or too little free space for
    the checkpoint (``need_bytes``)."""
    out = Path(out)
    long = [p for p in out.parts if len(os.fsencode(p)) > NAME_MAX]
    if long:
        raise SrmlError(
            f"--out: the name {long[0][:40]!r}... is longer than {NAME_MAX} bytes; use a "
            "shorter one"
        )
    if len(os.fsencode(str(out.absolute()))) >= 4000:
        raise SrmlError("--out: the path is too long; use a shorter one")
    _refuse_unusable(out)
    base = out.absolute()
    while not base.exists() and base != base.parent:  # the nearest existing ancestor
        if base.is_symlink():
            raise SrmlError(f"--out {out}: {base} is a broken symlink")
        base = base.parent
    if not base.is_dir():
        raise SrmlError(f"--out {out}: {base} is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        why = "read-only" if _read_only_fs(base) else "not writable"
        raise SrmlError(f"--out {out}: {base} is {why}")
    try:
        free = shutil.disk_usage(base).free
    except OSError:
        return
    if free < max(need_bytes, MIN_FREE):
        raise SrmlError(
            f"--out {out}: its file system has {_human(free)} free, the run's checkpoint "
            f"needs about {_human(max(need_bytes, MIN_FREE))}; free space or choose another "
            "--out"
        )


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def _human(n: float) -> str:
    from ..memory import human

    return human(n)


@contextmanager
def new_run_dir(out: Path, cfg):
    """Create the run directory and config.toml for a new run. If the run fails before its
    first log line (an env that raises in its first step, Ctrl-C ...), remove what was created.

    A directory holding anything at all is refused: nothing of the user's is ever
    overwritten, and no symlink can be waiting inside it."""
    out = Path(out)
    _refuse_unusable(out)
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
