"""The run configuration: one dataclass, a docstring per field (CleanRL style).

The CLI builds its flags from these fields and their docstrings, a TOML file
(``--config``) may set any of them, and ``config.toml`` in every run
directory holds the whole resolved config.
"""

from __future__ import annotations

import ast
import inspect
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import tomli_w

from .backends import BACKENDS
from .errors import SrmlError
from .pool import CREDITS, SELECTIONS
from .run.rundir import atomic_write_bytes
from .srwm import BETAS, INPUT_NORMS, UPDATES

MAX_SEED = 2**63 - 1
"""Seeds are hashed as unsigned 64-bit integers and numpy's RNG takes them; 63 bits keep
them clear of sign trouble everywhere."""


def _dash(name: str) -> str:
    return name.replace("_", "-")


@dataclass
class Config:
    method: str = "fme"
    """Search method: fme (the method under test) or a baseline: hill_climber, openai_es, random_search."""
    method_options: dict = field(default_factory=dict)
    """Options particular to the method (TOML table, or JSON on the CLI), e.g. {"deploy": 16}."""
    env: str = "CartPole-v1"
    """Gymnasium env id (any registered id; srml's own are srml/...)."""
    env_kwargs: dict = field(default_factory=dict)
    """Extra keyword arguments for gymnasium.make (TOML table, or JSON on the CLI)."""
    backend: str = "numba"
    """Engine: numba (CPU, compiled; fused with the env where a twin exists), numpy (reference), cuda (GPU)."""
    threads: int = 0
    """CPU threads for the numba backend; 0 means all cores numba sees."""
    twin: str = "auto"
    """auto: run a Gymnasium id on srml's compiled twin when one exists; off: always Gymnasium's env."""
    fast_exp: bool = False
    """numba on a compiled twin: vectorizable polynomial exp and tanh (relative error < 1e-7 and < 2e-7) for the C library's, 1.3-2x faster; results then differ from the default's at float tolerance (not bit for bit)."""
    pool_size: int = 1000
    """N: the most genomes the pool holds; beyond it the least recently used is forgotten."""
    batch: int = 256
    """B: genomes drawn from the pool and executed together each generation."""
    lifetime: int = 500
    """S: env steps in one execution of a genome; episodes inside it do not reset the weights."""
    total_steps: int = 20_000_000
    """Stop after this many agent-steps (B * S per generation, so the last generation may pass it by up to B * S - 1); 0 means no limit."""
    generations: int = 0
    """Stop after this many generations; 0 means no limit. The first limit reached stops."""
    selection: str = "auto"
    """How the pool picks genomes, monotonic in fitness: proportional, rank or softmax; auto: rank with --founders 1, else proportional (see RECIPES)."""
    temperature: float = 1.0
    """Selection pressure. softmax: temperature in units of the pool's fitness standard deviation; rank: weights (rank / n) ** (1 / T) (1: linear ranking, smaller: stronger); proportional ignores it."""
    founders: int = 0
    """K random genomes that start the pool, each evaluated before it competes; 0 fills the pool."""
    init_std: float = 2.0
    """Standard deviation of the founders' weights (small weights give near-random policies)."""
    sigma: float = 0.0
    """Gaussian mutation noise added to drawn genomes; 0 is pure FME (baselines only)."""
    hidden: list[int] = field(default_factory=list)
    """Widths of hidden SRWM layers (tanh between layers); empty means one layer."""
    heads: int = 1
    """Heads per layer (a block-diagonal W); input and output widths are padded to a multiple of it, --hidden widths must be multiples of it."""
    beta: str = "auto"
    """SRWM learning rates: single (one per head) or per_block (one per row block y, k, q, b); auto: per_block with --founders 1, else single."""
    update: str = "delta"
    """SRWM update values: delta (W pq - W pk, Irie et al.) or tanh (tanh(W pq) - tanh(W pk): bounded, leaves W's column space)."""
    noise_inputs: int = -1
    """K extra network inputs, uniform in [-1, 1) from srml.rng (drawn as --noise-hold says): randomness whose effect the genome's own weights set; -1 (auto): 8 with --founders 1, else 0."""
    noise_hold: int = -1
    """Steps each draw of the noise inputs is held: 1 draws them afresh every step; H redraws every H steps; 0 draws once per lifetime, a random code held for the whole lifetime that the genome's own weights turn into lifetime-long variation of its writes; -1 (auto): 0 with --founders 1, else 1."""
    noise_to_y: bool = False
    """Noise inputs reach the action rows (y) too; false (default): only the rows that drive self-modification (k, q, beta) read them, so the policy itself is not made noisy."""
    sample_keys: bool = False
    """Write each step to one column drawn from softmax(k) (pk one-hot) instead of the soft key: variation the network controls."""
    input_norm: str = "none"
    """Normalise the first layer's inputs from the env and the agent's history ([obs, previous action, previous reward, episode flag], not the constant 1, the noise inputs or the padding) each step: none; layer ((x - mean) / sqrt(var + 1e-5) over them, no gain or bias); softmax (their softmax). As modern-srwm does, so weights do not saturate; its init, N(0, std 1/sqrt(d)) with d a head's input width, is --init-std 1/sqrt(d_in) (1/sqrt(d_in / heads) with heads)."""
    fitness_from: float = 0.0
    """Fitness is the mean return of the episodes that end after this fraction of the lifetime (0: every episode; 0.5: those ending in the second half), each counted whole."""
    credit: str = "auto"
    """Lineage credit (auto: lineage with --founders 1, else none): none; mean (a drawn genome's record becomes the mean over its first record and every run it is drawn for); lineage (mean, and each run also counts for the drawn genome's parent)."""
    sample_actions: bool = True
    """Discrete actions sampled from softmax(logits); false takes the argmax."""
    self_modify: bool = True
    """Let the SRWM rewrite its weights each step; false freezes them (hill-climber baseline)."""
    reward_input: bool = True
    """Feed the previous reward to the network (what lets it learn within its lifetime)."""
    episode_flag: bool = True
    """Feed a flag that is 1 on the first step of each episode."""
    seed: int = 0
    """Seeds pool sampling, founders and every rollout (0 to 2**63 - 1)."""
    out: str = ""
    """Run directory (new or empty); empty means runs/<env>-s<seed>-<timestamp>. From a --config file it is honoured with a note, except in a saved run's config.toml (the repeat gets a new directory)."""
    checkpoint_every: int = 50
    """Write pool.npz every this many generations (and always at the end)."""
    progress: bool = True
    """Show progress on stderr: a bar on a terminal; otherwise a plain line after the first generation, then at most every 30 s and at the end."""
    tensorboard: bool = False
    """Also write the log rows for TensorBoard under RUN_DIR/tb (needs the tensorboard extra)."""
    workers: int = 0
    """Island workers run as Ray actors (needs the ray extra); 0 runs one pool in this process."""
    ray_address: str = ""
    """Ray cluster to join with --workers (e.g. auto, ray://head:10001); empty starts a local Ray."""
    worker_cpus: int = 1
    """CPU cores (backend threads) each island worker gets."""
    migrate_every: int = 10
    """Islands send their best genomes to the next island every this many generations."""
    migrants: int = 8
    """How many of its best genomes each island sends at a migration (0: isolated islands)."""
    step_timeout: float = 60.0
    """Generic path (a Gymnasium env without a compiled twin): stop when one step (or reset) of the B envs together takes longer than this many seconds; 0 waits forever."""

    def validate(self) -> Config:
        """Check every field (one-line SrmlError) and resolve the ``auto`` fields in place
        (:data:`RECIPES`); returns self."""
        for key, value in recipe_values(self).items():
            setattr(self, key, value)

        def need(ok, msg):
            if not ok:
                raise SrmlError(msg)

        for f in fields(self):  # a TOML file can hold what the flags' parsers refuse
            v = getattr(self, f.name)
            if isinstance(v, float):
                need(math.isfinite(v), f"--{_dash(f.name)} must be finite, got {v}")
        need(
            0 <= self.seed <= MAX_SEED,
            f"--seed must be between 0 and 2**63 - 1, got {self.seed}",
        )
        need(
            all(isinstance(h, int) and not isinstance(h, bool) for h in self.hidden),
            f"--hidden must be a list of integers, got {self.hidden!r}",
        )
        need(self.heads >= 1, f"--heads must be >= 1, got {self.heads}")
        need(self.step_timeout >= 0, f"--step-timeout must be >= 0, got {self.step_timeout}")
        need(self.pool_size >= 1, f"--pool-size must be >= 1, got {self.pool_size}")
        need(self.batch >= 1, f"--batch must be >= 1, got {self.batch}")
        need(
            self.batch <= self.pool_size,
            f"--batch {self.batch} is larger than --pool-size {self.pool_size}",
        )
        need(
            self.lifetime >= 1,
            f"--lifetime must be a positive number of steps, got {self.lifetime}",
        )
        need(self.total_steps >= 0, f"--total-steps must be >= 0, got {self.total_steps}")
        need(self.generations >= 0, f"--generations must be >= 0, got {self.generations}")
        need(
            self.total_steps > 0 or self.generations > 0,
            "set --total-steps or --generations (both are 0: the run would never end)",
        )
        need(self.founders >= 0, f"--founders must be >= 0, got {self.founders}")
        need(self.sigma >= 0, f"--sigma must be >= 0, got {self.sigma}")
        need(self.init_std > 0, f"--init-std must be > 0, got {self.init_std}")
        need(self.threads >= 0, f"--threads must be >= 0 (0: all cores), got {self.threads}")
        need(
            not self.fast_exp or self.backend == "numba",
            f"--fast-exp applies to the numba backend, not --backend {self.backend}",
        )
        need(self.temperature > 0, f"--temperature must be > 0, got {self.temperature}")
        need(
            0 <= self.noise_inputs <= 64,
            f"--noise-inputs must be between 0 and 64, got {self.noise_inputs}",
        )
        need(
            self.noise_hold >= 0,
            f"--noise-hold must be >= 0 (0: once per lifetime), got {self.noise_hold}",
        )
        need(
            0.0 <= self.fitness_from < 1.0,
            f"--fitness-from must be in [0, 1) (a fraction of the lifetime), got {self.fitness_from}",
        )
        need(self.twin in ("auto", "off"), f"--twin must be auto or off, got {self.twin!r}")
        need(self.checkpoint_every >= 1, "--checkpoint-every must be >= 1")
        need(self.workers >= 0, f"--workers must be >= 0, got {self.workers}")
        need(
            not self.ray_address or self.workers > 0,
            "--ray-address only applies to island runs: add --workers N",
        )
        need(self.worker_cpus >= 1, f"--worker-cpus must be >= 1, got {self.worker_cpus}")
        need(self.migrate_every >= 1, f"--migrate-every must be >= 1, got {self.migrate_every}")
        need(  # an island-only setting: its default must not refuse a small single-run pool
            self.workers == 0 or 0 <= self.migrants <= self.pool_size,
            f"--migrants must be between 0 and --pool-size {self.pool_size}, got {self.migrants}",
        )
        for flag, value, names in [
            ("--backend", self.backend, BACKENDS),
            ("--selection", self.selection, SELECTIONS),
            ("--beta", self.beta, BETAS),
            ("--update", self.update, UPDATES),
            ("--input-norm", self.input_norm, INPUT_NORMS),
            ("--credit", self.credit, CREDITS),
        ]:
            need(
                value in names, f"unknown {flag} {value!r}; choose from {', '.join(sorted(names))}"
            )
        return self

    @property
    def fitness_start(self) -> int:
        """The step of the lifetime from which reward counts towards fitness."""
        return int(self.fitness_from * self.lifetime)

    @property
    def n_founders(self) -> int:
        return self.founders or self.pool_size

    def to_toml(self) -> str:
        return tomli_w.dumps(asdict(self))

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, self.to_toml().encode())


# The fields left at "auto" (noise_inputs: -1) take their value from the recipe the founders
# choose. "from_one" (--founders 1, the paper's setup) is the best variant of issue 13's screen
# on tuning seeds (research/FINDINGS.md, plots/fme_from_one_results.json); "classic" (a pool
# filled with random founders) is srml's earlier default, where nothing better was measured.
RECIPES = {
    "from_one": {
        "beta": "per_block", "noise_inputs": 8, "noise_hold": 0, "credit": "lineage",
        "selection": "rank",
    },
    "classic": {
        "beta": "single", "noise_inputs": 0, "noise_hold": 1, "credit": "none",
        "selection": "proportional",
    },
}  # fmt: skip
AUTO = {"beta": "auto", "noise_inputs": -1, "noise_hold": -1, "credit": "auto", "selection": "auto"}


def recipe_of(cfg: Config) -> str:
    return "from_one" if cfg.founders == 1 else "classic"


def recipe_values(cfg: Config) -> dict:
    """The values of ``cfg``'s fields still at "auto", from its recipe."""
    values = RECIPES[recipe_of(cfg)]
    return {k: values[k] for k, auto in AUTO.items() if getattr(cfg, k) == auto}


def resolved(cfg: Config) -> Config:
    """A copy of ``cfg`` with its "auto" fields resolved (``cfg`` itself is not changed)."""
    values = recipe_values(cfg)
    return replace(cfg, **values) if values else cfg


def field_docs() -> dict[str, str]:
    """The docstring under each Config field, read from the source (one source of truth)."""
    tree = ast.parse(inspect.getsource(Config))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr):
            docs[node.target.id] = nxt.value.value
    return docs


def from_dict(d: dict, base: Config | None = None) -> Config:
    """A Config from a (TOML) dict, with unknown keys and wrong types refused in one line."""
    names = {f.name: f for f in fields(Config)}
    cfg = base or Config()
    kwargs = asdict(cfg)
    for key, value in d.items():
        key = key.replace("-", "_")
        if key not in names:
            raise SrmlError(f"unknown config key {key!r}")
        default = kwargs[key]
        if isinstance(default, bool) and not isinstance(value, bool):
            raise SrmlError(f"config key {key!r} must be true or false, got {value!r}")
        if isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, bool):
                raise SrmlError(f"config key {key!r} must be an integer, got {value!r}")
            if isinstance(value, float):
                if not value.is_integer():  # also inf and nan
                    raise SrmlError(f"config key {key!r} must be an integer, got {value!r}")
                value = int(value)
        if isinstance(default, list) and isinstance(value, list):
            bad = [v for v in value if not isinstance(v, int) or isinstance(v, bool)]
            if bad:
                raise SrmlError(f"config key {key!r} must be a list of integers, got {value!r}")
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        expected = type(default)
        if not isinstance(value, expected):
            raise SrmlError(
                f"config key {key!r} must be {expected.__name__}, got {type(value).__name__}"
            )
        kwargs[key] = value
    return Config(**kwargs)


# Fields added after runs were saved: a saved config (config.toml, a checkpoint's) without
# one ran with the behaviour these values give, which its "auto" default might not.
SAVED_BEFORE = {"noise_hold": 1}


def from_saved(d: dict) -> Config:
    """The Config of a saved run (its config.toml or checkpoint): :func:`from_dict`, with the
    fields it predates set as the srml that wrote it ran (:data:`SAVED_BEFORE`)."""
    return from_dict({**SAVED_BEFORE, **d})


def load_toml(path: str | Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SrmlError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise SrmlError(f"config file {path} is a directory; give a .toml file") from None
    except PermissionError:
        raise SrmlError(f"config file {path} is not readable (permission denied)") from None
    except UnicodeDecodeError as e:
        raise SrmlError(
            f"config file {path} is not UTF-8 text: {e.reason} at byte {e.start}"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise SrmlError(f"config file {path} is not valid TOML: {e}") from None
    except OSError as e:
        raise SrmlError(f"cannot read config file {path}: {e.strerror or e}") from None
