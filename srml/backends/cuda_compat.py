"""What srml does about the CUDA stacks users install (imported before numba's CUDA target).

numba-cuda 0.30.4 (the newest release as of this writing) overloads ``np.row_stack`` when its
array module loads, at the first kernel compile; numpy 2.5 removed that alias (deprecated
since numpy 2.0, where it is exactly ``np.vstack``), so every compile failed with
``AttributeError`` deep inside numba. :func:`patch_numpy` puts the alias back, only when it is
missing: code calling ``np.row_stack`` gets what numpy < 2.5 gave it, nothing else changes.
Whatever still breaks the first compile ends in :func:`numba_cuda_error`'s one line.
"""

from __future__ import annotations

from importlib import metadata

import numpy as np

from ..errors import SrmlError


def patch_numpy() -> bool:
    """Restore ``np.row_stack`` (= ``np.vstack``) where numpy removed it; True if it did."""
    if hasattr(np, "row_stack"):
        return False
    np.row_stack = np.vstack
    return True


def versions() -> str:
    out = []
    for dist in ("numba", "numba-cuda", "numpy", "cupy-cuda12x", "cupy-cuda13x", "cupy"):
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def numba_cuda_error(e: BaseException) -> SrmlError:
    """One line for a CUDA stack that cannot compile srml's kernel (the first launch)."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    hint = (
        "install a numba-cuda that supports this numpy, or pip install 'numpy<2.5'"
        if "row_stack" in msg
        else "reinstall the CUDA extras matching your driver: pip install -e '.[cuda12]' "
        "(or '.[cuda13]'); nvidia-smi shows the driver's CUDA version"
    )
    return SrmlError(
        f"--backend cuda: numba's CUDA target failed to compile srml's kernel "
        f"({type(e).__name__}: {msg[:300]}; {versions()}): {hint}"
    )
