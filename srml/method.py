"""The ask/tell protocol every search method speaks (evosax style), and what they share.

    method = make_method("fme", cfg)          # or srml.FME(cfg)
    while not method.finished:
        genomes = method.ask()                # (B, G) float32
        rollout = method.evaluate(genomes)    # B lifetimes on the configured backend
        method.tell(rollout)                  # update; counts the generation and its env steps

``step()`` is exactly those three calls, ``run()`` drives the one run loop
(:mod:`srml.run.loop`) to the config's limits. Every method runs B lifetimes of S
env steps per generation, so equal ``total_steps`` is equal env steps.
``evaluate`` changes nothing; ``tell`` is the only update. ``state()`` /
``load_state()`` hold everything a method needs to continue bit for bit
(checkpoints, resume, islands). ``best(k)`` is what it would hand a user.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from . import rng
from .backends import Backend, Rollout, make_backend, on_device
from .config import Config
from .errors import SrmlError
from .evaluation import reevaluate as reevaluate_genomes
from .fitness import stats
from .run.loop import drive, run_in
from .task import make_task


@dataclass
class NoOptions:
    """This method has no options beyond the shared :class:`srml.config.Config`."""


def expect_array(arrays: dict, name: str, shape: tuple, dtype, where: str = "checkpoint"):
    """``arrays[name]`` if it has exactly ``shape`` and ``dtype``; else a one-line SrmlError."""
    a = arrays.get(name)
    dtype = np.dtype(dtype)
    if not isinstance(a, np.ndarray) or a.shape != tuple(shape) or a.dtype != dtype:
        got = "missing" if a is None else f"{getattr(a, 'dtype', '?')}{getattr(a, 'shape', '')}"
        raise SrmlError(f"{where}: array {name!r} should be {dtype}{tuple(shape)}, got {got}")
    return a


class Method:
    """Shared machinery: task, backend, counters, evaluation, checkpoint state.

    A subclass implements ``propose() -> genomes``, ``update(asked, rollout)``,
    ``population_fitness()``, ``candidates()`` (the genomes it would deploy, best
    first) and, for checkpoints, ``arrays()`` / ``load_arrays(arrays)``.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, cfg: Config, options=None, backend: Backend | None = None):
        self.cfg = cfg.validate()
        self.options = options if options is not None else self.Options()
        self.task = make_task(cfg)
        self.check_resources()
        self.backend = backend or make_backend(cfg.backend, self.task, cfg.batch, cfg.threads)
        self.rng = np.random.default_rng(cfg.seed)  # pool sampling, initial genomes, noise
        self.generation = 0
        self.env_steps = 0
        self._asked: np.ndarray | None = None

    def check_resources(self) -> None:
        """Refuse, before any allocation, what cannot fit (FME checks its pool)."""

    # --- ask / evaluate / tell -------------------------------------------------------------
    def ask(self) -> np.ndarray:
        """The B genomes to run this generation, ``(batch, G)`` float32 (FME with the cuda
        backend: a :class:`srml.backends.DeviceBatch` in GPU memory; ``np.asarray`` copies it)."""
        if self._asked is not None:
            raise SrmlError(f"{self.name}: ask() twice without tell(); tell() the first batch")
        genomes = self.propose()
        if not on_device(genomes):  # a DeviceBatch (FME's device pool) stays where it is
            genomes = np.ascontiguousarray(genomes, np.float32)
        self._asked = genomes
        return self._asked

    def evaluate(self, genomes: np.ndarray, seed: int | None = None, record=False) -> Rollout:
        """Run ``genomes`` for one lifetime each; changes nothing in the method. The default
        seed is this generation's training seed, derived from (cfg.seed, generation)."""
        if seed is None:
            seed = rng.derive_seed(self.cfg.seed, self.generation)
        return self.backend.run(genomes, seed, record=record)

    def tell(self, rollout: Rollout) -> None:
        """Update with the rollout of the genomes ``ask()`` returned; counts the generation."""
        if self._asked is None:
            raise SrmlError(f"{self.name}: tell() without ask()")
        if len(rollout.fitness) != len(self._asked):
            raise SrmlError(
                f"{self.name}: told {len(rollout.fitness)} results for {len(self._asked)} genomes"
            )
        asked, self._asked = self._asked, None
        self.update(asked, rollout)
        self.generation += 1
        self.env_steps += rollout.env_steps

    def step(self) -> Rollout:
        """One generation: ask, evaluate, tell."""
        rollout = self.evaluate(self.ask())
        self.tell(rollout)
        return rollout

    def run(self, callback=None, out=None, progress: bool | None = None) -> list[dict]:
        """Run to the config's limits through the one run loop; returns the log rows.

        ``callback(method, row)`` is called after every generation (return True to stop
        early). With ``out`` (or ``cfg.out``) the run writes a run directory as
        ``srml run`` does (config, log, checkpoints, figure) and can be resumed."""
        out = out or self.cfg.out or None
        if out is None:
            return drive(self, None, callback=callback, progress=progress)
        return run_in(self, out, callback=callback, progress=progress)

    @property
    def finished(self) -> bool:
        c = self.cfg
        return (c.total_steps > 0 and self.env_steps >= c.total_steps) or (
            c.generations > 0 and self.generation >= c.generations
        )

    # --- what a user gets ------------------------------------------------------------------
    def best(self, k: int = 1, reevaluate: bool = False, lifetimes: int = 0) -> np.ndarray:
        """The k genomes this method would deploy, best first, ``(k', G)`` with k' <= k.

        By recorded fitness, or with ``reevaluate`` by the mean fitness of ``lifetimes``
        (default: batch) fresh lifetimes each on held-out seeds: recorded fitness rewards
        luck, the re-evaluated best does not."""
        cands = self.candidates()
        if not reevaluate or len(cands) <= 1:
            return cands[:k]
        table = reevaluate_genomes(self, cands, lifetimes or self.cfg.batch)
        order = np.argsort(-table["mean"], kind="stable")[:k]
        return cands[order]

    def random_genomes(self, n: int) -> np.ndarray:
        """``n`` genomes drawn like FME's founders: N(0, init_std^2) per weight."""
        return self.task.layout.init(self.rng, n, self.cfg.init_std)

    # --- checkpoint state --------------------------------------------------------------------
    def state(self) -> tuple[dict, dict]:
        """(arrays, meta): everything needed to continue exactly (JSON-able meta)."""
        meta = {
            "method": self.name,
            "options": asdict(self.options),
            "generation": self.generation,
            "env_steps": self.env_steps,
            "rng": self.rng.bit_generator.state,
            "config": self.cfg.to_toml(),
        }
        return self.arrays(), meta

    def load_state(self, arrays: dict, meta: dict) -> None:
        """Restore :meth:`state`; every array is checked against this config first."""
        name = meta.get("method", "fme")
        if name != self.name:
            raise SrmlError(f"checkpoint holds a {name!r} run, not {self.name!r}")
        try:
            generation, env_steps = int(meta["generation"]), int(meta["env_steps"])
            state = meta["rng"]
            probe = np.random.default_rng()
            probe.bit_generator.state = state  # validates the RNG state's form
        except (KeyError, TypeError, ValueError) as e:
            raise SrmlError(f"checkpoint metadata is incomplete or malformed: {e}") from None
        if generation < 0 or env_steps < 0:
            raise SrmlError("checkpoint counters are negative")
        self.load_arrays(arrays)  # raises before anything below changes
        self.generation, self.env_steps = generation, env_steps
        self.rng.bit_generator.state = state
        self._asked = None

    def close(self) -> None:
        self.backend.close()

    def row_extras(self, rollout: Rollout) -> dict:
        """Method-specific columns of this generation's log row."""
        return {}

    def records(self) -> dict[str, dict]:
        """Per-generation records written beside the log, as ``{name: row}`` -> name.jsonl."""
        return {}

    # --- what a subclass provides --------------------------------------------------------------
    def propose(self) -> np.ndarray:
        raise NotImplementedError

    def update(self, asked: np.ndarray, rollout: Rollout) -> None:
        raise NotImplementedError

    def population_fitness(self) -> np.ndarray:
        """The fitness of what the method holds now (drawn as the 'pool' curve)."""
        raise NotImplementedError

    def population_size(self) -> int:
        return len(self.population_fitness())

    def population_stats(self) -> dict[str, float]:
        """:func:`srml.fitness.stats` of :meth:`population_fitness` (a log row's pool columns)."""
        return stats(self.population_fitness())

    def candidates(self) -> np.ndarray:
        """The genomes it would deploy now, best first, ``(n, G)``."""
        raise NotImplementedError

    def candidates_fitness(self) -> np.ndarray:
        """The recorded fitness of :meth:`candidates` (NaN where a method records none)."""
        return np.full(len(self.candidates()), np.nan)

    def arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError
