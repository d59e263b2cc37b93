"""Island FME on Ray: ``srml run --workers N [--ray-address ADDR]``.

Each island is a Ray actor holding its own pool, backend and CPU threads (or a
GPU with the cuda backend). Islands run in lockstep, ``--migrate-every``
generations per round; at the end of a round every island sends its
``--migrants`` best genomes to the next island in a ring, which inserts them
like any new member (the least recently used make room).

The driver (this process) owns the run directory. After every round it
holds the state of every island, taken after the migration: a consistent
snapshot of the whole run. It writes it to ``pool.npz`` every
``--checkpoint-every`` generations, at the end, and when it stops on an error.

Faults: when a worker dies (its process is killed, its node is lost, the
OOM killer ...), the driver starts a new actor, loads that island's last
state into it and replays the round. Islands take no randomness from timing:
each generation's rollout seed comes from (island seed, generation), pool
sampling from the island's own RNG, and migration picks the best by a stable
sort, so the replayed round gives the same pool as if no worker had died. An
island that keeps dying (``MAX_ATTEMPTS`` times in one round) stops the run
with its last checkpoint saved, ready for ``--resume``.

Counting: generations are per island (they run in lockstep); ``env_steps``
and ``--total-steps`` count the agent-steps of all islands together, so a run
with N workers reaches the same step budget in N times fewer generations.

Log: per generation, one row per island (with an ``island`` field and that
island's own ``env_steps``) and one merged row (no ``island`` field; pool
statistics over the union of the island pools, ``env_steps`` summed), so
``plot.py`` draws the merged curve as it draws a single run.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import time
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import rng
from ..config import Config, from_dict
from ..errors import SrmlError
from ..fitness import finite_max, finite_mean, stats
from ..memory import check_memory, pool_bytes, run_bytes
from ..methods import make_method
from ..pool import Pool
from ..task import make_task
from . import rundir
from .loop import drive, log_row

MAX_ATTEMPTS = 4
"""Times one island's worker may die within one round before the run stops."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise SrmlError(
            "--workers needs Ray, an optional extra: pip install -e '.[ray]' (or pip install ray)"
        ) from None
    return ray


def island_seed(seed: int, island: int) -> int:
    return rng.derive_seed(seed, 0x15A1D, island)


def island_config(cfg: Config, island: int) -> Config:
    """The config one island's FME loop runs with: its own seed, its worker's cores as backend
    threads, no Ray, no progress bar."""
    return replace(
        cfg,
        seed=island_seed(cfg.seed, island),
        threads=cfg.worker_cpus,
        workers=0,
        ray_address="",
        progress=False,
        out="",
    )


def best(pool: Pool, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k fittest members with finite fitness (ties: the lower row first)."""
    rows = pool.best(k)
    rows = rows[np.isfinite(pool.fitness[rows])]
    return pool.take(rows), pool.fitness[rows].copy()


class IslandWorker:
    """One island: an FME loop in a Ray actor. Plain class; :func:`_actor_class` wraps it."""

    def __init__(self, cfg_toml: str, island: int, threads: int):
        self.island, self.error, self.fme = island, None, None
        try:
            try:
                import numba

                numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            except ImportError:
                pass
            cfg = island_config(from_dict(tomllib.loads(cfg_toml)), island)
            self.fme = make_method("fme", cfg, **cfg.method_options)
        except SrmlError as e:  # reported by ready(), so the driver can tell it from a death
            self.error = str(e)

    def ready(self) -> dict:
        if self.error:
            return {"error": self.error}
        return {
            "error": None,
            "env_id": self.fme.task.env_id,
            "twin": self.fme.task.twin is not None,
            "backend": self.fme.backend.name,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        }

    def load(self, arrays: dict, meta: dict) -> int:
        self.fme.load_state(arrays, meta)
        return self.fme.generation

    def run(self, n: int, wall0: float, migrants: int) -> dict:
        """n generations; their log rows and pool/batch fitness, and the best ``migrants``."""
        fme, t0 = self.fme, time.perf_counter()
        rows, pool_f, batch_f = [], [], []
        for _ in range(n):
            g0 = time.perf_counter()
            res = fme.step()
            now = time.perf_counter()
            row = log_row(fme, res, wall0 + now - t0, now - g0)
            rows.append({"island": self.island, **row})
            pool_f.append(fme.pool.fitness[: fme.pool.size].copy())
            batch_f.append(res.fitness)
        emigrants = best(fme.pool, migrants) if migrants else None
        return {
            "rows": rows,
            "pool_fitness": pool_f,
            "batch_fitness": batch_f,
            "emigrants": emigrants,
        }

    def immigrate(self, emigrants) -> tuple[dict, dict]:
        """Insert the genomes another island sent (if any); return this island's state."""
        fme = self.fme
        if emigrants is not None and len(emigrants[0]):
            genomes, fitness = emigrants
            fme.pool.insert(genomes, fitness, born=fme.generation - 1)
        return fme.state()

    def close(self) -> None:
        if self.fme is not None:
            self.fme.backend.close()


_ACTOR = None


def _actor_class(ray):
    global _ACTOR
    if _ACTOR is None:
        _ACTOR = ray.remote(IslandWorker)
    return _ACTOR


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast on a [ray://]host:port nobody listens on (Ray itself retries for minutes)."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "auto" and other forms: Ray resolves them and fails quickly on its own
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise SrmlError(f"no Ray cluster answers at {address}: {e}") from None


def target_generation(cfg: Config) -> int:
    """Generations each island runs: the first of --generations and --total-steps reached."""
    per_gen = cfg.workers * cfg.batch * cfg.lifetime
    limits = [cfg.generations] if cfg.generations else []
    if cfg.total_steps:
        limits.append(math.ceil(cfg.total_steps / per_gen))
    return min(limits)


# --- the checkpoint of an island run: every island's state in one .npz -------------------------


def pack(cfg: Config, generation: int, env_steps: int, states, restarts) -> tuple[dict, dict]:
    arrays = {f"island{i}_{k}": v for i, (a, _) in enumerate(states) for k, v in a.items()}
    meta = {
        "generation": generation,
        "env_steps": env_steps,
        "config": cfg.to_toml(),
        "workers": len(states),
        "islands": [m for _, m in states],
        "restarts": list(restarts),
    }
    return arrays, meta


def unpack(arrays: dict, meta: dict, cfg: Config, genome_size: int, path: Path):
    """Split an island checkpoint into per-island states; refuse one that does not fit."""
    n = cfg.workers
    islands = meta.get("islands")
    if not isinstance(islands, list) or len(islands) != n:
        raise SrmlError(f"checkpoint {path} does not hold the state of {n} islands")
    states = [({}, m) for m in islands]
    for key, v in arrays.items():
        head, _, rest = key.partition("_")
        if not head.startswith("island") or not head[6:].isdigit() or int(head[6:]) >= n:
            raise SrmlError(f"checkpoint {path} has a foreign array {key!r}")
        states[int(head[6:])][0][rest] = v
    for i, (a, m) in enumerate(states):
        missing = {"founders", "pool_genomes", "pool_counters"} - a.keys()
        if missing or not {"generation", "env_steps", "rng"} <= m.keys():
            raise SrmlError(f"checkpoint {path} is incomplete: island {i} lacks {sorted(missing)}")
        if a["pool_genomes"].ndim != 2 or a["pool_genomes"].shape[1] != genome_size:
            raise SrmlError(
                f"checkpoint {path}: island {i}'s genomes do not have {genome_size} weights"
            )
        if m["generation"] != meta.get("generation"):
            raise SrmlError(f"checkpoint {path}: island {i} is at another generation")
    restarts = meta.get("restarts", [0] * n)
    return states, int(meta["generation"]), int(meta["env_steps"]), list(restarts)


class Islands:
    """The driver of an island run (see the module docstring)."""

    def __init__(self, cfg: Config, out: Path):
        if cfg.method != "fme":
            raise SrmlError(f"--workers runs FME islands; --method {cfg.method} has no islands")
        if cfg.backend == "cuda" and not cfg.ray_address:
            # the workers run on this machine: no GPU here must be one line now, not a wait
            # for a GPU resource Ray can never grant
            from ..backends.cuda_backend import device_array_module

            device_array_module()
        self.ray = import_ray()
        self.cfg, self.out, self.n = cfg, Path(out), cfg.workers
        self.task = make_task(cfg)  # a bad env or space stops here, before Ray or files
        G = self.task.layout.size
        driver = 3 * self.n * pool_bytes(cfg.pool_size, G)  # last states + the .npz being written
        need = driver
        if not cfg.ray_address:  # a local Ray: the workers live on this machine too
            need += self.n * run_bytes(cfg.pool_size, G, cfg.n_founders, cfg.batch)
        check_memory(need, f"{self.n} islands of {cfg.pool_size} genomes x {G} weights")
        self.target = target_generation(cfg)
        self.generation, self.env_steps = 0, 0
        self.states: list = [None] * self.n  # last consistent state of every island
        self.restarts = [0] * self.n
        self.actors: list = [None] * self.n
        self.info: list[dict] = [{}] * self.n
        self.new_worker = [False] * self.n
        self.own_ray = False

    def restore(self, state: tuple[dict, dict], path: Path) -> None:
        s = unpack(*state, self.cfg, self.task.layout.size, path)
        self.states, self.generation, self.env_steps, self.restarts = s

    @property
    def finished(self) -> bool:
        return self.generation >= self.target

    # --- Ray ------------------------------------------------------------------------------
    def connect(self) -> None:
        ray, cfg = self.ray, self.cfg
        if ray.is_initialized():
            return
        need = self.n * cfg.worker_cpus
        # Ray's own INFO/WARNING lines would bury srml's one-line messages; SRML_DEBUG shows them
        level = logging.INFO if os.environ.get("SRML_DEBUG") else logging.ERROR
        kw = {"include_dashboard": False, "logging_level": level}
        if cfg.ray_address:
            check_reachable(cfg.ray_address)
        try:
            if cfg.ray_address:
                ray.init(address=cfg.ray_address, **kw)
            else:
                ray.init(num_cpus=max(os.cpu_count() or 1, need), **kw)
        except Exception as e:  # a bad address, no cluster there ...
            where = cfg.ray_address or "a local Ray instance"
            raise SrmlError(f"cannot start Ray on {where}: {type(e).__name__}: {e}") from None
        self.own_ray = True
        if cfg.backend == "cuda" and not _simulated():
            gpus = ray.cluster_resources().get("GPU", 0)
            if gpus < 1:
                where = cfg.ray_address or "the local Ray instance"
                raise SrmlError(f"--backend cuda --workers {self.n}: {where} has no GPU")
            if gpus < self.n:
                print(
                    f"srml: warning: {self.n} cuda workers need {self.n} GPUs, the Ray cluster "
                    f"has {gpus:g}; workers wait for free GPUs",
                    file=sys.stderr,
                )
        have = ray.cluster_resources().get("CPU", 0)
        if have < need:
            print(
                f"srml: warning: {self.n} workers x {cfg.worker_cpus} CPUs need {need} CPUs, "
                f"the Ray cluster has {have:g}; workers wait for free CPUs",
                file=sys.stderr,
            )

    def spawn(self, i: int) -> None:
        """A new actor for island i, holding the island's last state (if any)."""
        self._finish(i, self._start(i))

    def spawn_all(self) -> None:
        started = [self._start(i) for i in range(self.n)]  # the workers start in parallel
        for i, ready in enumerate(started):
            self._finish(i, ready)

    def _start(self, i: int):
        ray, cfg = self.ray, self.cfg
        if self.actors[i] is not None:
            try:
                ray.kill(self.actors[i])
            except Exception:
                pass
        opts = {"num_cpus": cfg.worker_cpus, "max_restarts": 0}
        if cfg.backend == "cuda" and not _simulated():  # the simulator needs no GPU
            opts["num_gpus"] = 1
        actor = _actor_class(ray).options(**opts).remote(self.cfg.to_toml(), i, cfg.worker_cpus)
        self.actors[i] = actor
        return actor.ready.remote()

    def _finish(self, i: int, ready) -> None:
        ray, actor = self.ray, self.actors[i]
        info = ray.get(ready)
        if info["error"]:
            raise SrmlError(f"island {i}: {info['error']}")
        if self.states[i] is not None:
            ray.get(actor.load.remote(*self.states[i]))
        self.info[i], self.new_worker[i] = info, True

    def call_all(self, method: str, args, replay=None) -> list:
        """Call ``method`` on every island; a worker that dies is replaced (from the island's
        last state, replaying ``replay`` = run(...) args first) and asked again."""
        ray = self.ray
        futs = [getattr(a, method).remote(*args(i)) for i, a in enumerate(self.actors)]
        results = []
        for i in range(self.n):
            attempt = 0
            while True:
                try:
                    if attempt:
                        self.spawn(i)
                        if replay is not None:
                            ray.get(self.actors[i].run.remote(*replay))
                        futs[i] = getattr(self.actors[i], method).remote(*args(i))
                    results.append(ray.get(futs[i]))
                    break
                except ray.exceptions.RayActorError as e:
                    attempt += 1
                    self.restarts[i] += 1
                    reason = str(e).strip().splitlines()[0]
                    if attempt >= MAX_ATTEMPTS:
                        raise SrmlError(
                            f"island {i}'s worker died {attempt} times in the round after "
                            f"generation {self.generation} (last: {reason.rstrip('.')})"
                        ) from None
                    print(
                        f"srml: island {i}'s worker died ({reason}); restarting it from "
                        f"generation {self.generation}",
                        file=sys.stderr,
                    )
                except ray.exceptions.RayTaskError as e:
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, SrmlError):
                        raise SrmlError(f"island {i}: {cause}") from None
                    raise
        return results

    # --- the run --------------------------------------------------------------------------
    def save(self) -> None:
        if any(s is None for s in self.states):
            return  # nothing run yet: no checkpoint to keep
        arrays, meta = pack(self.cfg, self.generation, self.env_steps, self.states, self.restarts)
        rundir.save_checkpoint(self.out / "pool.npz", arrays, meta)

    def round(self, t0: float) -> list[dict]:
        """One round: up to the next multiple of --migrate-every, then migrate; returns rows."""
        cfg, g = self.cfg, self.generation
        n = min(cfg.migrate_every - g % cfg.migrate_every, self.target - g)
        migrate = self.n > 1 and cfg.migrants > 0 and (g + n) % cfg.migrate_every == 0
        k = cfg.migrants if migrate else 0
        wall = time.perf_counter() - t0
        outs = self.call_all("run", lambda i: (n, wall, k))
        sent = [o["emigrants"] for o in outs]
        states = self.call_all(
            "immigrate", lambda i: (sent[(i - 1) % self.n],), replay=(n, wall, k)
        )
        rows = []
        for j in range(n):
            island_rows = [o["rows"][j] for o in outs]
            for i, r in enumerate(island_rows):
                r["restarts"] = self.restarts[i]
                if self.new_worker[i]:
                    r["worker"] = self.info[i]["worker"]
                    self.new_worker[i] = False
            rows += island_rows
            rows.append(self.merged_row(island_rows, outs, j))
        self.states, self.generation = states, g + n
        self.env_steps = rows[-1]["env_steps"]
        return rows

    def merged_row(self, island_rows: list[dict], outs: list[dict], j: int) -> dict:
        pool_f = np.concatenate([o["pool_fitness"][j] for o in outs])
        batch_f = np.concatenate([o["batch_fitness"][j] for o in outs])
        row = {
            "generation": island_rows[0]["generation"],
            "env_steps": sum(r["env_steps"] for r in island_rows),
            "wall_s": max(r["wall_s"] for r in island_rows),
            "steps_per_s": sum(r["steps_per_s"] for r in island_rows),
            "pool_size": int(len(pool_f)),
            **{f"pool_fitness_{k}": v for k, v in stats(pool_f).items()},
            "batch_fitness_mean": finite_mean(batch_f),
            "batch_fitness_max": finite_max(batch_f),
            "batch_episodes_mean": float(np.mean([r["batch_episodes_mean"] for r in island_rows])),
            "nonfinite": sum(r["nonfinite"] for r in island_rows),
            "workers": self.n,
            "restarts": sum(self.restarts),
        }
        if row["generation"] == 1:
            row |= {"env_id": self.info[0]["env_id"], "backend": self.info[0]["backend"]}
        return row

    # --- the loop's driver protocol (see srml.run.loop) -------------------------------------
    def start(self) -> None:
        """Connect to Ray and start the workers (each loads its island's last state)."""
        self.connect()
        self.spawn_all()
        cfg = self.cfg
        if self.generation == 0 and self.info[0]["twin"] and self.info[0]["env_id"] != cfg.env:
            print(
                f"srml: {cfg.env} runs on srml's compiled twin {self.info[0]['env_id']} "
                "(--twin off runs Gymnasium's own)",
                file=sys.stderr,
            )

    def advance(self, t0: float) -> list[dict]:
        """One round; on an error, the last round's consistent state is saved first."""
        try:
            return self.round(t0)
        except SrmlError:
            if (self.out / "log.jsonl").exists():
                self.save()
            raise

    def state(self) -> tuple[dict, dict]:
        return pack(self.cfg, self.generation, self.env_steps, self.states, self.restarts)

    def close(self) -> None:
        self.shutdown()

    def run(self, wall_offset: float = 0.0) -> Path:
        """Start the workers and run the loop to the end, writing ``self.out`` (which exists)."""
        try:
            self.start()
            if self.cfg.progress:
                print(f"srml: writing {self.out}", file=sys.stderr)
            drive(self, self.out, wall_offset=wall_offset)
        finally:
            self.shutdown()
        return self.out

    def shutdown(self) -> None:
        ray = self.ray
        for i, a in enumerate(self.actors):
            if a is not None:
                try:
                    ray.kill(a)
                except Exception:
                    pass
                self.actors[i] = None
        if self.own_ray:
            ray.shutdown()
            self.own_ray = False


def _simulated() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
