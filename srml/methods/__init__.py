"""Search methods, all speaking the ask/tell protocol of :class:`srml.method.Method`.

``METHODS`` maps a name to a class; ``make_method(name, cfg, **options)``
builds one. Each class has an ``Options`` dataclass (a docstring per field)
for what is particular to it; everything shared (env, batch, lifetime,
budget, ``sigma``, ``init_std``, ``self_modify`` ...) comes from
:class:`srml.config.Config`. Every method runs B lifetimes of S env steps per
generation through the Config's backend, so equal ``total_steps`` means equal
env steps. One file per method.

- ``fme``: fitness monotonic execution (:mod:`srml.fme`), the method under test.
- ``hill_climber``: one genome, Gaussian mutants, accept if not worse
  (the paper's fixed hill-climber with ``self_modify = false``).
- ``openai_es``: antithetic sampling, centered ranks, Adam (an explicit
  meta-optimizer when the network self-modifies).
- ``random_search``: fresh random genomes every generation, keep the best.
"""

from __future__ import annotations

from dataclasses import fields

from ..config import Config
from ..errors import SrmlError
from ..fme import FME
from ..method import Method
from .hill_climber import HillClimber
from .openai_es import OpenAIES, centered_ranks
from .random_search import RandomSearch

METHODS: dict[str, type[Method]] = {
    "fme": FME,
    "hill_climber": HillClimber,
    "openai_es": OpenAIES,
    "random_search": RandomSearch,
}


def option_names(name: str) -> set[str]:
    return {f.name for f in fields(METHODS[name].Options)}


def check_method(name: str, options: dict | None = None) -> None:
    """Refuse an unknown method or option in one line."""
    if name not in METHODS:
        raise SrmlError(f"unknown method {name!r}; choose from {', '.join(sorted(METHODS))}")
    unknown = set(options or {}) - option_names(name)
    if unknown:
        raise SrmlError(
            f"unknown option(s) {', '.join(sorted(unknown))} for {name}; "
            f"it takes {', '.join(sorted(option_names(name))) or 'none'}"
        )


def make_method(name: str, cfg: Config, backend=None, **options) -> Method:
    """Build method ``name`` for ``cfg``; unknown names and options are refused in one line."""
    check_method(name, options)
    cls = METHODS[name]
    try:
        opts = cls.Options(**options)
    except TypeError as e:
        raise SrmlError(f"bad options for {name}: {e}") from None
    return cls(cfg, opts, backend=backend)


__all__ = [
    "METHODS",
    "FME",
    "HillClimber",
    "Method",
    "OpenAIES",
    "RandomSearch",
    "centered_ranks",
    "check_method",
    "make_method",
    "option_names",
]
