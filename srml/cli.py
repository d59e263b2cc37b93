"""The ``srml`` command: run, eval, play, export, plot, bench.

``srml run`` flags are built from :class:`srml.config.Config` (its field
docstrings are the help text). Precedence: defaults < ``--config FILE.toml`` <
flags. Bad input ends with one line on stderr and exit code 2, never a
traceback (set SRML_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

from . import __version__
from .config import Config, field_docs, from_dict, load_toml
from .errors import SrmlError

ALIASES = {"lifetime": ["--steps-per-run"], "pool_size": ["--pool"]}

RUN_HELP = """\
Run a search method (FME by default) on a Gymnasium environment and write a run
directory: config.toml, log.jsonl, progress.csv, pool.npz (checkpoint),
lineage.jsonl (FME) and pool_reward.png.

examples:
  srml run                                     # FME on CartPole-v1, 20M env steps
  srml run --env Acrobot-v1 --founders 1 --seed 3
  srml run --method hill_climber --sigma 0.1 --no-self-modify
  srml run --env mymodule:MyEnv-v0             # imports ./mymodule.py, which registers it
  srml run --resume runs/CartPole-v1-s0-...    # continue a stopped run
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print usage too)
        raise SrmlError(message)


def _choices() -> dict[str, tuple]:
    """The values a named-choice setting takes, shown as the flag's metavar ({a,b}); the
    config's validation refuses others in one line."""
    from .backends import BACKENDS
    from .pool import CREDITS, SELECTIONS
    from .srwm import BETAS, INPUT_NORMS, UPDATES

    auto = ("auto",)  # the founders' recipe chooses (srml.config.RECIPES)
    return {
        "backend": tuple(BACKENDS), "selection": auto + tuple(SELECTIONS),
        "beta": auto + tuple(BETAS), "update": UPDATES, "credit": auto + tuple(CREDITS),
        "twin": ("auto", "off"), "input_norm": INPUT_NORMS,
    }  # fmt: skip


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    docs, defaults, choices = field_docs(), Config(), _choices()
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        names = [flag, *ALIASES.get(f.name, [])]
        default = getattr(defaults, f.name)
        shown = json.dumps(default) if isinstance(default, dict | list) else default
        help_text = f"{docs.get(f.name, '')} (default: {shown})".replace("%", "%%")
        kw = {"dest": f.name, "default": None, "help": help_text}
        if isinstance(default, bool):
            p.add_argument(*names, action=argparse.BooleanOptionalAction, **kw)
        elif isinstance(default, list):
            p.add_argument(*names, type=_int, nargs="*", metavar="W", **kw)
        elif isinstance(default, dict):
            p.add_argument(*names, type=_json_dict, metavar="JSON", **kw)
        elif isinstance(default, int):
            p.add_argument(*names, type=_int, metavar=f.name.upper(), **kw)
        elif isinstance(default, float):
            p.add_argument(*names, type=_float, metavar=f.name.upper(), **kw)
        else:
            meta = "{" + ",".join(choices[f.name]) + "}" if f.name in choices else f.name.upper()
            p.add_argument(*names, type=str, metavar=meta, **kw)


def _int(text: str) -> int:
    try:
        return int(text.replace("_", ""))
    except ValueError:
        try:
            v = float(text)  # 1e6 is a fine way to write a step count
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not v.is_integer():
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        return int(v)


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return v


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"n_arms\": 3}'")
    return value


def _positive(text: str) -> int:
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="srml",
        description="Self-referential evolutionary meta-learning: pools of self-modifying "
        "weight matrices improved by fitness monotonic execution (FME).",
    )
    p.add_argument("--version", action="version", version=f"srml {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser(
        "run",
        help="run FME (or a baseline) on an environment",
        description=RUN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file")
    r.add_argument(
        "--resume",
        metavar="RUN_DIR",
        type=Path,
        help="continue the stopped run in RUN_DIR from its checkpoint (flags may only raise "
        "--total-steps/--generations or change --progress and the like)",
    )
    _add_config_flags(r)

    e = sub.add_parser(
        "eval",
        help="re-evaluate a run's best members on held-out seeds",
        description="Re-run the K members with the highest recorded fitness for N fresh "
        "lifetimes each on seeds never used in training; print recorded vs re-evaluated "
        "fitness (mean and 95%% interval) and name the re-evaluated best.",
    )
    e.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    e.add_argument("--top", type=_positive, default=8, help="members to re-evaluate (default: 8)")
    e.add_argument(
        "--lifetimes", type=_positive, default=64, help="fresh lifetimes each (default: 64)"
    )
    e.add_argument("--seed", type=_int, default=0, help="which held-out seeds (default: 0)")
    e.add_argument("--json", action="store_true", help="print one JSON line instead of a table")

    pl = sub.add_parser(
        "play",
        help="run a trained agent in Gymnasium's own env (and record a video)",
        description="Run one of a run's members as a srml.Agent in the Gymnasium env the run "
        "trained on (for a twin: Gymnasium's original id) and print each episode's return.",
    )
    pl.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    pl.add_argument(
        "--rank", type=_int, default=0, help="member by recorded fitness, 0 = best (default: 0)"
    )
    pl.add_argument("--episodes", type=_positive, default=3, help="episodes (default: 3)")
    pl.add_argument("--seed", type=_int, default=0, help="env and agent seed (default: 0)")
    pl.add_argument(
        "--video", type=Path, default=None, metavar="FILE.mp4",
        help="record the episodes to this file (needs the video extra)",
    )  # fmt: skip

    x = sub.add_parser(
        "export",
        help="write a run's member as a standalone agent file",
        description="Write genome, network layout, codec, env id, config and library versions "
        "to one .npz that srml.Agent.load reads without the run directory.",
    )
    x.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    x.add_argument("-o", "--output", type=Path, required=True, metavar="AGENT.npz")
    x.add_argument("--rank", type=_int, default=0, help="member by recorded fitness (default: 0)")

    g = sub.add_parser(
        "plot",
        help="overlay the pool reward curves of runs",
        description="Draw the pool fitness median, q10-q90 band and max of each run.",
    )
    g.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    g.add_argument(
        "-o", "--output", type=Path, default=Path("pool_reward.png"),
        help="figure file; .png, .pdf or .svg (default: pool_reward.png)",
    )  # fmt: skip
    g.add_argument("--title", default=None, help="figure title")
    g.add_argument(
        "--across-seeds",
        action="store_true",
        help="group runs of the same env and config (all but the seed): mean pool median over "
        "seeds with a bootstrap 95%% band",
    )
    g.add_argument(
        "--instruments",
        action="store_true",
        help="draw FME's instruments: weight change, sibling spread, diversity, lineages, "
        "column-space residual, genome norm",
    )
    g.add_argument(
        "--lineage",
        action="store_true",
        help="draw which founders' descendants fill the pool (FME runs write lineage.jsonl)",
    )

    b = sub.add_parser(
        "bench",
        help="agent-steps/s on the peers' workload (SRWM d_in 8)",
        description="Time one backend on the workload of the reference peers; the last line "
        "printed is agent_steps_per_s=<number>.",
    )
    b.add_argument("--env", default="CartPole-v1", help="env id (default: CartPole-v1)")
    b.add_argument("--backend", default="numba", help="numba, numpy or cuda (default: numba)")
    b.add_argument(
        "--pop", type=_positive, default=1024, help="agents run together (default: 1024)"
    )
    b.add_argument("--lifetime", type=_positive, default=500, help="steps per agent (default: 500)")
    b.add_argument("--repeats", type=_positive, default=3, help="timed runs (default: 3)")
    b.add_argument("--twin", default="auto", help="auto or off (default: auto)")
    b.add_argument("--threads", type=_int, default=0, help="numba threads, 0 = all (default: 0)")
    b.add_argument(
        "--layout", choices=("lanes", "agent"), default="lanes",
        help="numba's fused kernel: lanes (64 agents in lockstep, SIMD) or agent (one at a "
        "time) (default: lanes)",
    )  # fmt: skip
    b.add_argument(
        "--fast-exp",
        action="store_true",
        help="numba lanes: the polynomial exp and tanh (as srml run --fast-exp)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    cfg, _ = config_and_note(args)
    return cfg


def config_and_note(args: argparse.Namespace) -> tuple[Config, str]:
    """The config the flags and ``--config`` give, and a note on where ``out`` came from.

    A TOML file is often shared or copied, so its ``out`` is not taken silently: it is
    honoured with a note, except in a saved run's config.toml (the file sits in a run
    directory, or its ``out`` names the file's own directory): ``srml run --config RUN/config.toml`` repeats the run in a new
    directory instead of being refused for writing into the old one."""
    file = dict(load_toml(args.config)) if args.config else {}
    note = ""
    if file.get("out") and args.out is None:
        here = Path(args.config).resolve().parent
        saved_run = (here / "log.jsonl").exists() or (here / "pool.npz").exists()
        if saved_run or (isinstance(file["out"], str) and Path(file["out"]).resolve() == here):
            del file["out"]
            note = f"srml: {args.config} is a saved run's config; the repeat gets a new directory"
        else:
            note = f"srml: out = {file['out']!r} comes from {args.config}"
    cfg = from_dict(file) if file else Config()
    flags = {f.name: getattr(args, f.name) for f in fields(Config)}
    return from_dict({k: v for k, v in flags.items() if v is not None}, base=cfg), note


def given_settings(args: argparse.Namespace) -> dict:
    """The settings the user gave explicitly (config file, then flags), for --resume."""
    given = dict(load_toml(args.config)) if args.config else {}
    flags = {f.name: getattr(args, f.name) for f in fields(Config)}
    return given | {k: v for k, v in flags.items() if v is not None}


def cmd_run(args) -> int:
    if args.resume is not None:
        from .run.resume import resume

        out = resume(args.resume, given_settings(args))
    else:
        from .run.launch import start

        cfg, note = config_and_note(args)
        out = start(cfg, note=note)  # validates, saying what the recipe set
    print(f"srml: run written to {out}", file=sys.stderr)
    return 0


def cmd_eval(args) -> int:
    from .api import eval_report, load_run

    run = load_run(args.run_dir, progress=False)
    report = eval_report(run, top=args.top, lifetimes=args.lifetimes, seed=args.seed)
    print(json.dumps(report) if args.json else report_table(report))
    return 0


def report_table(r: dict) -> str:
    lines = [
        f"{r['run_dir']}: {r['env']} ({r['method']}), {r['lifetimes']} held-out lifetimes each "
        f"(seed {r['seed']})",
        f"{'rank':>4}  {'recorded':>10}  {'re-evaluated (95% interval)':>30}",
    ]
    for m in r["members"]:
        ci = f"{m['reevaluated_mean']:.2f} ± {m['reevaluated_ci95']:.2f}"
        lines.append(f"{m['rank']:>4}  {m['recorded']:>10.2f}  {ci:>30}")
    b = r["best"]
    lines.append(
        f"best (re-evaluated): rank {b['rank']}, {b['reevaluated_mean']:.2f} ± "
        f"{b['reevaluated_ci95']:.2f} (recorded {b['recorded']:.2f})"
    )
    return "\n".join(lines)


def cmd_play(args) -> int:
    from .agent import Agent, play

    agent = Agent.from_run(args.run_dir, rank=args.rank)
    for k, ret in enumerate(play(agent, args.episodes, args.seed, args.video)):
        print(f"episode {k}: return {ret:.2f}")
    if args.video:
        print(f"srml: video written to {args.video}", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    from .agent import Agent

    agent = Agent.from_run(args.run_dir, rank=args.rank)
    path = agent.save(args.output)
    print(f"srml: agent written to {path}", file=sys.stderr)
    return 0


def cmd_plot(args) -> int:
    from .plot import (
        group_across_seeds,
        plot_instruments,
        plot_lineage,
        plot_runs,
        plot_runs_across_seeds,
    )

    for run in args.runs:
        if not (run / "log.jsonl").is_file():
            raise SrmlError(f"{run} is not a run directory (no log.jsonl)")
    if args.output.is_dir():
        raise SrmlError(f"-o {args.output} is a directory; give a file name such as plot.png")
    if not args.output.parent.exists():
        raise SrmlError(f"output directory {args.output.parent} does not exist")
    if args.output.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise SrmlError(f"-o {args.output}: use a .png, .pdf or .svg file name")
    if args.lineage:
        print(plot_lineage(args.runs, args.output))
    elif args.instruments:
        print(plot_instruments(args.runs, args.output, args.title))
    elif args.across_seeds:
        groups = group_across_seeds(args.runs)
        for label, runs in groups.items():
            print(f"srml: {label}: {len(runs)} run(s)", file=sys.stderr)
        print(plot_runs_across_seeds(groups, args.output, args.title))
    else:
        print(plot_runs(args.runs, args.output, args.title))
    return 0


def cmd_bench(args) -> int:
    from .bench import bench, report

    if args.pop * args.lifetime > 10**10:
        raise SrmlError("--pop x --lifetime is over 1e10 agent-steps per run; choose less")
    from .memory import check_memory

    # the genomes (a few hundred floats each on this workload), their copies and the envs
    check_memory(args.pop * 4096, f"srml bench --pop {args.pop}", advice="lower --pop")
    if args.backend != "numba" and (args.layout != "lanes" or args.fast_exp):
        raise SrmlError("--layout and --fast-exp apply to --backend numba")
    r = bench(
        args.env, args.backend, args.pop, args.lifetime, args.repeats, args.twin, args.threads,
        layout=args.layout, fast_exp=args.fast_exp,
    )  # fmt: skip
    print(report(r))
    return 0


COMMANDS = {
    "run": cmd_run,
    "eval": cmd_eval,
    "play": cmd_play,
    "export": cmd_export,
    "plot": cmd_plot,
    "bench": cmd_bench,
}


def one_line(e: BaseException) -> str:
    """An error message as the one line it is promised to be (an env's exception text may
    span several)."""
    return " / ".join(line.strip() for line in str(e).splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except SrmlError as e:
        code = getattr(e, "exit_code", 2)  # a signal: 128 + its number
        print(f"srml: {'error: ' if code == 2 else ''}{one_line(e)}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("srml: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug of ours: one line, the traceback on request
        if os.environ.get("SRML_DEBUG"):
            raise
        print(
            f"srml: internal error: {type(e).__name__}: {one_line(e)} (SRML_DEBUG=1 shows more)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
