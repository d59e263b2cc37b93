"""srml's environments (installed as ``srml.envs``).

Compiled twins of Gymnasium's classic-control tasks, the bandit tasks of the
FME paper and the learned-optimizer task family (``srml/LearnedOptimizer-v0``:
one sampled optimization problem per episode, the agent a per-parameter update
rule), each a pair of pure ``reset``/``step`` kernels (see
:mod:`srml.envs.twin`) that numba compiles for the CPU and for CUDA.

Importing this package registers every twin with Gymnasium under the
``srml/`` namespace, with a batched ``vector_entry_point``::

    import gymnasium, srml.envs
    env = gymnasium.make("srml/CartPole-v1")
    envs = gymnasium.make_vec("srml/CartPole-v1", num_envs=256)

``TWINS`` maps each id to its factory (kwargs -> ``Twin``); ``get_twin(id,
**kwargs)`` returns the twin, or None for ids without one.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium

from .acrobot import acrobot
from .bandits import bernoulli_bandit, reversal_bandit, swapping_bandit
from .cartpole import cartpole
from .learned_optimizer import learned_optimizer
from .mountain_car import mountain_car, mountain_car_continuous
from .pendulum import pendulum
from .twin import Twin, TwinEnv, TwinVectorEnv, make_batch_kernels, resolve_jit

__all__ = [
    "TWINS",
    "Twin",
    "TwinEnv",
    "TwinVectorEnv",
    "get_twin",
    "make_batch_kernels",
    "register_envs",
    "resolve_jit",
]

TWINS: dict[str, Callable[..., Twin]] = {
    f.env_id: f
    for f in (
        cartpole,
        acrobot,
        mountain_car,
        mountain_car_continuous,
        pendulum,
        bernoulli_bandit,
        swapping_bandit,
        reversal_bandit,
        learned_optimizer,
    )
}


def get_twin(env_id: str, **kwargs) -> Twin | None:
    """The twin registered as ``env_id`` (e.g. "srml/CartPole-v1"), built with ``kwargs``.

    Returns None if ``env_id`` has no twin. The same id and kwargs give the same
    Twin object (its compiled kernels are cached with it).
    """
    factory = TWINS.get(env_id)
    return None if factory is None else factory(**kwargs)


# id -> (module, class prefix, max_episode_steps for the TimeLimit wrapper, reward_threshold)
_GYM_SPECS = {
    "srml/CartPole-v1": ("cartpole", "CartPole", 500, 475.0),
    "srml/Acrobot-v1": ("acrobot", "Acrobot", 500, -100.0),
    "srml/MountainCar-v0": ("mountain_car", "MountainCar", 200, -110.0),
    "srml/MountainCarContinuous-v0": ("mountain_car", "MountainCarContinuous", 999, 90.0),
    "srml/Pendulum-v1": ("pendulum", "Pendulum", 200, None),
    # Bandits truncate by themselves after `episode_steps`: no TimeLimit.
    "srml/BernoulliBandit-v0": ("bandits", "BernoulliBandit", None, None),
    "srml/SwappingBandit-v0": ("bandits", "SwappingBandit", None, None),
    "srml/ReversalBandit-v0": ("bandits", "ReversalBandit", None, None),
    # One sampled optimization problem per episode; truncates by itself.
    "srml/LearnedOptimizer-v0": ("learned_optimizer", "LearnedOptimizer", None, None),
}


def register_envs() -> None:
    """Register every twin with Gymnasium (idempotent)."""
    for env_id, (module, prefix, max_steps, threshold) in _GYM_SPECS.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point=f"srml.envs.{module}:{prefix}TwinEnv",
            vector_entry_point=f"srml.envs.{module}:{prefix}TwinVectorEnv",
            max_episode_steps=max_steps,
            reward_threshold=threshold,
        )


register_envs()
