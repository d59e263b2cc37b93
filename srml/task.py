"""The task: which env a run steps (Gymnasium's or srml's compiled twin) and the network's shape.

Env resolution lives here and nowhere else: ``module:EnvId`` imports ``module``
(which registers the env) without letting the current directory shadow
installed libraries, an id with a compiled twin runs on the twin unless
``twin = "off"``, and the spaces give the codec and the genome layout.
"""

from __future__ import annotations

import importlib
import os
import sys

import gymnasium as gym

from . import envs
from .backends.base import Task
from .config import Config, resolved
from .errors import SrmlError
from .srwm import Codec, Layout


def import_env_module(module: str) -> None:
    """Import a user's env module. The current directory is searched for it, but only after
    installed packages, so a ``numpy.py`` lying there never shadows numpy."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise SrmlError(f"cannot import {module!r}: {e}") from None
    except SyntaxError as e:
        raise SrmlError(f"env module {module!r} has a syntax error: {e}") from None
    except Exception as e:  # the module itself raised on import
        raise SrmlError(
            f"env module {module!r} raised on import: {type(e).__name__}: {e}"
        ) from None
    finally:
        if added:
            sys.path.remove(cwd)


def resolve_env_id(env_id: str) -> str:
    """'module:EnvId' imports module (which registers the env) and returns 'EnvId'."""
    if ":" not in env_id:
        return env_id
    module, _, name = env_id.partition(":")
    if not module or not name:
        raise SrmlError(f"--env {env_id!r}: use an env id, or module:EnvId")
    import_env_module(module)
    return name


def check_env_kwargs(env_id: str, env_kwargs: dict) -> None:
    """What srml itself decides about env kwargs: a run steps B envs headless, so no
    render_mode (srml play --video renders)."""
    if env_kwargs.get("render_mode") is not None:
        raise SrmlError(
            f"--env-kwargs render_mode={env_kwargs['render_mode']!r}: srml run steps its envs "
            "without rendering; watch an agent with srml play RUN_DIR [--video FILE.mp4]"
        )


def env_spaces(env_id: str, env_kwargs: dict) -> tuple[gym.Space, gym.Space]:
    """Observation and action space of one env, with Gymnasium's errors made one line (its
    warnings too, said only if the env could be made)."""
    import warnings

    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            env = gym.make(env_id, **env_kwargs)
    except (gym.error.Error, ModuleNotFoundError, ImportError) as e:  # NameNotFound, missing dep
        raise SrmlError(f"cannot make env {env_id!r}: {e}") from None
    except (TypeError, ValueError, AssertionError) as e:
        raise SrmlError(f"bad env kwargs for {env_id!r}: {type(e).__name__}: {e}") from None
    except Exception as e:  # the env's own constructor raised
        raise SrmlError(f"env {env_id!r} raised when made: {type(e).__name__}: {e}") from None
    for w in {str(w.message).strip().splitlines()[0] for w in said if str(w.message).strip()}:
        print(f"srml: warning: {env_id}: {w}", file=sys.stderr)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def find_twin(env_id: str, env_kwargs: dict):
    """srml's compiled twin of ``env_id`` (its own id or Gymnasium's), or None."""
    try:
        twin = envs.get_twin(env_id, **env_kwargs) or envs.get_twin("srml/" + env_id, **env_kwargs)
        if twin is not None:
            twin.make_kernels(None)  # plain Python, no compiling: a bad value fails here, once
        return twin
    except (TypeError, ValueError, ArithmeticError) as e:  # the twin's own check of its kwargs
        raise SrmlError(f"bad env kwargs for {env_id!r}: {type(e).__name__}: {e}") from None


def make_task(cfg: Config) -> Task:
    """Resolve the env (and its compiled twin, if any) and the network shape."""
    cfg = resolved(cfg)  # "auto" network fields take the founders' recipe
    env_id = resolve_env_id(cfg.env)
    check_env_kwargs(env_id, cfg.env_kwargs)
    twin = find_twin(env_id, cfg.env_kwargs) if cfg.twin == "auto" else None
    if twin is not None:  # Gymnasium's id runs on srml's twin, whose dynamics match it (tested)
        env_id = twin.id
        obs_space, act_space = twin.observation_space, twin.action_space
    else:
        obs_space, act_space = env_spaces(env_id, cfg.env_kwargs)
    codec = Codec(
        obs_space, act_space, cfg.reward_input, cfg.episode_flag, cfg.noise_inputs,
        cfg.input_norm, cfg.noise_hold,
    )  # fmt: skip
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
        requested_id=cfg.env,
        step_timeout=cfg.step_timeout,
        fitness_start=cfg.fitness_start,
        fast_exp=cfg.fast_exp,
    )
