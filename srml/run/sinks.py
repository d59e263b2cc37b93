"""Where log rows go besides ``log.jsonl`` (the record): ``progress.csv`` and TensorBoard.

``progress.csv`` has fixed columns (:data:`COLUMNS`), one line per row, empty
where a row has no value; ``pandas.read_csv`` reads it as is. TensorBoard
(``--tensorboard``, the ``tensorboard`` extra) gets the merged rows' scalars under
``tb/`` in the run directory, named as SB3 and CleanRL name theirs (``charts/...``,
``pool/...``), with ``env_steps`` as the global step.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..errors import SrmlError
from ..fitness import STATS
from .rundir import append_bytes, atomic_write_bytes

COLUMNS = (
    "generation",
    "env_steps",
    "wall_s",
    "steps_per_s",
    "pool_size",
    *(f"pool_fitness_{k}" for k in STATS),
    "batch_fitness_mean",
    "batch_fitness_max",
    "batch_episodes_mean",
    "nonfinite",
    "island",
)


def _line(row: dict, header: bool = False) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(COLUMNS)
    w.writerow(["" if row.get(c) is None else row.get(c) for c in COLUMNS])
    return buf.getvalue().encode()


def append_csv(path: Path, row: dict) -> None:
    append_bytes(path, _line(row, header=not path.exists() or path.stat().st_size == 0))


def rewrite_csv(path: Path, rows: list[dict]) -> None:
    """The CSV of ``rows`` (resume: the log's kept rows), written atomically."""
    data = b"".join(_line(r, header=(i == 0)) for i, r in enumerate(rows))
    atomic_write_bytes(path, data or _line({}, header=True).split(b"\n", 1)[0] + b"\n")


class TensorBoard:
    """Scalars of the merged rows for TensorBoard (needs tensorboardX)."""

    def __init__(self, out: Path):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise SrmlError(
                "--tensorboard needs the tensorboard extra: pip install 'srml[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(str(Path(out) / "tb"))

    def write(self, row: dict) -> None:
        if "island" in row:
            return
        step = row["env_steps"]
        for key in ("median", "mean", "max", "q10", "q90"):
            v = row.get(f"pool_fitness_{key}")
            if v is not None:
                self.writer.add_scalar(f"pool/fitness_{key}", v, step)
        for key, name in (
            ("batch_fitness_mean", "charts/batch_fitness_mean"),
            ("batch_episodes_mean", "charts/episodes_per_lifetime"),
            ("steps_per_s", "charts/SPS"),
            ("generation", "charts/generation"),
        ):
            if row.get(key) is not None:
                self.writer.add_scalar(name, row[key], step)

    def close(self) -> None:
        self.writer.close()
