"""Pool reward curves with matplotlib: median with a quantile band and the max, over env steps.

Several runs of one config (e.g. seeds) are overlaid; ``srml plot`` draws any
set of run directories into one figure.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .errors import SrmlError  # noqa: E402
from .run.rundir import atomic_write_bytes, read_log  # noqa: E402


def col(rows: list[dict], key: str) -> np.ndarray:
    """One column of log rows as floats (a missing value or JSON null is NaN)."""
    return np.array([np.nan if r.get(key) is None else r[key] for r in rows], float)


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
            col(rows, "pool_fitness_median"),
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
        ax.plot(x, col(rows, "pool_fitness_median"), color=color, label=_label(run))
        ax.fill_between(
            x,
            col(rows, "pool_fitness_q10"),
            col(rows, "pool_fitness_q90"),
            color=color,
            alpha=0.2,
            lw=0,
        )
        ax.plot(x, col(rows, "pool_fitness_max"), color=color, ls="--", lw=0.8)
        _plot_islands(ax, all_rows, {r["generation"]: r["env_steps"] for r in rows}, color, run)
    ax.set_xlabel("env steps")
    ax.set_ylabel("pool fitness (mean return per episode)")
    ax.set_title(title or "pool fitness: median, 10-90% band, max (dashed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out)


# --- across seeds, within a lifetime, lineage (experiments/ and `srml plot --across-seeds/--lineage`)


def bootstrap_band(Y, level: float = 0.95, n_boot: int = 2000, seed: int = 0):
    """Mean over axis 0 (seeds) and a bootstrap ``level`` band for it, at every column.

    Y: (n_seeds, T). Seeds are resampled with replacement ``n_boot`` times; the
    band is the central ``level`` interval of the resampled means (with one
    seed it collapses onto the mean).
    """
    Y = np.asarray(Y, float)
    if Y.ndim == 1:
        Y = Y[None]
    mean = Y.mean(0)
    if len(Y) < 2:
        return mean, mean.copy(), mean.copy()
    idx = np.random.default_rng(seed).integers(0, len(Y), size=(n_boot, len(Y)))
    boots = Y[idx].mean(1)  # (n_boot, T)
    a = (1 - level) / 2
    lo, hi = np.quantile(boots, [a, 1 - a], axis=0)
    return mean, lo, hi


def draw_seed_bands(ax, series: dict, xlabel="env steps", ylabel="", title="", **line) -> None:
    """One line per label: the mean over seeds with its bootstrap 95% band.

    series: label -> (x (T,), Y (n_seeds, T)).
    """
    for n, (label, (x, Y)) in enumerate(series.items()):
        mean, lo, hi = bootstrap_band(Y)
        color = line.get("colors", {}).get(label, f"C{n % 10}")
        ax.plot(x, mean, color=color, label=f"{label} (n={len(Y) if Y.ndim > 1 else 1})")
        ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if xlabel == "env steps":
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def draw_lifetime_reward(ax, series: dict, title: str = "", unit: str = "pull") -> None:
    """In-lifetime reward curves: mean reward at each step of an episode, over seeds.

    series: label -> (step numbers (T,), rewards (n_seeds, T)), each row the mean over the
    lanes and episodes of one seed. A curve that rises within the episode is learning inside
    the lifetime (the weights are not reset between steps).
    """
    draw_seed_bands(
        ax, series, xlabel=f"{unit} within the episode", ylabel="mean reward", title=title
    )


def draw_lineage(ax, x, counts, top: int = 8, title: str = "") -> None:
    """Stacked shares of the pool held by each founder's descendants over env steps.

    counts: (T, K) members descended from founder k at each of T points. The
    ``top`` founders with the largest final share get their own colour; the
    rest are grey ("other founders").
    """
    counts = np.asarray(counts, float)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    best = np.argsort(-share[-1], kind="stable")[:top]
    best = best[share[-1, best] > 0]
    rest = np.delete(share, best, axis=1).sum(1)
    layers = [share[:, k] for k in best] + [rest]
    labels = [f"founder {k}" for k in best] + ["other founders"]
    colors = [f"C{i % 10}" for i in range(len(best))] + ["0.8"]
    ax.stackplot(x, *layers, labels=labels, colors=colors, lw=0)
    ax.set_ylim(0, 1)
    ax.set_xlabel("env steps")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.set_ylabel("share of the pool")
    ax.set_title(title or "whose descendants fill the pool", fontsize=10)
    ax.legend(fontsize=6, loc="upper left", ncol=3, framealpha=0.6)


def panels(n: int, width: float = 4.6, height: float = 3.4, title: str = ""):
    """A figure with n axes side by side (at most 3 per row); returns (fig, flat list of axes)."""
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), dpi=100)
    axes = list(getattr(axes, "flat", [axes]))
    for ax in axes[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig, axes[:n]


def save_figure(fig, out: Path) -> Path:
    import io

    fig.tight_layout()
    buf = io.BytesIO()
    fmt = Path(out).suffix.lower().lstrip(".") or "png"
    fig.savefig(buf, format=fmt if fmt in ("png", "pdf", "svg") else "png")
    plt.close(fig)
    atomic_write_bytes(Path(out), buf.getvalue())
    return Path(out)


def seed_curves(runs: list[Path], key: str = "pool_fitness_median"):
    """Curves of several runs (seeds) on the first run's env-step grid: (x (T,), Y (n, T))."""
    logs = []
    for run in runs:
        rows = [r for r in read_log(Path(run) / "log.jsonl") if "island" not in r]
        if not rows:
            raise SrmlError(f"{Path(run) / 'log.jsonl'} has no generations to plot")
        logs.append((col(rows, "env_steps"), col(rows, key)))
    x = np.asarray(min((lg[0] for lg in logs), key=lambda v: v[-1]), float)
    Y = np.stack([np.interp(x, np.asarray(a, float), np.asarray(b, float)) for a, b in logs])
    return x, Y


def plot_runs_across_seeds(groups: dict, out: Path, title: str | None = None) -> Path:
    """Runs grouped (label -> run dirs, one per seed): mean pool median with a bootstrap 95% band."""
    fig, (ax,) = panels(1, width=7, height=4.2)
    draw_seed_bands(
        ax,
        {label: seed_curves(runs) for label, runs in groups.items()},
        ylabel="pool fitness median",
        title=title or "pool median: mean over seeds, bootstrap 95% band",
    )
    return save_figure(fig, out)


def read_lineage(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env steps (T,), counts (T, K)) from a run's lineage.jsonl: members descended from each
    founder at every generation (K: founders ever seen)."""
    rows = read_log(Path(run) / "lineage.jsonl")
    if not rows:
        raise SrmlError(f"{run} has no lineage records (FME runs write lineage.jsonl)")
    k = 1 + max(max(r["founders"], default=0) for r in rows)
    counts = np.zeros((len(rows), k), np.int64)
    for t, r in enumerate(rows):
        counts[t, r["founders"]] = r["counts"]
    return np.array([r["env_steps"] for r in rows]), counts


def plot_lineage(runs: list[Path], out: Path, top: int = 8) -> Path:
    """Lineage of each run from its lineage.jsonl (FME runs)."""
    fig, axes = panels(len(runs))
    for ax, run in zip(axes, runs, strict=True):
        if not (Path(run) / "lineage.jsonl").exists():
            raise SrmlError(f"{run} has no lineage.jsonl (FME runs write one)")
        x, counts = read_lineage(run)
        title = "/".join(Path(run).resolve().parts[-3:])  # e.g. CartPole-v1/fme/seed0
        draw_lineage(ax, x, counts, top, title=title)
    return save_figure(fig, out)


def group_across_seeds(runs: list[Path]) -> dict[str, list[Path]]:
    """Runs grouped by their config without the seed and the run directory: only runs of the
    same env and settings are averaged. Labels name the env and the settings that differ."""
    import tomllib

    configs = {}
    for run in runs:
        p = Path(run) / "config.toml"
        if not p.is_file():
            raise SrmlError(f"{run} has no config.toml")
        with open(p, "rb") as f:
            c = tomllib.load(f)
        configs[Path(run)] = {k: v for k, v in c.items() if k not in ("seed", "out")}
    keys = sorted({k for c in configs.values() for k in c})
    differ = [k for k in keys if len({repr(c.get(k)) for c in configs.values()}) > 1]
    groups: dict[str, list[Path]] = {}
    for run, c in configs.items():
        parts = [str(c.get("env", "?"))] + [f"{k}={c.get(k)}" for k in differ if k != "env"]
        groups.setdefault(" ".join(parts), []).append(run)
    return groups


INSTRUMENTS = {
    "weight_change": "weight change per lifetime (relative)",
    "sibling_spread": "spread of one parent's children (/ its norm)",
    "diversity": "pool diversity (pairwise distance / norm)",
    "lineages_effective": "founder lineages alive (effective number)",
    "column_residual": "outside the founder's column space",
    "weight_norm": "median genome norm",
}


def plot_instruments(runs: list[Path], out: Path, title: str | None = None) -> Path:
    """FME's instruments (log.jsonl columns) over env steps, one panel each, one line per run;
    log scales where the readings span decades."""
    logs = {}
    for run in runs:
        rows = [r for r in read_log(Path(run) / "log.jsonl") if "island" not in r]
        if not any("weight_change" in r or "lineages_effective" in r for r in rows):
            raise SrmlError(f"{run} logged no instruments (FME runs on the host pool do)")
        logs[Path(run)] = rows
    fig, axes = panels(len(INSTRUMENTS), width=4.2, height=3.0, title=title or "FME instruments")
    for ax, (key, label) in zip(axes, INSTRUMENTS.items(), strict=True):
        for n, (run, rows) in enumerate(logs.items()):
            y = col(rows, key)
            if np.isfinite(y).any():
                ax.plot(col(rows, "env_steps"), y, color=f"C{n % 10}", lw=1, label=_label(run))
        if key in ("weight_change", "sibling_spread", "column_residual", "weight_norm"):
            ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("env steps")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    return save_figure(fig, out)
