"""Throughput of srml's backends beside the peer workloads, measured in one run.

    python benchmarks/throughput.py [--pops 64 1024 16384] [--lifetime 500] [--out benchmarks/RESULTS.md]

Runs, for each population P: the Gymnasium+numpy peer and (where JAX and gymnax
are installed) the JAX peer from ../shared/peers/, then ``srml bench`` with the
numba backend on the compiled twin (fused kernel: the default lanes layout, the
same with ``--fast-exp``, and the per-agent layout), the numba backend on
Gymnasium's own env (generic path), and the numpy reference. Every figure is
agent-steps/s; ratios are taken against the Gymnasium+numpy peer of the same P
in the same run (absolute figures drift between runs on shared machines).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"
DIN = 8


def last_figure(cmd: list[str], timeout: float = 1800) -> tuple[float | None, str]:
    """Run a command; return the number after agent_steps_per_s= on its last line."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines or "agent_steps_per_s=" not in lines[-1]:
        return None, (p.stderr.strip().splitlines() or ["failed"])[-1][:200]
    return float(lines[-1].split("agent_steps_per_s=")[1].split()[0]), lines[-1]


def has_module(name: str) -> bool:
    p = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True)
    return p.returncode == 0


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pops", type=int, nargs="+", default=[64, 1024, 16384])
    ap.add_argument("--lifetime", type=int, default=500)
    ap.add_argument("--peers", type=Path, default=PEERS)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    ap.add_argument(
        "--rows", nargs="+", metavar="NAME",
        help="run only the workloads of these names (the Gymnasium+numpy peer always runs)",
    )  # fmt: skip
    args = ap.parse_args()

    srml = [sys.executable, "-m", "srml", "bench", "--lifetime", str(args.lifetime)]
    workloads = [
        (
            "peer: Gymnasium+numpy",
            lambda P: [
                sys.executable,
                str(args.peers / "peer_gymnasium_numpy.py"),
                str(P),
                str(args.lifetime),
                str(DIN),
            ],
        ),
    ]
    if has_module("jax") and has_module("gymnax"):
        workloads.append(
            (
                "peer: JAX+gymnax (CPU)",
                lambda P: [
                    sys.executable,
                    str(args.peers / "peer_jax_srwm.py"),
                    str(P),
                    str(args.lifetime),
                    str(DIN),
                ],
            )
        )
    workloads += [
        ("srml numba, fused twin, lanes", lambda P: [*srml, "--pop", str(P)]),
        (
            "srml numba, fused twin, lanes, --fast-exp",
            lambda P: [*srml, "--pop", str(P), "--fast-exp"],
        ),
        (
            "srml numba, fused twin, one agent at a time",
            lambda P: [*srml, "--pop", str(P), "--layout", "agent"],
        ),
        (
            "srml numba, Gymnasium env",
            lambda P: [*srml, "--pop", str(P), "--backend", "numba", "--twin", "off"],
        ),
        (
            "srml numpy reference",
            lambda P: [*srml, "--pop", str(P), "--backend", "numpy", "--repeats", "1"],
        ),
    ]
    if args.rows:
        unknown = set(args.rows) - {name for name, _ in workloads}
        if unknown:
            ap.error(f"unknown --rows {sorted(unknown)}; choose from {[n for n, _ in workloads]}")
        workloads = [w for w in workloads if w[0] in args.rows or w[0] == "peer: Gymnasium+numpy"]
    results: dict[tuple[str, int], float | None] = {}
    notes: list[str] = []
    for P in args.pops:
        for name, cmd in workloads:
            figure, line = last_figure(cmd(P))
            results[name, P] = figure
            print(
                f"P={P:>6} {name:<44} {figure if figure is None else f'{figure:.3e}'}   {line}",
                flush=True,
            )
            if figure is None:
                notes.append(f"{name} at P={P} failed: {line}")

    threads = os.cpu_count()
    base = "peer: Gymnasium+numpy"
    out = [
        "# Throughput (agent-steps/s), measured in one run",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; numba used {threads} threads "
        f"(all cores); the peers and the numpy reference run numpy single-threaded code. "
        f"Workload: one-layer one-head SRWM, d_in {DIN}, CartPole, lifetime {args.lifetime}, "
        "sampled actions. srml figures are the best of 3 timed runs after a first (compiling) run;"
        " peers time as written in ../shared/peers/.",
        f"Made by `python benchmarks/throughput.py` on {time.strftime('%Y-%m-%d')}.",
        "",
        "| workload | " + " | ".join(f"P={P}" for P in args.pops) + " |",
        "|---|" + "---|" * len(args.pops),
    ]
    for name, _ in workloads:
        cells = []
        for P in args.pops:
            f, b = results[name, P], results[base, P]
            if f is None:
                cells.append("failed")
            elif name == base or b is None:
                cells.append(f"{f:.2e}")
            else:
                cells.append(f"{f:.2e} ({f / b:.1f}x)")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    if not has_module("jax"):
        out += ["", "The JAX+gymnax peer was not run: JAX is not installed here."]
    out += [f"- {n}" for n in notes]
    args.out.write_text("\n".join(out) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
