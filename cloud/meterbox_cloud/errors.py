"""Errors of the vendor tooling: str() is one sentence saying what is wrong and what to do."""


class BoxError(Exception):
    """A box operation was refused; str() is one sentence for the person who asked."""
