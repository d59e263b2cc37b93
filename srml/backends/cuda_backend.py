"""The cuda backend (GPU): one thread per agent, SRWM and twin fused in one kernel.

Device arrays come from CuPy; the kernel is :func:`srml.kernels.make_agent_kernel`
compiled with numba's CUDA target (the same source the CPU backend compiles)
and launched on the CuPy arrays. Random numbers (action sampling, env resets)
are the counter-based hash of :mod:`srml.rng`, computed inside the kernel, so a
GPU run draws exactly what the numpy reference draws.

Without a GPU, ``--backend cuda`` stops with a one-line message. The kernels are
still tested on the CPU through numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``), where plain numpy arrays stand in for CuPy's.
Only envs with a compiled twin run here (the generic path needs the host).
"""

from __future__ import annotations

import os
import warnings

import numba
import numpy as np
from numba import cuda  # module level: the simulator swaps it in through the kernel's globals

from .. import rng
from ..errors import SrmlError
from ..kernels import NetSpec, make_agent_kernel
from .base import Rollout, Task, finalize
from .numba_backend import actions_from, trace_buffers

THREADS_PER_BLOCK = 64
_CACHE: dict = {}


def simulated() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def device_array_module():
    """cupy when a CUDA device is usable; numpy under the simulator; else a clear error."""
    if simulated():
        return np
    try:
        import cupy
    except ImportError:
        raise SrmlError(
            "--backend cuda needs CuPy and numba-cuda: pip install -e '.[cuda]'"
        ) from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver, no device
        raise SrmlError(
            f"--backend cuda needs an NVIDIA GPU, but CUDA reports none ({e})"
        ) from None
    if n < 1:
        raise SrmlError("--backend cuda needs an NVIDIA GPU, but CUDA reports none")
    return cupy


def cuda_generation(spec: NetSpec, twin):
    """Compiled CUDA kernel running one generation (cached per network and twin)."""
    key = (spec, twin.id, tuple(sorted(twin.params.items())))
    if key in _CACHE:
        return _CACHE[key]
    run_agent = make_agent_kernel(spec, twin, cuda.jit(device=True), "cuda")
    f32, f64 = numba.float32, numba.float64
    state_dim, obs_dim, d_in, act_dim = twin.state_dim, twin.obs_dim, spec.d_in, spec.act_dim
    width, rows, n_beta = spec.max_width, spec.max_rows, spec.n_beta
    pdim = max(spec.max_head_in, spec.act_dim)

    @cuda.jit
    def generation(
        genomes, keys, lifetime, sample, self_modify, record, rec_a, rec_r, rec_f, returns, episodes,
        t0,
    ):
        i = cuda.grid(1)
        if i >= genomes.shape[0]:
            return
        state = cuda.local.array(state_dim, f64)
        obs = cuda.local.array(obs_dim, f32)
        x = cuda.local.array(d_in, f32)
        h0 = cuda.local.array(width, f32)
        h1 = cuda.local.array(width, f32)
        out = cuda.local.array(rows, f32)
        pk = cuda.local.array(pdim, f32)
        pq = cuda.local.array(pdim, f32)
        lr = cuda.local.array(n_beta, f32)
        y = cuda.local.array(act_dim, f32)
        act = cuda.local.array(act_dim, f32)
        ret, eps = run_agent(
            genomes[i], keys[i], lifetime, sample, self_modify, state, obs, x, h0, h1, out,
            pk, pq, lr, y, act, rec_a, rec_r, rec_f, i, record, t0,
        )  # fmt: skip
        returns[i] = ret
        episodes[i] = eps

    _CACHE[key] = generation
    return generation


class CudaBackend:
    name = "cuda"

    def __init__(self, task: Task, batch: int, threads: int = 0):
        self.xp = device_array_module()
        if task.twin is None:
            raise SrmlError(
                f"--backend cuda runs envs with a compiled twin only; {task.env_id!r} has none "
                "(use --backend numba)"
            )
        self.task, self.batch = task, batch
        self.spec = NetSpec.of(task.layout, task.codec)
        self.kernel = cuda_generation(self.spec, task.twin)

    def run(self, genomes: np.ndarray, seed: int, record: bool = False) -> Rollout:
        t, b, xp = self.task, len(genomes), self.xp
        if b != self.batch:
            raise SrmlError(f"backend built for batch {self.batch}, got {b} genomes")
        d_genomes = xp.asarray(np.ascontiguousarray(genomes, np.float32)).copy()
        d_keys = xp.asarray(rng.lane_keys(seed, np.arange(b)))
        rec = [xp.asarray(a) for a in trace_buffers(record, t.lifetime, b, self.spec.act_dim)]
        d_ret, d_eps = xp.zeros(b), xp.zeros(b, np.int64)
        blocks = (b + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
        with warnings.catch_warnings():  # the simulator runs the uint64 hash on numpy scalars,
            warnings.simplefilter("ignore", RuntimeWarning)  # in threads (errstate is per thread)
            self.kernel[blocks, THREADS_PER_BLOCK](
                d_genomes, d_keys, t.lifetime, t.sample_actions, t.self_modify, record, *rec,
                d_ret, d_eps, t.fitness_start,
            )  # fmt: skip
        host = (lambda a: a) if xp is np else xp.asnumpy
        trace = None
        if record:
            rec_a, rec_r, rec_f = (host(a) for a in rec)
            trace = (actions_from(rec_a, t), rec_r, rec_f)
        return finalize(host(d_genomes), host(d_ret), host(d_eps), b * t.lifetime, trace)

    def close(self):
        pass
