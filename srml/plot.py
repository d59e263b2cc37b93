"""Pool reward curves with matplotlib: median with a quantile band and the max, over env steps.

Several runs of one config (e.g. seeds) are overlaid; ``srml plot`` draws any
set of run directories into one figure.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .errors import SrmlError  # noqa: E402
from .runlog import atomic_write_bytes, read_log  # noqa: E402


def _label(run: Path) -> str:
    return run.name or str(run)


ISLAND_STYLES = [":", "-.", (0, (5, 1)), (0, (1, 3)), (0, (3, 1, 1, 1, 1, 1))]


def _plot_islands(ax, all_rows: list[dict], env_steps_at: dict, color, run: Path) -> None:
    """An island run (srml run --workers N): each island's pool median, thin, at the merged
    env step count of its generation."""
    islands = sorted({r["island"] for r in all_rows if "island" in r})
    for k, i in enumerate(islands):
        rows = [r for r in all_rows if r.get("island") == i and r["generation"] in env_steps_at]
        ax.plot(
            [env_steps_at[r["generation"]] for r in rows],
            [r["pool_fitness_median"] for r in rows],
            color=color,
            lw=0.8,
            alpha=0.75,
            ls=ISLAND_STYLES[k % len(ISLAND_STYLES)],
            label=f"{_label(run)} island {i} (median)",
        )


def plot_runs(runs: list[Path], out: Path, title: str | None = None) -> Path:
    """Draw pool fitness median (line), q10-q90 band and max (dashed) of each run."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for n, run in enumerate(runs):
        run = Path(run)
        all_rows = read_log(run / "log.jsonl")
        rows = [r for r in all_rows if "island" not in r]
        if not rows:
            raise SrmlError(f"{run / 'log.jsonl'} has no generations to plot")
        x = [r["env_steps"] for r in rows]
        color = f"C{n % 10}"
        ax.plot(x, [r["pool_fitness_median"] for r in rows], color=color, label=_label(run))
        ax.fill_between(
            x,
            [r["pool_fitness_q10"] for r in rows],
            [r["pool_fitness_q90"] for r in rows],
            color=color,
            alpha=0.2,
            lw=0,
        )
        ax.plot(x, [r["pool_fitness_max"] for r in rows], color=color, ls="--", lw=0.8)
        _plot_islands(ax, all_rows, {r["generation"]: r["env_steps"] for r in rows}, color, run)
    ax.set_xlabel("env steps")
    ax.set_ylabel("pool fitness (mean return per episode)")
    ax.set_title(title or "pool fitness: median, 10-90% band, max (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return out
