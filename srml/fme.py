"""Fitness monotonic execution (after Kirsch & Schmidhuber 2022).

No gradient, no mutation, no meta-optimizer: genomes are drawn from the pool
with a probability that rises with their fitness, run for one lifetime while
they rewrite their own weights, and go back into the pool as new members with
the fitness they just earned. Execution time given to better genomes is the
only outer loop.
"""

from __future__ import annotations

import numpy as np

from . import rng
from .backends import Rollout, Task, make_backend
from .config import Config
from .errors import SrmlError
from .memory import check_memory, run_bytes
from .pool import Pool
from .srwm import Codec, Layout


def make_task(cfg: Config) -> Task:
    """Resolve the env (and its compiled twin, if any) and the network shape."""
    from .backends.base import env_spaces, resolve_env_id

    env_id = resolve_env_id(cfg.env)
    twin = None
    if cfg.twin == "auto":  # Gymnasium's id runs on srml's twin, whose dynamics match it (tested)
        from . import envs

        try:
            twin = envs.get_twin(env_id, **cfg.env_kwargs) or envs.get_twin(
                "srml/" + env_id, **cfg.env_kwargs
            )
        except (TypeError, ValueError) as e:  # the twin's own check of its kwargs
            raise SrmlError(f"bad env kwargs for {env_id!r}: {e}") from None
    if twin is not None:
        env_id = twin.id
        obs_space, act_space = twin.observation_space, twin.action_space
    else:
        obs_space, act_space = env_spaces(env_id, cfg.env_kwargs)
    codec = Codec(obs_space, act_space, cfg.reward_input, cfg.episode_flag, cfg.noise_inputs)
    blind = (0, 0)
    if cfg.noise_inputs and not cfg.noise_to_y:  # the noise inputs are the last K
        blind = (codec.d_in - cfg.noise_inputs, codec.d_in)
    layout = Layout(
        codec.d_in, codec.act_dim, tuple(cfg.hidden), cfg.heads, cfg.beta, cfg.update,
        cfg.sample_keys, blind,
    )  # fmt: skip
    return Task(
        env_id,
        cfg.env_kwargs,
        cfg.lifetime,
        cfg.sample_actions,
        codec,
        layout,
        twin,
        cfg.self_modify,
        cfg.fitness_start,
    )


class FME:
    """The FME loop over one pool. ``step()`` runs one generation and returns its Rollout."""

    def __init__(self, cfg: Config, backend=None):
        self.cfg = cfg.validate()
        self.task = make_task(cfg)
        G = self.task.layout.size  # refuse a pool that cannot fit before allocating anything
        need = run_bytes(cfg.pool_size, G, cfg.n_founders, cfg.batch)
        check_memory(need, f"a pool of {cfg.pool_size} genomes x {G} weights")
        options = {"threads": cfg.threads} if cfg.backend != "numpy" else {}
        self.backend = backend or make_backend(cfg.backend, self.task, cfg.batch, **options)
        self.pool = Pool(cfg.pool_size, self.task.layout.size)
        self.rng = np.random.default_rng(cfg.seed)  # pool sampling, founders, mutation
        self.generation = 0
        self.env_steps = 0
        self.founders = self.task.layout.init(self.rng, cfg.n_founders, cfg.init_std)

    def execute(self, genomes: np.ndarray) -> Rollout:
        """Run B genomes for one lifetime; every generation gets its own rollout seed."""
        res = self.backend.run(genomes, rng.derive_seed(self.cfg.seed, self.generation))
        self.generation += 1
        self.env_steps += res.env_steps
        return res

    def step(self) -> Rollout:
        B, pool = self.cfg.batch, self.pool
        done = self.generation * B
        if done < len(self.founders):  # founders are evaluated before they compete
            idx = np.arange(done, done + B) % len(self.founders)
            res = self.execute(self.founders[idx])
            pool.insert(res.genomes, res.fitness, founder=idx, born=self.generation - 1)
            return res
        idx = pool.sample(self.rng, B, self.cfg.selection, self.cfg.temperature)
        genomes, parents, founders = pool.genomes[idx], pool.ids[idx], pool.founder[idx]
        if self.cfg.sigma > 0:
            noise = self.rng.standard_normal(genomes.shape, dtype=np.float32)
            genomes = genomes + np.float32(self.cfg.sigma) * noise
        res = self.execute(genomes)
        if self.cfg.credit != "none":  # lineage credit: the parents' records are re-checked
            pool.credit(idx, res.fitness)
            if self.cfg.credit == "lineage":  # ... and so are the records of their parents
                up = pool.rows_of(pool.parent[idx])
                pool.credit(up[up >= 0], res.fitness[up >= 0])
        pool.insert(res.genomes, res.fitness, parents, founders, born=self.generation - 1)
        return res

    @property
    def finished(self) -> bool:
        c = self.cfg
        return (c.total_steps > 0 and self.env_steps >= c.total_steps) or (
            c.generations > 0 and self.generation >= c.generations
        )

    # --- checkpoint state: everything a run needs to continue exactly ---------------------
    def state(self) -> tuple[dict, dict]:
        arrays = {f"pool_{k}": v for k, v in self.pool.state().items()}
        arrays["founders"] = self.founders
        meta = {
            "generation": self.generation,
            "env_steps": self.env_steps,
            "rng": self.rng.bit_generator.state,
            "config": self.cfg.to_toml(),
        }
        return arrays, meta

    def load_state(self, arrays: dict, meta: dict) -> None:
        try:
            pool = Pool.from_state({k[5:]: v for k, v in arrays.items() if k.startswith("pool_")})
        except (KeyError, ValueError) as e:
            raise SrmlError(f"checkpoint pool is incomplete: {e}") from None
        if pool.genomes.shape[1] != self.task.layout.size:
            raise SrmlError(
                f"checkpoint genomes have {pool.genomes.shape[1]} weights, "
                f"this config needs {self.task.layout.size}"
            )
        self.pool, self.founders = pool, arrays["founders"]
        self.generation, self.env_steps = int(meta["generation"]), int(meta["env_steps"])
        self.rng.bit_generator.state = meta["rng"]
