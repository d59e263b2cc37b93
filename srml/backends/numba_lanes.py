"""The numba backend's fused generation over lanes: ``LANES`` agents in lockstep.

The per-agent kernel (:func:`srml.kernels.make_agent_kernel`) runs one genome's lifetime at
a time; its multiply-adds are float reductions over d, which the compiler may not reorder,
so they run as scalar code. Here each block of ``LANES`` agents keeps its genomes as one
``(G, LANES)`` array (one column per agent; 39 KB for the peers' network, in L1/L2 for the
whole lifetime) and runs the lifetime step by step for all of them: every multiply-add,
softmax and weight write is a loop over lanes, which LLVM turns into SIMD instructions
(the dot products with a lane's sum in a register, :func:`make_lane_dots`). The environment
twin, the random draws and the action choice run lane by lane.

``LANES`` is a compile-time 64: with 32 or fewer, LLVM unrolls each lane loop whole and its
straight-line vectorizer leaves most of it scalar (measured on a prototype: no faster than
the per-agent kernel); with 64 the loop vectorizer takes them.

Arithmetic per lane is the per-agent kernel's, operation for operation, so with the C
library's ``exp`` (``fast_exp=False``) results are bit-identical to it. ``exp`` and ``tanh``
(deeper layers' inputs, tanh updates) are the calls that block SIMD; ``fast_exp=True``
replaces them with :func:`make_lane_exp`'s and :func:`make_lane_tanh`'s branch-free
polynomials (relative error < 1e-7 and < 2e-7, checked in tests/test_lanes.py), which
vectorize: results then agree with the per-agent kernel and the numpy reference to float
tolerance, not bit for bit (and no longer depend on the platform's C library).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from .. import rng
from ..kernels import EXP_ZERO, NetSpec, make_input_norm, make_pick

LANES = 64
CHUNK = 16  # terms of a dot product a lane sums in a register at a time (make_lane_dots)
# Pieces (layers, SRWM step, env reset/step) inlined into the agents' loop at numba's IR level:
# as separate functions, every call passing arrays did atomic reference counting on them (12%
# of the time on one thread, and cache-line ping-pong between threads on the genome block).
INLINE = numba.njit(inline="always")
# The fused kernels' compiled functions (here and the per-agent layout's): nogil, for
# in_threads' Python threads, and numpy's error model: a float division is IEEE's alone, where
# Python's checks the divisor for zero and raises, a branch per division that kept the softmax
# normalisation (and sigmoid) out of SIMD: 1.09x, 1.17x with --fast-exp, 1.34x with a hidden
# layer of 16 (A/B in one process, P=1024, one core). No divisor of the SRWM's can be zero
# (softmax sums and 1 + exp are >= 1): the same bits. A twin's division by zero now gives inf
# or NaN, as numpy's does, not an error.
COMPILED = numba.njit(nogil=True, error_model="numpy")

# exp(x) = 2^n exp(r): n = round(x / ln 2), r = x - n ln 2 with ln 2 in two parts (Cody-Waite),
# exp(r) by Cephes expf's degree-6 polynomial; 2^n = 2^n1 2^n2 built from exponent bits, both
# halves normal floats over the whole clamp, so results underflow to 0 and overflow to inf
# as expf's do.
_LOG2E = np.float32(1.44269504088896341)
_C1, _C2 = np.float32(0.693359375), np.float32(-2.12194440e-4)
_P = tuple(np.float32(v) for v in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                   4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))  # fmt: skip
_LO, _HI = EXP_ZERO, np.float32(88.8)  # exp underflows to 0 below, inf above


def make_lane_exp(fast: bool):
    """``lexp(src, dst, bits)``: ``dst[l] = exp(src[l])`` for every lane (float32 rows of
    ``LANES``; src may be dst). ``fast``: the polynomial (``bits``, int32 ``(2, LANES)``,
    holds the exponent bits of 2^n1 and 2^n2); else the C library's ``expf`` lane by lane, 0
    below :data:`srml.kernels.EXP_ZERO` (``bits[0]`` marks those lanes)."""
    p0, p1, p2, p3, p4, p5 = _P
    lo, hi, half, one, bias = _LO, _HI, np.float32(0.5), np.float32(1.0), np.int32(127)
    zero = np.float32(0.0)
    L = LANES

    @INLINE
    def lexp(src, dst, bits):
        if fast:
            b1, b2 = bits[0], bits[1]
            for i in range(L):
                x = src[i]
                if not x > lo:  # NaN too: its result is set below
                    x = lo
                if x > hi:
                    x = hi
                fx = np.floor(x * _LOG2E + half)
                r = x - fx * _C1 - fx * _C2
                p = ((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5
                n = np.int32(fx)
                n1 = n >> 1
                b1[i] = (n1 + bias) << 23
                b2[i] = (n - n1 + bias) << 23
                nan = src[i] != src[i]
                dst[i] = src[i] if nan else p * (r * r) + r + one
            s1, s2 = b1.view(np.float32), b2.view(np.float32)
            for i in range(L):
                dst[i] = dst[i] * s1[i] * s2[i]
        else:
            # as kernels.make_exp: 0 below EXP_ZERO, where the C library's expf takes its slow
            # underflow path (most softmax terms of evolved genomes). Separate loops through
            # memory: with a select in the exp loop LLVM may speculate the call on every lane
            under = bits[0]
            for i in range(L):
                x = src[i]
                under[i] = x < EXP_ZERO
                dst[i] = zero if x < EXP_ZERO else x  # exp(0) where the result is 0
            for i in range(L):
                dst[i] = math.exp(dst[i])
            for i in range(L):
                dst[i] = zero if under[i] else dst[i]

    return lexp


# tanh for |x| < 0.625: x + x^3 P(x^2), Cephes tanhf's degree-4 polynomial
_T = tuple(np.float32(v) for v in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                   1.33314422036e-1, -3.33332819422e-1))  # fmt: skip


def make_lane_tanh(fast: bool, lexp):
    """``ltanh(src, dst, e, bits)``: ``dst[l] = tanh(src[l])`` for every lane (src may be dst;
    ``e`` a scratch row). ``fast``: Cephes tanhf without branches, both of its formulas for
    every lane, one kept: x + x^3 P(x^2) below |x| = 0.625, else sign(x) (1 - 2 / (exp(2|x|)
    + 1)) with ``lexp``'s polynomial (inf, so +-1, past exp's range; NaN stays NaN); else
    the C library's ``tanhf`` lane by lane."""
    t0, t1, t2, t3, t4 = _T
    one, two, cut = np.float32(1.0), np.float32(2.0), np.float32(0.625)
    L = LANES

    @INLINE
    def ltanh(src, dst, e, bits):
        if fast:
            for i in range(L):
                e[i] = two * abs(src[i])
            lexp(e, e, bits)
            for i in range(L):
                x = src[i]
                z = x * x
                small = ((((t0 * z + t1) * z + t2) * z + t3) * z + t4) * z * x + x
                if x == 0:
                    small = x  # -0 stays -0
                big = one - two / (e[i] + one)
                if x < 0:
                    big = -big
                dst[i] = small if abs(x) < cut else big
        else:
            for i in range(L):
                dst[i] = math.tanh(src[i])

    return ltanh


def exp_lanes(x: np.ndarray, fast: bool = True) -> np.ndarray:
    """The lanes' exp on any float32 array (for tests and the error check)."""
    return _on_rows("exp", fast, x)


def tanh_lanes(x: np.ndarray, fast: bool = True) -> np.ndarray:
    """The lanes' tanh on any float32 array (for tests and the error check)."""
    return _on_rows("tanh", fast, x)


_CACHE: dict = {}


def _on_rows(kind: str, fast: bool, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32).ravel()
    n = -(-len(x) // LANES)
    src = np.zeros((n, LANES), np.float32)
    src.ravel()[: len(x)] = x
    key = (kind, fast)
    if key not in _CACHE:
        lexp = make_lane_exp(fast)
        ltanh = make_lane_tanh(fast, lexp)
        tanh = kind == "tanh"

        @numba.njit
        def run(src):
            dst = np.empty_like(src)
            e = np.empty(LANES, np.float32)
            bits = np.empty((2, LANES), np.int32)
            for k in range(src.shape[0]):
                if tanh:
                    ltanh(src[k], dst[k], e, bits)
                else:
                    lexp(src[k], dst[k], bits)
            return dst

        _CACHE[key] = run
    return _CACHE[key](src).ravel()[: len(x)].copy()


def in_threads(run_range, n: int, *args) -> None:
    """``run_range(first, last, *args)`` over ``range(n)`` split into chunks, on
    ``numba.get_num_threads()`` Python threads (``run_range`` a nogil kernel). Used instead of
    ``prange``: numba's parallel pipeline adds about 9 s to every compile of a fused kernel. A
    few chunks per thread balance lifetimes that end at different speeds."""
    threads = min(numba.get_num_threads(), n)
    if threads <= 1:
        run_range(0, n, *args)
        return
    cuts = np.linspace(0, n, min(n, 4 * threads) + 1).astype(np.int64)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: run_range(cuts[k], cuts[k + 1], *args), range(len(cuts) - 1)))


def make_lane_dots(di: int):
    """``(dot, axpy)`` over d < ``di`` on flat ``(n, LANES)`` buffers (row j at ``j * LANES``):
    ``dot(gf, k, vf, v, acc)`` sets ``acc`` to ``sum_d gf[k + d] * vf[v + d]``, lane by lane
    from 0 in order of d (the per-agent kernel's additions); ``axpy(gf, k, c, vf)`` adds ``c *
    vf[d]`` to row ``k + d`` of ``gf``. A lane's sum (or its ``c``) stays in a register for
    ``CHUNK`` rows at a time: LLVM unrolls a short loop of constant length whole, and the
    loop over lanes around it vectorizes (measured: 1.1-1.4x with d = 8 to 20 against a
    row-by-row loop that reads and writes ``acc`` per d; longer, LLVM leaves the loop over
    d rolled and the lanes scalar: 5x slower at d = 64)."""
    L, CH = LANES, CHUNK
    whole = di - di % CH

    f0 = np.float32(0.0)

    @INLINE
    def dot(gf, k, vf, v, acc):
        for i in range(L):
            acc[i] = f0
        for c0 in range(0, whole, CH):
            for i in range(L):
                a = acc[i]
                for dd in range(CH):
                    a += gf[(k + c0 + dd) * L + i] * vf[(v + c0 + dd) * L + i]
                acc[i] = a
        if whole < di:
            for i in range(L):
                a = acc[i]
                for d in range(whole, di):
                    a += gf[(k + d) * L + i] * vf[(v + d) * L + i]
                acc[i] = a

    @INLINE
    def axpy(gf, k, c, vf):
        for c0 in range(0, whole, CH):
            for i in range(L):
                ci = c[i]
                for dd in range(CH):
                    gf[(k + c0 + dd) * L + i] += ci * vf[(c0 + dd) * L + i]
        if whole < di:
            for i in range(L):
                ci = c[i]
                for d in range(whole, di):
                    gf[(k + d) * L + i] += ci * vf[d * L + i]

    return dot, axpy


def make_lane_layer(
    off: int, H: int, di: int, do: int, n_beta: int, squash_input: bool, update_tanh: bool,
    slot0: int, slots: int, y_lo: int, y_hi: int, lexp, ltanh, jit,
):  # fmt: skip
    """:func:`srml.kernels.make_layer_kernel` over lanes: ``layer(g, h0, h1, out, pk, pq, lr,
    tmp, bits, self_modify, keys, t)`` with every buffer ``(n, LANES)``, compiled with
    ``jit``."""
    rows = do + 2 * di + n_beta
    f0, f1, f80 = np.float32(0.0), np.float32(1.0), np.float32(80.0)
    _, _, uniform = rng.make_rng(INLINE)
    pick = make_pick(INLINE)
    dot, axpy = make_lane_dots(di)
    fused = di <= CHUNK
    stream_key = rng.STREAM_KEY
    sample_keys = slots > 0
    blind = y_hi > y_lo
    L = LANES

    @jit
    def layer(g, h0, h1, out, pk, pq, lr, tmp, bits, self_modify, keys, t):
        if squash_input:
            for j in range(H * di):
                ltanh(h0[j], h0[j], tmp[6], bits)
        mk, mq, sk, sq = tmp[0], tmp[1], tmp[2], tmp[3]
        # flat views: rows LANES apart, a constant LLVM sees even where the layer is compiled
        # apart from the block, so the loops need no runtime overlap check per row
        gf, hf = g.reshape(g.size), h0.reshape(h0.size)
        pkf, pqf = pk.reshape(pk.size), pq.reshape(pq.size)
        for hd in range(H):
            base = off + hd * rows * di
            xo = hd * di
            for r in range(rows):
                o = out[r]
                if r >= do or not blind:
                    dot(gf, base + r * di, hf, xo, o)
                else:  # a y row: the inputs outside [y_lo, y_hi) only
                    for i in range(L):
                        o[i] = f0
                    for d in range(di):
                        if xo + d < y_lo or xo + d >= y_hi:
                            w, x = g[base + r * di + d], h0[xo + d]
                            for i in range(L):
                                o[i] += w[i] * x[i]
            for r in range(do):
                for i in range(L):
                    h1[hd * do + r, i] = out[r, i]
            for i in range(L):
                mk[i] = out[do, i]
                mq[i] = out[do + di, i]
            for d in range(1, di):
                for i in range(L):
                    mk[i] = max(mk[i], out[do + d, i])
                    mq[i] = max(mq[i], out[do + di + d, i])
            for i in range(L):
                sk[i] = f0
                sq[i] = f0
            for d in range(di):
                for i in range(L):
                    pk[d, i] = out[do + d, i] - mk[i]
                    pq[d, i] = out[do + di + d, i] - mq[i]
                lexp(pk[d], pk[d], bits)
                lexp(pq[d], pq[d], bits)
                for i in range(L):
                    sk[i] += pk[d, i]
                    sq[i] += pq[d, i]
            for d in range(di):
                for i in range(L):
                    pk[d, i] = pk[d, i] / sk[i]
                    pq[d, i] = pq[d, i] / sq[i]
            if not self_modify:
                continue
            if sample_keys:  # pk one-hot at an index drawn from softmax(k), lane by lane
                for i in range(L):
                    u = np.float32(uniform(keys[i], stream_key, t * slots + slot0 + hd))
                    hot = pick(pk[:, i], di, u, f1)
                    for d in range(di):
                        pk[d, i] = f0
                    pk[hot, i] = f1
            for j in range(n_beta):
                for i in range(L):
                    lr[j, i] = min(-out[do + 2 * di + j, i], f80)
                lexp(lr[j], lr[j], bits)
                for i in range(L):
                    lr[j, i] = f1 / (f1 + lr[j, i])
            if not update_tanh:
                for d in range(di):
                    for i in range(L):
                        pq[d, i] = pq[d, i] - pk[d, i]
            c, ck = tmp[4], tmp[5]
            for r in range(rows):
                k = base + r * di
                b = 0
                if n_beta > 1:
                    b = 0 if r < do else (1 if r < do + di else (2 if r < do + 2 * di else 3))
                if update_tanh:  # tanh(W pq) - tanh(W pk)
                    dot(gf, k, pqf, 0, c)
                    dot(gf, k, pkf, 0, ck)
                    ltanh(c, c, tmp[6], bits)
                    ltanh(ck, ck, tmp[6], bits)
                    for i in range(L):
                        c[i] = lr[b, i] * (c[i] - ck[i])
                    axpy(gf, k, c, pkf)
                elif fused:  # one pass, a lane's row of W read once and kept in registers
                    for i in range(L):
                        a = f0
                        for d in range(di):
                            a += gf[(k + d) * L + i] * pqf[d * L + i]
                        a = lr[b, i] * a
                        for d in range(di):
                            gf[(k + d) * L + i] += a * pkf[d * L + i]
                else:
                    dot(gf, k, pqf, 0, c)
                    for i in range(L):
                        c[i] = lr[b, i] * c[i]
                    axpy(gf, k, c, pkf)

    return layer


def make_lane_network(spec: NetSpec, lexp, ltanh):
    """The layers chained (:func:`srml.kernels.make_srwm_kernel` over lanes): input in h0,
    the last layer's output in h1.

    One layer is inlined into the block's loop (where LLVM sees every buffer is its own
    allocation, so its loops need no overlap checks: about 10% faster). Deeper networks
    compile each layer apart (one call per 64 agents): inlined, a two-layer network took
    about 50 s to compile instead of 18."""
    jit = INLINE if spec.n_layers == 1 else COMPILED
    slot0 = [sum(spec.heads[:n]) for n in range(spec.n_layers)]
    layers = [
        make_lane_layer(spec.offsets[n], spec.heads[n], spec.head_in[n], spec.head_out[n],
                        spec.n_beta, n > 0, spec.update_tanh, slot0[n], spec.key_slots,
                        *(spec.y_blind if n == 0 else (0, 0)), lexp, ltanh, jit)
        for n in range(spec.n_layers)
    ]  # fmt: skip

    def chain(n):
        layer = layers[n]
        if n == len(layers) - 1:
            return layer
        rest, width = chain(n + 1), spec.heads[n] * spec.head_out[n]

        @jit
        def run(g, h0, h1, out, pk, pq, lr, tmp, bits, self_modify, keys, t):
            layer(g, h0, h1, out, pk, pq, lr, tmp, bits, self_modify, keys, t)
            for j in range(width):
                for i in range(LANES):
                    h0[j, i] = h1[j, i]
            rest(g, h0, h1, out, pk, pq, lr, tmp, bits, self_modify, keys, t)

        return run

    return chain(0)


def lanes_generation(spec: NetSpec, twin, fast_exp: bool = False):
    """Compiled ``generation(genomes, keys, lifetime, sample, self_modify, record, rec_a,
    rec_r, rec_f, t0) -> (returns, episodes)``: the per-agent fused generation's contract
    (:func:`srml.backends.numba_backend.fused_generation`), blocks of ``LANES`` agents in
    parallel over ``numba.get_num_threads()`` threads."""
    key = ("lanes", spec, twin.id, tuple(sorted(twin.params.items())), fast_exp)
    if key in _CACHE:
        return _CACHE[key]
    L = LANES
    lexp = make_lane_exp(fast_exp)
    network = make_lane_network(spec, lexp, make_lane_tanh(fast_exp, lexp))
    reset, step = twin.make_kernels(INLINE)
    _, _, uniform = rng.make_rng(INLINE)
    pick = make_pick(INLINE)
    obs_dim, act_dim, d_in = spec.obs_dim, spec.act_dim, spec.d_in
    state_dim = twin.state_dim
    width, rows, n_beta = spec.max_width, spec.max_rows, spec.n_beta
    pdim = max(spec.max_head_in, spec.act_dim)
    discrete, reward_input, episode_flag = spec.discrete_act, spec.reward_input, spec.episode_flag
    low, high = spec.low, spec.high
    stream_action, stream_noise = rng.STREAM_ACTION, rng.STREAM_NOISE
    n_noise, hold = spec.noise_inputs, spec.noise_hold
    normed = obs_dim + act_dim + int(reward_input) + int(episode_flag)  # = Codec.normed
    input_norm = make_input_norm(INLINE, spec.input_norm, normed)
    norm_inputs = spec.input_norm != "none"
    f0, f1, f2 = np.float32(0.0), np.float32(1.0), np.float32(2.0)

    @COMPILED
    def run_blocks(first_block, last_block, genomes, keys, lifetime, sample, self_modify,
                   record, rec_a, rec_r, rec_f, t0, returns, episodes_out):  # fmt: skip
        for blk in range(first_block, last_block):
            run_block(blk * L, genomes, keys, lifetime, sample, self_modify, record, rec_a,
                      rec_r, rec_f, t0, returns, episodes_out)  # fmt: skip

    @COMPILED
    def run_block(lane0, genomes, keys, lifetime, sample, self_modify, record, rec_a, rec_r,
                  rec_f, t0, returns, episodes_out):  # fmt: skip
        b, G = genomes.shape
        nl = min(L, b - lane0)  # the last block's other lanes run zero genomes, unused
        g = np.zeros((G, L), np.float32)
        kb = np.zeros(L, np.uint64)
        for i in range(nl):
            kb[i] = keys[lane0 + i]
            for k in range(G):
                g[k, i] = genomes[lane0 + i, k]
        h0 = np.zeros((width, L), np.float32)
        h1 = np.zeros((width, L), np.float32)
        out = np.zeros((rows, L), np.float32)
        pk = np.zeros((pdim, L), np.float32)
        pq = np.zeros((pdim, L), np.float32)
        lr = np.zeros((n_beta, L), np.float32)
        tmp = np.zeros((7, L), np.float32)
        bits = np.zeros((2, L), np.int32)
        xl = np.zeros(d_in, np.float32)  # one lane's input, for the input normalisation
        state = np.zeros((L, state_dim))
        obs = np.zeros((L, obs_dim), np.float32)
        act = np.zeros((L, act_dim), np.float32)
        prev_a = np.full(L, -1, np.int64)
        prev_r = np.zeros(L, np.float32)
        first = np.ones(L, np.bool_)
        total = np.zeros(L)
        ep_ret = np.zeros(L)
        eps = np.zeros(L, np.int64)
        episode = np.zeros(L, np.int64)
        for i in range(nl):
            reset(state[i], obs[i], kb[i], 0)
        for t in range(lifetime):
            # x = [obs, previous action, previous reward, episode flag, 1, noise, padding]
            for j in range(d_in):
                for i in range(L):
                    h0[j, i] = f0
            for j in range(obs_dim):
                for i in range(L):
                    h0[j, i] = obs[i, j]
            if discrete:
                for i in range(L):
                    if prev_a[i] >= 0:
                        h0[obs_dim + prev_a[i], i] = f1
            else:
                for j in range(act_dim):
                    for i in range(L):
                        h0[obs_dim + j, i] = act[i, j]
            c = obs_dim + act_dim
            if reward_input:
                for i in range(L):
                    h0[c, i] = prev_r[i]
                c += 1
            if episode_flag:
                for i in range(L):
                    h0[c, i] = f1 if first[i] else f0
                c += 1
            if norm_inputs:  # lane by lane, as Codec.encode
                for i in range(L):
                    for j in range(c):
                        xl[j] = h0[j, i]
                    input_norm(xl)
                    for j in range(c):
                        h0[j, i] = xl[j]
            for i in range(L):
                h0[c, i] = f1
            draw = t // hold if hold else 0
            for j in range(n_noise):
                for i in range(L):
                    u = np.float32(uniform(kb[i], stream_noise, draw * n_noise + j))
                    h0[c + 1 + j, i] = f2 * u - f1
            network(g, h0, h1, out, pk, pq, lr, tmp, bits, self_modify, kb, t)
            if discrete and sample:  # softmax of the outputs (h1), exp over lanes
                m, s = tmp[0], tmp[1]
                for i in range(L):
                    m[i] = h1[0, i]
                for j in range(1, act_dim):
                    for i in range(L):
                        m[i] = max(m[i], h1[j, i])
                for i in range(L):
                    s[i] = f0
                for j in range(act_dim):
                    for i in range(L):
                        pk[j, i] = h1[j, i] - m[i]
                    lexp(pk[j], pk[j], bits)
                    for i in range(L):
                        s[i] += pk[j, i]
            for i in range(nl):
                lane = lane0 + i
                if discrete:
                    if sample:
                        u = np.float32(uniform(kb[i], stream_action, t))
                        a = pick(pk[:, i], act_dim, u, tmp[1, i])
                    else:
                        a = 0
                        for j in range(1, act_dim):
                            if h1[j, i] > h1[a, i]:
                                a = j
                    act[i, 0] = np.float32(a)
                    prev_a[i] = a
                else:
                    for j in range(act_dim):
                        if math.isnan(low[j]):
                            act[i, j] = h1[j, i]
                        else:
                            v = (math.tanh(np.float64(h1[j, i])) + 1.0) * 0.5
                            act[i, j] = np.float32(low[j] + v * (high[j] - low[j]))
                if first[i] and t0 == 0:
                    eps[i] += 1
                r, term, trunc = step(state[i], act[i], obs[i], kb[i], t)
                if t0 == 0:
                    total[i] += r
                else:
                    ep_ret[i] += r
                prev_r[i] = np.float32(r)
                if record:
                    rec_r[t, lane] = r
                    rec_f[t, lane] = first[i]
                    for j in range(act_dim):
                        rec_a[t, lane, j] = act[i, j]
                first[i] = term or trunc
                if first[i]:
                    if t0 > 0:
                        if t >= t0:  # an episode ending from step t0 on counts whole
                            total[i] += ep_ret[i]
                            eps[i] += 1
                        ep_ret[i] = 0.0
                    episode[i] += 1
                    reset(state[i], obs[i], kb[i], episode[i])
        for i in range(nl):
            if t0 > 0 and not first[i]:  # the episode the lifetime's end cuts off
                total[i] += ep_ret[i]
                eps[i] += 1
            for k in range(G):
                genomes[lane0 + i, k] = g[k, i]
            returns[lane0 + i] = total[i]
            episodes_out[lane0 + i] = eps[i]

    def generation(genomes, keys, lifetime, sample, self_modify, record, rec_a, rec_r, rec_f, t0):
        b = len(genomes)
        returns, episodes = np.zeros(b), np.zeros(b, np.int64)
        in_threads(run_blocks, -(-b // L), genomes, keys, lifetime, sample, self_modify, record,
                   rec_a, rec_r, rec_f, t0, returns, episodes)  # fmt: skip
        return returns, episodes

    _CACHE[key] = generation
    return generation
