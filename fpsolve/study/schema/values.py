"""Value checks of study keys, the :class:`Key` record and the :class:`StudyError`.

A check takes the raw TOML value and returns the canonical one or raises
:class:`_Bad` with what was expected; the loader turns that into a
:class:`StudyError` naming the file and the dotted key.
"""
from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

#: Marks an analysis key without a default (see ``analysis_keys._a``).
REQUIRED = object()


class StudyError(ValueError):
    """A study file is unreadable or invalid.

    ``str(error)`` is one line: ``FILE: KEY: what was expected, got what``.
    """

    def __init__(self, path: str, key: str | None, message: str):
        self.path, self.key, self.message = path, key, message
        text = f"{path}: {key}: {message}" if key else f"{path}: {message}"
        super().__init__(" ".join(text.split()))   # always one line


class _Bad(Exception):
    """Internal: a value failed its check; the message says what was expected."""


# -- value checks ----------------------------------------------------------------------

def _show(v) -> str:
    if isinstance(v, str):
        return repr(v) + " (a string)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "a table"
    return repr(v)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(v):
    if not _is_number(v) or not math.isfinite(v):
        raise _Bad(f"expected a number, got {_show(v)}")
    return float(v)


def _positive(v):
    if not _is_number(v) or not math.isfinite(v) or v <= 0:
        raise _Bad(f"expected a positive number, got {_show(v)}")
    return float(v)


def _bool(v):
    if not isinstance(v, bool):
        raise _Bad(f"expected true or false, got {_show(v)}")
    return v


def _string(v):
    if not isinstance(v, str):
        raise _Bad(f"expected a string, got {_show(v)}")
    return v


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,99}$")


def _name(v):
    if not isinstance(v, str) or not _NAME_RE.match(v):
        raise _Bad("expected a name usable as a file name (letters, digits and . _ + = -, "
                   f"starting with a letter or digit), got {_show(v)}")
    return v


def _matrix(v):
    ok = (isinstance(v, list) and len(v) == 2
          and all(isinstance(r, list) and len(r) == 2 and all(_is_number(a) and math.isfinite(a)
                                                              for a in r) for r in v))
    if not ok:
        raise _Bad(f"expected a 2x2 matrix of numbers [[a, b], [c, d]], got {_show(v)}")
    return [[float(a) for a in r] for r in v]


def _vector2(v):
    if not (isinstance(v, list) and len(v) == 2 and all(_is_number(a) and math.isfinite(a)
                                                        for a in v)):
        raise _Bad(f"expected two numbers [x, y], got {_show(v)}")
    return [float(a) for a in v]


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _params(v):
    if not isinstance(v, dict):
        raise _Bad(f"expected a table of named numbers, e.g. {{a = 0.2}}, got {_show(v)}")
    out = {}
    for k, a in v.items():
        if not _IDENT.match(k):
            raise _Bad(f"parameter name {k!r} is not an identifier")
        if not _is_number(a) or not math.isfinite(a):
            raise _Bad(f"parameter {k!r}: expected a number, got {_show(a)}")
        out[k] = float(a)
    return dict(sorted(out.items()))


def _expression(v):
    if not isinstance(v, str) or not v.strip():
        raise _Bad(f"expected an expression string in x and y, got {_show(v)}")
    return v


def _choice(*choices):
    def check(v):
        if v not in choices or isinstance(v, bool):
            shown = ", ".join(json.dumps(c) for c in choices)
            hint = ""
            if isinstance(v, str):
                close = difflib.get_close_matches(v, [str(c) for c in choices], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _Bad(f"expected one of {shown}, got {_show(v)}{hint}")
        return choices[choices.index(v)]   # 2.0 -> 2: one canonical value per choice
    return check


def _int_range(lo, hi):
    """An integer from lo to hi (levels, counts: walkers, bins, steps)."""
    def check(v):
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise _Bad(f"expected an integer from {lo} to {hi:g}, got {_show(v)}")
        return v
    return check


def _workers(v):
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise _Bad(f"expected a positive integer, got {_show(v)}")
    return v


def _max_dofs(v):
    from ...fe.budget import MIN_DOFS
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)                                  # 1e6 in TOML is a float
    if not isinstance(v, int) or isinstance(v, bool) or v < MIN_DOFS:
        raise _Bad(f"expected an integer >= {MIN_DOFS} (a budget of unknowns), got {_show(v)}")
    return v


def _scheduler(v):
    if not isinstance(v, str) or not (v == "local" or re.match(r"^(tcp|tls)://\S+$", v)):
        raise _Bad(f'expected "local" or a Dask scheduler address "tcp://host:port", got {_show(v)}')
    return v


def _path(v):
    if not isinstance(v, str) or not v.strip():
        raise _Bad(f"expected a path to a mesh file (relative to the study file), got {_show(v)}")
    return v


def _panel(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, list) and v and all(isinstance(a, str) for a in v):
        return list(v)
    if (isinstance(v, list) and v and all(isinstance(r, list) and r for r in v)
            and all(isinstance(a, str) for r in v for a in r)):
        return [list(r) for r in v]
    raise _Bad("expected true, false, a list of case names or a list of rows of case names, "
               f"got {_show(v)}")


def _seed(v):
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2 ** 63:
        raise _Bad(f"expected a non-negative integer seed, got {_show(v)}")
    return v


def _positive_list(min_len=1, max_len=1000, distinct=True, nonneg=False):
    """A list of positive (or non-negative) numbers."""
    what = "non-negative" if nonneg else "positive"

    def check(v):
        ok = (isinstance(v, list) and min_len <= len(v) <= max_len
              and all(_is_number(a) and math.isfinite(a) and (a >= 0 if nonneg else a > 0)
                      for a in v))
        if not ok:
            n = f"at least {min_len}" if max_len >= 1000 else f"{min_len} to {max_len}"
            raise _Bad(f"expected a list of {n} {what} numbers, got {_show(v)}")
        if distinct and len(set(float(a) for a in v)) != len(v):
            raise _Bad(f"expected distinct values, got {_show(v)}")
        return [float(a) for a in v]
    return check


def _interval(positive=True):
    def check(v):
        ok = (isinstance(v, list) and len(v) == 2
              and all(_is_number(a) and math.isfinite(a) and (a > 0 or not positive) for a in v)
              and v[0] < v[1])
        if not ok:
            kind = "positive numbers" if positive else "numbers"
            raise _Bad(f"expected [low, high] with low < high ({kind}), got {_show(v)}")
        return [float(a) for a in v]
    return check


def _bool_list(v):
    if not (isinstance(v, list) and v and all(isinstance(a, bool) for a in v)
            and len(set(v)) == len(v)):
        raise _Bad(f"expected a non-empty list of distinct booleans, e.g. [true, false], "
                   f"got {_show(v)}")
    return list(v)


def _goals(v):
    from ...fe.adapt import GOALS
    if not (isinstance(v, list) and v and all(isinstance(g, str) for g in v)
            and len(set(v)) == len(v) and set(v) <= set(GOALS)):
        shown = ", ".join(json.dumps(g) for g in GOALS)
        raise _Bad(f"expected a non-empty list of distinct goals from {shown}, got {_show(v)}")
    return list(v)


def _fraction(v):
    if not _is_number(v) or not 0 < v < 1:
        raise _Bad(f"expected a number between 0 and 1 (exclusive), got {_show(v)}")
    return float(v)


@dataclass(frozen=True)
class Key:
    """One documented key: its check, default and meaning (for docs/studies.md)."""

    check: Callable
    type: str
    default: Any
    doc: str
    numeric: bool = False       # may be swept / overridden by a number


def _k(check, type_, default, doc, numeric=False):
    return Key(check, type_, default, doc, numeric)

