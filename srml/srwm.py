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

Everything here is batched over the population: a genome is one flat
float32 vector, and :class:`Layout` gives named views of a ``(B, G)`` block.
This module is the reference every compiled backend is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from .errors import SrmlError

BETAS = {"single": 1, "per_block": 4}
UPDATES = ("delta", "tanh")


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


def _space_dim(space: gym.Space, what: str) -> int:
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    raise SrmlError(f"unsupported {what} space {space}: srml supports Box and Discrete {what}s")


class Codec:
    """Maps env observations to network inputs and network outputs to actions.

    Input x = [observation, previous action, previous reward, episode-start
    flag, 1, K noise inputs], zero-padded to the network's width. The noise
    inputs are uniforms in [-1, 1) from their own stream of :mod:`srml.rng`
    (:func:`noise`); the network's weights decide what they do. Box observations are
    flattened, Discrete ones one-hot; the previous action is one-hot for
    Discrete and the raw values for Box. Discrete actions come from the
    logits (sampled from their softmax, or argmax); Box actions are squashed
    into the space's bounds with tanh (left as they are where unbounded).
    """

    def __init__(
        self,
        obs_space: gym.Space,
        act_space: gym.Space,
        reward_input: bool = True,
        episode_flag: bool = True,
        noise_inputs: int = 0,
    ):
        self.obs_space, self.act_space = obs_space, act_space
        self.obs_dim = _space_dim(obs_space, "observation")
        self.act_dim = _space_dim(act_space, "action")
        self.discrete_obs = isinstance(obs_space, gym.spaces.Discrete)
        self.discrete_act = isinstance(act_space, gym.spaces.Discrete)
        self.reward_input, self.episode_flag = reward_input, episode_flag
        self.noise_inputs = int(noise_inputs)
        self.d_in = (
            self.obs_dim + self.act_dim + int(reward_input) + int(episode_flag) + 1
            + self.noise_inputs
        )  # fmt: skip
        if not self.discrete_act:
            low = act_space.low.astype(np.float64).ravel()
            high = act_space.high.astype(np.float64).ravel()
            self.bounded = np.isfinite(low) & np.isfinite(high)
            self.low = np.where(self.bounded, low, 0.0)
            self.high = np.where(self.bounded, high, 0.0)

    def encode(self, obs, prev_act, prev_reward, first, width: int, noise=None) -> np.ndarray:
        """x (B, width) float32 from batched obs, previous actions/rewards, flags and
        ``noise`` (B, noise_inputs)."""
        b = len(first)
        x = np.zeros((b, width), np.float32)
        o, a = self.obs_dim, self.act_dim
        if self.discrete_obs:
            x[np.arange(b), np.asarray(obs, np.int64) - int(self.obs_space.start)] = 1.0
        else:
            x[:, :o] = np.asarray(obs, np.float32).reshape(b, o)
        if self.discrete_act:
            prev_act = np.asarray(prev_act, np.int64)
            has = np.flatnonzero(prev_act >= 0)  # -1: no action yet
            x[has, o + prev_act[has]] = 1.0
        else:
            x[:, o : o + a] = np.asarray(prev_act, np.float32).reshape(b, a)
        c = o + a
        if self.reward_input:
            x[:, c] = prev_reward
            c += 1
        if self.episode_flag:
            x[:, c] = first
            c += 1
        x[:, c] = 1.0
        if self.noise_inputs:
            x[:, c + 1 : c + 1 + self.noise_inputs] = noise
        return x

    def decode(self, y: np.ndarray, u: np.ndarray, sample: bool) -> np.ndarray:
        """Actions from outputs y (B, act_dim); u (B,) uniforms for sampling."""
        if self.discrete_act:
            if sample:
                idx = sample_index(softmax(y), u)
            else:
                idx = y.argmax(-1)
            return idx.astype(np.int64)
        a = y.astype(np.float64)
        squashed = self.low + (np.tanh(a) + 1.0) * 0.5 * (self.high - self.low)
        a = np.where(self.bounded, squashed, a)
        return a.reshape((len(y), *self.act_space.shape)).astype(self.act_space.dtype)

    def no_action(self, b: int) -> np.ndarray:
        """The 'previous action' before the first step: none (all zeros)."""
        if self.discrete_act:
            return np.full(b, -1, np.int64)
        return np.zeros((b, self.act_dim), np.float32)
