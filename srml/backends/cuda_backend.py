"""The cuda backend (GPU): one thread per agent, SRWM and twin fused in one kernel.

Device arrays come from CuPy; the kernels (:mod:`srml.backends.cuda_kernels`) compile
:func:`srml.kernels.make_agent_kernel` with numba's CUDA target (the same source the CPU
backend compiles) and run on the CuPy arrays. Random numbers (action sampling, env resets)
are the counter-based hash of :mod:`srml.rng`, computed inside the kernel, so a GPU run
draws exactly what the numpy reference draws.

Genomes live on the device laid out ``(G, B)``; by default each block copies its agents'
genomes into shared memory once, runs the whole lifetime there and writes them back once
(the ``coalesced`` global layout is the fallback for genomes too large for shared memory).
The kernel variant is a constructor option, or comes from the environment:

- ``SRML_CUDA_LAYOUT``: ``shared`` (default), ``coalesced`` or ``rows`` (the original
  ``(B, G)`` kernel, one row per thread);
- ``SRML_CUDA_THREADS``: threads per block (default 32; a multiple of 32);
- ``SRML_CUDA_SCRATCH``: ``local`` (default) or ``shared`` per-thread scratch;
- ``SRML_CUDA_LEAN``: 1 (default) shares the input/output buffers with the activations;
- ``SRML_CUDA_MAXREG``: a register cap per thread (0, the default: the compiler's choice);
- ``SRML_CUDA_DIV``: ``guarded`` (default) or ``plain``, how the softmaxes divide
  (:mod:`srml.backends.cuda_kernels`);
- ``SRML_CUDA_SMEM``: ``columns`` (default) or ``rows``, the shared layout's genome array
  (rows: padded, one per thread, with local scratch).

Every variant gives bit-identical results. ``run`` takes a host ``(B, G)`` array (copied to
the device and back) or a :class:`~srml.backends.base.DeviceBatch` (FME's device pool: the
batch stays on the device and the rollout's genomes are a DeviceBatch; fitness and episode
counts always come back to the host).

Without a GPU, ``--backend cuda`` stops with a one-line message. The kernels are still
tested on the CPU through numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), where plain
numpy arrays stand in for CuPy's. Only envs with a compiled twin run here.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from .. import rng
from ..errors import SrmlError
from .cuda_compat import numba_cuda_error, patch_numpy

patch_numpy()  # before numba's CUDA target loads (see cuda_compat)

from ..kernels import NetSpec  # noqa: E402
from .base import DeviceBatch, Rollout, Task, on_device  # noqa: E402
from .cuda_kernels import (  # noqa: E402
    DIVS,
    LAYOUTS,
    SCRATCHES,
    SMEMS,
    Variant,
    generation_kernel,
    resolve,
)
from .numba_backend import actions_from, trace_buffers  # noqa: E402

THREADS_PER_BLOCK = 32  # default threads per block (the shared-memory kernel's best on an H100)


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
            "--backend cuda needs CuPy and numba-cuda: pip install -e '.[cuda12]' "
            "(CUDA 12 drivers) or '.[cuda13]' (CUDA 13)"
        ) from None
    except Exception as e:  # a CuPy built for another CUDA, a broken install
        raise SrmlError(f"--backend cuda: CuPy failed to load ({type(e).__name__}: {e})") from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver, no device
        raise SrmlError(
            f"--backend cuda needs an NVIDIA GPU, but CUDA reports none ({e})"
        ) from None
    if n < 1:
        raise SrmlError("--backend cuda needs an NVIDIA GPU, but CUDA reports none")
    return cupy


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        raise SrmlError(f"{name}={raw!r} is not an integer") from None


def variant_from(
    layout=None, threads_per_block=None, scratch=None, lean=None, max_registers=None, div=None,
    smem=None,
):  # fmt: skip
    """The kernel variant: arguments first, then ``SRML_CUDA_*`` (module docstring), then
    defaults; bad values end in a one-line error."""
    layout = layout or os.environ.get("SRML_CUDA_LAYOUT", "") or "shared"
    scratch = scratch or os.environ.get("SRML_CUDA_SCRATCH", "") or "local"
    tpb = threads_per_block or _env_int("SRML_CUDA_THREADS", THREADS_PER_BLOCK)
    lean = bool(_env_int("SRML_CUDA_LEAN", 1)) if lean is None else bool(lean)
    maxreg = _env_int("SRML_CUDA_MAXREG", 0) if max_registers is None else int(max_registers)
    div = div or os.environ.get("SRML_CUDA_DIV", "") or "guarded"
    smem = smem or os.environ.get("SRML_CUDA_SMEM", "") or "columns"
    if layout not in LAYOUTS:
        raise SrmlError(f"cuda layout {layout!r}: choose from {list(LAYOUTS)}")
    if scratch not in SCRATCHES:
        raise SrmlError(f"cuda scratch {scratch!r}: choose from {list(SCRATCHES)}")
    if scratch == "shared" and layout != "shared":
        raise SrmlError("cuda scratch 'shared' needs the shared layout")
    if tpb < 32 or tpb > 1024 or tpb % 32:
        raise SrmlError(f"cuda threads per block must be a multiple of 32 in 32..1024, got {tpb}")
    if maxreg < 0:
        raise SrmlError(f"cuda register cap must be >= 0, got {maxreg}")
    if div not in DIVS:
        raise SrmlError(f"cuda division {div!r}: choose from {list(DIVS)}")
    if smem not in SMEMS:
        raise SrmlError(f"cuda shared-memory layout {smem!r}: choose from {list(SMEMS)}")
    if smem == "rows" and (layout != "shared" or scratch != "local"):
        raise SrmlError("cuda shared-memory rows need the shared layout with local scratch")
    return Variant(layout, tpb, scratch, lean, maxreg, div, smem)


def device_lane_keys(xp, seed: int, lanes_golden):
    """:func:`srml.rng.lane_keys` computed on the device: ``lanes_golden`` is
    ``arange(B, dtype=uint64) * GOLDEN`` (cached by the caller)."""
    with np.errstate(over="ignore"):
        s = rng._mix(rng._u64(seed))
        return rng._mix(lanes_golden ^ xp.uint64(s))


def settle_simulator_globals(kernel) -> None:
    """Give the module globals of every function ``kernel`` reaches through its closures a
    ``__warningregistry__``, before numba's CUDA simulator runs it. The simulator runs each
    GPU thread as a Python thread and, at every device-function call, iterates that
    function's module globals; the first warning code in a module issues (an ignored one too:
    the overflow of a planted inf) adds ``__warningregistry__`` there, and a thread iterating
    at that moment fails with "dictionary changed size during iteration" (a rare flaky test).
    With the registry in place first, a warning only adds entries to it."""
    seen, todo = set(), [kernel]
    while todo:
        f = todo.pop()
        fn = getattr(f, "fn", f)  # the simulator's FakeCUDAKernel wraps the Python function
        if id(fn) in seen or not hasattr(fn, "__globals__"):
            continue
        seen.add(id(fn))
        fn.__globals__.setdefault("__warningregistry__", {})
        for cell in fn.__closure__ or ():
            try:
                todo.append(cell.cell_contents)
            except ValueError:  # an empty cell
                pass


class CudaBackend:
    name = "cuda"
    accepts_device_batch = True

    def __init__(self, task: Task, batch: int, threads: int = 0, **variant):
        self.xp = device_array_module()
        if task.twin is None:
            raise SrmlError(
                f"--backend cuda runs envs with a compiled twin only; {task.env_id!r} has none "
                "(use --backend numba)"
            )
        self.task, self.batch = task, batch
        self.spec = NetSpec.of(task.layout, task.codec)
        self.genome_size = task.layout.size
        self.requested = variant_from(**variant)
        self.variant = resolve(self.spec, task.twin, self.requested, self.genome_size)
        self.kernel = generation_kernel(self.spec, task.twin, self.genome_size, self.variant)
        self.compiled = simulated()  # the simulator has nothing to compile
        if simulated():
            settle_simulator_globals(self.kernel)
        xp = self.xp
        with np.errstate(over="ignore"):
            self._lanes_golden = xp.arange(batch, dtype=xp.uint64) * xp.uint64(rng._GOLDEN)

    # --- the kernel on device arrays ----------------------------------------------------------
    def device_genomes(self, genomes) -> object:
        """A fresh device array in the kernel's layout from a host ``(B, G)`` array or a
        :class:`DeviceBatch` (which is left unchanged)."""
        xp = self.xp
        if on_device(genomes):
            d = genomes.data
            return xp.ascontiguousarray(d.T) if not self.variant.transposed else d.copy()
        d = xp.asarray(np.ascontiguousarray(genomes, np.float32))
        return xp.ascontiguousarray(d.T) if self.variant.transposed else d.copy()

    def launch(self, d_genomes, seed: int, record: bool = False, rec=None):
        """One generation on device arrays: rewrites ``d_genomes`` (the kernel's layout) in
        place; returns device (returns, episodes, finite): ``finite`` (bool) flags the agents
        whose rewritten weights and return are all finite."""
        t, xp, v = self.task, self.xp, self.variant
        b = d_genomes.shape[1] if v.transposed else d_genomes.shape[0]
        if b != self.batch:
            raise SrmlError(f"backend built for batch {self.batch}, got {b} genomes")
        d_keys = device_lane_keys(xp, seed, self._lanes_golden)
        if rec is None:
            rec = [xp.asarray(a) for a in trace_buffers(record, t.lifetime, b, self.spec.act_dim)]
        d_ret, d_eps, d_ok = xp.zeros(b), xp.zeros(b, np.int64), xp.zeros(b, np.bool_)
        blocks = (b + v.threads - 1) // v.threads
        args = (d_genomes, d_keys, t.lifetime, t.sample_actions, t.self_modify, record, *rec,
                d_ret, d_eps, d_ok, t.fitness_start)  # fmt: skip
        with warnings.catch_warnings():  # the simulator runs the uint64 hash on numpy scalars,
            warnings.simplefilter("ignore", RuntimeWarning)  # in threads (errstate is per thread)
            if self.compiled:
                self.kernel[blocks, v.threads](*args)
            else:
                try:  # the first launch compiles: a broken CUDA stack fails here
                    self.kernel[blocks, v.threads](*args)
                except SrmlError:
                    raise
                except Exception as e:
                    raise numba_cuda_error(e) from None
                self.compiled = True
        return d_ret, d_eps, d_ok

    def host(self, a) -> np.ndarray:
        return a if self.xp is np else self.xp.asnumpy(a)

    def run(self, genomes, seed: int, record: bool = False) -> Rollout:
        t, xp, b = self.task, self.xp, len(genomes)
        if b != self.batch:
            raise SrmlError(f"backend built for batch {self.batch}, got {b} genomes")
        d = self.device_genomes(genomes)
        rec = [xp.asarray(a) for a in trace_buffers(record, t.lifetime, b, self.spec.act_dim)]
        d_ret, d_eps, d_ok = self.launch(d, seed, record, rec)
        trace = None
        if record:
            rec_a, rec_r, rec_f = (self.host(a) for a in rec)
            trace = (actions_from(rec_a, t), rec_r, rec_f)
        return self.finish(d, d_ret, d_eps, d_ok, on_device(genomes), trace)

    def finish(self, d, d_ret, d_eps, d_ok, keep_on_device: bool, trace=None) -> Rollout:
        """The Rollout of a launch: :func:`~srml.backends.base.finalize`'s rule (fitness =
        return / max(episodes, 1), -inf where a weight or the return is not finite) computed
        on the device from the kernel's flags, so only fitness, episode counts and one count
        come to the host (the same IEEE operations: the same bits). The genomes stay on the
        device as a DeviceBatch with ``keep_on_device``, else come back as ``(B, G)``."""
        xp, transposed = self.xp, self.variant.transposed
        fitness = d_ret / xp.maximum(d_eps, 1)
        bad = ~d_ok | ~xp.isfinite(fitness)  # the flag covers the return; kept as finalize says
        fitness = xp.where(bad, -xp.inf, fitness)
        if keep_on_device:
            out = DeviceBatch(d if transposed else xp.ascontiguousarray(d.T), xp)
        else:
            out = np.ascontiguousarray(self.host(d.T if transposed else d))
        env_steps = len(d_ret) * self.task.lifetime
        res = Rollout(out, self.host(fitness), self.host(d_eps), env_steps, int(bad.sum()))
        if trace is not None:  # (actions, rewards, firsts), each (S, B, ...)
            res.actions, res.rewards, res.firsts = trace
        return res

    def resources(self) -> dict:
        """Registers and local/shared memory of the compiled kernel (a real GPU only)."""
        from .cuda_kernels import kernel_resources

        return kernel_resources(self.kernel)

    def close(self):
        pass
