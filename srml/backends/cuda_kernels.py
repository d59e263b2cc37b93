"""CUDA kernels of the cuda backend: one thread per agent, SRWM and twin fused.

Every variant compiles the same device function, :func:`srml.kernels.make_agent_kernel`'s
``run_agent(g, ...)``, which indexes one genome ``g`` as a 1-D array; the variants differ
only in what ``g`` is and where the per-thread scratch lives:

- ``rows``: genomes ``(B, G)``, ``g = genomes[i]`` (each thread walks its own row: a warp's
  loads touch 32 cache lines). The original kernel, kept as the baseline.
- ``coalesced``: genomes ``(G, B)``, ``g = genomes_t[:, i]`` (a strided view: the 32 threads
  of a warp read 32 neighbouring floats, one cache line).
- ``shared``: genomes ``(G, B)``; each block copies its agents' genomes once into a shared
  array ``(G, threads)`` (coalesced reads, conflict-free writes), runs the whole lifetime on
  ``g = sm[:, tid]`` and writes them back once. Used when ``G * threads * 4`` bytes (plus
  the scratch, with ``scratch="shared"``) fit the 48 KiB of static shared memory per block;
  otherwise the backend falls back to ``coalesced``. ``smem="rows"`` lays the shared array out
  ``(threads, G | 1)`` instead: ``g = sm[tid]`` is contiguous, so its loads and stores compile
  to ``ld.shared`` / ``st.shared`` with 32-bit addresses (numba forms a strided view's element
  addresses with integer arithmetic, which hides the address space: the columns' loads are
  generic), and the odd row length keeps a warp's accesses on 32 different banks.

Per-thread scratch: ``scratch="local"`` uses ``cuda.local.array`` (registers where the
compiler can, else local memory); ``scratch="shared"`` gives each thread a column of
shared arrays instead. ``lean=True`` passes one buffer as the network input ``x`` and its
first activation ``h0`` (``srwm_forward`` copies x into h0 first, and the agent rebuilds x
at every step) and one as ``h1`` and the output ``y`` (copied from h1 last, read before the
next step): fewer live arrays, the same arithmetic, bit-identical results.

Division: ``div="guarded"`` (default) divides the softmaxes' terms through
:func:`srml.kernels.make_div`'s guarded form (a zero term is its own quotient, a tiny one is
divided in float64), so that evolved genomes' underflowed terms do not send warps into the
float32 division's slow subroutine; ``div="plain"`` divides as the CPU kernels do. The same
bits either way.

Every variant also flags, per agent, whether its rewritten weights and its return are all
finite, as it writes them back (what :func:`srml.backends.base.finalize` checks; the shared
layouts read the genome from shared memory for it).

All variants give bit-identical genomes, returns, episode counts and flags (tests/test_gpu.py
on the simulator; ``benchmarks/gpu.py`` on a real card).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .cuda_compat import patch_numpy

patch_numpy()  # before numba's CUDA target loads (see cuda_compat)

import numba  # noqa: E402
from numba import cuda  # noqa: E402  (module level: the simulator swaps it in)

from ..kernels import NetSpec, make_agent_kernel  # noqa: E402

LAYOUTS = ("rows", "coalesced", "shared")
SCRATCHES = ("local", "shared")
DIVS = ("guarded", "plain")
SMEMS = ("columns", "rows")
STATIC_SHARED_BYTES = 48 * 1024  # static shared memory a block may declare
_CACHE: dict = {}


@dataclass(frozen=True)
class Variant:
    """A kernel variant (a compile-time choice; see the module docstring)."""

    layout: str = "shared"
    threads: int = 32  # threads per block
    scratch: str = "local"
    lean: bool = True
    max_registers: int = 0  # 0: the compiler's choice
    div: str = "guarded"  # the softmaxes' division (see the module docstring)
    smem: str = "columns"  # the shared layout's genome array: (G, threads) or padded rows

    @property
    def transposed(self) -> bool:
        """Genomes laid out (G, B) on the device."""
        return self.layout != "rows"


def scratch_floats(spec: NetSpec, twin, lean: bool) -> tuple[int, int]:
    """(float32 words, float64 words) of scratch one agent needs."""
    pdim = max(spec.max_head_in, spec.act_dim)
    f32 = twin.obs_dim + 2 * spec.max_width + spec.max_rows + 2 * pdim + spec.n_beta
    f32 += spec.act_dim  # act
    if not lean:
        f32 += spec.d_in + spec.act_dim  # x, y of their own
    return f32, twin.state_dim


def padded_row(genome_size: int) -> int:
    """Floats per genome row with ``smem="rows"``: odd, so the 32 threads of a warp reading
    word j of their rows hit 32 different banks."""
    return genome_size | 1


def shared_bytes(spec: NetSpec, twin, variant: Variant, genome_size: int) -> int:
    """Static shared memory one block of ``variant`` declares."""
    if variant.layout != "shared":
        return 0
    g = padded_row(genome_size) if variant.smem == "rows" else genome_size
    n = g * variant.threads * 4
    if variant.scratch == "shared":
        f32, f64 = scratch_floats(spec, twin, variant.lean)
        n += (f32 * 4 + f64 * 8) * variant.threads
    return n


def resolve(spec: NetSpec, twin, variant: Variant, genome_size: int) -> Variant:
    """``variant`` itself, or the coalesced fallback when its shared arrays do not fit."""
    if variant.layout == "shared" and shared_bytes(spec, twin, variant, genome_size) > (
        STATIC_SHARED_BYTES
    ):
        if variant.scratch == "shared":  # try the genome alone first
            alone = replace(variant, scratch="local")
            if shared_bytes(spec, twin, alone, genome_size) <= STATIC_SHARED_BYTES:
                return alone
        return replace(variant, layout="coalesced", scratch="local", smem="columns")
    return variant


def generation_kernel(spec: NetSpec, twin, genome_size: int, variant: Variant):
    """The compiled kernel of ``variant`` (cached per network, twin and variant):

    ``kernel[blocks, variant.threads](genomes, keys, lifetime, sample, self_modify, record,
    rec_a, rec_r, rec_f, returns, episodes, finite, t0)`` (t0: Task.fitness_start) with
    genomes ``(B, G)`` for ``rows``, else ``(G, B)``; rewrites the genomes in place and sets
    ``finite[i]`` (bool) when agent i's rewritten weights and return are all finite."""
    key = (spec, twin.id, tuple(sorted(twin.params.items())), genome_size, variant)
    if key not in _CACHE:
        _CACHE[key] = _build(spec, twin, genome_size, variant)
    return _CACHE[key]


def _build(spec: NetSpec, twin, G: int, v: Variant):
    run_agent = make_agent_kernel(spec, twin, cuda.jit(device=True), "cuda", v.div == "guarded")
    f32, f64 = numba.float32, numba.float64
    state_dim, obs_dim, d_in, act_dim = twin.state_dim, twin.obs_dim, spec.d_in, spec.act_dim
    width, rows, n_beta = spec.max_width, spec.max_rows, spec.n_beta
    pdim = max(spec.max_head_in, spec.act_dim)
    T, lean = v.threads, v.lean
    xdim, ydim = (1, 1) if lean else (d_in, act_dim)  # lean: x and y are h0 and h1
    jit = cuda.jit(max_registers=v.max_registers) if v.max_registers else cuda.jit

    @cuda.jit(device=True)
    def all_finite(g, ret):
        # the finite check finalize() needs, on the genome the thread just wrote (still in
        # shared memory or cache): no separate pass over the (G, B) block, no (G, B) mask.
        # The kernels store it before the return: stored after, ptxas gave the rows kernel
        # 8 more registers (sm_90)
        ok = math.isfinite(ret)
        for j in range(G):
            ok &= math.isfinite(g[j])
        return ok

    @cuda.jit(device=True, inline="always")  # inlined: the arrays live in the kernel's frame
    def local_scratch():
        """The agent's per-thread buffers (state, obs, x, h0, h1, out, pk, pq, lr, y, act)."""
        state = cuda.local.array(state_dim, f64)
        obs = cuda.local.array(obs_dim, f32)
        h0 = cuda.local.array(width, f32)
        h1 = cuda.local.array(width, f32)
        out = cuda.local.array(rows, f32)
        pk = cuda.local.array(pdim, f32)
        pq = cuda.local.array(pdim, f32)
        lr = cuda.local.array(n_beta, f32)
        act = cuda.local.array(act_dim, f32)
        if lean:
            x, y = h0, h1
        else:
            x = cuda.local.array(d_in, f32)
            y = cuda.local.array(act_dim, f32)
        return state, obs, x, h0, h1, out, pk, pq, lr, y, act

    if v.layout == "rows":
        if v.scratch != "local":
            raise ValueError("the rows layout keeps its scratch in local memory")

        @jit
        def kernel(genomes, keys, lifetime, sample, self_modify, record, rec_a, rec_r, rec_f,
                   returns, episodes, finite, t0):  # fmt: skip
            i = cuda.grid(1)
            if i >= genomes.shape[0]:
                return
            state, obs, x, h0, h1, out, pk, pq, lr, y, act = local_scratch()
            ret, eps = run_agent(
                genomes[i], keys[i], lifetime, sample, self_modify, state, obs, x, h0, h1, out,
                pk, pq, lr, y, act, rec_a, rec_r, rec_f, i, record, t0,
            )  # fmt: skip
            finite[i] = all_finite(genomes[i], ret)
            returns[i] = ret
            episodes[i] = eps

        return kernel

    if v.layout == "coalesced" and v.scratch != "local":
        raise ValueError("the coalesced layout keeps its scratch in local memory")

    if v.layout == "coalesced":

        @jit
        def kernel(genomes, keys, lifetime, sample, self_modify, record, rec_a, rec_r, rec_f,
                   returns, episodes, finite, t0):  # fmt: skip
            i = cuda.grid(1)
            if i >= genomes.shape[1]:
                return
            state, obs, x, h0, h1, out, pk, pq, lr, y, act = local_scratch()
            ret, eps = run_agent(
                genomes[:, i], keys[i], lifetime, sample, self_modify, state, obs, x, h0, h1,
                out, pk, pq, lr, y, act, rec_a, rec_r, rec_f, i, record, t0,
            )  # fmt: skip
            finite[i] = all_finite(genomes[:, i], ret)
            returns[i] = ret
            episodes[i] = eps

        return kernel

    if v.scratch == "local" and v.smem == "rows":
        GP = padded_row(G)

        @jit
        def kernel(genomes, keys, lifetime, sample, self_modify, record, rec_a, rec_r, rec_f,
                   returns, episodes, finite, t0):  # fmt: skip
            sm = cuda.shared.array((T, GP), f32)
            tid = cuda.threadIdx.x
            i = cuda.blockIdx.x * T + tid
            if i >= genomes.shape[1]:
                return  # no barrier below: each thread touches its own row only
            g = sm[tid]  # contiguous: loads and stores compile to ld/st.shared
            for j in range(G):
                g[j] = genomes[j, i]
            state, obs, x, h0, h1, out, pk, pq, lr, y, act = local_scratch()
            ret, eps = run_agent(
                g, keys[i], lifetime, sample, self_modify, state, obs, x, h0, h1,
                out, pk, pq, lr, y, act, rec_a, rec_r, rec_f, i, record, t0,
            )  # fmt: skip
            for j in range(G):
                genomes[j, i] = g[j]
            finite[i] = all_finite(g, ret)  # from shared memory, not global
            returns[i] = ret
            episodes[i] = eps

        return kernel

    if v.scratch == "local":

        @jit
        def kernel(genomes, keys, lifetime, sample, self_modify, record, rec_a, rec_r, rec_f,
                   returns, episodes, finite, t0):  # fmt: skip
            sm = cuda.shared.array((G, T), f32)
            tid = cuda.threadIdx.x
            i = cuda.blockIdx.x * T + tid
            if i >= genomes.shape[1]:
                return  # no barrier below: each thread touches its own column only
            for j in range(G):
                sm[j, tid] = genomes[j, i]
            state, obs, x, h0, h1, out, pk, pq, lr, y, act = local_scratch()
            ret, eps = run_agent(
                sm[:, tid], keys[i], lifetime, sample, self_modify, state, obs, x, h0, h1,
                out, pk, pq, lr, y, act, rec_a, rec_r, rec_f, i, record, t0,
            )  # fmt: skip
            for j in range(G):
                genomes[j, i] = sm[j, tid]
            finite[i] = all_finite(sm[:, tid], ret)  # from shared memory, not global
            returns[i] = ret
            episodes[i] = eps

        return kernel

    if v.smem == "rows":
        raise ValueError("shared-memory rows go with local scratch")

    # shared genome and shared scratch: every buffer a column of a (n, T) shared array
    @jit
    def kernel(genomes, keys, lifetime, sample, self_modify, record, rec_a, rec_r, rec_f,
               returns, episodes, finite, t0):  # fmt: skip
        sm = cuda.shared.array((G, T), f32)
        s_state = cuda.shared.array((state_dim, T), f64)
        s_obs = cuda.shared.array((obs_dim, T), f32)
        s_h0 = cuda.shared.array((width, T), f32)
        s_h1 = cuda.shared.array((width, T), f32)
        s_out = cuda.shared.array((rows, T), f32)
        s_pk = cuda.shared.array((pdim, T), f32)
        s_pq = cuda.shared.array((pdim, T), f32)
        s_lr = cuda.shared.array((n_beta, T), f32)
        s_act = cuda.shared.array((act_dim, T), f32)
        s_x = cuda.shared.array((xdim, T), f32)
        s_y = cuda.shared.array((ydim, T), f32)
        tid = cuda.threadIdx.x
        i = cuda.blockIdx.x * T + tid
        if i >= genomes.shape[1]:
            return
        for j in range(G):
            sm[j, tid] = genomes[j, i]
        h0 = s_h0[:, tid]
        h1 = s_h1[:, tid]
        if lean:
            x, y = h0, h1
        else:
            x, y = s_x[:, tid], s_y[:, tid]
        ret, eps = run_agent(
            sm[:, tid], keys[i], lifetime, sample, self_modify, s_state[:, tid], s_obs[:, tid],
            x, h0, h1, s_out[:, tid], s_pk[:, tid], s_pq[:, tid], s_lr[:, tid], y,
            s_act[:, tid], rec_a, rec_r, rec_f, i, record, t0,
        )  # fmt: skip
        for j in range(G):
            genomes[j, i] = sm[j, tid]
        finite[i] = all_finite(sm[:, tid], ret)
        returns[i] = ret
        episodes[i] = eps

    return kernel


def kernel_resources(kernel) -> dict:
    """Registers and local/shared memory of a compiled kernel, where numba reports them (a real
    GPU after the first launch; the simulator reports nothing)."""
    out = {}
    for name, fn in (
        ("regs_per_thread", "get_regs_per_thread"),
        ("local_bytes_per_thread", "get_local_mem_per_thread"),
        ("shared_bytes_per_block", "get_shared_mem_per_block"),
        ("max_threads_per_block", "get_max_threads_per_block"),
    ):
        try:
            v = getattr(kernel, fn)()
        except Exception:  # the simulator, an old numba: not available
            continue
        if isinstance(v, dict):  # one entry per compiled signature
            v = max(v.values()) if v else None
        if v is not None:
            out[name] = int(v)
    return out


def occupancy(resources: dict, threads: int, device: dict) -> float | None:
    """Theoretical occupancy (resident warps / the SM's maximum) from a kernel's registers and
    shared memory and the device's limits (``regs_per_sm``, ``shared_per_sm``,
    ``max_threads_per_sm``, ``max_blocks_per_sm``)."""
    regs = resources.get("regs_per_thread")
    if not regs or not device:
        return None
    warps = -(-threads // 32)
    regs_per_warp = -(-regs * 32 // 256) * 256  # allocated in units of 256 per warp
    by_regs = device["regs_per_sm"] // (regs_per_warp * warps)
    shared = resources.get("shared_bytes_per_block", 0) + 1024  # 1 KiB reserved per block
    by_shared = device["shared_per_sm"] // shared if shared else by_regs
    by_threads = device["max_threads_per_sm"] // (warps * 32)
    blocks = min(by_regs, by_shared, by_threads, device.get("max_blocks_per_sm", 32))
    return blocks * warps * 32 / device["max_threads_per_sm"]
