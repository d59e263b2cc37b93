"""srml: self-referential evolutionary meta-learning (FME over SRWM pools)."""

__version__ = "0.1.0"
