"""The numpy SRWM reference against a direct, one-agent transcription of the equations."""

import gymnasium as gym
import numpy as np
import pytest

from srml.errors import SrmlError
from srml.srwm import Codec, Layout, forward


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def one_agent_step(W, x, d_out, beta="single"):
    """DESIGN.md, literally: [y, k, q, b] = W x; W <- W + sigmoid(b) outer(W pq - W pk, pk)."""
    d_in = len(x)
    out = W @ x
    y, k, q = out[:d_out], out[d_out : d_out + d_in], out[d_out + d_in : d_out + 2 * d_in]
    b = out[d_out + 2 * d_in :]
    pk, pq = _softmax(k), _softmax(q)
    lr = 1 / (1 + np.exp(-b))
    if beta == "per_block":
        lr = np.repeat(lr, [d_out, d_in, d_in, 4])[:, None]
    W_new = W + lr * np.outer(W @ pq - W @ pk, pk)
    return y, W_new


@pytest.mark.parametrize("beta", ["single", "per_block"])
def test_reference_matches_one_agent_transcription(beta):
    rng = np.random.default_rng(0)
    d_in, d_out, B, T = 7, 3, 5, 40
    layout = Layout(d_in, d_out, beta=beta)
    genomes = layout.init(rng, B, 0.5)
    Ws = [g.reshape(layout.layers[0].rows, d_in).astype(np.float64) for g in genomes.copy()]
    views = layout.views(genomes)
    for _ in range(T):
        x = rng.standard_normal((B, d_in)).astype(np.float32)
        y = forward(views, layout, x)
        for i in range(B):
            y_ref, Ws[i] = one_agent_step(Ws[i], x[i].astype(np.float64), d_out, beta)
            np.testing.assert_allclose(y[i], y_ref, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(views[0][i, 0], Ws[i], rtol=1e-4, atol=1e-5)


def test_heads_are_block_diagonal_and_layers_stack():
    rng = np.random.default_rng(1)
    d_in, d_out, H = 5, 3, 2  # padded to 6 inputs, 4 outputs
    layout = Layout(d_in, d_out, hidden=(4,), heads=H)
    assert layout.padded_in == 6 and layout.layers[-1].d_out == 4
    g = layout.init(rng, 1, 0.5)
    W = [w[0].astype(np.float64).copy() for w in layout.views(g.copy())]  # (H, rows, head_in)
    views = layout.views(g)
    for _ in range(10):
        x = np.zeros((1, 6), np.float32)
        x[0, :d_in] = rng.standard_normal(d_in)
        y = forward(views, layout, x)
        h = x[0].astype(np.float64)
        for n, L in enumerate(layout.layers):
            if n:
                h = np.tanh(h)
            outs = []
            for k in range(H):
                yk, W[n][k] = one_agent_step(
                    W[n][k], h[k * L.head_in : (k + 1) * L.head_in], L.head_out
                )
                outs.append(yk)
            h = np.concatenate(outs)
        np.testing.assert_allclose(y[0], h[:d_out], rtol=1e-4, atol=1e-5)


def test_inactive_lanes_keep_their_weights():
    layout = Layout(4, 2)
    g = layout.init(np.random.default_rng(2), 3, 0.5)
    before = g.copy()
    forward(layout.views(g), layout, np.ones((3, 4), np.float32), active=np.array([1.0, 0.0, 1.0]))
    assert np.array_equal(g[1], before[1]) and not np.array_equal(g[0], before[0])


def test_codec_encodes_inputs_in_order():
    c = Codec(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(3))
    assert c.d_in == 2 + 3 + 1 + 1 + 1
    prev = np.concatenate([c.features(np.array([2])), c.no_action(1)])  # lane 1: no action yet
    x = c.encode(np.array([[0.5, -0.5], [1, 1]]), prev, np.array([3.0, 0]), np.array([0, 1]), 9)
    np.testing.assert_array_equal(x[0], [0.5, -0.5, 0, 0, 1, 3, 0, 1, 0])
    np.testing.assert_array_equal(x[1], [1, 1, 0, 0, 0, 0, 1, 1, 0])
    d = Codec(
        gym.spaces.Discrete(4, start=1),
        gym.spaces.Box(-2, 2, (1,)),
        reward_input=False,
        episode_flag=False,
    )
    assert d.d_in == 4 + 1 + 1
    np.testing.assert_array_equal(
        d.encode(np.array([4]), d.features(np.array([[0.25]])), np.zeros(1), np.ones(1), 6)[0],
        [0, 0, 0, 1, 0.25, 1],
    )


def test_codec_decodes_actions():
    c = Codec(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(3))
    y = np.array([[0.0, 5.0, 0.0], [9.0, 0.0, 0.0]], np.float32)
    np.testing.assert_array_equal(c.decode(y, None, sample=False), [1, 0])
    # sampling: u below the first cumulative probability picks action 0, near 1 the last
    np.testing.assert_array_equal(
        c.decode(np.zeros((2, 3), np.float32), np.array([0.1, 0.999]), True), [0, 2]
    )
    box = Codec(
        gym.spaces.Box(-1, 1, (2,)),
        gym.spaces.Box(np.array([-2, 0]), np.array([2, 10]), dtype=np.float32),
    )
    a = box.decode(np.array([[0.0, 100.0], [-100.0, 0.0]], np.float32), None, False)
    np.testing.assert_allclose(a, [[0, 10], [-2, 5]], atol=1e-6)
    assert a.dtype == np.float32


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Dict({"a": gym.spaces.Text(2)}),
        gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Graph(gym.spaces.Box(0, 1), None))),
        gym.spaces.Sequence(gym.spaces.Discrete(2)),
        gym.spaces.Text(5),
    ],
    ids=["Text-in-Dict", "Graph-in-Tuple", "Sequence", "Text"],
)
def test_unsupported_spaces_are_named(space):
    with pytest.raises(SrmlError, match="unsupported observation space"):
        Codec(space, gym.spaces.Discrete(2))
    with pytest.raises(SrmlError, match="action"):
        Codec(gym.spaces.Discrete(2), space)
