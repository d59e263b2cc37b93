"""Counter-based random numbers that every backend can reproduce.

A random number is a pure function of ``(seed, lane, stream, counter)``: a
splitmix64-style hash, not a stateful generator. The numpy reference, the numba
kernels (CPU) and the CUDA kernels all call the same formula, so the same seeds
give the same actions and the same environment resets on every backend, no
matter how work is split across threads or GPU blocks.

- ``lane_key(seed, lane)``: a 64-bit key for one agent (lane) of one run.
- ``uniform(key, stream, counter)``: a float in [0, 1) with 24 random bits, so
  it is exact in float32 and float64 alike.

``make_rng(jit)`` builds scalar versions with a given decorator
(``numba.njit``, ``numba.cuda.jit(device=True)``, or ``None`` for plain
Python); ``lane_keys`` and ``uniforms`` are the vectorised numpy twins.
"""

from __future__ import annotations

import numpy as np

_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_GOLDEN = 0x9E3779B97F4A7C15

# Streams keep unrelated uses of randomness apart (same counter, other stream).
STREAM_ACTION = 1
STREAM_RESET = 2
STREAM_ENV = 3
STREAM_INIT = 4
STREAM_MUTATION = 5
STREAM_NOISE = 6  # noise inputs of the network: counter draw * K + j (Codec.noise_draw)
STREAM_KEY = 7  # sampled keys: counter step * slots + slot (slot: layer by layer, head by head)


def make_rng(jit=None):
    """Return scalar ``(mix, lane_key, uniform)`` compiled with ``jit``."""
    if jit is None:
        # Plain Python on numpy scalars wraps around as intended; numpy warns
        # about it, so callers wrap such use in np.errstate(over='ignore').

        def jit(f):
            return f

    m1, m2, golden = np.uint64(_M1), np.uint64(_M2), np.uint64(_GOLDEN)
    s30, s27, s31, s40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(40)
    scale = np.float64(2.0**-24)

    @jit
    def mix(z):
        z = np.uint64(z)
        z = (z ^ (z >> s30)) * m1
        z = (z ^ (z >> s27)) * m2
        return z ^ (z >> s31)

    @jit
    def lane_key(seed, lane):
        return mix(mix(np.uint64(seed)) ^ (np.uint64(lane) * golden))

    @jit
    def uniform(key, stream, counter):
        h = mix(np.uint64(key) ^ mix(np.uint64(stream) * golden + np.uint64(counter)))
        return np.float64(h >> s40) * scale

    return mix, lane_key, uniform


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


def _u64(x) -> np.ndarray:
    return np.asarray(x).astype(np.uint64)


def lane_keys(seed, lanes) -> np.ndarray:
    """Vectorised ``lane_key``: one uint64 key per lane."""
    with np.errstate(over="ignore"):
        return _mix(_mix(_u64(seed)) ^ (_u64(lanes) * np.uint64(_GOLDEN)))


def uniforms(keys, stream, counters) -> np.ndarray:
    """Vectorised ``uniform`` (float64 in [0, 1)), broadcasting keys and counters."""
    with np.errstate(over="ignore"):
        inner = _mix(_u64(stream) * np.uint64(_GOLDEN) + _u64(counters))
        h = _mix(_u64(keys) ^ inner)
    return (h >> np.uint64(40)).astype(np.float64) * 2.0**-24


def step_uniforms(keys, stream, step: int, k: int) -> np.ndarray:
    """(B, k) uniforms of one step: counters step * k + j for j < k, one row per lane key."""
    counters = np.uint64(step) * np.uint64(k) + np.arange(k, dtype=np.uint64)
    return uniforms(np.asarray(keys)[:, None], stream, counters[None, :])


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from several integers (run seed, generation, island ...)."""
    z = np.zeros((), np.uint64)
    with np.errstate(over="ignore"):
        for p in parts:
            z = _mix(z ^ (_u64(p) + np.uint64(_GOLDEN)))
    return int(z) >> 1
