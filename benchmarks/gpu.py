"""srml on one GPU beside the JAX+gymnax peer, in one process and one run.

    python benchmarks/gpu.py [--pops 16384 131072 1048576] [--lifetime 500]
                             [--out benchmarks/RESULTS_GPU.md] [--budget-s 500]
    python benchmarks/gpu.py --simulate   # smoke test on numba's CUDA simulator, tiny sizes

Sections, each timed against ``--budget-s`` (a section that would start past it is skipped,
saying so) and each written to ``--out`` as soon as it is done, so a run cut short still
leaves its figures:

1. the machine: card, driver, CUDA runtime, library versions;
2. the JAX+gymnax peer (``peer_jax_srwm.py`` from ``--peers``) as a subprocess, per P, where
   jax and gymnax import (run first, before srml holds GPU memory);
3. the kernel alone, per P and kernel variant (the original ``rows`` kernel, the coalesced
   ``(G, B)`` layout, the shared-memory genome at several threads per block, shared scratch,
   without the lean buffers), on genomes resident on the device: agent-steps/s (best of 3
   after a compiling run), registers, local and shared memory, theoretical occupancy;
4. end to end through srml's run loop (FME: device pool and, for comparison, host pool),
   per P: steady-state env steps/s and its ratio to the kernel alone;
5. parity at realistic size: every variant bit-identical to the original kernel at the
   first P; the first lanes against the numpy reference; FME on the device pool against the
   host pool (selected parents, pool arrays, the log row's pool statistics); the backend's
   ``finish`` (fitness on the device) against the host's ``finalize``;
6. time to solve CartPole-v1 (pool median >= 475) at large batch, wall seconds including
   compilation;
7. srml numba on the host's cores.

The workload is the peers' (``srml bench``): one-layer one-head SRWM, d_in 8 (no episode
flag), CartPole, lifetime 500, weights N(0, 0.1^2), sampled actions. The last lines printed
are a short table. Without a GPU (and without ``--simulate``) it stops in one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def default_peers() -> Path:
    for p in (ROOT / ".peers", ROOT.parent / "shared" / "peers"):
        if (p / "peer_jax_srwm.py").exists():
            return p
    return ROOT / ".peers"


def parse():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--simulate", action="store_true", help="numba's CUDA simulator, tiny sizes")
    ap.add_argument("--pops", type=int, nargs="+", default=None)
    ap.add_argument("--lifetime", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS_GPU.md")
    ap.add_argument("--peers", type=Path, default=default_peers())
    ap.add_argument("--budget-s", type=float, default=500.0, help="stop starting sections after")
    ap.add_argument("--profile", action="store_true",
                    help="print a cProfile summary of each end-to-end run")  # fmt: skip
    ap.add_argument("--skip", nargs="*", default=[], help="sections to skip: peer kernel e2e "
                    "parity solve numba")  # fmt: skip
    return ap.parse_args()


ARGS = parse()
if ARGS.simulate:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba is imported
else:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "0"  # figures from a GPU, never from the simulator

import numpy as np  # noqa: E402

from srml.errors import SrmlError  # noqa: E402

try:
    from srml.backends.cuda_backend import CudaBackend, device_array_module, simulated  # noqa: E402

    XP = device_array_module()
except SrmlError as e:
    print(f"benchmarks/gpu.py: {e}", file=sys.stderr)
    sys.exit(2)

from srml.backends import make_backend  # noqa: E402
from srml.backends.base import finalize  # noqa: E402
from srml.backends.cuda_kernels import kernel_resources, occupancy  # noqa: E402
from srml.config import Config  # noqa: E402
from srml.fitness import stats  # noqa: E402
from srml.fme import FME, FMEOptions  # noqa: E402
from srml.task import make_task  # noqa: E402

SIM = simulated()
T0 = time.perf_counter()
DIN = 8
if SIM:
    POPS = ARGS.pops or [8]
    LIFETIME = ARGS.lifetime or 12
else:
    POPS = ARGS.pops or [16384, 131072, 1048576]
    LIFETIME = ARGS.lifetime or 500

# kernel variants timed (name, options); the first is the original kernel, the second the
# backend's default
VARIANTS = [
    ("rows (original)", dict(layout="rows", threads_per_block=64, lean=False, div="plain")),
    ("shared 32 (default)", dict(layout="shared", threads_per_block=32)),
    ("shared 32, plain division", dict(layout="shared", threads_per_block=32, div="plain")),
    ("shared 32, rows in shared memory", dict(layout="shared", threads_per_block=32, smem="rows")),
    ("coalesced 64", dict(layout="coalesced", threads_per_block=64)),
    ("coalesced 128", dict(layout="coalesced", threads_per_block=128)),
    ("shared 64", dict(layout="shared", threads_per_block=64)),
    ("shared 32, not lean", dict(layout="shared", threads_per_block=32, lean=False)),
    ("shared 32, shared scratch", dict(layout="shared", threads_per_block=32, scratch="shared")),
]

R: dict = {"sections": {}, "notes": []}  # everything measured, for the report


def elapsed() -> float:
    return time.perf_counter() - T0


def say(*a):
    print(f"[{elapsed():6.1f}s]", *a, flush=True)


def sync():
    if XP is not np:
        XP.cuda.Device().synchronize()


def bench_cfg(pop: int, **kw) -> Config:
    """The peers' workload as ``srml bench`` configures it."""
    base = dict(env="CartPole-v1", backend="cuda", batch=pop, pool_size=pop, lifetime=LIFETIME,
                episode_flag=False, init_std=0.1, progress=False)  # fmt: skip
    base.update(kw)
    return Config(**base)


# --- 1. the machine ---------------------------------------------------------------------------
def versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for d in ("numpy", "numba", "numba-cuda", "cupy-cuda12x", "cupy-cuda13x", "jax", "jaxlib",
              "gymnax", "gymnasium"):  # fmt: skip
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine() -> dict:
    info = {"versions": versions(), "host_cpus": os.cpu_count(), "simulated": SIM}
    if SIM:
        info["card"] = "numba CUDA simulator (no GPU)"
        return info
    rt = XP.cuda.runtime
    p = rt.getDeviceProperties(0)
    name = p.get("name", b"?")
    info.update(
        card=name.decode() if isinstance(name, bytes) else str(name),
        compute_capability=f"{p.get('major')}.{p.get('minor')}",
        sms=p.get("multiProcessorCount"),
        memory_gib=round(p.get("totalGlobalMem", 0) / 2**30, 1),
        driver=rt.driverGetVersion(),
        runtime=rt.runtimeGetVersion(),
    )
    try:
        info["limits"] = dict(
            regs_per_sm=p["regsPerMultiprocessor"],
            shared_per_sm=p["sharedMemPerMultiprocessor"],
            max_threads_per_sm=p["maxThreadsPerMultiProcessor"],
            max_blocks_per_sm=p.get("maxBlocksPerMultiProcessor", 32),
        )
    except KeyError as e:
        info["limits_missing"] = str(e)
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        info["nvidia_smi"] = smi.stdout.strip()
    except Exception:
        pass
    return info


# --- 2. the JAX peer --------------------------------------------------------------------------
def peer() -> dict:
    script = ARGS.peers / "peer_jax_srwm.py"
    if SIM:
        return {"skipped": "the simulator runs no JAX peer"}
    if not script.exists():
        return {"skipped": f"{script} not found (carry ../shared/peers as .peers)"}
    probe = subprocess.run([sys.executable, "-c", "import jax, gymnax"], capture_output=True)
    if probe.returncode:
        return {"skipped": "jax or gymnax does not import: " + probe.stderr.decode()[-200:]}
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    out = {}
    for P in POPS:
        t = time.perf_counter()
        try:
            p = subprocess.run(
                [sys.executable, str(script), str(P), str(LIFETIME), str(DIN)],
                capture_output=True, text=True, timeout=240, env=env,
            )  # fmt: skip
            last = (p.stdout.strip().splitlines() or [""])[-1]
            if p.returncode or "agent_steps_per_s=" not in last:
                out[P] = {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:300]}
            else:
                out[P] = {"steps_per_s": float(last.split("agent_steps_per_s=")[1].split()[0]),
                          "line": last, "wall_s": time.perf_counter() - t}  # fmt: skip
        except subprocess.TimeoutExpired:
            out[P] = {"error": "timed out after 240 s"}
        say("jax peer", P, out[P])
    return out


# --- 3. the kernel alone ----------------------------------------------------------------------
def time_kernel(backend: CudaBackend, genomes_host: np.ndarray, repeats: int = 3) -> dict:
    """Best-of-``repeats`` agent-steps/s of the kernel on device-resident genomes (a fresh
    copy each run, not timed), after a first run that compiles."""
    d0 = backend.device_genomes(genomes_host)
    t = time.perf_counter()
    d = d0.copy()
    backend.launch(d, seed=0)
    sync()
    first = time.perf_counter() - t
    best = float("inf")
    for k in range(repeats):
        d = d0.copy()
        sync()
        t = time.perf_counter()
        backend.launch(d, seed=k + 1)
        sync()
        best = min(best, time.perf_counter() - t)
    n = len(genomes_host) * backend.task.lifetime
    return {"steps_per_s": n / best, "best_s": best, "first_s": first}


def kernel_alone() -> dict:
    out = {}
    limits = R["sections"].get("machine", {}).get("limits", {})
    for P in POPS:
        cfg = bench_cfg(P)
        task = make_task(cfg)
        genomes = task.layout.init(np.random.default_rng(0), P, cfg.init_std)
        for name, opts in VARIANTS:
            if elapsed() > ARGS.budget_s * 0.55:
                out[P, name] = {"skipped": "time budget"}
                continue
            try:
                b = CudaBackend(task, P, **opts)
                r = time_kernel(b, genomes, repeats=3 if not SIM else 1)
                r["variant"] = str(b.variant)
                r["resources"] = kernel_resources(b.kernel)
                occ = occupancy(r["resources"], b.variant.threads, limits)
                if occ is not None:
                    r["occupancy"] = occ
                out[P, name] = r
            except Exception as e:
                traceback.print_exc()
                out[P, name] = {"error": f"{type(e).__name__}: {e}"[:300]}
            say("kernel", P, name, _short(out[P, name]))
        if XP is not np:
            XP.get_default_memory_pool().free_all_blocks()
    return out


def _short(r: dict) -> str:
    if "steps_per_s" in r:
        res = r.get("resources", {})
        return (f"{r['steps_per_s']:.3e} steps/s  regs={res.get('regs_per_thread')} "
                f"local={res.get('local_bytes_per_thread')} "
                f"shared={res.get('shared_bytes_per_block')} occ={r.get('occupancy')}")  # fmt: skip
    return str(r)


# --- 4. end to end ----------------------------------------------------------------------------
def end_to_end(P: int, device_pool: bool, generations: int) -> dict:
    """FME through srml's run loop (Method.run -> drive: log rows, pool statistics, lineage),
    no run directory. Steady state: generations after the founding one and the first draw."""
    cfg = bench_cfg(P, pool_size=2 * P, founders=P, generations=generations, total_steps=0)
    t = time.perf_counter()
    fme = FME(cfg, options=FMEOptions(device_pool=device_pool))
    prof = None
    if ARGS.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    rows, stamps = [], []

    def cb(m, row):
        sync()
        stamps.append(time.perf_counter())
        rows.append(row)

    fme.run(callback=cb, progress=False)
    wall = time.perf_counter() - t
    if prof is not None:
        import pstats

        prof.disable()
        say("profile", P, "device pool" if device_pool else "host pool")
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    # steady state: past the founding generation and the first draws, whose CuPy kernels
    # compile on first use
    steady = slice(4, None) if len(stamps) > 6 else slice(1, None)
    gaps = np.diff([t] + stamps)[steady]
    steps = P * LIFETIME * len(gaps)
    fme.close()
    del fme
    if XP is not np:
        XP.get_default_memory_pool().free_all_blocks()
    return {
        "steps_per_s": steps / gaps.sum() if len(gaps) else None,
        "generations": len(rows),
        "wall_s": wall,
        "first_generation_s": float(stamps[0] - t) if stamps else None,
        "per_generation_s": [round(float(g), 5) for g in gaps],
    }


def e2e() -> dict:
    out = {}
    gens = 3 if SIM else 12
    for P in POPS:
        for device_pool in (True, False):
            if elapsed() > ARGS.budget_s * 0.75:
                out[P, device_pool] = {"skipped": "time budget"}
                continue
            if not device_pool and P > 200_000 and not SIM:
                gens_h = 7  # the host pool at 1M copies ~1 GB a generation
            else:
                gens_h = gens
            try:
                out[P, device_pool] = end_to_end(P, device_pool, gens if device_pool else gens_h)
            except Exception as e:
                traceback.print_exc()
                out[P, device_pool] = {"error": f"{type(e).__name__}: {e}"[:300]}
            say("e2e", P, "device pool" if device_pool else "host pool", out[P, device_pool])
    return out


# --- 5. parity --------------------------------------------------------------------------------
def parity() -> dict:
    P = POPS[0]
    out: dict = {"P": P}
    cfg = bench_cfg(P)
    task = make_task(cfg)
    genomes = task.layout.init(np.random.default_rng(1), P, 0.5)
    runs = {}
    for name, opts in VARIANTS:
        runs[name] = CudaBackend(task, P, **opts).run(genomes, seed=3)
    base = runs[VARIANTS[0][0]]
    out["variants_bit_identical"] = {
        name: bool(
            np.array_equal(r.genomes, base.genomes)
            and np.array_equal(r.fitness, base.fitness)
            and np.array_equal(r.episodes, base.episodes)
        )
        for name, r in runs.items()
    }
    # the numpy reference on the first lanes (the same lane keys), two lifetimes
    n = min(P, 8 if SIM else 512)
    for lifetime in sorted({min(60, LIFETIME), LIFETIME}):
        c = bench_cfg(n, lifetime=lifetime)
        t = make_task(c)
        ref = make_backend("numpy", t, n).run(genomes[:n], seed=3, record=True)
        b = CudaBackend(t, P)
        gpu = b.run(genomes, seed=3, record=True)
        same_actions = (gpu.actions[:, :n] == ref.actions).all(axis=0)
        ok = same_actions
        rel = np.abs(gpu.fitness[:n] - ref.fitness) / np.maximum(np.abs(ref.fitness), 1e-9)
        gdiff = np.abs(gpu.genomes[:n] - ref.genomes).max(axis=1)
        out[f"numpy_T{lifetime}"] = {
            "lanes": n,
            "lanes_with_identical_actions": int(same_actions.sum()),
            "max_rel_fitness_diff_on_those": float(rel[ok].max()) if ok.any() else None,
            "max_abs_genome_diff_on_those": float(gdiff[ok].max()) if ok.any() else None,
            "median_abs_genome_diff_all": float(np.median(gdiff)),
        }
        say("parity numpy", lifetime, out[f"numpy_T{lifetime}"])
    # FME: the device pool against the host pool, every selection rule
    for rule in ("proportional", "rank", "softmax"):
        B = P
        kw = dict(pool_size=4 * B, founders=B, generations=6, lifetime=min(LIFETIME, 100),
                  init_std=2.0, selection=rule, seed=5)  # fmt: skip
        a = FME(bench_cfg(B, **kw), options=FMEOptions(device_pool=True))
        h = FME(bench_cfg(B, **kw), options=FMEOptions(device_pool=False))
        for _ in range(6):
            a.step(), h.step()
        sa, sh = a.state()[0], h.state()[0]
        dev, host = a.population_stats(), stats(a.population_fitness())
        out[f"device_pool_{rule}"] = {
            "differing_parents": int((sa["pool_parent"] != sh["pool_parent"]).sum()),
            "members": int(len(sa["pool_parent"])),
            "pool_identical": bool(all(np.array_equal(sa[k], sh[k]) for k in sh)),
            # the log row's pool statistics (device) against srml.fitness.stats (host): the
            # mean is a device sum and may differ in its last bits, nothing else should
            "log_stats_differing": [k for k in host if dev[k] != host[k]],
        }
        say("parity pool", rule, out[f"device_pool_{rule}"])
        a.close(), h.close()
    # finish (fitness from the kernel's finite flags, on the device) against the host's
    # finalize on the same launch, with a NaN and an inf planted
    g = genomes.copy()
    g[1, 0], g[2, -1] = np.nan, np.inf
    b = CudaBackend(task, P)
    d = b.device_genomes(g)
    d_ret, d_eps, d_ok = b.launch(d, seed=3)
    got = b.finish(d, d_ret, d_eps, d_ok, keep_on_device=False)
    want = finalize(got.genomes, b.host(d_ret), b.host(d_eps), got.env_steps)
    out["device_finish"] = {
        "fitness_identical": bool(np.array_equal(got.fitness, want.fitness)),
        "nonfinite_device_host": [got.nonfinite, want.nonfinite],
    }
    say("parity finish", out["device_finish"])
    return out


# --- 6. time to solve ---------------------------------------------------------------------------
def solve() -> dict:
    if SIM:
        kw = dict(batch=8, pool_size=16, lifetime=20, total_steps=8 * 20 * 3)
    else:
        kw = dict(batch=65536, pool_size=262144, lifetime=500, total_steps=3_000_000_000)
    cfg = Config(env="CartPole-v1", backend="cuda", seed=0, progress=False, **kw)
    t0 = time.perf_counter()
    first: list = []
    reached: list = []
    limit = max(30.0, ARGS.budget_s - elapsed() - 60) if not SIM else 600

    def cb(m, row):
        now = time.perf_counter() - t0
        if not first:
            first.append(now)
        if row["pool_fitness_median"] >= 475:
            reached.append((now, row["env_steps"], row["generation"]))
            return True
        return now > limit

    fme = FME(cfg)
    rows = fme.run(callback=cb, progress=False)
    wall = time.perf_counter() - t0
    last = rows[-1]
    out = {
        "config": {k: kw[k] for k in ("batch", "pool_size", "lifetime")},
        "solved": bool(reached),
        "wall_s": reached[0][0] if reached else wall,
        "env_steps": reached[0][1] if reached else last["env_steps"],
        "generations": reached[0][2] if reached else last["generation"],
        "first_generation_s": first[0] if first else None,
        "final_median": last["pool_fitness_median"],
    }
    if reached:
        out["wall_after_first_generation_s"] = reached[0][0] - first[0]
    fme.close()
    return out


# --- 7. numba on the host ---------------------------------------------------------------------
def numba_host() -> dict:
    from srml.bench import bench

    out = {}
    kernels = [("agent", False), ("lanes", False), ("lanes", True)]  # (layout, fast_exp)
    if SIM:
        kernels = kernels[1:2]  # the smoke run compiles one
    for P in [64] if SIM else [131072]:
        for layout, fast in kernels:
            name = f"{layout}{' --fast-exp' if fast else ''}, P={P}"
            if elapsed() > ARGS.budget_s * 0.95:
                out[name] = {"skipped": "time budget"}
                continue
            r = bench("CartPole-v1", "numba", P, LIFETIME, repeats=1 if SIM else 2,
                      layout=layout, fast_exp=fast)  # fmt: skip
            out[name] = {"steps_per_s": r["agent_steps_per_s"], "threads": r["threads"]}
            say("numba host", name, out[name])
    return out


# --- the report -------------------------------------------------------------------------------
def fmt(x) -> str:
    return "-" if x is None else f"{x:.2e}"


def figure(d: dict | None) -> float | None:
    return d.get("steps_per_s") if isinstance(d, dict) else None


def report() -> str:
    s, m = R["sections"], R["sections"].get("machine", {})
    L = ["# srml on a GPU: kernel, end to end, beside JAX+gymnax", ""]
    if SIM:
        L += ["**Simulator smoke run** (numba's CUDA simulator, tiny sizes): these figures "
              "measure nothing; they show the script runs end to end.", ""]  # fmt: skip
    L += [
        f"Made by `python benchmarks/gpu.py{' --simulate' if SIM else ''}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, in {elapsed():.0f} s.",
        f"Card: {m.get('card')} (compute capability {m.get('compute_capability', '-')}, "
        f"{m.get('sms', '-')} SMs, {m.get('memory_gib', '-')} GiB); driver "
        f"{m.get('driver', '-')}, CUDA runtime {m.get('runtime', '-')}; nvidia-smi: "
        f"{m.get('nvidia_smi', '-')}; host CPUs: {m.get('host_cpus')}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items()) + ".",
        f"Workload: one-layer one-head SRWM, d_in {DIN}, CartPole, lifetime {LIFETIME}, sampled "
        "actions, weights N(0, 0.1^2) (the peers'). Figures are agent-steps/s; ratios in "
        "brackets are to the JAX+gymnax peer of the same P on the same card.",
        "",
    ]
    jax = s.get("peer", {})
    pops = POPS

    def cell(v, P):
        j = figure(jax.get(P)) if isinstance(jax, dict) else None
        if v is None:
            return "-"
        return f"{v:.2e}" + (f" ({v / j:.1f}x)" if j else "")

    L += ["## Kernel alone", "", "| kernel | " + " | ".join(f"P={P}" for P in pops) + " |",
          "|---|" + "---|" * len(pops)]  # fmt: skip
    if isinstance(jax, dict) and "skipped" not in jax:
        L.append("| peer: JAX+gymnax | " + " | ".join(fmt(figure(jax.get(P))) for P in pops) + " |")
    k = s.get("kernel", {})
    for name, _ in VARIANTS:
        L.append(f"| srml cuda {name} | " + " | ".join(cell(figure(k.get((P, name))), P)
                                                        for P in pops) + " |")  # fmt: skip
    L += ["", "Resources per variant (numba's kernel attributes; theoretical occupancy from "
          "registers and shared memory):", "",
          "| kernel | resolved variant | regs/thread | local B/thread | shared B/block | "
          "occupancy |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, _ in VARIANTS:
        r = k.get((pops[-1], name)) or k.get((pops[0], name)) or {}
        res = r.get("resources", {})
        occ = r.get("occupancy")
        L.append(
            f"| {name} | {r.get('variant', r.get('error', r.get('skipped', '-')))} | "
            f"{res.get('regs_per_thread', '-')} | {res.get('local_bytes_per_thread', '-')} | "
            f"{res.get('shared_bytes_per_block', '-')} | "
            f"{'-' if occ is None else f'{occ:.0%}'} |"
        )
    e = s.get("e2e", {})
    L += ["", "## End to end (srml's run loop, FME)", "",
          "Steady-state env steps/s over the generations after the founding one and the first "
          "three draws (FME with pool 2P, P founders), and the share of the kernel's own rate (the "
          "default variant, same P).", "",
          "| path | " + " | ".join(f"P={P}" for P in pops) + " |", "|---|" + "---|" * len(pops)]  # fmt: skip
    default = VARIANTS[1][0]
    for dp, label in ((True, "device pool"), (False, "host pool")):
        cells = []
        for P in pops:
            v, kern = figure(e.get((P, dp))), figure(k.get((P, default)))
            c = cell(v, P)
            if v is not None and kern:
                c += f", {v / kern:.0%} of kernel"
            cells.append(c)
        L.append(f"| {label} | " + " | ".join(cells) + " |")
    nb = s.get("numba", {})
    L += ["", "## Host CPU (srml numba, fused twin, all host cores; layout agent / lanes)", ""]
    for name, r in nb.items() if isinstance(nb, dict) else []:
        L.append(f"- {name}: {fmt(figure(r))} agent-steps/s ({r.get('threads', '-')} threads)"
                 if isinstance(r, dict) and "steps_per_s" in r else f"- {name}: {r}")  # fmt: skip
    L += ["", "## Parity", "", "```", json.dumps(s.get("parity", {}), indent=1, default=str),
          "```"]  # fmt: skip
    L += ["", "## Time to solve CartPole-v1 (pool median >= 475)", "", "```",
          json.dumps(s.get("solve", {}), indent=1, default=str), "```"]  # fmt: skip
    if jax:
        L += ["", "## JAX+gymnax peer", "", "```", json.dumps(jax, indent=1, default=str), "```"]
    failed = [f"- {name}: FAILED {v}" for name, v in s.items() if isinstance(v, str)]
    skipped = [f"- {n}" for n in R["notes"]]
    if failed or skipped:
        L += ["", "## Not measured", "", *failed, *skipped]
    return "\n".join(L) + "\n"


def write() -> None:
    ARGS.out.parent.mkdir(parents=True, exist_ok=True)
    ARGS.out.write_text(report())


def section(name: str, fn, share: float = 1.0) -> None:
    if name in ARGS.skip:
        R["notes"].append(f"{name}: skipped (--skip)")
        return
    if elapsed() > ARGS.budget_s * share:
        R["notes"].append(f"{name}: not started, past the time budget")
        say(name, "skipped: time budget")
        return
    say("==", name)
    try:
        R["sections"][name] = fn()
    except Exception as e:
        traceback.print_exc()
        R["sections"][name] = f"{type(e).__name__}: {e}"[:400]
    write()


def summary() -> None:
    s = R["sections"]
    k, e, jax = s.get("kernel", {}), s.get("e2e", {}), s.get("peer", {})
    print(f"\nsummary ({'SIMULATOR' if SIM else s.get('machine', {}).get('card')}), "
          "agent-steps/s; ratio to JAX on the same card", flush=True)  # fmt: skip
    for P in POPS:
        j = figure(jax.get(P)) if isinstance(jax, dict) else None
        orig = figure(k.get((P, VARIANTS[0][0]))) if isinstance(k, dict) else None
        best = max(
            ((figure(v), n) for (p, n), v in (k.items() if isinstance(k, dict) else [])
             if p == P and figure(v)), default=(None, "-"),
        )  # fmt: skip
        dev = figure(e.get((P, True))) if isinstance(e, dict) else None
        ratio = f" = {best[0] / j:.1f}x JAX" if best[0] and j else ""
        print(f"P={P:>8}  jax {fmt(j)}  original {fmt(orig)}  best kernel {fmt(best[0])} "
              f"[{best[1]}]{ratio}  end-to-end {fmt(dev)}", flush=True)  # fmt: skip
    sv = s.get("solve", {})
    if isinstance(sv, dict) and sv:
        print(f"CartPole solved={sv.get('solved')} wall_s={sv.get('wall_s')} "
              f"env_steps={sv.get('env_steps')}", flush=True)  # fmt: skip
    print(f"wrote {ARGS.out}", flush=True)


def main() -> int:
    say(f"benchmarks/gpu.py pops={POPS} lifetime={LIFETIME} simulate={SIM}")
    section("machine", machine)
    say(R["sections"]["machine"])
    section("peer", peer, 0.3)
    section("kernel", kernel_alone, 0.5)
    section("e2e", e2e, 0.7)
    section("parity", parity, 0.8)
    section("solve", solve, 0.85)
    section("numba", numba_host, 0.95)
    write()
    summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
