"""Refuse, up front, a pool that cannot fit in memory.

A run holds its pool (genomes as float32 plus seven per-member numbers), the
founders waiting to be evaluated, one batch in flight, and, while a
checkpoint is written, two more copies of the pool (the state snapshot and the
.npz bytes). :func:`check_memory` compares that estimate with the memory the
operating system says is available and stops with the numbers before anything
is allocated, instead of letting the kernel's OOM killer end the run later.
"""

from __future__ import annotations

import os

from .errors import SrmlError

PER_MEMBER = 8 + 6 * 8  # fitness (float64) + last_used, born, ids, parent, founder (int64) + slack


def pool_bytes(pool_size: int, genome_size: int) -> int:
    """Bytes of one pool's arrays."""
    return pool_size * (4 * genome_size + PER_MEMBER)


def run_bytes(
    pool_size: int, genome_size: int, founders: int, batch: int, pools_held: int = 1
) -> int:
    """Peak bytes a run needs: the pool, the founders, a batch, and checkpoint copies.

    ``pools_held`` counts extra pool copies kept elsewhere (an island driver
    keeps the last checkpoint of every island).
    """
    pool = pool_bytes(pool_size, genome_size)
    return 3 * pool + 4 * genome_size * (founders + 4 * batch) + (pools_held - 1) * pool


def available_bytes() -> int | None:
    """Memory the OS can give us now (MemAvailable), or None if it cannot say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError  # unreachable


def check_memory(
    need: int,
    what: str,
    available: int | None = None,
    advice: str = "lower --pool-size (or --founders, --batch)",
) -> None:
    """Raise SrmlError if ``need`` bytes exceed the available memory."""
    have = available_bytes() if available is None else available
    if have is not None and need > have:
        raise SrmlError(
            f"{what} needs about {human(need)} of memory but only {human(have)} is "
            f"available; {advice}"
        )
