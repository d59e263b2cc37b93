"""Compiled environment twins: pure reset/step kernels over plain arrays.

A *twin* is an environment written as two scalar functions that numba can
compile for the CPU (``numba.njit``) and for CUDA
(``numba.cuda.jit(device=True)``), or run as plain Python (``jit=None``):

``reset(state, obs, key, episode)``
    Writes a fresh episode into ``state`` (float64[state_dim]) and its first
    observation into ``obs`` (float32[obs_dim]). Randomness:
    ``uniform(key, STREAM_RESET, episode * 64 + k)`` for ``k = 0, 1, ... < 64``.
``step(state, act, obs, key, t) -> (reward, terminated, truncated)``
    Advances ``state`` in place by the action ``act`` (float32[act_dim]; for a
    Discrete space ``act[0]`` holds the index as a float) and writes the next
    observation. Stochastic dynamics use ``uniform(key, STREAM_ENV, t * 8 + j)``
    where ``t`` counts the step calls made on this lane since the vector env's
    ``reset(seed)`` (0 for the first step).

Conventions shared by every twin: the last entry of ``state`` is the number
of steps taken in the current episode (a float holding an integer), and the
parameters an episode depends on (e.g. a bandit's arm probabilities) live in
``state`` too, so a lane is fully described by ``(state, key, episode, t)``.

``Twin.make_kernels(jit)`` builds (and caches per twin parameters and ``jit``)
the pair ``(reset, step)``. ``jit`` may be ``None`` / ``"python"`` (plain
Python), ``numba.njit`` / ``"njit"`` (CPU), a
``numba.cuda.jit(device=True)`` decorator or ``"cuda"`` (a cached CUDA device
decorator: pass the string, or the same decorator object every time, to reuse
compiled kernels), or any other decorator.

Kernels are compiled once per process, not cached on disk: numba keys the
disk cache of a closure on a pickle of its cells, and a cell holding another
compiled function pickles with a per-process id, so every run would miss and
add files to ``__pycache__``.

``TwinEnv`` and ``TwinVectorEnv`` wrap a twin as a Gymnasium ``Env`` and
``VectorEnv`` (the vector env steps every lane in one compiled call).
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from srml.rng import lane_keys

__all__ = [
    "Twin",
    "TwinEnv",
    "TwinVectorEnv",
    "twin_factory",
    "resolve_jit",
    "make_batch_kernels",
]


@dataclass(frozen=True, eq=False)
class Twin:
    """Description of a compiled environment twin (see the module docstring).

    Factories return one Twin object per distinct kwargs, so Twins compare and
    hash by identity (``eq=False``: ``params`` is a dict and could not be hashed).
    """

    id: str  # "srml/CartPole-v1"
    gym_id: str | None  # Gymnasium reference id, e.g. "CartPole-v1"; None for bandits
    state_dim: int  # length of the float64 state (includes the elapsed-step counter, last)
    obs_dim: int  # length of the float32 observation
    act_dim: int  # length of the float32 action step() reads (Discrete: 1)
    observation_space: gymnasium.Space
    action_space: gymnasium.Space
    make_kernels: Callable  # make_kernels(jit) -> (reset, step)
    params: dict  # the kwargs this twin was built with (defaults filled in)

    @property
    def discrete(self) -> bool:
        """True if the action space is Discrete (act[0] holds the index)."""
        return isinstance(self.action_space, gymnasium.spaces.Discrete)


# --------------------------------------------------------------------------- jit


_JIT_LOCK = threading.RLock()
_NAMED_JITS: dict[str, Any] = {}


def resolve_jit(jit):
    """Map a jit spec to a decorator (or None for plain Python).

    ``None``/``"python"`` -> None; ``"njit"`` -> ``numba.njit``; ``"cuda"`` -> one
    shared ``numba.cuda.jit(device=True)`` (so its kernels are built once);
    anything else is returned as is.
    """
    if jit is None or (isinstance(jit, str) and jit == "python"):
        return None
    import numba

    if isinstance(jit, str):
        with _JIT_LOCK:
            if jit not in _NAMED_JITS:
                if jit == "njit":
                    _NAMED_JITS[jit] = numba.njit
                elif jit == "cuda":
                    from numba import cuda

                    _NAMED_JITS[jit] = cuda.jit(device=True)
                else:
                    raise ValueError(f"unknown jit {jit!r}: use None, 'python', 'njit' or 'cuda'")
            return _NAMED_JITS[jit]
    return jit


def _identity(f):
    return f


def _quiet(f):
    """Plain-Python kernels: silence numpy's uint64 wrap-around warnings of the RNG."""

    @functools.wraps(f)
    def wrapper(*args):
        with np.errstate(over="ignore"):
            return f(*args)

    return wrapper


_KERNELS: dict[tuple, tuple] = {}


def _kernel_maker(env_id: str, build: Callable, params: dict) -> Callable:
    """A cached ``make_kernels(jit)`` for ``build(jit, **params) -> (reset, step)``."""
    params_key = tuple(sorted(params.items()))

    def make_kernels(jit=None):
        dec = resolve_jit(jit)
        key = (env_id, params_key, dec)
        with _JIT_LOCK:
            if key not in _KERNELS:
                if dec is None:
                    reset, step = build(_identity, None, **params)
                    _KERNELS[key] = (_quiet(reset), _quiet(step))
                else:
                    _KERNELS[key] = build(dec, dec, **params)
            return _KERNELS[key]

    make_kernels.__doc__ = f"(reset, step) kernels of {env_id} {params}, compiled with `jit`."
    return make_kernels


def twin_factory(env_id: str, build: Callable):
    """Decorate a function ``f(**kwargs) -> dict`` into a memoised Twin factory.

    ``f`` validates its kwargs and returns the Twin fields other than ``id``,
    ``make_kernels`` and ``params``. ``build(jit, rng_jit, **params)`` returns
    ``(reset, step)``: ``jit`` decorates the kernels, ``rng_jit`` is passed to
    ``make_rng`` (None for plain Python). The same kwargs (defaults filled in)
    give the same Twin object.
    """

    def deco(f):
        sig = inspect.signature(f)
        cache: dict[tuple, Twin] = {}

        @functools.wraps(f)
        def factory(**kwargs) -> Twin:
            try:
                bound = sig.bind(**kwargs)
            except TypeError as e:
                raise TypeError(f"{env_id}: {e}") from None
            bound.apply_defaults()
            params = dict(bound.arguments)
            key = tuple(sorted(params.items()))
            with _JIT_LOCK:
                if key not in cache:
                    fields = f(**params)
                    cache[key] = Twin(
                        id=env_id,
                        make_kernels=_kernel_maker(env_id, build, params),
                        params=params,
                        **fields,
                    )
                return cache[key]

        factory.env_id = env_id
        factory.build = build
        return factory

    return deco


# ---------------------------------------------------------------- batch kernels

# Autoreset modes of the batched step kernel.
MODE_NEXT_STEP = 0
MODE_SAME_STEP = 1
MODE_DISABLED = 2

_BATCH: dict[tuple, tuple] = {}


def make_batch_kernels(twin: Twin, jit="njit"):
    """Batched ``(vreset, vstep)`` looping over lanes in one compiled call.

    ``vreset(states, obs, keys, episodes, mask)`` resets the lanes where
    ``mask`` is true.

    ``vstep(states, acts, obs, rewards, terms, truncs, keys, episodes, steps,
    autoreset, mode, final_obs, final_mask)`` steps every lane; ``mode`` is
    ``MODE_NEXT_STEP`` (a lane flagged in ``autoreset`` is reset instead of
    stepped, with reward 0), ``MODE_SAME_STEP`` (a lane that ends is reset in
    the same call, its last observation copied to ``final_obs`` and flagged in
    ``final_mask``) or ``MODE_DISABLED`` (no reset). Episode counters grow by
    one at each autoreset; step counters by one at each step.
    """
    dec = resolve_jit(jit)
    key = (twin.id, tuple(sorted(twin.params.items())), dec)
    with _JIT_LOCK:
        if key in _BATCH:
            return _BATCH[key]
        reset, step = twin.make_kernels(jit)
        deco = _identity if dec is None else dec

        @deco
        def vreset(states, obs, keys, episodes, mask):
            for i in range(states.shape[0]):
                if mask[i]:
                    reset(states[i], obs[i], keys[i], episodes[i])

        @deco
        def vstep(
            states,
            acts,
            obs,
            rewards,
            terms,
            truncs,
            keys,
            episodes,
            steps,
            autoreset,
            mode,
            final_obs,
            final_mask,
        ):
            n_obs = obs.shape[1]
            for i in range(states.shape[0]):
                final_mask[i] = False
                if mode == 0 and autoreset[i]:
                    episodes[i] += 1
                    reset(states[i], obs[i], keys[i], episodes[i])
                    rewards[i] = 0.0
                    terms[i] = False
                    truncs[i] = False
                    autoreset[i] = False
                    continue
                r, te, tr = step(states[i], acts[i], obs[i], keys[i], steps[i])
                steps[i] += 1
                rewards[i] = r
                terms[i] = te
                truncs[i] = tr
                if te or tr:
                    if mode == 0:
                        autoreset[i] = True
                    elif mode == 1:
                        for j in range(n_obs):
                            final_obs[i, j] = obs[i, j]
                        final_mask[i] = True
                        episodes[i] += 1
                        reset(states[i], obs[i], keys[i], episodes[i])
                    else:
                        autoreset[i] = True

        _BATCH[key] = (vreset, vstep)
        return _BATCH[key]


# ------------------------------------------------------------------- gymnasium


def _seed_from(np_random: np.random.Generator) -> int:
    return int(np_random.integers(0, 2**63 - 1))


def _twin_from(cls, twin, kwargs, no_time_limit=False) -> Twin:
    """The Twin given, or built from a registered id (or the class's factory) and kwargs.

    ``no_time_limit``: default ``max_episode_steps`` to 0 where the factory has it.
    """
    if isinstance(twin, Twin):
        if kwargs:
            raise TypeError("pass either a Twin or env kwargs, not both")
        return twin
    if isinstance(twin, str):
        from . import TWINS

        if twin not in TWINS:
            raise ValueError(f"no twin registered as {twin!r}; known: {sorted(TWINS)}")
        factory = TWINS[twin]
    elif twin is None and cls.factory is not None:
        factory = cls.factory
    else:
        raise TypeError(f"{cls.__name__} needs a twin (a Twin or a registered id), got {twin!r}")
    if no_time_limit and "max_episode_steps" in inspect.signature(factory).parameters:
        kwargs = {"max_episode_steps": 0, **kwargs}
    return factory(**kwargs)


def _check_render_mode(render_mode):
    if render_mode is not None:
        raise ValueError(f"srml twins do not render (render_mode={render_mode!r}); use None")


class TwinEnv(gymnasium.Env):
    """A twin as a single Gymnasium env (kernels compiled with ``numba.njit``).

    ``TwinEnv(twin)`` with a ``Twin`` or a registered id, or a subclass with a
    ``factory`` (the registered entry points) and the twin's kwargs.

    Randomness: ``reset(seed=s)`` uses the lane key ``lane_key(s, 0)`` and
    episode counter 0; each later ``reset()`` starts the next episode
    (counter + 1) of the same key. Without any seed, a seed is drawn from
    ``self.np_random``. Stochastic steps use the step counter since the last
    seeded reset, exactly like lane 0 of a ``TwinVectorEnv``.

    Episode length: classic-control twins leave truncation to the
    ``TimeLimit`` wrapper that ``gymnasium.make`` adds (as Gymnasium's own
    envs do), so here their ``max_episode_steps`` defaults to 0 (no limit);
    pass ``max_episode_steps=N`` to have the twin truncate by itself. Bandits
    always truncate after ``episode_steps``.

    Rendering is not supported: ``render_mode`` must be None.
    """

    metadata: ClassVar[dict] = {"render_modes": []}
    factory: ClassVar[Callable[..., Twin] | None] = None

    def __init__(self, twin: Twin | str | None = None, render_mode: str | None = None, **kwargs):
        _check_render_mode(render_mode)
        self.render_mode = None
        self.twin = _twin_from(type(self), twin, kwargs, no_time_limit=True)
        self.observation_space = self.twin.observation_space
        self.action_space = self.twin.action_space
        self._reset_kernel, self._step_kernel = self.twin.make_kernels("njit")
        self.state = np.zeros(self.twin.state_dim, np.float64)
        self._obs = np.zeros(self.twin.obs_dim, np.float32)
        self._act = np.zeros(self.twin.act_dim, np.float32)
        self._key: np.uint64 | None = None
        self._episode = 0
        self._t = 0
        self._needs_reset = True

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = np.uint64(lane_keys(seed, 0))
            self._episode = 0
            self._t = 0
        elif self._key is None:
            self._key = np.uint64(lane_keys(_seed_from(self.np_random), 0))
            self._episode = 0
            self._t = 0
        else:
            self._episode += 1
        self._reset_kernel(self.state, self._obs, self._key, self._episode)
        self._needs_reset = False
        return self._obs.copy(), {}

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        if self.twin.discrete:
            a = int(action)
            if not 0 <= a < self.action_space.n:
                raise ValueError(f"action {action!r} outside {self.action_space}")
            self._act[0] = a
        else:
            self._act[:] = np.asarray(action, np.float32).reshape(self.twin.act_dim)
        reward, terminated, truncated = self._step_kernel(
            self.state, self._act, self._obs, self._key, self._t
        )
        self._t += 1
        return self._obs.copy(), float(reward), bool(terminated), bool(truncated), {}


_MODES = {
    AutoresetMode.NEXT_STEP: MODE_NEXT_STEP,
    AutoresetMode.SAME_STEP: MODE_SAME_STEP,
    AutoresetMode.DISABLED: MODE_DISABLED,
}


def _parse_mode(mode) -> AutoresetMode:
    """An AutoresetMode from the enum, its value ("SameStep") or name ("same_step")."""
    if isinstance(mode, AutoresetMode):
        return mode
    norm = str(mode).replace("_", "").replace("-", "").lower()
    for m in AutoresetMode:
        if norm in (m.value.lower(), m.name.replace("_", "").lower()):
            return m
    raise ValueError(
        f"unknown autoreset_mode {mode!r}; use one of {[m.value for m in AutoresetMode]}"
    )


class TwinVectorEnv(gymnasium.vector.VectorEnv):
    """``num_envs`` lanes of a twin, stepped by one compiled (numba) call per step.

    ``reset(seed=s)`` gives lane ``i`` the key ``lane_keys(s, i)`` and zeroes the
    episode and step counters; ``reset()`` without a seed starts the next
    episode on every lane (or only on ``options["reset_mask"]`` lanes).

    ``autoreset_mode``: ``AutoresetMode.NEXT_STEP`` (default, Gymnasium's
    convention: a lane that ended is reset by the next ``step`` call, which
    returns its first observation with reward 0 and ignores its action),
    ``SAME_STEP`` (the lane is reset inside the step that ended it; the last
    observation is in ``infos["final_obs"]``) or ``DISABLED`` (reset lanes
    yourself with ``reset(options={"reset_mask": mask})``). Each autoreset
    raises the lane's episode counter by one; the step counter ``t`` counts
    actual steps only, so a lane sees the same episodes in every mode.

    ``max_episode_steps`` (classic control) or ``episode_steps`` (bandits)
    sets truncation; ``gymnasium.make_vec`` passes the spec's limit. Rendering
    is not supported: ``render_mode`` must be None.
    """

    metadata: ClassVar[dict] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}
    factory: ClassVar[Callable[..., Twin] | None] = None

    def __init__(
        self,
        num_envs: int = 1,
        twin: Twin | str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
        **kwargs,
    ):
        _check_render_mode(render_mode)
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.twin = _twin_from(type(self), twin, kwargs)
        self.num_envs = int(num_envs)
        self.autoreset_mode = _parse_mode(autoreset_mode)
        self._mode = _MODES[self.autoreset_mode]
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.render_mode = None
        self.single_observation_space = self.twin.observation_space
        self.single_action_space = self.twin.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._vreset, self._vstep = make_batch_kernels(self.twin, "njit")

        n, t = self.num_envs, self.twin
        self.states = np.zeros((n, t.state_dim), np.float64)
        self._obs = np.zeros((n, t.obs_dim), np.float32)
        self._acts = np.zeros((n, t.act_dim), np.float32)
        self._rewards = np.zeros(n, np.float64)
        self._terms = np.zeros(n, np.bool_)
        self._truncs = np.zeros(n, np.bool_)
        self._final_obs = np.zeros((n, t.obs_dim), np.float32)
        self._final_mask = np.zeros(n, np.bool_)
        self.keys: np.ndarray | None = None
        self.episodes = np.zeros(n, np.int64)
        self.steps = np.zeros(n, np.int64)
        self._autoreset = np.zeros(n, np.bool_)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        lanes = np.arange(self.num_envs)
        if seed is not None:
            if isinstance(seed, int | np.integer):
                super().reset(seed=int(seed))
                self.keys = lane_keys(seed, lanes)
            else:
                seeds = np.asarray(seed)
                if seeds.shape != (self.num_envs,):
                    raise ValueError(f"need {self.num_envs} seeds, got {seeds.shape}")
                super().reset(seed=int(seeds[0]))
                self.keys = lane_keys(seeds, lanes)
            mask = np.ones(self.num_envs, np.bool_)
            self.episodes[:] = 0
            self.steps[:] = 0
        else:
            mask = np.ones(self.num_envs, np.bool_)
            if options is not None and "reset_mask" in options:
                mask = np.asarray(options["reset_mask"], np.bool_).reshape(self.num_envs)
            if self.keys is None:
                self.keys = lane_keys(_seed_from(self.np_random), lanes)
                self.episodes[:] = 0
                self.steps[:] = 0
                mask[:] = True
            else:
                self.episodes[mask] += 1
        self._vreset(self.states, self._obs, self.keys, self.episodes, mask)
        self._autoreset[mask] = False
        return self._obs.copy(), {}

    def step(self, actions):
        if self.keys is None:
            raise RuntimeError("call reset() before step()")
        if self._mode == MODE_DISABLED and self._autoreset.any():
            raise RuntimeError(
                "autoreset_mode DISABLED: reset the finished lanes with "
                "reset(options={'reset_mask': ...}) before stepping them"
            )
        a = np.asarray(actions)
        if self.twin.discrete:
            a = a.reshape(self.num_envs)
            if a.min() < 0 or a.max() >= self.single_action_space.n:
                raise ValueError(f"actions outside {self.single_action_space}: {a}")
            self._acts[:, 0] = a
        else:
            self._acts[:] = a.reshape(self.num_envs, self.twin.act_dim)
        self._vstep(
            self.states,
            self._acts,
            self._obs,
            self._rewards,
            self._terms,
            self._truncs,
            self.keys,
            self.episodes,
            self.steps,
            self._autoreset,
            self._mode,
            self._final_obs,
            self._final_mask,
        )
        infos: dict[str, Any] = {}
        if self._mode == MODE_SAME_STEP and self._final_mask.any():
            final = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(self._final_mask):
                final[i] = self._final_obs[i].copy()
            infos = {
                "final_obs": final,
                "_final_obs": self._final_mask.copy(),
                "final_info": {},
                "_final_info": self._final_mask.copy(),
            }
        return (
            self._obs.copy(),
            self._rewards.copy(),
            self._terms.copy(),
            self._truncs.copy(),
            infos,
        )

    def __repr__(self):
        return f"{type(self).__name__}({self.twin.id}, num_envs={self.num_envs})"
