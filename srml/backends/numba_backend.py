"""The numba backend (CPU, the default).

- Fused path (the env has a compiled twin): ONE compiled call runs a whole
  generation, the lifetime inside the kernel, the genomes' weights in cache for all
  of it. Layout ``lanes`` (default, :mod:`.numba_lanes`): blocks of 64 agents in
  lockstep, SIMD across agents; ``agent``: one agent at a time (the kernel the CUDA
  backend shares). Both split the batch over Python threads running a nogil kernel
  (:func:`.numba_lanes.in_threads`), bit for bit the same results unless ``Task.fast_exp``
  (lanes only).
- Generic path (any other Gymnasium env): the numpy backend's loop, with the
  SRWM step replaced by a compiled one (single-threaded: see batched_srwm).
"""

from __future__ import annotations

import numba
import numpy as np

from .. import rng
from ..errors import SrmlError
from ..kernels import NetSpec, make_agent_kernel, make_srwm_kernel
from .base import Rollout, Task, finalize
from .numba_lanes import COMPILED, INLINE, in_threads, lanes_generation
from .numpy_backend import NumpyBackend

LAYOUTS = ("lanes", "agent")

_CACHE: dict = {}


def srwm_scratch(spec: NetSpec):
    """Compiled ``scratch() -> (h0, h1, out, pk, pq, lr)``: the SRWM step's buffers."""
    width, rows, n_beta = spec.max_width, spec.max_rows, spec.n_beta
    pdim = max(spec.max_head_in, spec.act_dim)

    @INLINE
    def scratch():
        f32 = np.float32
        return (np.empty(width, f32), np.empty(width, f32), np.empty(rows, f32),
                np.empty(pdim, f32), np.empty(pdim, f32), np.empty(n_beta, f32))  # fmt: skip

    return scratch


def fused_generation(spec: NetSpec, twin):
    """Compiled ``generation(genomes, keys, lifetime, sample, self_modify, record, rec_*)``."""
    key = ("fused", spec, twin.id, tuple(sorted(twin.params.items())))
    if key in _CACHE:
        return _CACHE[key]
    run_agent = make_agent_kernel(spec, twin, INLINE, INLINE)
    scratch = srwm_scratch(spec)
    state_dim, obs_dim, act_dim, d_in = twin.state_dim, twin.obs_dim, spec.act_dim, spec.d_in

    @COMPILED  # IEEE division without the zero check: 1.06x, same bits
    def run_agents(first, last, genomes, keys, lifetime, sample, self_modify, record, rec_a,
                   rec_r, rec_f, t0, returns, episodes):  # fmt: skip
        state = np.empty(state_dim)
        obs = np.empty(obs_dim, np.float32)
        x = np.empty(d_in, np.float32)
        h0, h1, out, pk, pq, lr = scratch()
        y = np.empty(act_dim, np.float32)
        act = np.empty(act_dim, np.float32)
        for i in range(first, last):
            ret, eps = run_agent(
                genomes[i], keys[i], lifetime, sample, self_modify, state, obs, x, h0, h1,
                out, pk, pq, lr, y, act, rec_a, rec_r, rec_f, i, record, t0,
            )  # fmt: skip
            returns[i] = ret
            episodes[i] = eps

    def generation(genomes, keys, lifetime, sample, self_modify, record, rec_a, rec_r, rec_f, t0):
        b = len(genomes)
        returns, episodes = np.zeros(b), np.zeros(b, np.int64)
        in_threads(run_agents, b, genomes, keys, lifetime, sample, self_modify, record, rec_a,
                   rec_r, rec_f, t0, returns, episodes)  # fmt: skip
        return returns, episodes

    _CACHE[key] = generation
    return generation


def batched_srwm(spec: NetSpec):
    """Compiled ``forward(genomes, x, active, self_modify, keys, step, y)`` over the
    population, one thread.

    Called once per env step, between Gymnasium's (single-threaded) steps: a parallel
    loop here would meet a thread barrier 500 times a lifetime, and on a busy machine
    those barriers cost far more than the work (measured: 7x slower at P=1024 with
    another process on the second core)."""
    key = ("srwm", spec)
    if key in _CACHE:
        return _CACHE[key]
    srwm_forward = make_srwm_kernel(spec, INLINE)
    scratch = srwm_scratch(spec)

    @numba.njit
    def forward(genomes, x, active, self_modify, keys, step, y):
        h0, h1, out, pk, pq, lr = scratch()
        for i in range(genomes.shape[0]):
            srwm_forward(
                genomes[i], x[i], h0, h1, out, pk, pq, lr, y[i], self_modify and active[i],
                keys[i], step,
            )  # fmt: skip
        return y

    _CACHE[key] = forward
    return forward


def trace_buffers(record: bool, lifetime: int, b: int, act_dim: int):
    if record:
        return (
            np.zeros((lifetime, b, act_dim), np.float32),
            np.zeros((lifetime, b)),
            np.zeros((lifetime, b), np.bool_),
        )
    return np.zeros((1, 1, 1), np.float32), np.zeros((1, 1)), np.zeros((1, 1), np.bool_)


def actions_from(rec_a: np.ndarray, task: Task) -> np.ndarray:
    """Recorded float32 actions in the shape and dtype the numpy backend records."""
    if task.codec.discrete_act:
        return rec_a[..., 0].astype(np.int64)
    s, b = rec_a.shape[:2]
    return rec_a.reshape((s, b, *task.codec.act_space.shape)).astype(task.codec.act_space.dtype)


class NumbaBackend:
    name = "numba"

    def __init__(self, task: Task, batch: int, threads: int = 0, layout: str = "lanes"):
        if layout not in LAYOUTS:
            raise SrmlError(f"unknown numba layout {layout!r}; choose from {', '.join(LAYOUTS)}")
        self.task, self.batch, self.layout = task, batch, layout
        if threads:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        self.threads = numba.get_num_threads()
        self.spec = NetSpec.of(task.layout, task.codec)
        if task.twin is not None:
            if task.fast_exp and layout != "lanes":
                raise SrmlError("fast_exp is the lanes layout's exp; the agent layout has none")
            self.generic = None
            if layout == "lanes":
                self.generation = lanes_generation(self.spec, task.twin, task.fast_exp)
            else:
                self.generation = fused_generation(self.spec, task.twin)
        elif task.fast_exp:
            raise SrmlError(
                f"--fast-exp needs a compiled twin; {task.env_id} runs on Gymnasium's env "
                "(the numba backend's generic path)"
            )
        else:
            forward = self._compiled_forward(batched_srwm(self.spec))
            self.generic = NumpyBackend(task, batch, forward=forward)

    def _compiled_forward(self, forward):
        spec, b = self.spec, self.batch

        def call(genomes, views, layout, x, active, u=None, keys=None, step=0):
            act = np.ones(b, np.bool_) if active is None else np.asarray(active) > 0
            y = np.empty((b, spec.act_dim), np.float32)
            return forward(genomes, x, act, self.task.self_modify, keys, step, y)

        return call

    def run(self, genomes: np.ndarray, seed: int, record: bool = False) -> Rollout:
        if self.generic is not None:
            return self.generic.run(genomes, seed, record)
        t, b = self.task, len(genomes)
        if b != self.batch:
            raise SrmlError(f"backend built for batch {self.batch}, got {b} genomes")
        genomes = np.array(genomes, np.float32, order="C", copy=True)
        keys = rng.lane_keys(seed, np.arange(b))
        rec_a, rec_r, rec_f = trace_buffers(record, t.lifetime, b, self.spec.act_dim)
        returns, episodes = self.generation(
            genomes, keys, t.lifetime, t.sample_actions, t.self_modify, record, rec_a, rec_r, rec_f,
            t.fitness_start,
        )  # fmt: skip
        trace = (actions_from(rec_a, t), rec_r, rec_f) if record else None
        return finalize(genomes, returns, episodes, b * t.lifetime, trace)

    def close(self):
        if self.generic is not None:
            self.generic.close()
