"""srml: self-referential evolutionary meta-learning (FME over SRWM pools).

The public API (imported on first use, so ``import srml`` stays light)::

    import srml
    cfg = srml.Config(env="CartPole-v1", total_steps=5_000_000, progress=False)
    fme = srml.FME(cfg)
    rows = fme.run()                         # or: ask() / evaluate() / tell() yourself
    best = fme.best(1, reevaluate=True)[0]
    agent = srml.Agent.from_config(best, cfg)

- ``Config``: every setting, a docstring per field;
- ``FME`` and ``METHODS`` / ``make_method``: search methods with ask/tell;
- ``FME(cfg).run(out=DIR)`` writes a run directory as ``srml run`` does; ``load_run(DIR)``
  reads one back (and can continue it);
- ``Agent``: a trained genome as a stateful policy for any Gymnasium loop.
"""

__version__ = "0.2.0"

_LAZY = {
    "Config": ("srml.config", "Config"),
    "FME": ("srml.fme", "FME"),
    "Method": ("srml.method", "Method"),
    "METHODS": ("srml.methods", "METHODS"),
    "make_method": ("srml.methods", "make_method"),
    "Agent": ("srml.agent", "Agent"),
    "load_run": ("srml.api", "load_run"),
    "Run": ("srml.api", "Run"),
    "SrmlError": ("srml.errors", "SrmlError"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'srml' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = ["__version__", *_LAZY]
