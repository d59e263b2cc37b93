"""Self-referential weight matrices (after Irie et al. 2022), numpy reference.

One head of one layer, input x (d_in):

    [y, k, q, b] = W x                W: (d_out + 2 d_in + n_beta) x d_in
    pk, pq = softmax(k), softmax(q)
    W <- W + sigmoid(b) * outer(W pq - W pk, pk)

``y`` comes from the weights before the update. With ``beta="single"`` (the
default) one learning rate scales the whole update; with ``beta="per_block"``
there are four, one for each row block (y, k, q, b), as in IDSIA's
modern-srwm. Layers stack with tanh between them; a layer with H heads is a
block-diagonal W: head h reads the h-th slice of the layer input and writes
the h-th slice of its output. Widths are padded with zeros up to a multiple
of H.

Input normalisation (``Codec.input_norm``, ``--input-norm``) acts on the first
layer's input only, on its first c entries: what comes from the environment and
the agent's history, [observation, previous action, previous reward, episode
flag]. ``layer``: (x - mean) / sqrt(var + 1e-5) over those c entries (biased
variance, float32, no learned gain or bias); ``softmax``: their softmax. The
constant-1 bias input, the noise inputs and the zero padding after them are
left as they are. ``none`` (the default) changes nothing. Hidden layers keep
their tanh.

Everything here is batched over the population: a genome is one flat
float32 vector, and :class:`Layout` gives named views of a ``(B, G)`` block.
This module is the reference every compiled backend is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from . import rng
from .errors import SrmlError

BETAS = {"single": 1, "per_block": 4}
UPDATES = ("delta", "tanh")
INPUT_NORMS = ("none", "layer", "softmax")
LAYER_NORM_EPS = 1e-5


@dataclass(frozen=True)
class LayerShape:
    heads: int
    head_in: int  # columns of one head's W (its slice of the layer input)
    head_out: int  # y rows of one head
    n_beta: int
    offset: int  # where this layer starts in the genome

    @property
    def rows(self) -> int:
        return self.head_out + 2 * self.head_in + self.n_beta

    @property
    def d_in(self) -> int:
        return self.heads * self.head_in

    @property
    def d_out(self) -> int:
        return self.heads * self.head_out

    @property
    def size(self) -> int:
        return self.heads * self.rows * self.head_in


def _ceil_to(n: int, m: int) -> int:
    return -(-n // m) * m


class Layout:
    """Where each layer's weights live in the flat genome.

    Layer l is stored as ``(heads, rows, head_in)`` in C order, so
    ``view(genomes)[l]`` is a ``(B, heads, rows, head_in)`` view, no copy.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        hidden: tuple[int, ...] = (),
        heads: int = 1,
        beta="single",
        update: str = "delta",
        sample_keys: bool = False,
        y_blind: tuple[int, int] = (0, 0),
    ):
        if heads < 1:
            raise SrmlError(f"heads must be >= 1, got {heads}")
        if beta not in BETAS:
            raise SrmlError(f"unknown beta {beta!r}; choose from {sorted(BETAS)}")
        if update not in UPDATES:
            raise SrmlError(f"unknown update {update!r}; choose from {', '.join(UPDATES)}")
        self.update, self.sample_keys = update, bool(sample_keys)
        # input positions [lo, hi) the first layer's y rows do not read (noise inputs that
        # only reach the self-modification: keys, queries, learning rates)
        self.y_blind = (int(y_blind[0]), int(y_blind[1]))
        for h in hidden:
            if h < 1 or h % heads:
                raise SrmlError(f"hidden width {h} must be a positive multiple of heads={heads}")
        self.d_in, self.d_out, self.hidden, self.heads, self.beta = d_in, d_out, hidden, heads, beta
        widths = [_ceil_to(d_in, heads), *hidden, _ceil_to(d_out, heads)]
        self.layers: list[LayerShape] = []
        offset = 0
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layer = LayerShape(heads, a // heads, b // heads, BETAS[beta], offset)
            self.layers.append(layer)
            offset += layer.size
        self.size = offset

    @property
    def padded_in(self) -> int:
        return self.layers[0].d_in

    def views(self, genomes: np.ndarray) -> list[np.ndarray]:
        """Named views ``(B, heads, rows, head_in)`` of a ``(B, G)`` genome block."""
        b = genomes.shape[0]
        return [
            genomes[:, L.offset : L.offset + L.size].reshape(b, L.heads, L.rows, L.head_in)
            for L in self.layers
        ]

    def init(self, rng: np.random.Generator, n: int, std: float) -> np.ndarray:
        """``n`` random genomes, entries N(0, std^2), float32."""
        return (std * rng.standard_normal((n, self.size))).astype(np.float32)

    def describe(self) -> str:
        shapes = ", ".join(f"{L.heads}x({L.rows}x{L.head_in})" for L in self.layers)
        extra = f", update={self.update}" + (", sampled keys" if self.sample_keys else "")
        return (
            f"SRWM {len(self.layers)} layer(s) [{shapes}], beta={self.beta}{extra}, "
            f"genome {self.size}"
        )

    @property
    def key_slots(self) -> int:
        """Random numbers one step draws for sampled keys: one per head of every layer."""
        return sum(L.heads for L in self.layers) if self.sample_keys else 0


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def normalize_inputs(z: np.ndarray, kind: str) -> np.ndarray:
    """``z`` (B, c) float32 normalised along its last axis: ``layer`` (z - mean) /
    sqrt(var + 1e-5) (biased variance), ``softmax`` softmax(z), ``none`` z itself.
    float32 arithmetic, as the compiled kernels do it."""
    z = np.asarray(z, np.float32)
    if kind == "layer":
        c = np.float32(z.shape[-1])
        d = z - z.sum(-1, keepdims=True) / c
        var = (d * d).sum(-1, keepdims=True) / c
        return d / np.sqrt(var + np.float32(LAYER_NORM_EPS))
    if kind == "softmax":
        return softmax(z)
    return z


def sigmoid(z: np.ndarray) -> np.ndarray:
    # the tanh form never overflows (1 / (1 + exp(-z)) does for z << 0)
    return 0.5 + 0.5 * np.tanh(0.5 * z)


def sample_index(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn from probabilities p (..., n) with uniforms u (...): the number of
    cumulative sums below u (clipped: rounding may leave the last sum below 1)."""
    c = np.cumsum(p, axis=-1)
    idx = (c < u[..., None].astype(np.float32)).sum(-1)
    return np.minimum(idx, p.shape[-1] - 1)


def layer_step(
    W: np.ndarray, x: np.ndarray, L: LayerShape, active=None, update="delta", u=None,
    y_blind=(0, 0),
) -> np.ndarray:  # fmt: skip
    """One self-referential step of one layer, batched.

    W: (B, H, rows, head_in), updated in place (only where ``active``).
    x: (B, H * head_in). Returns y: (B, H * head_out), read before the update.
    ``update="tanh"`` squashes the values written: W += lr (tanh(W pq) - tanh(W pk)) pk^T,
    which (unlike W pq - W pk) can leave the column space of W.
    ``u`` (B, H): uniforms for sampled keys; pk becomes one-hot at an index drawn from
    softmax(k) (the write goes to one column, chosen at random with odds the network sets).
    ``y_blind`` (lo, hi): input positions the y rows do not read.
    """
    b = x.shape[0]
    xh = x.reshape(b, L.heads, L.head_in)
    out = np.einsum("bhrd,bhd->bhr", W, xh)
    o, i = L.head_out, L.head_in
    y = out[..., :o]
    if y_blind[1] > y_blind[0]:
        xy = x.copy()
        xy[:, y_blind[0] : y_blind[1]] = 0
        y = np.einsum("bhrd,bhd->bhr", W[..., :o, :], xy.reshape(b, L.heads, L.head_in))
    pk = softmax(out[..., o : o + i])
    pq = softmax(out[..., o + i : o + 2 * i])
    if u is not None:
        hot = sample_index(pk, u)  # (B, H)
        pk = np.zeros_like(pk)
        np.put_along_axis(pk, hot[..., None], np.float32(1.0), axis=-1)
    lr = sigmoid(out[..., o + 2 * i :])  # (B, H, n_beta)
    if L.n_beta > 1:  # one rate per row block: y, k, q, b
        lr = np.repeat(lr, [o, i, i, L.n_beta], axis=-1)
    if active is not None:
        lr = lr * active[:, None, None]
    if update == "tanh":
        dv = np.tanh(np.einsum("bhrd,bhd->bhr", W, pq)) - np.tanh(np.einsum("bhrd,bhd->bhr", W, pk))
    else:
        dv = np.einsum("bhrd,bhd->bhr", W, pq - pk)  # W pq - W pk
    W += (lr * dv)[..., None] * pk[..., None, :]
    return y.reshape(b, L.d_out)


def forward(
    views: list[np.ndarray], layout: Layout, x: np.ndarray, active=None, u=None
) -> np.ndarray:
    """Run the whole network one step; every layer rewrites itself.

    ``u`` (B, layout.key_slots): uniforms for sampled keys, layer by layer, head by head.
    """
    h = x
    slot = 0
    for n, (W, L) in enumerate(zip(views, layout.layers, strict=True)):
        if n:
            h = np.tanh(h)
        uh = None
        if layout.sample_keys:
            uh = u[:, slot : slot + L.heads]
            slot += L.heads
        h = layer_step(W, h, L, active, layout.update, uh, layout.y_blind if n == 0 else (0, 0))
    return h[:, : layout.d_out]


# --- input encoding and output decoding -------------------------------------------------------

Spaces = gym.spaces
LEAVES = (Spaces.Box, Spaces.Discrete, Spaces.MultiDiscrete, Spaces.MultiBinary)
SUPPORTED = "Box, Discrete, MultiDiscrete, MultiBinary and Tuple/Dict of them"


def leaves(space: gym.Space, what: str) -> list[tuple[tuple, gym.Space]]:
    """(path, leaf space) in ``gymnasium.spaces.flatten``'s order: Tuple by position, Dict by
    its keys' order; anything else is refused in one line naming the space."""
    if isinstance(space, Spaces.Tuple):
        return [((i, *p), leaf) for i, sub in enumerate(space.spaces) for p, leaf in
                leaves(sub, what)]  # fmt: skip
    if isinstance(space, Spaces.Dict):
        return [((k, *p), leaf) for k, sub in space.spaces.items() for p, leaf in
                leaves(sub, what)]  # fmt: skip
    if isinstance(space, LEAVES):
        return [((), space)]
    raise SrmlError(f"unsupported {what} space {space}: srml supports {SUPPORTED}")


def _get(value, path: tuple):
    for k in path:
        value = value[k]
    return value


def _batched_leaf(space: gym.Space, b: int) -> gym.Space:
    """A leaf space whose one sample is a batch of ``b`` samples of ``space``, in the form
    ``gymnasium.spaces.flatten`` turns into b rows of ``flatdim(space)`` one after another
    (``batch_space`` would turn MultiDiscrete into a Box, which flatten does not one-hot)."""
    if isinstance(space, Spaces.Discrete):
        return Spaces.MultiDiscrete(np.full(b, space.n), start=np.full(b, space.start))
    if isinstance(space, Spaces.MultiDiscrete):
        return Spaces.MultiDiscrete(
            np.broadcast_to(space.nvec, (b, *space.nvec.shape)),
            start=np.broadcast_to(space.start, (b, *space.nvec.shape)),
        )
    if isinstance(space, Spaces.MultiBinary):
        return Spaces.MultiBinary((b, *np.atleast_1d(space.n)))
    return space  # Box: flatten is a ravel, any leading batch size works


def _in_range(space: gym.Space, v: np.ndarray) -> np.ndarray:
    """Per lane: do the values of a discrete leaf lie in it? (flatten would alias others.)"""
    if isinstance(space, Spaces.Discrete):
        return (v >= space.start) & (v < space.start + space.n)
    if isinstance(space, Spaces.MultiDiscrete):
        ok = (v >= space.start) & (v < space.start + space.nvec)
        return ok.reshape(len(v), -1).all(1)
    if isinstance(space, Spaces.MultiBinary):
        return ((v == 0) | (v == 1)).reshape(len(v), -1).all(1)
    return np.ones(len(v), bool)


class Codec:
    """Maps env observations to network inputs and network outputs to actions.

    Input x = [observation, previous action, previous reward, episode-start flag, 1,
    K noise inputs], zero-padded to the network's width. The noise inputs are uniforms in
    [-1, 1) from their own stream of :mod:`srml.rng`; the network's weights decide what they
    do. ``input_norm`` (``none``, ``layer`` or ``softmax``) normalises the first
    :attr:`normed` entries, everything before the constant 1 (see the module docstring);
    the 1, the noise and the padding stay as they are. The observation and the previous
    action are
    flattened as ``gymnasium.spaces.flatten`` does (Box: its values; Discrete and
    MultiDiscrete: one-hot per component; MultiBinary: its bits; Tuple and Dict: their parts
    in order). A discrete observation outside its space is refused (one line naming the env's
    value), never aliased into a neighbouring input. Before the first step there is no
    previous action (zeros).

    Outputs, one group per action component: Discrete(n, start) and each MultiDiscrete
    component take n logits, sampled from their softmax (or argmax), plus ``start``;
    MultiBinary takes one logit per bit, the bit is 1 with probability sigmoid(logit) (or
    logit > 0): independent bits need no more than that. Box takes one output per value,
    squashed into the bounds with tanh (left as it is where unbounded). Tuple and Dict
    actions are their parts. Random draws come from the counter-based RNG, one per sampled
    component, component j of step t at counter ``t * draws + j`` (a plain Discrete: ``t``).
    """

    def __init__(
        self,
        obs_space: gym.Space,
        act_space: gym.Space,
        reward_input: bool = True,
        episode_flag: bool = True,
        noise_inputs: int = 0,
        input_norm: str = "none",
        noise_hold: int = 1,
    ):
        if input_norm not in INPUT_NORMS:
            raise SrmlError(
                f"unknown input_norm {input_norm!r}; choose from {', '.join(INPUT_NORMS)}"
            )
        self.obs_space, self.act_space = obs_space, act_space
        self.obs_leaves = leaves(obs_space, "observation")
        self.act_leaves = leaves(act_space, "action")
        self.obs_dim = int(Spaces.flatdim(obs_space))
        self.act_dim = int(Spaces.flatdim(act_space))  # outputs = previous-action inputs
        self.discrete_obs = isinstance(obs_space, Spaces.Discrete)
        self.discrete_act = isinstance(act_space, Spaces.Discrete)
        self.box_act = isinstance(act_space, Spaces.Box)
        self.reward_input, self.episode_flag = reward_input, episode_flag
        self.noise_inputs = int(noise_inputs)
        if noise_hold < 0:
            raise SrmlError(f"noise_hold must be >= 0 (0: once per lifetime), got {noise_hold}")
        self.noise_hold = int(noise_hold)
        self.d_in = (
            self.obs_dim + self.act_dim + int(reward_input) + int(episode_flag) + 1
            + self.noise_inputs
        )  # fmt: skip
        self.input_norm = input_norm
        # entries [0, normed) of x come from the env and the agent's history (input_norm's part)
        self.normed = self.d_in - 1 - self.noise_inputs
        self.draws = sum(_draws(leaf) for _, leaf in self.act_leaves)
        # Box bounds over all outputs (nan-free; ``bounded`` False elsewhere), as the compiled
        # kernels of srml's twins read them
        low, high = np.zeros(self.act_dim), np.zeros(self.act_dim)
        bounded = np.zeros(self.act_dim, bool)
        c = 0
        for _, leaf in self.act_leaves:
            k = int(Spaces.flatdim(leaf))
            if isinstance(leaf, Spaces.Box):
                lo = leaf.low.astype(np.float64).ravel()
                hi = leaf.high.astype(np.float64).ravel()
                ok = np.isfinite(lo) & np.isfinite(hi)
                bounded[c : c + k], low[c : c + k], high[c : c + k] = ok, np.where(ok, lo, 0.0), \
                    np.where(ok, hi, 0.0)  # fmt: skip
            c += k
        self.bounded, self.low, self.high = bounded, low, high
        self._batched: dict = {}

    # --- observations ---------------------------------------------------------------------
    def flat_obs(self, obs, b: int) -> np.ndarray:
        """(b, obs_dim) float32: ``gymnasium.spaces.flatten`` of each lane's observation."""
        parts = []
        for path, leaf in self.obs_leaves:
            v = _get(obs, path)
            if isinstance(leaf, Spaces.Box):
                parts.append(np.asarray(v, np.float32).reshape(b, -1))
                continue
            v = np.asarray(v).reshape((b, *leaf.shape))
            ok = _in_range(leaf, v)
            if not ok.all():
                lane = int(np.flatnonzero(~ok)[0])
                where = "".join(f"[{k!r}]" for k in path)
                raise SrmlError(
                    f"the env returned observation{where} {v[lane].tolist()!r}, outside its "
                    f"space {leaf}"
                )
            space = self._batched_space(leaf, b)
            parts.append(Spaces.flatten(space, v.astype(np.int64)).reshape(b, -1))
        if len(parts) == 1:
            return parts[0].astype(np.float32, copy=False)
        return np.concatenate(parts, axis=1).astype(np.float32)

    def _batched_space(self, leaf, b):
        key = (id(leaf), b)
        if key not in self._batched:
            self._batched[key] = _batched_leaf(leaf, b)
        return self._batched[key]

    def encode(self, obs, prev_act, prev_reward, first, width: int, noise=None) -> np.ndarray:
        """x (B, width) float32 from batched obs, previous-action features (:meth:`features`,
        zeros before the first step), previous rewards, episode-start flags and ``noise``
        (B, noise_inputs); the first :attr:`normed` entries normalised as ``input_norm``
        says."""
        b = len(first)
        x = np.zeros((b, width), np.float32)
        o, a = self.obs_dim, self.act_dim
        x[:, :o] = self.flat_obs(obs, b)
        x[:, o : o + a] = prev_act
        c = o + a
        if self.reward_input:
            x[:, c] = prev_reward
            c += 1
        if self.episode_flag:
            x[:, c] = first
            c += 1
        if self.input_norm != "none":  # x[:, :c]: everything before the constant 1
            x[:, :c] = normalize_inputs(x[:, :c], self.input_norm)
        x[:, c] = 1.0
        if self.noise_inputs:
            x[:, c + 1 : c + 1 + self.noise_inputs] = noise
        return x

    def noise_draw(self, step: int) -> int:
        """Which draw of the noise inputs step ``step`` reads: ``step // noise_hold``
        (0 for every step when ``noise_hold`` is 0: one draw per lifetime); the inputs of
        draw ``d`` are counters ``d * noise_inputs + j`` of ``rng.STREAM_NOISE``."""
        return step // self.noise_hold if self.noise_hold else 0

    def noise(self, keys: np.ndarray, step: int):
        """(B, noise_inputs) noise inputs 2u - 1 of step ``step`` for the lanes keyed ``keys``
        (draw :meth:`noise_draw`), or None without noise inputs."""
        if not self.noise_inputs:
            return None
        u = rng.step_uniforms(keys, rng.STREAM_NOISE, self.noise_draw(step), self.noise_inputs)
        return 2.0 * u - 1.0

    # --- actions --------------------------------------------------------------------------
    def uniforms(self, keys: np.ndarray, step: int) -> np.ndarray:
        """(B, draws) uniforms for step ``step`` of the lanes keyed ``keys``."""
        if self.draws == 1:  # a plain Discrete: counter = step, as the compiled kernels draw
            return rng.uniforms(keys, rng.STREAM_ACTION, step)[:, None]
        j = np.arange(self.draws)
        return rng.uniforms(keys[:, None], rng.STREAM_ACTION, step * self.draws + j[None, :])

    def decode(self, y: np.ndarray, u, sample: bool):
        """Batched actions (the form a vector env takes) from outputs y (B, act_dim) and
        uniforms u (B, draws) (or (B,) when there is one draw)."""
        b = len(y)
        if u is not None:
            u = np.asarray(u).reshape(b, -1)
        values, c, d = [], 0, 0
        for _, leaf in self.act_leaves:
            k, n = int(Spaces.flatdim(leaf)), _draws(leaf)
            ud = None if u is None else u[:, d : d + n]
            values.append(self._decode_leaf(leaf, y[:, c : c + k], ud, sample, c))
            c, d = c + k, d + n
        return self._assemble(self.act_space, iter(values))

    def _decode_leaf(self, leaf, y, u, sample, c):
        b = len(y)
        if isinstance(leaf, Spaces.Box):
            a = y.astype(np.float64)
            lo, hi, ok = (v[c : c + y.shape[1]] for v in (self.low, self.high, self.bounded))
            a = np.where(ok, lo + (np.tanh(a) + 1.0) * 0.5 * (hi - lo), a)
            return a.reshape((b, *leaf.shape)).astype(leaf.dtype)
        if isinstance(leaf, Spaces.MultiBinary):
            if sample:
                bits = u < sigmoid(y.astype(np.float64))
            else:
                bits = y > 0
            return bits.reshape((b, *np.atleast_1d(leaf.n))).astype(leaf.dtype)
        if isinstance(leaf, Spaces.Discrete):
            idx = _categorical(y, None if u is None else u[:, 0], sample)
            return (idx + int(leaf.start)).astype(np.int64)
        nvec = leaf.nvec.ravel()  # MultiDiscrete: one categorical per component
        out, c0 = np.empty((b, len(nvec)), np.int64), 0
        for j, n in enumerate(nvec):
            out[:, j] = _categorical(y[:, c0 : c0 + n], None if u is None else u[:, j], sample)
            c0 += n
        return (out.reshape((b, *leaf.nvec.shape)) + leaf.start).astype(leaf.dtype)

    def _assemble(self, space, values):
        if isinstance(space, Spaces.Tuple):
            return tuple(self._assemble(s, values) for s in space.spaces)
        if isinstance(space, Spaces.Dict):
            return {k: self._assemble(s, values) for k, s in space.spaces.items()}
        return next(values)

    def features(self, actions, b: int | None = None) -> np.ndarray:
        """(B, act_dim) float32: what the network sees of its previous actions
        (``gymnasium.spaces.flatten`` of each lane's action)."""
        if self.discrete_act:  # the common case, vectorised (equal to flatten: tested)
            a = np.asarray(actions, np.int64) - int(self.act_space.start)
            x = np.zeros((len(a), self.act_dim), np.float32)
            x[np.arange(len(a)), a] = 1.0
            return x
        if self.box_act:
            a = np.asarray(actions, np.float32)
            return a.reshape(len(a), -1)
        first = np.asarray(_get(actions, self.act_leaves[0][0]))
        return self._flatten_actions(actions, len(first))

    def _flatten_actions(self, value, b: int) -> np.ndarray:
        parts = []
        for path, leaf in self.act_leaves:
            v = np.asarray(_get(value, path))
            if isinstance(leaf, Spaces.Box):
                parts.append(v.astype(np.float32).reshape(b, -1))
            else:
                space = self._batched_space(leaf, b)
                parts.append(Spaces.flatten(space, v.astype(np.int64)).reshape(b, -1))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def no_action(self, b: int) -> np.ndarray:
        """The 'previous action' features before the first step: none (all zeros)."""
        return np.zeros((b, self.act_dim), np.float32)

    def recorded(self, actions) -> np.ndarray:
        """Actions as a backend's trace keeps them: as they are for Discrete and Box, their
        features for the other spaces (one array, whatever the structure)."""
        if self.discrete_act or self.box_act:
            return actions
        return self.features(actions)

    # --- one observation / action (an Agent) ------------------------------------------------
    def batch_one(self, obs, space=None):
        """A single observation as a batch of one, in the vector env's form."""
        space = self.obs_space if space is None else space
        if isinstance(space, Spaces.Tuple):
            return tuple(self.batch_one(v, s) for v, s in zip(obs, space.spaces, strict=True))
        if isinstance(space, Spaces.Dict):
            return {k: self.batch_one(obs[k], s) for k, s in space.spaces.items()}
        return np.asarray(obs)[None]

    def unbatch(self, actions, lane: int = 0, space=None):
        """Lane ``lane``'s action from batched ones, as a single env takes it."""
        space = self.act_space if space is None else space
        if isinstance(space, Spaces.Tuple):
            return tuple(self.unbatch(a, lane, s) for a, s in zip(actions, space.spaces,
                                                                    strict=True))  # fmt: skip
        if isinstance(space, Spaces.Dict):
            return {k: self.unbatch(actions[k], lane, s) for k, s in space.spaces.items()}
        if isinstance(space, Spaces.Discrete):
            return int(actions[lane])
        return actions[lane]


def _draws(leaf: gym.Space) -> int:
    """Uniforms a leaf takes per step when sampling."""
    if isinstance(leaf, Spaces.Discrete):
        return 1
    if isinstance(leaf, Spaces.MultiDiscrete):
        return int(leaf.nvec.size)
    if isinstance(leaf, Spaces.MultiBinary):
        return int(np.prod(leaf.n))
    return 0


def _categorical(y: np.ndarray, u, sample: bool) -> np.ndarray:
    """Indices from logits y (B, n): sampled from softmax(y) with uniforms u (B,), or argmax.
    float32 arithmetic, as the compiled kernels do it."""
    if not sample:
        return y.argmax(-1)
    return sample_index(softmax(y), u)
