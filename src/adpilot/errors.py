"""The one exception family for a user's mistake: the CLI prints its message in one line and exits non-zero,
the API turns it into a 4xx JSON body. Anything else is a bug and keeps its traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or bad configuration; ``str(error)`` is a sentence that names the problem."""


class InputFileError(UserError):
    """A file given on the command line cannot be read as what it claims to be."""


def check_scalar(value: float, name: str, *, gt: float | None = None, ge: float | None = None,
                 lt: float | None = None, le: float | None = None) -> float:
    """Validate one number the scikit-learn way: the message names the parameter and the value.

    >>> check_scalar(3, "budget", gt=0)
    3
    >>> check_scalar(-3, "budget", gt=0)
    Traceback (most recent call last):
    ...
    ValueError: `budget` must be > 0, got -3
    """
    if value != value:  # NaN
        raise ValueError(f"`{name}` must be a number, got NaN")
    for bound, op, ok in ((gt, ">", lambda b: value > b), (ge, ">=", lambda b: value >= b),
                          (lt, "<", lambda b: value < b), (le, "<=", lambda b: value <= b)):
        if bound is not None and not ok(bound):
            raise ValueError(f"`{name}` must be {op} {bound}, got {value}")
    return value
