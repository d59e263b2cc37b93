"""Learned optimizers as an environment: the agent is a per-parameter update rule.

``srml/LearnedOptimizer-v0`` turns "train a freshly sampled problem for a few
optimizer steps" into an episode. The agent is the update rule: a network with
one input per feature and one output, shared by every parameter of the
problem, exactly like the per-parameter learned optimizers of the literature
(VeLO and its predecessors). No network change is needed for that: the env
presents the problem's parameters ONE AT A TIME.

Episode structure
-----------------
An episode samples one problem (see *Problems*) with ``D`` parameters (``D =
dim``, except for the MLP), starts it at ``theta_0`` (0, except for the MLP's
random init) and runs ``steps_per_problem`` optimizer steps.
Each optimizer step takes ``D`` env steps: env step ``i`` shows parameter
``i``'s features and reads that parameter's update from the action; after the
last parameter, the env applies all ``D`` updates at once
(``theta += update``), recomputes the loss and the gradient, and updates the
running moments. An episode is therefore ``D * steps_per_problem`` env steps;
it ends truncated (never terminated). A lifetime (``srml run --lifetime``)
spans several problems, so a self-modifying network can learn to learn across
them; ``--lifetime`` a multiple of ``D * steps_per_problem`` (480 at the
defaults) makes every problem in it a whole one.

Aggregation of self-modification across parameters: sequential. The SRWM
rewrites itself at every env step, i.e. once per parameter, so the weights
that parameter ``i``'s update comes from were rewritten by the steps of
parameters ``0 .. i-1`` (and of every earlier optimizer step). This is the
natural consequence of "one parameter per env step" and needs no change to
the network or the backends; its cost is that the rule applied to parameter
``i`` can differ from the one applied to parameter ``j`` within the same
optimizer step (a mean of per-parameter updates would need a batched network).

Action: ``Box(-1, 1, (1,))``; the parameter's update is ``update_scale *
clip(action, -1, 1)`` (a NaN action counts as 0). The sign is the network's
to learn: descending means ``action ~ -sign(gradient)``.

Observation: ``Box(-10, 10, (9,))``, each feature clipped to [-10, 10], for
the parameter ``i`` on show at optimizer step ``k`` (0-based), with Adam's
moments ``m, v`` (beta1 = 0.9, beta2 = 0.999) of the gradients seen so far
(``g_0 .. g_k``, bias-corrected: ``mh = m / (1 - 0.9**(k+1))``, ``vh = v / (1 -
0.999**(k+1))``, ``rms = sqrt(vh)``):

====  ======================================================================
0     ``g_i / (rms_i + 1e-12)``: the gradient normalised by its running RMS
1     ``mh_i / (rms_i + 1e-12)``: Adam's direction
2     ``theta_i``: the parameter's value
3     ``u_i / update_scale``: the parameter's previous update (its previous action)
4     ``0.25 * log10(rms_i + 1e-30)``: the gradient's scale
5     ``0.25 * (lnL_0 - lnL_k)``: progress so far on this problem
6     the last optimizer step's reward ``lnL_{k-1} - lnL_k`` (0 at k = 0)
7     ``k / steps_per_problem``: fraction of the problem's steps done
8     1 on the first parameter of an optimizer step, else 0
====  ======================================================================

where ``lnL = ln(L + loss_floor * L_0)``: the loss plus a floor relative to the
problem's initial loss ``L_0``, so a problem solved to zero loss has a finite
log-loss (``ln L_0 + ln(loss_floor)``).

Reward: the decrease of that log-loss over an optimizer step, ``lnL_k -
lnL_{k+1}``, given on the env step that completes the optimizer step (the one
showing the last parameter); 0 on the other steps. An episode's return is
``lnL_0 - lnL_K = ln(L_0 (1 + loss_floor)) - ln(L_K + loss_floor L_0)``: the
log-factor by which the problem's loss went down, at most ``ln(1 /
loss_floor)`` (13.8 at the default 1e-6). It is invariant to the loss's scale.

Problems
--------
``condition`` sets the spread of curvatures: a curvature or a squared column
scale ``condition ** -u`` with ``u`` uniform on [0, 1), i.e. log-uniform over
``[1 / condition, 1]``.

``quadratic``
    ``L = 0.5 * sum_j h_j z_j**2`` with ``z = R (theta - c)``: curvatures
    ``h`` log-uniform as above, optimum ``c ~ N(0, I)``, ``R`` a product of
    ``rotations`` random Givens rotations (pairs ``p != q`` and angles uniform;
    default ``2 * dim``; 0 gives an axis-aligned quadratic, and ``dim = 1``
    has none), so the curvature's axes are not the parameters' axes. The
    gradient is ``R^T (h * z)``. ``noise`` adds Gaussian noise of that
    standard deviation to every gradient coordinate (the loss and the reward
    stay exact).
``linreg``
    ``L = 0.5 / n * |X theta - y|**2`` with ``n = n_data`` rows (default ``2 *
    dim``), ``X[n, j] = s_j * N(0, 1)`` (``s_j**2`` log-uniform, so the
    Hessian's diagonal spans ``condition``), a teacher ``w ~ N(0, I)`` and
    targets ``y = X w + label_noise * N(0, 1)``.
``logreg``
    Mean logistic loss ``1/n sum softplus(-y_n x_n . theta)``, ``X`` as for
    linreg, labels ``y_n = sign(x_n . w + label_noise * N(0, 1))`` in {-1, +1}
    from a random teacher ``w ~ N(0, I)``, plus ``0.5 * l2 * |theta|**2`` with
    ``l2 = 0.01`` by default: without label noise the teacher's labels are
    separable, and unregularised their loss only goes to 0 as ``|theta|``
    grows without bound (the best learning rate is then the largest one).
``mlp``
    A one-hidden-layer tanh network ``f(x) = w2 . tanh(W1 x + b1) + b2`` with
    ``dim`` inputs and ``hidden`` units (default 4), so ``D = hidden * (dim + 2)
    + 1`` parameters (17 at ``dim = 2``, 41 at ``dim = 8``: keep ``dim`` small,
    an episode is ``D * steps_per_problem`` env steps), fit by mean squared
    error ``0.5 / n sum (f(x_n) - y_n)**2`` to ``n = n_data`` rows (default
    ``2 D``): ``X`` as for linreg (``dim`` columns), targets from a random
    teacher of the same shape (every parameter ``N(0, 1)``) plus
    ``label_noise * N(0, 1)``. The student starts at ``W1 ~ N(0, 1/dim)``,
    ``w2 ~ N(0, 1/hidden)``, zero biases, drawn with the problem. Non-convex.

Gradients are full-batch; ``noise`` (gradient noise) and ``l2`` (weight decay
in the loss, default 0 except for logreg) apply to every problem.

Randomness (reproducible, identical on every backend)
-----------------------------------------------------
Normals are Box-Muller from two uniforms, ``sqrt(-2 ln(1 - u1)) cos(2 pi u2)``.

- Problem ``episode`` of a lane draws ``uniform(key, STREAM_RESET, episode *
  PROBLEM_STRIDE + c)`` for ``c = 0, 1, ...`` (``PROBLEM_STRIDE = 2**20``
  counters per episode instead of the classic twins' 64, because a problem
  needs ``~2 n dim`` draws). Order: quadratic ``h_j`` (``c = j``), ``c_j``
  (``c = dim + 2 j, +1``), rotation ``r`` (``c = 3 dim + 3 r + {0: p, 1: q, 2:
  angle}``, ``p = floor(u dim)``, ``q = (p + 1 + floor(u (dim - 1))) mod
  dim``); linreg/logreg ``s_j`` (``c = j``), ``X[n, j]`` (``c = dim + 2 (n dim +
  j)``), ``w_j`` (``c = dim + 2 n dim + 2 j``), label noise ``e_n`` (``c = 3 dim
  + 2 n dim + 2 n``); mlp ``s_j`` (``c = j``), then pairs ``c = dim + 2 k, +1``
  for ``k`` over ``X`` (row-major), the teacher's ``D`` parameters, the ``n``
  label noises and the student's ``D`` initial parameters, in that order.
- Gradient noise of optimizer step ``k`` (``k = 0`` is the gradient at reset):
  ``uniform(key, STREAM_ENV, episode * PROBLEM_STRIDE + k * 2 D + 2 j, +1)``
  for coordinate ``j``. It depends on ``(key, episode, k)``, not on the
  lane's step counter ``t`` (the classic twins' convention), so the optimizer
  baselines of :mod:`srml.optimizers` see the very same noise; the episode
  number is kept in the state for that.

Both need ``draws < PROBLEM_STRIDE``; the factory refuses larger settings.

State (float64), ``D`` parameters, ``N = n_data``, ``R = rotations``::

    [0] i (parameter on show)   [1] k (optimizer steps done)   [2] episode
    [3] L_0   [4] L   [5] loss_floor * L_0 (+1e-30)   [6] lnL_0   [7] lnL   [8] last reward
    theta[D]  g[D]  m[D]  v[D]  u[D] (latest update of each parameter)
    scratch[max(D, N)]
    quadratic: h[D] c[D] rot[4R] (p, q, cos, sin);  others: X[N*dim] (row-major) y[N]
    elapsed (env steps in this episode; last, as in every twin)

``state_dim`` is ``10 + 8 D + 4 R`` for the quadratic (138 at the default ``dim
= 8``, ``R = 16``) and ``10 + 5 D + max(D, N) + N D + N`` for linreg/logreg (210
at ``dim = 8``, ``N = 16``; 2,346 = 18 KiB at ``dim = 32``, ``N = 64``), and
``10 + 5 D + max(D, N) + N dim + N`` for the MLP (231 at ``dim = 2``). On
CUDA the state is a per-thread local array: a few hundred entries are fine,
thousands (``linreg``/``logreg`` beyond ``dim`` ~ 16) spill to slow local
memory; the kernels still run. Cost per env step: O(1), plus the problem's
loss and gradient (O(R + D) or O(N D)) once every ``D`` steps.

A plain-numpy reference of the problems (:func:`sample_problem`, used by the
tests and by the SGD/Adam baselines) lives here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from srml.rng import STREAM_ENV, STREAM_RESET, make_rng, uniforms

from .twin import TwinEnv, TwinVectorEnv, twin_factory

PROBLEMS = ("quadratic", "linreg", "logreg", "mlp")
PROBLEM_STRIDE = 2**20  # counters per episode (problem draws; gradient noise)
OBS_DIM = 9
OBS_CLIP = 10.0
BETA1 = 0.9
BETA2 = 0.999
EPS = 1e-12
TINY = 1e-30

LOGREG_L2 = 0.01  # default weight decay of logreg (its teacher's labels are separable)


def resolve_l2(problem, l2) -> float:
    """The L2 coefficient: ``l2``, or by default 0.01 for logreg and 0 otherwise."""
    if l2 is None:
        return LOGREG_L2 if problem == "logreg" else 0.0
    return float(l2)


# fixed slots of the state
I_IDX, I_K, I_EP, I_L0, I_L, I_FLOOR, I_LNL0, I_LNL, I_LAST = range(9)
HEADER = 9


@dataclass(frozen=True)
class Sizes:
    """Resolved sizes and state offsets of one parameter setting."""

    problem: str
    D: int  # parameters
    X: int  # input width of a data row (linreg/logreg: D; mlp: dim; quadratic: 0)
    H: int  # mlp hidden width (0 otherwise)
    N: int  # data rows (0 for the quadratic)
    R: int  # Givens rotations (0 for linreg/logreg)
    theta: int
    g: int
    m: int
    v: int
    u: int
    scratch: int
    data: int  # h (quadratic) or the data rows
    data2: int  # c (quadratic) or y
    rot: int  # quadratic only
    elapsed: int
    draws: int  # problem draws per episode

    @property
    def state_dim(self) -> int:
        return self.elapsed + 1


def sizes(problem, dim, n_data=None, rotations=None, hidden=4) -> Sizes:
    quad, mlp = problem == "quadratic", problem == "mlp"
    Xw = 0 if quad else int(dim)
    H = int(hidden) if mlp else 0
    D = H * (Xw + 2) + 1 if mlp else int(dim)
    N = 0 if quad else (2 * D if n_data is None else int(n_data))
    R = 0
    if quad:
        R = 2 * D if rotations is None else int(rotations)
        if D < 2:
            R = 0
    theta = HEADER
    g, m, v, u = theta + D, theta + 2 * D, theta + 3 * D, theta + 4 * D
    scratch = theta + 5 * D
    data = scratch + max(D, N)
    if quad:
        data2, rot = data + D, data + 2 * D
        elapsed = rot + 4 * R
        draws = 3 * D + 3 * R
    else:
        data2, rot = data + N * Xw, 0
        elapsed = data2 + N
        if mlp:  # scales; normals of X, teacher, label noise, student init
            draws = Xw + 2 * (N * Xw + D + N + D)
        else:
            draws = 3 * D + 2 * N * D + 2 * N
    return Sizes(
        problem, D, Xw, H, N, R, theta, g, m, v, u, scratch, data, data2, rot, elapsed, draws
    )


# ------------------------------------------------------------------ kernels


def build(
    jit, rng_jit, problem, dim, steps_per_problem, noise, label_noise, n_data, rotations,
    condition, update_scale, loss_floor, l2, hidden,
):  # fmt: skip
    _, _, uniform = make_rng(rng_jit)
    z = sizes(problem, dim, n_data, rotations, hidden)
    D, N, R, XW, H = z.D, z.N, z.R, z.X, z.H
    TH, G, M, V, U, S = z.theta, z.g, z.m, z.v, z.u, z.scratch
    A, B, ROT, EL = z.data, z.data2, z.rot, z.elapsed
    PROB = PROBLEMS.index(problem)  # 0 quadratic, 1 linreg, 2 logreg
    K = float(steps_per_problem)
    NOISE = float(noise)
    LNOISE = float(label_noise)
    COND = float(condition)
    SCALE = float(update_scale)
    FLOOR = float(loss_floor)
    L2 = resolve_l2(problem, l2)
    STRIDE = PROBLEM_STRIDE
    TWO_PI = 2.0 * math.pi
    INV_N = 1.0 / max(N, 1)

    # Compile time: the fused backends inline reset (twice) and step (once) into their
    # kernel at numba's IR level, and every further call site inside them is inlined and
    # re-typed too. So the problem-specific pieces are chosen here, in Python (no dead
    # branches), and each kernel calls uniform() from ONE loop over its counters.

    if PROB == 0:

        @jit
        def sample(state, key, base):
            # draws in counter order: h_j; (u1, u2) of c_j; (p, q, angle) of each rotation
            u1 = 0.0
            for c in range(3 * D + 3 * R):
                u = uniform(key, STREAM_RESET, base + c)
                if c < D:
                    state[A + c] = COND ** (-u)
                elif c < 3 * D:
                    if (c - D) % 2 == 0:
                        u1 = u
                    else:
                        j = (c - D) // 2
                        state[B + j] = math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(TWO_PI * u)
                else:
                    r = (c - 3 * D) // 3
                    w = (c - 3 * D) % 3
                    if w == 0:
                        state[ROT + 4 * r] = math.floor(u * D)
                    elif w == 1:
                        p = state[ROT + 4 * r]
                        state[ROT + 4 * r + 1] = (p + 1.0 + math.floor(u * (D - 1))) % D
                    else:
                        state[ROT + 4 * r + 2] = math.cos(TWO_PI * u)
                        state[ROT + 4 * r + 3] = math.sin(TWO_PI * u)

        @jit
        def loss_grad(state):
            """Loss at theta; the gradient into g."""
            for j in range(D):
                state[S + j] = state[TH + j] - state[B + j]
            for r in range(R):  # z = R (theta - c)
                p = int(state[ROT + 4 * r]) + S
                q = int(state[ROT + 4 * r + 1]) + S
                cs = state[ROT + 4 * r + 2]
                sn = state[ROT + 4 * r + 3]
                a = state[p]
                b = state[q]
                state[p] = cs * a - sn * b
                state[q] = sn * a + cs * b
            L = 0.0
            for j in range(D):
                zj = state[S + j]
                L += 0.5 * state[A + j] * zj * zj
                state[S + j] = state[A + j] * zj
            for rr in range(R):  # gradient R^T (h z): the rotations undone in reverse order
                r = R - 1 - rr
                p = int(state[ROT + 4 * r]) + S
                q = int(state[ROT + 4 * r + 1]) + S
                cs = state[ROT + 4 * r + 2]
                sn = state[ROT + 4 * r + 3]
                a = state[p]
                b = state[q]
                state[p] = cs * a + sn * b
                state[q] = cs * b - sn * a
            for j in range(D):
                state[G + j] = state[S + j]
            return L

    elif PROB == 3:
        # theta = [W1 (H x XW, row-major), b1 (H), w2 (H), b2]; the teacher has the same
        # shape and lives in scratch while the targets are made
        B1, W2, B2 = H * XW, H * XW + H, H * XW + 2 * H
        INV_SQRT_X = 1.0 / math.sqrt(XW)
        INV_SQRT_H = 1.0 / math.sqrt(H)

        @jit
        def sample(state, key, base):
            # draws in counter order: column scales s_j (in scratch while X is drawn); then
            # (u1, u2) of each X[n, j], of each teacher parameter, of each target's label
            # noise, of each initial student parameter
            u1 = 0.0
            for c in range(XW + 2 * (N * XW + D + N + D)):
                u = uniform(key, STREAM_RESET, base + c)
                if c < XW:
                    state[S + c] = math.sqrt(COND ** (-u))
                    continue
                if (c - XW) % 2 == 0:
                    u1 = u
                    continue
                e = math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(TWO_PI * u)
                k = (c - XW) // 2
                if k < N * XW:
                    state[A + k] = state[S + k % XW] * e
                elif k < N * XW + D:
                    state[S + k - N * XW] = e  # teacher parameter, N(0, 1)
                elif k < N * XW + D + N:
                    n = k - N * XW - D
                    out = state[S + B2]
                    for h in range(H):
                        acc = state[S + B1 + h]
                        for j in range(XW):
                            acc += state[S + h * XW + j] * state[A + n * XW + j]
                        out += state[S + W2 + h] * math.tanh(acc)
                    state[B + n] = out + LNOISE * e
                else:  # student: W1 ~ N(0, 1/XW), w2 ~ N(0, 1/H), biases 0
                    q = k - N * XW - D - N
                    if q < B1:
                        state[TH + q] = e * INV_SQRT_X
                    elif q >= W2 and q < B2:
                        state[TH + q] = e * INV_SQRT_H

        @jit
        def loss_grad(state):
            """Loss at theta; the gradient into g (backprop, hidden activations in scratch)."""
            L = 0.0
            for j in range(D):
                state[G + j] = 0.0
            for n in range(N):
                out = state[TH + B2]
                for h in range(H):
                    acc = state[TH + B1 + h]
                    for j in range(XW):
                        acc += state[TH + h * XW + j] * state[A + n * XW + j]
                    a = math.tanh(acc)
                    state[S + h] = a
                    out += state[TH + W2 + h] * a
                res = out - state[B + n]
                L += 0.5 * res * res
                state[G + B2] += res
                for h in range(H):
                    a = state[S + h]
                    state[G + W2 + h] += res * a
                    dh = res * state[TH + W2 + h] * (1.0 - a * a)
                    state[G + B1 + h] += dh
                    for j in range(XW):
                        state[G + h * XW + j] += dh * state[A + n * XW + j]
            L *= INV_N
            for j in range(D):
                state[G + j] *= INV_N
            return L

    else:

        @jit
        def sample(state, key, base):
            # draws in counter order: s_j (kept in scratch while X is drawn); (u1, u2) of
            # each X[n, j] (row-major), then of each teacher w_j (in scratch while the
            # targets are made), then of each target's label noise
            u1 = 0.0
            for c in range(3 * D + 2 * N * D + 2 * N):
                u = uniform(key, STREAM_RESET, base + c)
                if c < D:
                    state[S + c] = math.sqrt(COND ** (-u))
                    continue
                if (c - D) % 2 == 0:
                    u1 = u
                    continue
                e = math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(TWO_PI * u)
                k = (c - D) // 2
                if k < N * D:
                    state[A + k] = state[S + k % D] * e
                elif k < N * D + D:
                    state[S + k - N * D] = e
                else:
                    n = k - N * D - D
                    acc = 0.0
                    for j in range(D):
                        acc += state[A + n * D + j] * state[S + j]
                    t = acc + LNOISE * e
                    if PROB == 1:
                        state[B + n] = t
                    else:
                        state[B + n] = 1.0 if t > 0.0 else -1.0

        @jit
        def loss_grad(state):
            """Loss at theta; the gradient into g."""
            L = 0.0
            for j in range(D):
                state[G + j] = 0.0
            for n in range(N):
                acc = 0.0
                for j in range(D):
                    acc += state[A + n * D + j] * state[TH + j]
                if PROB == 1:
                    res = acc - state[B + n]
                    L += 0.5 * res * res
                    coef = res
                else:
                    # softplus(-mrg) and its derivative -y * sigmoid(-mrg), both stable
                    mrg = state[B + n] * acc
                    e = math.exp(-abs(mrg))
                    L += max(-mrg, 0.0) + math.log1p(e)
                    sig = e / (1.0 + e) if mrg >= 0.0 else 1.0 / (1.0 + e)
                    coef = -state[B + n] * sig
                for j in range(D):
                    state[G + j] += coef * state[A + n * D + j]
            L *= INV_N
            for j in range(D):
                state[G + j] *= INV_N
            return L

    @jit
    def observe(state, key):
        """Loss, gradient (+ weight decay, + noise) and moments at theta, for optimizer step k."""
        L = loss_grad(state)
        if NOISE > 0.0:
            base = int(state[I_EP]) * STRIDE + int(state[I_K]) * 2 * D
            u1 = 0.0
            for c in range(2 * D):
                u = uniform(key, STREAM_ENV, base + c)
                if c % 2 == 0:
                    u1 = u
                else:
                    e = math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(TWO_PI * u)
                    state[G + c // 2] += NOISE * e
        for j in range(D):
            th = state[TH + j]
            if L2 > 0.0:
                L += 0.5 * L2 * th * th
                state[G + j] += L2 * th
            gj = state[G + j]
            state[M + j] = BETA1 * state[M + j] + (1.0 - BETA1) * gj
            state[V + j] = BETA2 * state[V + j] + (1.0 - BETA2) * gj * gj
        state[I_L] = L
        return L

    @jit
    def write_obs(state, obs):
        i = int(state[I_IDX])
        k = state[I_K]
        rms = math.sqrt(state[V + i] / (1.0 - BETA2 ** (k + 1.0)))
        mh = state[M + i] / (1.0 - BETA1 ** (k + 1.0))
        for f in range(8):  # the features, clipped to [-OBS_CLIP, OBS_CLIP]
            if f == 0:
                x = state[G + i] / (rms + EPS)
            elif f == 1:
                x = mh / (rms + EPS)
            elif f == 2:
                x = state[TH + i]
            elif f == 3:
                x = state[U + i] / SCALE
            elif f == 4:
                x = 0.25 * math.log10(rms + TINY)
            elif f == 5:
                x = 0.25 * (state[I_LNL0] - state[I_LNL])
            elif f == 6:
                x = state[I_LAST]
            else:
                x = k / K
            obs[f] = np.float32(min(max(x, -OBS_CLIP), OBS_CLIP))
        obs[8] = np.float32(1.0) if i == 0 else np.float32(0.0)

    @jit
    def reset(state, obs, key, episode):
        for j in range(D):
            state[TH + j] = 0.0
            state[M + j] = 0.0
            state[V + j] = 0.0
            state[U + j] = 0.0
        sample(state, key, episode * STRIDE)  # the mlp's initial theta too
        state[I_IDX] = 0.0
        state[I_K] = 0.0
        state[I_EP] = episode
        L = observe(state, key)
        fl = FLOOR * L + TINY
        state[I_L0] = L
        state[I_FLOOR] = fl
        lnl = math.log(L + fl)
        state[I_LNL0] = lnl
        state[I_LNL] = lnl
        state[I_LAST] = 0.0
        state[EL] = 0.0
        write_obs(state, obs)

    @jit
    def step(state, act, obs, key, t):
        a = np.float64(act[0])
        if a != a:
            a = 0.0
        a = min(max(a, -1.0), 1.0)
        i = int(state[I_IDX])
        state[U + i] = SCALE * a
        state[EL] = state[EL] + 1.0
        r = 0.0
        done = False
        if i < D - 1:
            state[I_IDX] = i + 1.0
        else:  # the last parameter: apply every update, then the new loss and gradient
            for j in range(D):
                state[TH + j] += state[U + j]
            k = state[I_K] + 1.0
            state[I_K] = k
            L = observe(state, key)
            lnl = math.log(L + state[I_FLOOR])
            r = state[I_LNL] - lnl
            state[I_LNL] = lnl
            state[I_LAST] = r
            state[I_IDX] = 0.0
            done = k >= K
        write_obs(state, obs)
        return r, False, done

    return reset, step


@twin_factory("srml/LearnedOptimizer-v0", build)
def learned_optimizer(
    problem: str = "quadratic",
    dim: int = 8,
    steps_per_problem: int = 20,
    noise: float = 0.0,
    label_noise: float = 0.0,
    n_data: int | None = None,
    rotations: int | None = None,
    condition: float = 1000.0,
    update_scale: float = 0.5,
    loss_floor: float = 1e-6,
    l2: float | None = None,
    hidden: int = 4,
):
    """Train one sampled problem per episode, one parameter per env step (module docstring)."""
    if problem not in PROBLEMS:
        raise ValueError(f"problem must be one of {PROBLEMS}, got {problem!r}")
    if int(dim) < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if int(steps_per_problem) < 1:
        raise ValueError(f"steps_per_problem must be >= 1, got {steps_per_problem}")
    for name, x in (("noise", noise), ("label_noise", label_noise)):
        if not float(x) >= 0.0:
            raise ValueError(f"{name} must be >= 0, got {x}")
    if n_data is not None and int(n_data) < 1:
        raise ValueError(f"n_data must be >= 1, got {n_data}")
    if rotations is not None and int(rotations) < 0:
        raise ValueError(f"rotations must be >= 0, got {rotations}")
    if not float(condition) >= 1.0:
        raise ValueError(f"condition must be >= 1, got {condition}")
    if not float(update_scale) > 0.0:
        raise ValueError(f"update_scale must be > 0, got {update_scale}")
    if int(hidden) < 1:
        raise ValueError(f"hidden must be >= 1, got {hidden}")
    if l2 is not None and not float(l2) >= 0.0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    if not 0.0 < float(loss_floor) < 1.0:
        raise ValueError(f"loss_floor must be in (0, 1), got {loss_floor}")
    z = sizes(problem, dim, n_data, rotations, hidden)
    if z.draws >= PROBLEM_STRIDE or int(steps_per_problem) * 2 * z.D >= PROBLEM_STRIDE:
        raise ValueError(
            f"problem too large for the counter scheme: {z.draws} draws per problem and "
            f"{int(steps_per_problem) * 2 * z.D} noise draws per episode must stay below "
            f"{PROBLEM_STRIDE}"
        )
    return dict(
        gym_id=None,
        state_dim=z.state_dim,
        obs_dim=OBS_DIM,
        act_dim=1,
        observation_space=spaces.Box(-OBS_CLIP, OBS_CLIP, shape=(OBS_DIM,), dtype=np.float32),
        action_space=spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32),
    )


class LearnedOptimizerTwinEnv(TwinEnv):
    factory = staticmethod(learned_optimizer)


class LearnedOptimizerTwinVectorEnv(TwinVectorEnv):
    factory = staticmethod(learned_optimizer)


# --------------------------------------------------------- numpy reference


def _normals(key, stream, counters) -> np.ndarray:
    c = np.asarray(counters, np.uint64)
    u1 = uniforms(key, stream, c)
    u2 = uniforms(key, stream, c + np.uint64(1))
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)


@dataclass
class Problem:
    """One sampled problem in plain numpy (the kernels' reference; used by srml.optimizers).

    ``loss(theta)``, ``grad(theta)`` exact; ``noisy_grad(theta, k)`` adds the gradient
    noise of optimizer step ``k`` that the env draws for the same (key, episode).
    """

    problem: str
    dim: int
    key: np.uint64
    episode: int
    noise: float
    l2: float = 0.0
    h: np.ndarray | None = None  # quadratic
    c: np.ndarray | None = None
    rot: np.ndarray | None = None  # (R, 4): p, q, cos, sin
    X: np.ndarray | None = None  # linreg/logreg/mlp
    y: np.ndarray | None = None
    teacher: np.ndarray | None = None
    hidden: int = 0  # mlp
    theta0: np.ndarray | None = None  # where optimization starts (0 but for the mlp)

    def __post_init__(self):
        if self.theta0 is None:
            self.theta0 = np.zeros(self.dim)

    def _mlp(self, theta, x):
        """Outputs (n,) and hidden activations (n, H) of a 1-hidden-layer tanh MLP."""
        H, Xw = self.hidden, x.shape[1]
        W1 = theta[: H * Xw].reshape(H, Xw)
        b1, w2, b2 = theta[H * Xw : H * Xw + H], theta[H * Xw + H : H * Xw + 2 * H], theta[-1]
        a = np.tanh(x @ W1.T + b1)
        return a @ w2 + b2, a

    def _rotate(self, z, inverse=False):
        z = z.copy()
        order = range(len(self.rot) - 1, -1, -1) if inverse else range(len(self.rot))
        for r in order:
            p, q, cs, sn = int(self.rot[r, 0]), int(self.rot[r, 1]), self.rot[r, 2], self.rot[r, 3]
            a, b = z[p], z[q]
            if inverse:
                z[p], z[q] = cs * a + sn * b, cs * b - sn * a
            else:
                z[p], z[q] = cs * a - sn * b, sn * a + cs * b
        return z

    def loss(self, theta) -> float:
        return self.loss_grad(theta)[0]

    def grad(self, theta) -> np.ndarray:
        return self.loss_grad(theta)[1]

    def loss_grad(self, theta):
        theta = np.asarray(theta, np.float64)
        if self.problem == "quadratic":
            z = self._rotate(theta - self.c)
            loss, g = 0.5 * float(np.sum(self.h * z * z)), self._rotate(self.h * z, inverse=True)
        elif self.problem == "mlp":
            H, Xw, n = self.hidden, self.X.shape[1], len(self.y)
            out, a = self._mlp(theta, self.X)
            res = out - self.y
            w2 = theta[H * Xw + H : H * Xw + 2 * H]
            dh = res[:, None] * w2 * (1 - a * a)  # (n, H)
            g = np.concatenate([(dh.T @ self.X).ravel(), dh.sum(0), res @ a, [res.sum()]]) / n
            loss = 0.5 * float(res @ res) / n
        else:
            a = self.X @ theta
            n = len(self.y)
            if self.problem == "linreg":
                res = a - self.y
                loss, g = 0.5 * float(res @ res) / n, self.X.T @ res / n
            else:
                mrg = self.y * a
                loss = float(np.logaddexp(0.0, -mrg).mean())
                g = self.X.T @ (-self.y / (1.0 + np.exp(mrg))) / n
        if self.l2 > 0:
            loss += 0.5 * self.l2 * float(theta @ theta)
            g = g + self.l2 * theta
        return loss, g

    def noisy_grad(self, theta, k: int) -> tuple[float, np.ndarray]:
        """Loss and gradient at optimizer step k, with the env's gradient noise."""
        loss, g = self.loss_grad(theta)
        if self.noise > 0:
            base = self.episode * PROBLEM_STRIDE + k * 2 * self.dim
            g = g + self.noise * _normals(self.key, STREAM_ENV, base + 2 * np.arange(self.dim))
        return loss, g


def sample_problem(key, episode: int, **kwargs) -> Problem:
    """The problem the env samples for lane key ``key`` in episode ``episode`` (numpy)."""
    p = learned_optimizer(**kwargs).params  # validated, defaults filled in
    z = sizes(p["problem"], p["dim"], p["n_data"], p["rotations"], p["hidden"])
    D, N, R, Xw, H = z.D, z.N, z.R, z.X, z.H
    key = np.uint64(key)
    base = np.uint64(int(episode) * PROBLEM_STRIDE)
    cond = float(p["condition"])
    out = Problem(
        p["problem"], D, key, int(episode), float(p["noise"]), resolve_l2(p["problem"], p["l2"])
    )

    def u(c):
        return uniforms(key, STREAM_RESET, base + np.asarray(c, np.uint64))

    def nrm(c):
        return _normals(key, STREAM_RESET, base + np.asarray(c, np.uint64))

    j = np.arange(D)
    if p["problem"] == "quadratic":
        out.h = cond ** -u(j)
        out.c = nrm(D + 2 * j)
        rot = np.zeros((R, 4))
        for r in range(R):
            c = 3 * D + 3 * r
            pp = int(np.floor(u(c) * D))
            qq = (pp + 1 + int(np.floor(u(c + 1) * (D - 1)))) % D
            ang = 2.0 * np.pi * u(c + 2)
            rot[r] = pp, qq, np.cos(ang), np.sin(ang)
        out.rot = rot
    elif p["problem"] == "mlp":
        s = np.sqrt(cond ** -u(np.arange(Xw)))
        k = np.arange(N * Xw + D + N + D)
        e = nrm(Xw + 2 * k)
        out.X = s * e[: N * Xw].reshape(N, Xw)
        out.teacher = e[N * Xw : N * Xw + D]
        out.hidden = H
        out.y = out._mlp(out.teacher, out.X)[0] + float(p["label_noise"]) * e[N * Xw + D : -D]
        init = e[-D:].copy()
        init[: H * Xw] /= np.sqrt(Xw)
        init[H * Xw : H * Xw + H] = 0.0
        init[H * Xw + H : H * Xw + 2 * H] /= np.sqrt(H)
        init[-1] = 0.0
        out.theta0 = init
    else:
        s = np.sqrt(cond ** -u(j))
        n = np.arange(N)
        out.X = s * nrm(D + 2 * (n[:, None] * D + j[None, :]))
        out.teacher = nrm(D + 2 * N * D + 2 * j)
        t = out.X @ out.teacher + float(p["label_noise"]) * nrm(3 * D + 2 * N * D + 2 * n)
        out.y = t if p["problem"] == "linreg" else np.where(t > 0, 1.0, -1.0)
    return out
