"""The numpy reference backend: any Gymnasium env, through a vector env.

Plain and readable: one Python loop over the lifetime, numpy over the
population. Every other backend is tested against this one.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from .. import rng
from ..errors import SrmlError
from ..srwm import forward
from .base import Rollout, Task, finalize


def make_vector_env(env_id: str, n: int, env_kwargs: dict) -> gym.vector.VectorEnv:
    """A vector env of n copies, batched natively where the env offers it.

    The autoreset mode is chosen explicitly (SAME_STEP where we can pick it);
    envs with a fixed NEXT_STEP mode (Gymnasium's CartPoleVectorEnv) are
    handled by the rollout, which skips the lanes' reset steps.
    """
    spec = gym.spec(env_id)
    if spec.vector_entry_point is not None:
        kwargs = dict(env_kwargs)
        if env_id.startswith("srml/"):
            kwargs["autoreset_mode"] = AutoresetMode.SAME_STEP
        return gym.make_vec(env_id, n, vectorization_mode="vector_entry_point", **kwargs)
    return gym.make_vec(
        env_id,
        n,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        **env_kwargs,
    )


class StepTimeout(BaseException):
    """Raised by SIGALRM inside an env's step; a BaseException so that an env's own broad
    ``except Exception`` cannot swallow it."""


@contextmanager
def time_limit(seconds: float):
    """Interrupt the block after ``seconds`` (0: never) with :class:`StepTimeout`.

    SIGALRM, in the main thread only: a watchdog thread could notice a hung env but not stop
    it, and only the main thread receives signals. An env stuck in C code that never returns
    to the interpreter is not interrupted (nothing short of killing the process is)."""
    if (
        not seconds
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def alarm(signum, frame):
        raise StepTimeout

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def reference_forward(genomes, views, layout, x, active, u=None, keys=None, step=0):
    """The network step of the numpy reference: ``forward`` on the genomes' named views
    (``u``: the uniforms of sampled keys; ``keys``/``step`` serve compiled steps)."""
    return forward(views, layout, x, active, u)


class NumpyBackend:
    """The reference engine. ``forward`` is the network step (the numba backend's generic path
    passes a compiled one); everything else, env stepping included, is this loop."""

    name = "numpy"

    def __init__(self, task: Task, batch: int, threads: int = 0, forward=reference_forward):
        self.task, self.batch, self.threads = task, batch, 1  # numpy's own threading aside
        self.venv = make_vector_env(task.env_id, batch, task.env_kwargs)
        mode = self.venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP):
            raise SrmlError(
                f"env {task.env_id!r} uses autoreset mode {mode}, which srml cannot run"
            )
        self.next_step_reset = mode == AutoresetMode.NEXT_STEP
        self.forward = forward

    def run(self, genomes: np.ndarray, seed: int, record: bool = False) -> Rollout:
        t, b = self.task, len(genomes)
        if b != self.batch:
            raise SrmlError(f"backend built for batch {self.batch}, got {b} genomes")
        genomes = np.array(genomes, np.float32, copy=True)
        views = t.layout.views(genomes)
        keys = rng.lane_keys(seed, np.arange(b))
        obs, _ = self._env_call("reset", lambda: self.venv.reset(seed=seed))
        prev_act, prev_rew = t.codec.no_action(b), np.zeros(b, np.float32)
        first = np.ones(b, bool)  # the step about to be taken begins an episode
        skip = np.zeros(b, bool)  # NEXT_STEP envs: this call only resets the lane
        returns, episodes = np.zeros(b), np.zeros(b, np.int64)
        trace = ([], [], []) if record else None
        frozen = np.zeros(b)
        slots, t0 = t.layout.key_slots, t.fitness_start
        ep_ret, in_ep = np.zeros(b), np.zeros(b, bool)  # fitness_start > 0: whole episodes
        for step in range(t.lifetime):
            act_now = ~skip
            noise = t.codec.noise(keys, step)
            try:
                x = t.codec.encode(obs, prev_act, prev_rew, first, t.layout.padded_in, noise)
            except SrmlError as e:  # an observation outside the env's own space
                raise SrmlError(f"env {t.env_id!r}: {e}") from None
            active = frozen if not t.self_modify else (act_now if skip.any() else None)
            uk = rng.step_uniforms(keys, rng.STREAM_KEY, step, slots) if slots else None
            y = self.forward(genomes, views, t.layout, x, active, uk, keys, step)
            a = t.codec.decode(y, t.codec.uniforms(keys, step), t.sample_actions)
            obs, r, term, trunc, _ = self._env_call("step", lambda a=a: self.venv.step(a))
            r = np.asarray(r, np.float64)
            if record:
                done_now = (t.codec.recorded(a), np.where(act_now, r, 0.0), first & act_now)
                for store, v in zip(trace, done_now, strict=True):
                    store.append(v)
            if t0 == 0:  # every episode begun counts (the unfinished one too)
                episodes += first & act_now
                returns += np.where(act_now, r, 0.0)
            else:
                in_ep |= first & act_now
                ep_ret += np.where(act_now, r, 0.0)
            prev_act = np.where(act_now[:, None], t.codec.features(a), prev_act)
            prev_rew = np.where(act_now, r, prev_rew).astype(np.float32)
            done = (term | trunc) & act_now
            if t0 > 0:  # an episode ending from step t0 on counts whole
                count = done & (step >= t0)
                returns += np.where(count, ep_ret, 0.0)
                episodes += count
                ep_ret[done], in_ep[done] = 0.0, False
            if self.next_step_reset:
                first, skip = skip.copy(), done  # after a reset call, the new episode begins
            else:
                first = done
        if t0 > 0:  # the episode the lifetime's end cuts off counts whole
            returns += np.where(in_ep, ep_ret, 0.0)
            episodes += in_ep
        return finalize(genomes, returns, episodes, b * t.lifetime, trace)

    def _env_call(self, what: str, call):
        """``call()`` (the vector env's reset or step), with the env's exceptions and hangs
        made one line naming the env (the run loop adds the generation)."""
        t = self.task
        try:
            with time_limit(t.step_timeout):
                return call()
        except StepTimeout:
            raise SrmlError(
                f"env {t.env_id!r} did not return from {what} within --step-timeout "
                f"{t.step_timeout:g} s ({self.batch} envs together)"
            ) from None
        except SrmlError:
            raise
        except Exception as e:  # an env bug must not look like ours
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise SrmlError(f"env {t.env_id!r} raised in {what}: {type(e).__name__}: {msg}") from e

    def close(self):
        self.venv.close()
