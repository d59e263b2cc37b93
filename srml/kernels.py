"""Compiled SRWM kernels: the numpy reference's arithmetic, one agent at a time.

The same plain-Python source is compiled for the CPU (``numba.njit``) and for
CUDA (``numba.cuda.jit(device=True)``): ``make_agent_kernels(spec, jit)``
closes over the network shape and codec as compile-time constants and returns

- ``srwm_forward(g, x, h0, h1, out, pk, pq, lr, y, self_modify, key, t)``: one step
  of the whole network on genome ``g`` (float32, rewritten in place); input ``x``,
  outputs into ``y``; ``key`` and step ``t`` key the sampled keys' random numbers.
  Scratch buffers come from the caller (numpy arrays on the CPU,
  ``cuda.local.array`` on the GPU), so this compiles for both.
- ``run_agent(...)``: a whole lifetime of one genome in a compiled env twin
  (SRWM and environment fused; the genome stays in cache for all S steps). It builds
  the network input x itself, normalised as ``Codec.encode`` does (``make_input_norm``);
  ``srwm_forward`` takes x as given (the generic path passes ``Codec.encode``'s).

Arithmetic follows :mod:`srml.srwm` step for step (float32 network, float64
environment; the sigmoid as 1 / (1 + exp(-z)) where the reference uses its tanh
form), so results agree with the reference to float tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import rng
from .srwm import LAYER_NORM_EPS, Codec, Layout


@dataclass(frozen=True)
class NetSpec:
    """Compile-time constants of a network + codec (hashable: a kernel cache key)."""

    n_layers: int
    offsets: tuple
    heads: tuple
    head_in: tuple
    head_out: tuple
    n_beta: int
    max_width: int
    max_rows: int
    max_head_in: int
    d_in: int  # padded input width
    obs_dim: int
    act_dim: int
    discrete_act: bool
    reward_input: bool
    episode_flag: bool
    low: tuple  # Box action bounds (nan where unbounded)
    high: tuple
    update_tanh: bool = False  # squashed update values (Layout.update == "tanh")
    key_slots: int = 0  # sampled keys: uniforms per step (0: keys are softmax(k), as today)
    noise_inputs: int = 0  # K uniform noise inputs after the constant 1
    y_blind: tuple = (0, 0)  # input positions [lo, hi) the first layer's y rows do not read
    input_norm: str = "none"  # Codec.input_norm: none, layer or softmax of x before the 1
    noise_hold: int = 1  # steps each noise draw is held (0: one draw per lifetime)

    @classmethod
    def of(cls, layout: Layout, codec: Codec) -> NetSpec:
        L = layout.layers
        widths = [layout.padded_in] + [x.d_out for x in L]
        if codec.discrete_act:
            low = high = (0.0,)
        else:
            low = tuple(np.where(codec.bounded, codec.low, np.nan).tolist())
            high = tuple(np.where(codec.bounded, codec.high, np.nan).tolist())
        return cls(
            len(L),
            tuple(x.offset for x in L),
            tuple(x.heads for x in L),
            tuple(x.head_in for x in L),
            tuple(x.head_out for x in L),
            L[0].n_beta,
            max(widths),
            max(x.rows for x in L),
            max(x.head_in for x in L),
            layout.padded_in,
            codec.obs_dim,
            codec.act_dim,
            codec.discrete_act,
            codec.reward_input,
            codec.episode_flag,
            low,
            high,
            layout.update == "tanh",
            layout.key_slots,
            codec.noise_inputs,
            layout.y_blind,
            codec.input_norm,
            codec.noise_hold,
        )


EXP_ZERO = np.float32(-104.0)
"""Below this, float32 ``exp`` is +0: e^-104 is under half the smallest subnormal (7e-46), so an
exp within half an ulp and a bit (glibc's ``expf``: 0.502) returns 0; tests/test_lanes.py checks
the C library's on every float32 from -110 to -104 and samples below. The kernels return 0
there without calling ``exp``: glibc's ``expf`` takes a slow path on underflow (2.4x per call),
and evolved genomes' peaked softmaxes underflow most of their terms (80% on a solved CartPole
pool). On a GPU, libdevice's ``expf`` (within 2 ulp) may differ in the last bits anyway."""


def make_exp(jit):
    """``exp(x)``: the C library's ``expf``, or 0 below :data:`EXP_ZERO` without calling it
    (NaN stays NaN: the comparison is false for it)."""
    f0 = np.float32(0.0)

    @jit
    def exp(x):
        return f0 if x < EXP_ZERO else math.exp(x)

    return exp


DIV_TINY = np.float32(2.0**-100)
"""Numerators below this (zero, subnormal, tiny) take :func:`make_div`'s guarded path: a GPU's
fast float32 division corrects its quotient with a residual of about p * 2^-24 (sm_90 SASS),
which must stay a normal float."""
_F64_UP, _F64_DOWN = np.float64(2.0**64), np.float64(2.0**-64)


def make_div(jit, guarded: bool = False):
    """``div(p, s)``: the float32 quotient p / s, IEEE-rounded; the softmax normalisations
    and the action draw divide through it.

    ``guarded`` (the GPU kernels): the same bits on every input, but a numerator below
    :data:`DIV_TINY` does not reach the float32 division. A GPU divides in software (a
    reciprocal and FMAs) with a range check that sends awkward operands to a slow
    subroutine, and a warp waits for its slowest lane: on an evolved pool, 80% of the
    softmax terms are exactly 0 and 0.7% subnormal, so every division site of nearly every
    warp holds such a lane (``benchmarks/softmax_underflow.py``). Guarded, p = 0 (with s > 0)
    returns p itself (0 / s), and other small p divide in float64, where they are normal:
    float64 carries more than twice float32's bits, so rounding its quotient to float32 gives
    the correctly rounded float32 quotient (innocuous double rounding; tests/test_gpu.py
    checks every subnormal numerator). The 2^64 scaling is exact and only stops the compiler
    from folding the float64 division back into a float32 one. NaN and inf take that path too
    and come out as float32 division's."""
    f0 = np.float32(0.0)

    if not guarded:

        @jit
        def div(p, s):
            return p / s

        return div

    @jit
    def div_guarded(p, s):
        if p >= DIV_TINY:
            return p / s
        if p == f0 and s > f0:
            return p
        return np.float32(np.float64(p) * _F64_UP / np.float64(s) * _F64_DOWN)

    return div_guarded


def make_input_norm(jit, kind: str, n: int, guarded_div: bool = False):
    """``norm(x)``: x[0:n] normalised in place as :meth:`srml.srwm.Codec.encode` does it
    (``layer``: (x - mean) / sqrt(var + 1e-5), biased variance; ``softmax``: max-shifted
    softmax; ``none``: nothing), in float32. ``guarded_div``: :func:`make_div`'s."""
    layer, soft = kind == "layer", kind == "softmax"
    f0 = np.float32(0.0)
    exp = make_exp(jit)
    div = make_div(jit, guarded_div)
    fn, eps = np.float32(max(n, 1)), np.float32(LAYER_NORM_EPS)

    @jit
    def norm(x):
        if layer:
            s = f0
            for j in range(n):
                s += x[j]
            m = s / fn
            v = f0
            for j in range(n):
                d = x[j] - m
                v += d * d
            r = np.float32(math.sqrt(v / fn + eps))
            for j in range(n):
                x[j] = (x[j] - m) / r
        elif soft:
            m = x[0]
            for j in range(1, n):
                m = max(m, x[j])
            s = f0
            for j in range(n):
                x[j] = exp(x[j] - m)
                s += x[j]
            for j in range(n):
                x[j] = div(x[j], s)

    return norm


def make_pick(jit, guarded_div: bool = False):
    """``pick(p, n, u, s)``: the inverse-CDF draw, index k with sum(p[:k] / s) < u <=
    sum(p[:k+1] / s), counted term by term in float32 and clamped to n - 1 where rounding
    leaves the sum below u. ``s`` = 1 draws from already normalised p (dividing by 1 is
    exact). One source for the action draw and the sampled keys, on every backend.
    ``guarded_div``: :func:`make_div`'s."""
    f0 = np.float32(0.0)
    div = make_div(jit, guarded_div)

    @jit
    def pick(p, n, u, s):
        cum = f0
        k = 0
        for j in range(n):
            cum += div(p[j], s)
            if cum < u:
                k += 1
        if k > n - 1:
            k = n - 1
        return k

    return pick


def make_layer_kernel(
    jit, off: int, H: int, di: int, do: int, n_beta: int, squash_input: bool,
    update_tanh: bool = False, slot0: int = 0, slots: int = 0, y_lo: int = 0, y_hi: int = 0,
    guarded_div: bool = False,
):  # fmt: skip
    """One layer's step with its shape as compile-time constants (the compiler unrolls and
    vectorizes the short loops over d): reads h0 (tanh first if ``squash_input``), writes
    y to h1, rewrites the layer's weights in g. ``update_tanh``: squashed update values;
    ``slots`` > 0: sampled keys, head hd of this layer drawing uniform number
    ``t * slots + slot0 + hd`` of the key stream. The y rows skip inputs [y_lo, y_hi).
    ``guarded_div``: :func:`make_div`'s, for the softmaxes and the key draw."""
    rows = do + 2 * di + n_beta
    f0, f1, f80 = np.float32(0.0), np.float32(1.0), np.float32(80.0)
    _, _, uniform = rng.make_rng(jit)
    pick = make_pick(jit, guarded_div)
    exp = make_exp(jit)
    div = make_div(jit, guarded_div)
    stream_key = rng.STREAM_KEY
    sample_keys = slots > 0

    @jit
    def layer(g, h0, h1, out, pk, pq, lr, self_modify, key, t):
        if squash_input:
            for j in range(H * di):
                h0[j] = math.tanh(h0[j])
        for hd in range(H):
            base = off + hd * rows * di
            xo = hd * di
            for r in range(rows):
                acc = f0
                for d in range(di):
                    if r >= do or xo + d < y_lo or xo + d >= y_hi:
                        acc += g[base + r * di + d] * h0[xo + d]
                out[r] = acc
            for r in range(do):
                h1[hd * do + r] = out[r]
            # softmax of k and q (max-shifted, as the reference)
            mk = out[do]
            mq = out[do + di]
            for d in range(1, di):
                mk = max(mk, out[do + d])
                mq = max(mq, out[do + di + d])
            sk = f0
            sq = f0
            for d in range(di):
                pk[d] = exp(out[do + d] - mk)
                pq[d] = exp(out[do + di + d] - mq)
                sk += pk[d]
                sq += pq[d]
            for d in range(di):
                pk[d] = div(pk[d], sk)
                pq[d] = div(pq[d], sq)
            if not self_modify:
                continue
            if sample_keys:  # pk one-hot at an index drawn from softmax(k)
                u = np.float32(uniform(key, stream_key, t * slots + slot0 + hd))
                hot = pick(pk, di, u, f1)
                for d in range(di):
                    pk[d] = f0
                pk[hot] = f1
            for j in range(n_beta):
                # sigmoid: one expf is far cheaper than tanhf; the clamp keeps exp finite
                # (sigmoid(-80) = 2e-35, 0 to float tolerance)
                z = min(-out[do + 2 * di + j], f80)
                lr[j] = f1 / (f1 + exp(z))
            if not update_tanh:
                for d in range(di):
                    pq[d] = pq[d] - pk[d]  # pq now holds pq - pk
            for r in range(rows):
                acc = f0
                if update_tanh:  # tanh(W pq) - tanh(W pk)
                    acc_k = f0
                    for d in range(di):
                        acc += g[base + r * di + d] * pq[d]
                        acc_k += g[base + r * di + d] * pk[d]
                    acc = np.float32(math.tanh(acc)) - np.float32(math.tanh(acc_k))
                else:
                    for d in range(di):
                        acc += g[base + r * di + d] * pq[d]
                b = 0
                if n_beta > 1:
                    b = 0 if r < do else (1 if r < do + di else (2 if r < do + 2 * di else 3))
                c = lr[b] * acc
                for d in range(di):
                    g[base + r * di + d] += c * pk[d]

    return layer


def make_srwm_kernel(spec: NetSpec, jit, guarded_div: bool = False):
    """``srwm_forward`` compiled with ``jit`` (see the module docstring): the layer kernels
    chained by closures, each layer's output becoming the next one's input.
    ``guarded_div``: :func:`make_div`'s (the same bits either way)."""
    slot0 = [sum(spec.heads[:n]) for n in range(spec.n_layers)]
    layers = [
        make_layer_kernel(jit, spec.offsets[n], spec.heads[n], spec.head_in[n],
                          spec.head_out[n], spec.n_beta, n > 0, spec.update_tanh,
                          slot0[n], spec.key_slots, *(spec.y_blind if n == 0 else (0, 0)),
                          guarded_div)
        for n in range(spec.n_layers)
    ]  # fmt: skip

    def chain(n):  # layers n.. as one function; input in h0
        layer = layers[n]
        if n == len(layers) - 1:
            return layer
        rest, width = chain(n + 1), spec.heads[n] * spec.head_out[n]

        @jit
        def run(g, h0, h1, out, pk, pq, lr, self_modify, key, t):
            layer(g, h0, h1, out, pk, pq, lr, self_modify, key, t)
            for j in range(width):
                h0[j] = h1[j]
            rest(g, h0, h1, out, pk, pq, lr, self_modify, key, t)

        return run

    network, d_in, d_out = chain(0), spec.d_in, spec.act_dim

    @jit
    def srwm_forward(g, x, h0, h1, out, pk, pq, lr, y, self_modify, key, t):
        for j in range(d_in):
            h0[j] = x[j]
        network(g, h0, h1, out, pk, pq, lr, self_modify, key, t)
        for j in range(d_out):
            y[j] = h1[j]

    return srwm_forward


def make_agent_kernel(spec: NetSpec, twin, jit, env_jit, guarded_div: bool = False):
    """``run_agent``: one genome's whole lifetime in a compiled twin, SRWM and env fused.

    ``run_agent(g, key, lifetime, sample, self_modify, state, obs, x, h0, h1, out, pk,
    pq, lr, y, act, rec_a, rec_r, rec_f, lane, record, t0) -> (return, episodes)``;
    with ``t0`` > 0 only the episodes that end at step ``t0`` or later (or are cut off by
    the lifetime's end) count, each with its whole return. ``guarded_div``:
    :func:`make_div`'s (the same bits either way; the GPU kernels' choice).
    """
    srwm_forward = make_srwm_kernel(spec, jit, guarded_div)
    reset, step = twin.make_kernels(env_jit)
    _, _, uniform = rng.make_rng(jit)
    pick = make_pick(jit, guarded_div)
    exp = make_exp(jit)
    obs_dim, act_dim, d_in = spec.obs_dim, spec.act_dim, spec.d_in
    discrete, reward_input, episode_flag = spec.discrete_act, spec.reward_input, spec.episode_flag
    low, high = spec.low, spec.high
    stream_action, stream_noise = rng.STREAM_ACTION, rng.STREAM_NOISE
    n_noise = spec.noise_inputs
    hold = spec.noise_hold  # as Codec.noise_draw: 0 is one draw per lifetime
    normed = obs_dim + act_dim + int(reward_input) + int(episode_flag)  # = Codec.normed
    input_norm = make_input_norm(jit, spec.input_norm, normed, guarded_div)
    norm_inputs = spec.input_norm != "none"
    f2 = np.float32(2.0)
    f0, f1 = np.float32(0.0), np.float32(1.0)

    @jit
    def run_agent(
        g, key, lifetime, sample, self_modify, state, obs, x, h0, h1, out, pk, pq, lr, y, act,
        rec_a, rec_r, rec_f, lane, record, t0,
    ):  # fmt: skip
        episode = 0
        reset(state, obs, key, episode)
        prev_a = -1  # no action yet (discrete); Box: act holds zeros
        for j in range(act_dim):
            act[j] = f0
        prev_r = f0
        first = True
        total = 0.0
        episodes = 0
        ep_ret = 0.0
        for t in range(lifetime):
            # x = [obs, previous action, previous reward, episode flag, 1, noise, padding]
            for j in range(d_in):
                x[j] = f0
            for j in range(obs_dim):
                x[j] = obs[j]
            if discrete:
                if prev_a >= 0:
                    x[obs_dim + prev_a] = f1
            else:
                for j in range(act_dim):
                    x[obs_dim + j] = act[j]
            c = obs_dim + act_dim
            if reward_input:
                x[c] = prev_r
                c += 1
            if episode_flag:
                x[c] = f1 if first else f0
                c += 1
            if norm_inputs:  # x[0:c], everything before the constant 1 (Codec.encode)
                input_norm(x)
            x[c] = f1
            draw = t // hold if hold else 0
            for j in range(n_noise):
                x[c + 1 + j] = f2 * np.float32(uniform(key, stream_noise, draw * n_noise + j)) - f1
            srwm_forward(g, x, h0, h1, out, pk, pq, lr, y, self_modify, key, t)
            if discrete:
                if sample:
                    m = y[0]
                    for j in range(1, act_dim):
                        m = max(m, y[j])
                    s = f0
                    for j in range(act_dim):
                        pk[j] = exp(y[j] - m)
                        s += pk[j]
                    a = pick(pk, act_dim, np.float32(uniform(key, stream_action, t)), s)
                else:
                    a = 0
                    for j in range(1, act_dim):
                        if y[j] > y[a]:
                            a = j
                act[0] = np.float32(a)
                prev_a = a
            else:
                for j in range(act_dim):
                    if math.isnan(low[j]):
                        act[j] = y[j]
                    else:
                        v = (math.tanh(np.float64(y[j])) + 1.0) * 0.5
                        act[j] = np.float32(low[j] + v * (high[j] - low[j]))
            if first and t0 == 0:
                episodes += 1
            r, term, trunc = step(state, act, obs, key, t)
            if t0 == 0:
                total += r
            else:
                ep_ret += r
            prev_r = np.float32(r)
            if record:
                rec_r[t, lane] = r
                rec_f[t, lane] = first
                for j in range(act_dim):
                    rec_a[t, lane, j] = act[j]
            first = term or trunc
            if first:
                if t0 > 0:
                    if t >= t0:  # an episode ending from step t0 on counts whole
                        total += ep_ret
                        episodes += 1
                    ep_ret = 0.0
                episode += 1
                reset(state, obs, key, episode)
        if t0 > 0 and not first:  # the episode the lifetime's end cuts off
            total += ep_ret
            episodes += 1
        return total, episodes

    return run_agent
