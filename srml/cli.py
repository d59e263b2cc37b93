"""Command line: ``srml run``, ``srml plot``.

Flags are built from :class:`srml.config.Config` (its field docstrings are the
help text). Precedence: defaults < ``--config FILE.toml`` < flags.
Bad input ends with one line on stderr and exit code 2, never a traceback
(set SRML_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

from .config import Config, field_docs, from_dict, load_toml
from .errors import SrmlError

ALIASES = {"lifetime": ["--steps-per-run"], "pool_size": ["--pool"]}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print usage too)
        raise SrmlError(message)


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    docs = field_docs()
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        names = [flag, *ALIASES.get(f.name, [])]
        kw = {"dest": f.name, "default": None, "help": docs.get(f.name, "")}
        default = getattr(Config(), f.name)
        if isinstance(default, bool):
            p.add_argument(*names, action=argparse.BooleanOptionalAction, **kw)
        elif isinstance(default, list):
            p.add_argument(*names, type=int, nargs="*", metavar="W", **kw)
        elif isinstance(default, dict):
            p.add_argument(*names, type=_json_dict, metavar="JSON", **kw)
        else:
            p.add_argument(*names, type=type(default), metavar=f.name.upper(), **kw)


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"n_arms\": 3}'")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="srml", description="Self-referential evolutionary meta-learning (FME).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="run FME on an environment", description=__doc__)
    r.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file")
    r.add_argument(
        "--resume",
        metavar="RUN_DIR",
        type=Path,
        help="continue the stopped run in RUN_DIR from its checkpoint (flags may only raise "
        "--total-steps/--generations or change --progress and the like)",
    )
    _add_config_flags(r)
    b = sub.add_parser("bench", help="agent-steps/s on the peers' workload (SRWM d_in 8)")
    b.add_argument("--env", default="CartPole-v1")
    b.add_argument("--backend", default="numba")
    b.add_argument("--pop", type=int, default=1024, help="population (agents run together)")
    b.add_argument("--lifetime", type=int, default=500, help="env steps per agent")
    b.add_argument("--repeats", type=int, default=3, help="timed runs after the first")
    b.add_argument("--twin", default="auto", help="auto or off (Gymnasium's own env)")
    b.add_argument("--threads", type=int, default=0, help="numba threads; 0 means all")
    pl = sub.add_parser("plot", help="overlay the pool reward curves of runs")
    pl.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    pl.add_argument("-o", "--output", type=Path, default=Path("pool_reward.png"))
    pl.add_argument("--title", default=None)
    pl.add_argument(
        "--across-seeds",
        action="store_true",
        help="group runs by their parent directory (one group per method, one run per seed): "
        "mean pool median over seeds with a bootstrap 95%% band",
    )
    pl.add_argument(
        "--lineage",
        action="store_true",
        help="draw which founders' descendants fill the pool (runs with a lineage.npz)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    cfg = from_dict(load_toml(args.config)) if args.config else Config()
    flags = {f.name: getattr(args, f.name) for f in fields(Config)}
    return from_dict({k: v for k, v in flags.items() if v is not None}, base=cfg)


def given_settings(args: argparse.Namespace) -> dict:
    """The settings the user gave explicitly (config file, then flags), for --resume."""
    given = dict(load_toml(args.config)) if args.config else {}
    flags = {f.name: getattr(args, f.name) for f in fields(Config)}
    return given | {k: v for k, v in flags.items() if v is not None}


def cmd_run(args) -> int:
    from .runner import run

    if args.resume is not None:
        from .resume import resume

        out = resume(args.resume, given_settings(args))
        print(f"srml: run written to {out}", file=sys.stderr)
        return 0
    cfg = config_from_args(args).validate()
    out = run(cfg)
    print(f"srml: run written to {out}", file=sys.stderr)
    return 0


def cmd_plot(args) -> int:
    from .plot import plot_runs

    for run in args.runs:
        if not (run / "log.jsonl").exists():
            raise SrmlError(f"{run} is not a run directory (no log.jsonl)")
    if args.output.parent and not args.output.parent.exists():
        raise SrmlError(f"output directory {args.output.parent} does not exist")
    if args.lineage:
        from .plot import plot_lineage

        print(plot_lineage(args.runs, args.output))
        return 0
    if args.across_seeds:
        from .plot import plot_runs_across_seeds

        groups: dict[str, list[Path]] = {}
        for run in args.runs:
            groups.setdefault(run.resolve().parent.name, []).append(run)
        print(plot_runs_across_seeds(groups, args.output, args.title))
        return 0
    print(plot_runs(args.runs, args.output, args.title))
    return 0


def cmd_bench(args) -> int:
    from .bench import bench, report

    if args.pop < 1 or args.lifetime < 1 or args.repeats < 1:
        raise SrmlError("--pop, --lifetime and --repeats must be >= 1")
    r = bench(
        args.env, args.backend, args.pop, args.lifetime, args.repeats, args.twin, args.threads
    )
    print(report(r))
    return 0


def main(argv: list[str] | None = None) -> int:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # so `--env mymodule:MyEnv-v0` finds ./mymodule.py
    try:
        args = build_parser().parse_args(argv)
        return {"run": cmd_run, "plot": cmd_plot, "bench": cmd_bench}[args.command](args)
    except SrmlError as e:
        print(f"srml: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("srml: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug of ours: one line, the traceback on request
        if os.environ.get("SRML_DEBUG"):
            raise
        print(
            f"srml: internal error: {type(e).__name__}: {e} (SRML_DEBUG=1 shows more)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
