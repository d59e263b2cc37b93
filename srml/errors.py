"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class SrmlError(Exception):
    """Bad input or an unusable setting, explained in one line."""
