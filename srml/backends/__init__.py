"""Backends: one contract ("run B genomes for S steps, return them rewritten with
their fitness"), several engines. Imported lazily: numba compiles, cupy may be absent."""

from __future__ import annotations

import importlib

from ..errors import SrmlError
from .base import Backend, DeviceBatch, Rollout, Task, on_device

# name -> "module:Class"
BACKENDS = {
    "numpy": "srml.backends.numpy_backend:NumpyBackend",
    "numba": "srml.backends.numba_backend:NumbaBackend",
    "cuda": "srml.backends.cuda_backend:CudaBackend",
}


def make_backend(name: str, task: Task, batch: int, threads: int = 0, **options) -> Backend:
    """Build backend ``name`` for ``task`` running ``batch`` genomes at a time; ``threads`` is the
    CPU threads a compiled backend may use (0: all; ignored by numpy); ``options`` go to the
    backend's constructor (numba: ``layout``)."""
    if name not in BACKENDS:
        raise SrmlError(f"unknown backend {name!r}; choose from {sorted(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(task, batch, threads=threads, **options)


__all__ = [
    "BACKENDS", "Backend", "DeviceBatch", "Rollout", "Task", "make_backend", "on_device"
]  # fmt: skip
