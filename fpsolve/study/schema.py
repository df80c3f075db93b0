"""The study file format: keys, types, defaults, validation and case resolution.

A study is a TOML file.  :func:`load_study` reads it, checks every key against
the schema below and resolves it into a :class:`Study`: a list of fully
specified :class:`Case` objects (study-level sections, then ``[[case]]``
overrides, then ``[sweep]`` values), each with a configuration hash that
identifies its results.  Nothing is solved and nothing is written here.

Every problem is reported as one :class:`StudyError` whose text names the
file, the dotted key and what was expected, e.g.::

    studies/x.toml: noise.delta_s: expected a positive number, got -0.01
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10
    import tomli as tomllib

import numpy as np

__all__ = ["StudyError", "Study", "Case", "Sweep", "load_study", "parse_study", "KEYS",
           "ANALYSIS_KEYS", "ANALYSIS_KINDS", "reference_markdown", "case_hash",
           "STRENGTH_KEYS"]

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


# -- the schema ----------------------------------------------------------------------------

LANDSCAPE_KINDS = ("paper", "quadratic", "expression")
NOISE_KINDS = ("sgd", "isotropic", "constant", "expression")
BOUNDARIES = ("absorbing", "reflecting")

#: Section keys that do not depend on a kind.
_PLAIN = {
    "study": {
        "name": _k(_name, "string (file-name safe)", "the study file's stem",
                   "Name of the study; the default output directory is `results/<name>/`."),
        "description": _k(_string, "string", '""', "Free text, copied to summary.json."),
    },
    "mesh": {
        "file": _k(_path, "string (path)", "none",
                   "Mesh file (any format meshio reads, e.g. `.msh`), relative to the study "
                   "file. Excludes `radius`, `h`, `center`, `band`, `band_levels`."),
        "radius": _k(_positive, "number > 0", "2.0", "Radius of the generated disk mesh.", True),
        "h": _k(_positive, "number > 0", "required (without `file`)",
                "Target edge length of the generated disk mesh (≤ radius/2).", True),
        "center": _k(_vector2, "[number, number]", "[0.0, 0.0]", "Centre of the disk."),
        "band": _k(_positive, "number > 0", "none",
                   "Refine the elements within a distance `band` of the line y = center_y (a mesh "
                   "graded toward the valley where SGD densities live).",
                   True),
        "band_levels": _k(_int_range(0, 4), "integer 0–4", "1",
                          "Refinement rounds inside the band (each halves h).", True),
    },
    "solver": {
        "order": _k(_choice(1, 2, 3), "integer 1, 2 or 3", "2",
                    "Lagrange element order (P1, P2 or P3; P3 is the most accurate per dof).",
                    True),
        "boundary": _k(_choice(*BOUNDARIES), "string", '"absorbing"',
                       '"absorbing" (P = 0, quasi-stationary density and escape rate) or '
                       '"reflecting" (J·n = 0, stationary density).'),
        "stabilisation": _k(_choice("none", "supg"), "string", '"none"',
                            '"none" (Galerkin) or "supg" (streamline upwinding; a sweep then '
                            "re-assembles for each value)."),
    },
    "output": {
        "vtk": _k(_bool, "boolean", "true", "Write `vtk/<case>.vtu` per case and `vtk/<series>.pvd` "
                  "per sweep (ParaView; time = the swept value)."),
        "figures": _k(_bool, "boolean", "true", "Write `figures/<case>.png` per case."),
        "panel": _k(_panel, "boolean, list of case names, or list of rows", "true",
                    "Write `panel.png` with all cases in a row (true), the listed ones "
                    '(`["a", "b"]`) or rows of them (`[["a", "b"], ["c", "d"]]`).'),
        "sweep_plot": _k(_bool, "boolean", "true",
                         "Write `sweep.png` (`sweep-<case>.png` per case when a study has cases): "
                         "⟨x²⟩, marginal mode, escape rate and strongest-cycle circulation "
                         "against the swept parameter."),
        "flux": _k(_bool, "boolean", "true",
                   "Compute probability-flux cycles (centre, sense, circulation) per case."),
    },
    "execution": {
        "workers": _k(_workers, "integer ≥ 1", "1",
                      "Local worker processes (`--workers` overrides it)."),
        "scheduler": _k(_scheduler, "string", '"local"',
                        '"local" (process pool) or a Dask scheduler address "tcp://host:port" '
                        "(needs the `dask` extra; workers must be able to import fpsolve)."),
    },
}

#: Kind-dependent keys of [landscape] and [noise]; `kind` itself is checked separately.
_KINDS = {
    "landscape": {
        "paper": {
            "eps": _k(_number, "number", "0.02", "ε of L = ½ελ0x² + ½λ(x)y² (paper Eq. 9).", True),
            "lam0": _k(_number, "number", "8.0", "λ0 of λ(x) = λ0 + λ1x² + λ2x⁴.", True),
            "lam1": _k(_number, "number", "-2.0", "λ1.", True),
            "lam2": _k(_number, "number", "1.0", "λ2.", True),
        },
        "quadratic": {
            "A": _k(_matrix, "2x2 matrix", "required", "Symmetric matrix of L = ½(θ−c)ᵀA(θ−c)."),
            "center": _k(_vector2, "[number, number]", "[0.0, 0.0]", "Minimum c."),
        },
        "expression": {
            "expr": _k(_expression, "string", "required",
                       'L(x, y), e.g. "0.5*(x**2 + 3*y**2) + a*x*y" (whitelisted functions; '
                       "derivatives are symbolic)."),
            "params": _k(_params, "table of numbers", "{}",
                         "Named parameters used in `expr`; `landscape.params.a` can be "
                         "overridden or swept."),
        },
    },
    "noise": {
        "sgd": {
            "delta_s": _k(_positive, "number > 0", "required",
                          "Δ_S = ησ of D = Δ_S H² (minibatch SGD noise).", True),
            "cross_diffusion": _k(_bool, "boolean", "true",
                                  "Keep D12 = D21 (false: the paper's MATLAB model)."),
        },
        "isotropic": {
            "delta": _k(_positive, "number > 0", "required", "Δ of D = Δ I.", True),
        },
        "constant": {
            "matrix": _k(_matrix, "2x2 matrix", "required",
                         "Constant symmetric positive semi-definite D."),
        },
        "expression": {
            "D11": _k(_expression, "string", "required", "D11(x, y)."),
            "D12": _k(_expression, "string", '"0"', "D12(x, y) = D21."),
            "D22": _k(_expression, "string", "required", "D22(x, y)."),
            "params": _k(_params, "table of numbers", "{}",
                         "Named parameters used in D11, D12, D22."),
        },
    },
}
_KIND_DOC = {
    "landscape": _k(_choice(*LANDSCAPE_KINDS), "string", '"paper"',
                    'Loss: "paper" (Eq. 9), "quadratic" or "expression".'),
    "noise": _k(_choice(*NOISE_KINDS), "string", '"sgd"',
                'Diffusion tensor: "sgd" (Δ_S H²), "isotropic", "constant" or "expression".'),
}

#: The diffusion strength of each noise kind: cases differing only in it share one
#: assembly A0 + s·A1.
STRENGTH_KEYS = {"sgd": "delta_s", "isotropic": "delta"}

_CASE_KEYS = {
    "name": _k(_name, "string (file-name safe)", "required",
               "Case name; its files are `vtk/<name>.vtu`, `figures/<name>.png`, `cases/<name>.*`."),
    "title": _k(_string, "string", "the name", "Title of the case's figures."),
}
_SWEEP_KEYS = {
    "parameter": _k(_string, "string (dotted key)", "required",
                    'The swept key, e.g. "noise.delta_s" (any numeric key of [landscape], '
                    "[noise], [mesh], [solver], or landscape.params.NAME, noise.params.NAME)."),
    "values": _k(None, "list of numbers", "—", "The values (give `values` or `range`)."),
    "range": _k(None, "table {start, stop, num}", "—",
                "`num` equally spaced values from `start` to `stop`, both included."),
}
_CASE_SECTIONS = ("landscape", "noise", "mesh", "solver")
_TOP = ("study", "landscape", "noise", "mesh", "solver", "case", "sweep", "output", "execution",
        "analysis")

# -- [analysis]: studies that run an analysis driver instead of FE cases ------------------

#: Resolved default value of every analysis key: (kind, key) -> value.
_ADEF: dict = {}


def _a(kind, name, check, type_, default, doc):
    _ADEF[(kind, name)] = default
    shown = "required" if default is REQUIRED else json.dumps(default, ensure_ascii=False)
    return name, Key(check, type_, shown, doc)


def _spec(*items):
    return dict(items)


_XSS = [round(0.008 + 0.0005 * k, 6) for k in range(13)]

#: Keys of each analysis kind (in [analysis], next to ``kind``).
_ANALYSES = {
    "figS5": _spec(
        _a("figS5", "eta", _positive, "number > 0", 0.01,
           "Learning rate η of the Monte Carlo SGD; each σ gives Δ_S = ησ."),
        _a("figS5", "sigma", _positive_list(1, 8), "list of numbers > 0", [0.9, 1.2],
           "SGD noise strengths σ (the paper: 0.9 and 1.2, i.e. Δ_S = 0.009 and 0.012)."),
        _a("figS5", "cross_diffusion", _bool_list, "list of booleans", [True, False],
           "Noise models: with (true) and without (false) the cross-diffusion D12 = D21."),
        _a("figS5", "n_walkers", _int_range(2, 10 ** 7), "integer ≥ 2", 16384,
           "Monte Carlo walkers per case."),
        _a("figS5", "t_burn", _positive, "number > 0", 250.0,
           "Burn-in before sampling, in the time unit τ = ηt (⌈t_burn/η⌉ steps)."),
        _a("figS5", "t_sample", _positive, "number > 0", 250.0,
           "Sampling time after the burn-in (τ = ηt)."),
        _a("figS5", "seed", _seed, "integer ≥ 0", 0,
           "Root seed: case k (σ-major, then cross_diffusion) uses seed + k; same seed, "
           "same numbers (bit for bit)."),
        _a("figS5", "bins", _int_range(4, 1000), "integer 4–1000", 90,
           "Histogram bins per axis over [−extent, extent]²; FE is averaged over the same bins."),
        _a("figS5", "extent", _positive, "number > 0", 0.9,
           "Half-width of the square histogram window (≤ radius)."),
        _a("figS5", "h", _positive, "number > 0", 0.025,
           "Edge length of the FE disk mesh (≤ radius/2)."),
        _a("figS5", "order", _choice(1, 2, 3), "integer 1, 2 or 3", 2, "FE element order."),
        _a("figS5", "radius", _positive, "number > 0", 2.0,
           "Radius of the absorbing disk (FE and Monte Carlo: walkers that leave are "
           "re-inserted and counted as exits)."),
    ),
    "transition": _spec(
        _a("transition", "h", _positive_list(2, 6), "list of 2–6 numbers > 0",
           [0.05, 0.035, 0.025],
           "FE mesh levels (edge lengths, coarse to fine) on which Δ_S* is located; the "
           "finest gives the value, |finest − next| + d-sensitivity its uncertainty, three "
           "levels the observed order."),
        _a("transition", "order", _choice(1, 2, 3), "integer 1, 2 or 3", 2, "FE element order."),
        _a("transition", "radius", _positive, "number > 0", 2.0, "Radius of the absorbing disk."),
        _a("transition", "bracket", _interval(), "[number, number]", [0.009, 0.013],
           "Δ_S interval that contains the FE transition (Brent's method)."),
        _a("transition", "xtol", _positive, "number > 0", 1e-7, "Root tolerance in Δ_S."),
        _a("transition", "xss_delta_s", _positive_list(1, 200), "list of numbers > 0", _XSS,
           "Δ_S values of the x_ss(Δ_S) curve (FE and theory)."),
        _a("transition", "xss_h", _positive, "number > 0", 0.035,
           "FE mesh of the x_ss(Δ_S) curve."),
        _a("transition", "lsgd_delta_s", _positive_list(1, 6), "list of 1–6 numbers > 0",
           [0.009, 0.012], "Δ_S values of the L_SGD(x) figure (FE on the finest level vs "
           "Eq. 10 and Eq. 11)."),
        _a("transition", "mc", _bool, "boolean", True,
           "Also locate Δ_S* by Monte Carlo SGD (with and without cross-diffusion)."),
        _a("transition", "mc_delta_s", _positive_list(2, 50), "list of ≥ 2 numbers > 0",
           [0.0095, 0.01, 0.0105, 0.011, 0.0115, 0.012, 0.0125],
           "Nominal Δ_S = ησ of the Monte Carlo runs; Δ_S* is interpolated where the fitted "
           "curvature of the x-marginal at 0 changes sign."),
        _a("transition", "mc_eta", _positive, "number > 0", 0.01,
           "Learning rate η of the Monte Carlo SGD."),
        _a("transition", "mc_n_walkers", _int_range(2, 10 ** 7), "integer ≥ 2", 4096,
           "Walkers per Monte Carlo run."),
        _a("transition", "mc_t_burn", _positive, "number > 0", 150.0,
           "Burn-in per run (τ = ηt)."),
        _a("transition", "mc_t_sample", _positive, "number > 0", 150.0,
           "Sampling time per run (τ = ηt)."),
        _a("transition", "mc_fit_width", _positive, "number > 0", 0.3,
           "Half-width of the window |x| ≤ w of the weighted fit P(x) ≈ a + bx² + cx⁴ to the "
           "Monte Carlo x-marginal; its curvature is P''(0)/P(0) = 2b/a."),
        _a("transition", "seed", _seed, "integer ≥ 0", 0,
           "Root seed of the Monte Carlo runs (run k uses seed + k)."),
    ),
    "phase_diagram": _spec(
        _a("phase_diagram", "paper_grid", _bool, "boolean", False,
           "Use the paper-sized grid: 40 η × 61 σ, η ∈ [0.003, 0.3], σ ∈ [1e-3, 1e3], "
           "64 walkers, T = 10⁴ (≈ 9× the default's cost); excludes eta, n_eta, sigma, "
           "n_sigma, T, n_walkers."),
        _a("phase_diagram", "eta", _interval(), "[number, number]", [0.005, 0.3],
           "Range of the learning rates η of the grid (log-spaced)."),
        _a("phase_diagram", "n_eta", _int_range(1, 400), "integer 1–400", 24,
           "Number of η values."),
        _a("phase_diagram", "sigma", _interval(), "[number, number]", [0.001, 1000.0],
           "Range of the noise strengths σ of the grid (log-spaced)."),
        _a("phase_diagram", "n_sigma", _int_range(2, 400), "integer 2–400", 37,
           "Number of σ values."),
        _a("phase_diagram", "T", _positive, "number > 0", 5000.0,
           "Run length in τ = ηt: ⌈T/η⌉ steps at every η."),
        _a("phase_diagram", "n_walkers", _int_range(1, 10 ** 6), "integer ≥ 1", 64,
           "Walkers per grid point."),
        _a("phase_diagram", "tol", _positive, "number > 0", 0.05,
           "First-passage tolerance: t_s = first t with |x_t| ≤ x_ss + tol."),
        _a("phase_diagram", "cut_eta", _positive, "number > 0", 0.04,
           "η of the dense σ cut (the insets of Fig. 2b, d; the exponent fits)."),
        _a("phase_diagram", "cut_T", _positive, "number > 0", 20000.0,
           "Run length of the cut (τ = ηt)."),
        _a("phase_diagram", "cut_n_walkers", _int_range(2, 10 ** 6), "integer ≥ 2", 128,
           "Walkers per σ of the cut."),
        _a("phase_diagram", "cut_n_sigma", _int_range(4, 400), "integer 4–400", 31,
           "Log-spaced σ of the cut over [1e-3, 1]."),
        _a("phase_diagram", "cut_n_dense", _int_range(0, 100), "integer 0–100", 12,
           "Extra σ = σ*(1 ± r) of the cut on each side of σ*, r log-spaced in [0.01, 1)."),
        _a("phase_diagram", "trajectory_eta", _positive, "number > 0", 0.01,
           "η of the trajectories of Fig. 2a, c."),
        _a("phase_diagram", "trajectory_sigma", _positive_list(1, 6, nonneg=True),
           "list of numbers ≥ 0", [0.0, 0.02, 0.2], "σ of the trajectories of Fig. 2a, c."),
        _a("phase_diagram", "trajectory_steps", _int_range(10, 10 ** 8), "integer ≥ 10",
           100000, "Steps of each trajectory."),
        _a("phase_diagram", "exponents", _bool, "boolean", True,
           "Fit α, β1, β2 on the cut (walker bootstrap) and tabulate them next to the "
           "paper's values and the theory."),
        _a("phase_diagram", "n_boot", _int_range(10, 100000), "integer ≥ 10", 1000,
           "Bootstrap replicates of the exponent fits."),
        _a("phase_diagram", "seed", _seed, "integer ≥ 0", 0,
           "Root seed: grid seed, cut seed + 1, theory start points seed + 2, "
           "trajectories seed."),
    ),
    "variance_flatness": _spec(
        _a("variance_flatness", "seed", _seed, "integer ≥ 0", 0,
           "Root seed of every part (FDN seeds: seed, seed + 1, …)."),
        _a("variance_flatness", "landscapes_2d", _int_range(2, 1000), "integer ≥ 2", 8,
           "Random 2-D quadratics of the 2-D part (ψ for SGD, FDN and isotropic noise)."),
        _a("variance_flatness", "walkers_2d", _int_range(1, 1000), "integer ≥ 1", 4,
           "Walkers per 2-D landscape."),
        _a("variance_flatness", "steps_2d", _int_range(100, 10 ** 8), "integer ≥ 100", 40000,
           "Steps per 2-D walker."),
        _a("variance_flatness", "window_2d", _int_range(50, 10 ** 8), "integer ≥ 50", 30000,
           "Analysis window of the 2-D part (the last steps; < steps_2d)."),
        _a("variance_flatness", "digits", _bool, "boolean", True,
           "Run the 8×8-digits network part (needs scikit-learn: pip install "
           "'fpsolve[digits]'; skipped with a note without it)."),
        _a("variance_flatness", "iterations", _int_range(100, 10 ** 7), "integer ≥ 100",
           16000, "SGD iterations of the digits network."),
        _a("variance_flatness", "window", _int_range(20, 10 ** 7), "integer ≥ 20", 4000,
           "PCA window: the last iterations (< iterations)."),
        _a("variance_flatness", "n_directions", _int_range(3, 100000), "integer ≥ 3", 60,
           "Principal directions whose flatness is measured (log-spaced indices)."),
        _a("variance_flatness", "n_boot", _int_range(10, 100000), "integer ≥ 10", 2000,
           "Bootstrap replicates of the power-law fits."),
        _a("variance_flatness", "fdn", _bool, "boolean", True,
           "Compare SGD, GD, GD + flatness-detecting noise and GD + isotropic noise "
           "(digits; needs scikit-learn)."),
        _a("variance_flatness", "fdn_seeds", _int_range(1, 100), "integer ≥ 1", 3,
           "Seeds of the FDN comparison."),
        _a("variance_flatness", "fdn_iterations", _int_range(10, 10 ** 7), "integer ≥ 10",
           5000, "Updates per method in the FDN comparison."),
        _a("variance_flatness", "fdn_strong", _bool, "boolean", True,
           "Repeat FDN vs isotropic noise at 8× SGD's noise strength."),
    ),
}
ANALYSIS_KINDS = tuple(_ANALYSES)
_ANALYSIS_KIND = _k(_choice(*ANALYSIS_KINDS), "string", "required",
                    "What the study computes instead of FE cases: " +
                    ", ".join(f'"{k}"' for k in ANALYSIS_KINDS) + ". Excludes [noise], "
                    "[mesh], [solver], [[case]], [sweep], [output].")
#: The landscape kinds each analysis accepts (an empty tuple: no [landscape]).
_ANALYSIS_LANDSCAPES = {"figS5": ("paper",), "transition": ("paper",),
                        "phase_diagram": ("paper",), "variance_flatness": ()}


def _all_keys() -> dict[str, Key]:
    keys = {}
    for sec in ("study",):
        keys.update({f"{sec}.{k}": v for k, v in _PLAIN[sec].items()})
    for sec in ("landscape", "noise"):
        keys[f"{sec}.kind"] = _KIND_DOC[sec]
        for kind, spec in _KINDS[sec].items():
            keys.update({f"{sec}.{k}": v for k, v in spec.items()
                         if f"{sec}.{k}" not in keys})
    for sec in ("mesh", "solver"):
        keys.update({f"{sec}.{k}": v for k, v in _PLAIN[sec].items()})
    keys.update({f"case.{k}": v for k, v in _CASE_KEYS.items()})
    keys.update({f"sweep.{k}": v for k, v in _SWEEP_KEYS.items()})
    for sec in ("output", "execution"):
        keys.update({f"{sec}.{k}": v for k, v in _PLAIN[sec].items()})
    return keys


#: Every documented key of FE-case studies, dotted (kind-specific keys appear once).
KEYS = _all_keys()

#: Every key of [analysis]: ``(kind, key) -> Key`` (``(None, "kind")`` for the kind itself).
ANALYSIS_KEYS = {(None, "kind"): _ANALYSIS_KIND,
                 **{(kind, k): v for kind, spec in _ANALYSES.items() for k, v in spec.items()}}


def reference_markdown() -> str:
    """The key reference tables of docs/studies.md, generated from the schema."""
    lines = []

    def table(title, rows):
        lines.extend([f"#### {title}", "", "| key | type | default | meaning |",
                      "| --- | --- | --- | --- |"])
        for key, spec in rows:
            lines.append(f"| `{key}` | {spec.type} | {spec.default} | {spec.doc} |")
        lines.append("")

    table("[study]", [(f"study.{k}", v) for k, v in _PLAIN["study"].items()])
    for sec in ("landscape", "noise"):
        table(f"[{sec}]", [(f"{sec}.kind", _KIND_DOC[sec])])
        for kind, spec in _KINDS[sec].items():
            table(f'[{sec}] kind = "{kind}"', [(f"{sec}.{k}", v) for k, v in spec.items()])
    for sec in ("mesh", "solver"):
        table(f"[{sec}]", [(f"{sec}.{k}", v) for k, v in _PLAIN[sec].items()])
    table("[[case]] (plus dotted overrides such as `noise.delta_s = 0.009`)",
          [(f"case.{k}", v) for k, v in _CASE_KEYS.items()])
    table("[sweep]", [(f"sweep.{k}", v) for k, v in _SWEEP_KEYS.items()])
    for sec in ("output", "execution"):
        table(f"[{sec}]", [(f"{sec}.{k}", v) for k, v in _PLAIN[sec].items()])
    table("[analysis]", [("analysis.kind", _ANALYSIS_KIND)])
    for kind, spec in _ANALYSES.items():
        table(f'[analysis] kind = "{kind}"', [(f"analysis.{k}", v) for k, v in spec.items()])
    return "\n".join(lines).rstrip() + "\n"


# -- resolved objects --------------------------------------------------------------------

@dataclass
class Case:
    """One fully specified solve.

    Attributes
    ----------
    name, title
        File-name-safe name and figure title.
    config
        Resolved ``{"landscape", "noise", "mesh", "solver"}`` sections, every
        default filled in (``mesh.file`` absolute, with its ``sha256``).
    hash
        Hash of the configuration, the fpsolve version and the flux option:
        identical hashes mean identical results.
    series, value
        Name of the sweep series the case belongs to and its parameter value
        (None outside a sweep).
    """

    name: str
    title: str
    config: dict
    hash: str = ""
    series: str | None = None
    value: float | None = None

    @property
    def strength_key(self) -> str | None:
        """Dotted key of the diffusion strength (``noise.delta_s`` for SGD), or None."""
        k = STRENGTH_KEYS.get(self.config["noise"]["kind"])
        return f"noise.{k}" if k else None

    @property
    def strength(self) -> float | None:
        k = STRENGTH_KEYS.get(self.config["noise"]["kind"])
        return self.config["noise"][k] if k else None

    def group_key(self) -> str:
        """Cases with equal group keys share one assembly (A0 + s·A1)."""
        cfg = copy.deepcopy(self.config)
        k = STRENGTH_KEYS.get(cfg["noise"]["kind"])
        if k and cfg["solver"]["stabilisation"] == "none":
            cfg["noise"].pop(k)
        else:                          # SUPG is not affine in s: every case on its own
            cfg["case"] = self.name
        return _canonical(cfg)


@dataclass
class Sweep:
    """A ``[sweep]``: one parameter over a list of values, per base case."""

    parameter: str
    values: list
    series: dict = field(default_factory=dict)   # series name -> [case names]


@dataclass
class Study:
    """A validated study: resolved cases plus output and execution options."""

    path: str
    name: str
    description: str
    cases: list
    output: dict
    execution: dict
    sweep: Sweep | None
    text: bytes
    raw: dict
    analysis: dict | None = None    # resolved [analysis] (kind, keys, landscape) or None

    @property
    def hash(self) -> str:
        """Hash of everything that determines the outputs."""
        if self.analysis is not None:
            from .. import __version__
            return _digest({"analysis": self.analysis, "fpsolve": __version__})
        return _digest({"cases": [c.hash for c in self.cases], "names": [c.name for c in self.cases],
                        "titles": [c.title for c in self.cases], "output": self.output,
                        "sweep": None if self.sweep is None else
                        {"parameter": self.sweep.parameter, "series": self.sweep.series}})

    def groups(self) -> list[list[Case]]:
        """Cases grouped by shared assembly, in study order."""
        out: dict[str, list[Case]] = {}
        for c in self.cases:
            out.setdefault(c.group_key(), []).append(c)
        return list(out.values())


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _digest(obj) -> str:
    return hashlib.sha256(_canonical(obj).encode()).hexdigest()[:16]


def case_hash(config: dict, flux: bool) -> str:
    """Hash of a resolved case configuration, the fpsolve version and the flux option.

    The mesh file enters through its content hash, not its path, so moving a
    study and its mesh together keeps its results valid.
    """
    from .. import __version__
    cfg = copy.deepcopy(config)
    cfg["mesh"].pop("file", None)
    cfg["mesh"].pop("path", None)
    return _digest({"config": cfg, "fpsolve": __version__, "flux": bool(flux)})


# -- loading and validation -----------------------------------------------------------------

def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _flatten(table: dict, prefix: str = "") -> dict:
    """Nested tables -> dotted keys (``{"noise": {"delta_s": 1}}`` -> ``noise.delta_s``)."""
    out = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


class _Loader:
    """Validation state: the file name for messages and the study directory."""

    def __init__(self, path: str):
        self.path = path
        self.dir = os.path.dirname(os.path.abspath(path))

    def fail(self, key, message):
        raise StudyError(self.path, key, message)

    def check(self, key_label, spec: Key, value):
        try:
            return spec.check(value)
        except _Bad as exc:
            self.fail(key_label, str(exc))

    # sections ---------------------------------------------------------------------------
    def table(self, raw: dict, name: str):
        v = raw.get(name, {})
        if not isinstance(v, dict):
            self.fail(name, f"expected a table [{name}], got {_show(v)}")
        return v

    def plain_section(self, raw: dict, sec: str, prefix: str = "") -> dict:
        spec = _PLAIN[sec]
        given = self.table(raw, sec)
        out = {}
        for k, v in given.items():
            if k not in spec:
                self.fail(f"{prefix}{sec}.{k}", f"unknown key{_suggest(k, spec)}; "
                          f"[{sec}] accepts {', '.join(spec)}")
            out[k] = self.check(f"{prefix}{sec}.{k}", spec[k], v)
        return out

    def kind_section(self, flat: dict, sec: str, label: str) -> dict:
        """Validate the flat ``{key: value}`` of [landscape] or [noise]; fill defaults."""
        kind = flat.get("kind", _KIND_DOC[sec].default.strip('"'))
        kind = self.check(f"{label}{sec}.kind", _KIND_DOC[sec], kind)
        spec = _KINDS[sec][kind]
        out = {"kind": kind}
        params = {}
        for k, v in flat.items():
            if k == "kind":
                continue
            head = k.split(".")[0]
            if head == "params" and "params" in spec:
                if k == "params":
                    params.update(self.check(f"{label}{sec}.params", spec["params"], v))
                else:
                    name = k[len("params."):]
                    params.update(self.check(f"{label}{sec}.{k}", spec["params"], {name: v}))
                continue
            if k not in spec:
                other = [kk for kk, s in _KINDS[sec].items() if k in s]
                if other:
                    why = (f"not a key of {sec} kind {kind!r} (it belongs to kind "
                           f"{other[0]!r}); kind {kind!r} accepts {', '.join(spec) or 'no keys'}")
                else:
                    why = (f"unknown key{_suggest(k, list(spec) + ['kind'])}; {sec} kind "
                           f"{kind!r} accepts kind, {', '.join(spec)}")
                self.fail(f"{label}{sec}.{k}", why)
            out[k] = self.check(f"{label}{sec}.{k}", spec[k], v)
        if "params" in spec:
            out["params"] = dict(sorted(params.items()))
        for k, s in spec.items():
            if k not in out:
                if s.default == "required":
                    self.fail(f"{label}{sec}.{k}", f"required for {sec} kind {kind!r} "
                              f"({s.type}: {s.doc})")
                out[k] = _DEFAULTS[(sec, kind, k)]
        return out

    def mesh_section(self, flat: dict, label: str) -> dict:
        spec = _PLAIN["mesh"]
        vals = {}
        for k, v in flat.items():
            if k not in spec:
                self.fail(f"{label}mesh.{k}", f"unknown key{_suggest(k, spec)}; "
                          f"[mesh] accepts {', '.join(spec)}")
            vals[k] = self.check(f"{label}mesh.{k}", spec[k], v)
        if "file" in vals:
            extra = [k for k in vals if k != "file"]
            if extra:
                self.fail(f"{label}mesh.{extra[0]}", "cannot be combined with mesh.file "
                          "(a mesh file fixes the geometry; remove one of them)")
            full = os.path.normpath(os.path.join(self.dir, vals["file"]))
            from ..fe.mesh import MeshError, load_mesh
            try:
                with open(full, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
                load_mesh(full)
            except OSError as exc:
                self.fail(f"{label}mesh.file", f"cannot read mesh file {vals['file']!r} "
                          f"(resolved to {full}): {exc.strerror or exc}")
            except MeshError as exc:
                self.fail(f"{label}mesh.file", f"not a usable mesh: {exc}")
            # "file" as written (for summaries), "path" to open; the hash uses only sha256
            return {"file": vals["file"], "path": full, "sha256": digest}
        if "h" not in vals:
            self.fail(f"{label}mesh.h", "required (target edge length of the disk mesh, a "
                      "positive number), or give mesh.file")
        out = {"radius": vals.get("radius", 2.0), "h": vals["h"],
               "center": vals.get("center", [0.0, 0.0]), "band": vals.get("band"),
               "band_levels": vals.get("band_levels", 1)}
        if out["h"] > out["radius"] / 2:
            self.fail(f"{label}mesh.h", f"expected 0 < h <= radius/2 = {out['radius'] / 2:g}, "
                      f"got {out['h']!r}")
        return out

    def solver_section(self, flat: dict, label: str) -> dict:
        spec = _PLAIN["solver"]
        out = {"order": 2, "boundary": "absorbing", "stabilisation": "none"}
        for k, v in flat.items():
            if k not in spec:
                self.fail(f"{label}solver.{k}", f"unknown key{_suggest(k, spec)}; "
                          f"[solver] accepts {', '.join(spec)}")
            out[k] = self.check(f"{label}solver.{k}", spec[k], v)
        return out


_DEFAULTS = {
    ("landscape", "paper", "eps"): 0.02, ("landscape", "paper", "lam0"): 8.0,
    ("landscape", "paper", "lam1"): -2.0, ("landscape", "paper", "lam2"): 1.0,
    ("landscape", "quadratic", "center"): [0.0, 0.0],
    ("noise", "sgd", "cross_diffusion"): True, ("noise", "expression", "D12"): "0",
}


def _resolve_sections(ld: _Loader, flat: dict, label: str) -> dict:
    """flat = {"landscape.eps": ..., "noise.kind": ...} for all case sections."""
    parts = {sec: {} for sec in _CASE_SECTIONS}
    for k, v in flat.items():
        sec, _, rest = k.partition(".")
        parts[sec][rest] = v
    return {"landscape": ld.kind_section(parts["landscape"], "landscape", label),
            "noise": ld.kind_section(parts["noise"], "noise", label),
            "mesh": ld.mesh_section(parts["mesh"], label),
            "solver": ld.solver_section(parts["solver"], label)}


def _merge(base: dict, over: dict) -> dict:
    """Apply case overrides; a new kind (or mesh.file) restarts its section."""
    out = dict(base)
    for sec, trigger in (("landscape", "kind"), ("noise", "kind"), ("mesh", "file")):
        if f"{sec}.{trigger}" in over and over[f"{sec}.{trigger}"] != base.get(f"{sec}.{trigger}"):
            out = {k: v for k, v in out.items() if not k.startswith(sec + ".")}
    if any(k.startswith("mesh.") and k != "mesh.file" for k in over):
        out.pop("mesh.file", None)   # a generated-mesh override replaces a file
    out.update(over)
    return out


def _build_check(ld: _Loader, case_label: str, cfg: dict) -> None:
    """Construct the models once: catches non-symmetric A, non-PSD matrices, bad expressions."""
    from .build import build_landscape, build_noise, sample_points
    from ..models.diffusion import check_tensor
    from ..models.expressions import ExpressionError
    lcfg, ncfg = cfg["landscape"], cfg["noise"]
    try:
        L = build_landscape(lcfg)
    except (ValueError, TypeError, ExpressionError) as exc:
        key = {"quadratic": "A", "expression": "expr"}.get(lcfg["kind"], "kind")
        if lcfg["kind"] == "quadratic" and "center" in str(exc):
            key = "center"
        ld.fail(f"{case_label}landscape.{key}", str(exc))
    try:
        D = build_noise(ncfg, L)
    except (ValueError, TypeError, ExpressionError) as exc:
        key = {"constant": "matrix", "sgd": "delta_s", "isotropic": "delta"}.get(ncfg["kind"])
        if ncfg["kind"] == "expression":
            key = next((k for k in ("D11", "D12", "D22") if repr(ncfg[k]) in str(exc)), "D11")
        ld.fail(f"{case_label}noise.{key}", str(exc))
    if ncfg["kind"] == "expression":
        x, y = sample_points(cfg["mesh"])
        try:
            check_tensor(D.tensor(x, y), np.stack([x, y]), "expression diffusion")
            if not np.all(np.isfinite(D.divergence(x, y))):
                raise ValueError("expression diffusion: ∇·D is not finite inside the domain")
        except ValueError as exc:
            ld.fail(f"{case_label}noise", str(exc))
    try:
        g = L.gradient(*sample_points(cfg["mesh"]))
        if not np.all(np.isfinite(g)):
            raise ValueError("the gradient of the loss is not finite inside the domain")
    except (ValueError, FloatingPointError, ZeroDivisionError) as exc:
        ld.fail(f"{case_label}landscape", str(exc))


def _numeric_key(cfg: dict, dotted: str):
    """Return the Key spec of a swept/overridden numeric key in a resolved config, or None."""
    sec, _, rest = dotted.partition(".")
    if sec in ("landscape", "noise"):
        kind = cfg[sec]["kind"]
        if rest.startswith("params."):
            return Key(_number, "number", None, "", True) if rest[7:] in cfg[sec].get("params", {}) \
                and "params" in _KINDS[sec][kind] else None
        spec = _KINDS[sec][kind].get(rest)
    elif sec in ("mesh", "solver"):
        spec = _PLAIN[sec].get(rest)
        if sec == "mesh" and "file" in cfg["mesh"]:
            return None
    else:
        return None
    return spec if spec is not None and spec.numeric else None


def _format_value(v: float) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def parse_study(text: bytes | str, path: str) -> Study:
    """Validate the TOML ``text`` of the study at ``path`` (used for messages and
    relative mesh paths) and resolve it into a :class:`Study`.

    Raises
    ------
    StudyError
        One line naming the file, the dotted key and what was expected.
    """
    ld = _Loader(path)
    if isinstance(text, bytes):
        try:
            text_s = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            ld.fail(None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        raw_bytes = text
    else:
        text_s, raw_bytes = text, text.encode("utf-8")
    try:
        raw = tomllib.loads(text_s)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            msg = msg[:m.start()].strip()
            ld.fail(f"line {m.group(1)}", f"TOML syntax error: {msg} (column {m.group(2)})")
        ld.fail(None, f"TOML syntax error: {msg}")

    for k in raw:
        if k not in _TOP:
            hint = _suggest(k, _TOP)
            ld.fail(k, f"unknown section{hint}; a study has "
                    f"{', '.join('[[case]]' if s == 'case' else f'[{s}]' for s in _TOP)}")

    study = ld.plain_section(raw, "study")
    name = study.get("name")
    if name is None:
        stem = os.path.splitext(os.path.basename(path))[0]
        name = ld.check("study.name", _PLAIN["study"]["name"], stem)
    if "analysis" in raw:
        return _parse_analysis(ld, raw, name, study.get("description", ""), raw_bytes)
    output = {"vtk": True, "figures": True, "panel": True, "sweep_plot": True, "flux": True}
    output.update(ld.plain_section(raw, "output"))
    execution = {"workers": 1, "scheduler": "local"}
    execution.update(ld.plain_section(raw, "execution"))
    if execution["scheduler"] != "local":
        try:
            import distributed  # noqa: F401
        except ImportError:
            ld.fail("execution.scheduler", "a Dask scheduler needs dask.distributed: "
                    "pip install 'fpsolve[dask]'")

    base_flat = {}
    for sec in _CASE_SECTIONS:
        for k, v in _flatten(ld.table(raw, sec)).items():
            base_flat[f"{sec}.{k}"] = v
    base_cfg = _resolve_sections(ld, base_flat, "")

    # [[case]] -----------------------------------------------------------------------
    raw_cases = raw.get("case", [])
    if not isinstance(raw_cases, list) or not all(isinstance(c, dict) for c in raw_cases):
        ld.fail("case", "expected [[case]] tables (an array of tables)")
    bases = []   # (name, title, flat overrides, resolved config)
    seen = set()
    for i, rc in enumerate(raw_cases):
        where = f"case[{i}]"
        if "name" not in rc:
            ld.fail(f"{where}.name", "required (a file-name-safe name for the case)")
        cname = ld.check(f"{where}.name", _CASE_KEYS["name"], rc["name"])
        if cname in seen:
            ld.fail(f"{where}.name", f"duplicate case name {cname!r}")
        seen.add(cname)
        label = f'case "{cname}": '
        title = ld.check(f"{label}title", _CASE_KEYS["title"], rc.get("title", cname))
        over = {}
        for k, v in _flatten({kk: vv for kk, vv in rc.items() if kk not in ("name", "title")}).items():
            sec = k.split(".")[0]
            if sec not in _CASE_SECTIONS or "." not in k:
                known = list(_CASE_KEYS) + [f"{s}." for s in _CASE_SECTIONS]
                ld.fail(f"{label}{k}", f"unknown key{_suggest(k, known)}; a case accepts name, "
                        "title and overrides of landscape.*, noise.*, mesh.*, solver.*")
            over[k] = v
        flat = _merge(base_flat, over)
        bases.append((cname, title, flat, _resolve_sections(ld, flat, label)))
    if not bases:
        bases.append((name, name, base_flat, base_cfg))
        single = True
    else:
        single = False

    # [sweep] ---------------------------------------------------------------------------
    sweep = None
    cases: list[Case] = []
    if "sweep" in raw:
        sw = ld.table(raw, "sweep")
        for k in sw:
            if k not in _SWEEP_KEYS:
                ld.fail(f"sweep.{k}", f"unknown key{_suggest(k, _SWEEP_KEYS)}; [sweep] accepts "
                        "parameter, values, range")
        if "parameter" not in sw:
            ld.fail("sweep.parameter", 'required (the dotted key to sweep, e.g. "noise.delta_s")')
        param = ld.check("sweep.parameter", _SWEEP_KEYS["parameter"], sw["parameter"])
        if ("values" in sw) == ("range" in sw):
            ld.fail("sweep.values", "give exactly one of sweep.values (a list) or sweep.range "
                    "({start, stop, num})")
        if "values" in sw:
            vals = sw["values"]
            if not isinstance(vals, list) or not vals:
                ld.fail("sweep.values", f"expected a non-empty list of numbers, got {_show(vals)}")
            for j, v in enumerate(vals):
                if not _is_number(v) or not math.isfinite(v):
                    ld.fail(f"sweep.values[{j}]", f"expected a number, got {_show(v)}")
        else:
            rg = sw["range"]
            if not isinstance(rg, dict):
                ld.fail("sweep.range", f"expected a table {{start, stop, num}}, got {_show(rg)}")
            for k in rg:
                if k not in ("start", "stop", "num"):
                    ld.fail(f"sweep.range.{k}", f"unknown key{_suggest(k, ('start', 'stop', 'num'))}"
                            "; sweep.range accepts start, stop, num")
            for k in ("start", "stop", "num"):
                if k not in rg:
                    ld.fail(f"sweep.range.{k}", "required (range = {start, stop, num})")
            start = ld.check("sweep.range.start", Key(_number, "", None, ""), rg["start"])
            stop = ld.check("sweep.range.stop", Key(_number, "", None, ""), rg["stop"])
            num = rg["num"]
            if not isinstance(num, int) or isinstance(num, bool) or not 1 <= num <= 10000:
                ld.fail("sweep.range.num", f"expected an integer from 1 to 10000, got {_show(num)}")
            vals = np.linspace(start, stop, num).tolist() if num > 1 else [start]
            # round away linspace's last-bit noise so names and hashes are stable
            vals = [float(f"{v:.12g}") for v in vals]
        if len(set(vals)) != len(vals):
            ld.fail("sweep.values", "values must be distinct")
        sweep = Sweep(param, list(vals))
        for cname, title, flat, cfg in bases:
            spec = _numeric_key(cfg, param)
            if spec is None:
                known = [k for k, s in KEYS.items() if s.numeric]
                ld.fail("sweep.parameter", f"{param!r} is not a numeric key of "
                        f"{'the study' if single else f'case {cname!r}'}{_suggest(param, known)}; "
                        f"sweepable: {', '.join(known)}, landscape.params.NAME, noise.params.NAME")
            # the series names the sweep's files: vtk/<series>.pvd, <series>.png
            series = "sweep" if single else f"sweep-{cname}"
            members = []
            for j, v in enumerate(vals):
                label = f"sweep.values[{j}]: " if single else f'sweep.values[{j}] (case "{cname}"): '
                if spec.type.startswith("integer") and float(v).is_integer():
                    v = int(v)
                vflat = dict(flat)
                vflat[param] = v
                vcfg = _resolve_sections(ld, vflat, label)
                leaf = param.rsplit(".", 1)[-1]
                vname = f"{leaf}={_format_value(v)}"
                vname = vname if single else f"{cname}-{vname}"
                cases.append(Case(vname, f"{title}, {leaf} = {_format_value(v)}", vcfg,
                                  series=series, value=float(v)))
                members.append(vname)
            sweep.series[series] = members
    else:
        cases = [Case(cname, title, cfg) for cname, title, flat, cfg in bases]

    names = [c.name for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        ld.fail("case", f"case names collide after the sweep: {sorted(dup)}")

    checked = set()
    for c in cases:
        key = _canonical({k: c.config[k] for k in ("landscape", "noise", "mesh")})
        if key not in checked:
            checked.add(key)
            label = "" if single and sweep is None else f'case "{c.name}": '
            _build_check(ld, label, c.config)
        c.hash = case_hash(c.config, output["flux"])

    if isinstance(output["panel"], list):
        flat = [n for r in output["panel"] for n in (r if isinstance(r, list) else [r])]
        if len(set(flat)) != len(flat):
            ld.fail("output.panel", "a case appears twice")
        for n in flat:
            if n not in names:
                ld.fail("output.panel", f"no case named {n!r}{_suggest(n, names)}; cases: "
                        f"{', '.join(names)}")
    return Study(path=path, name=name, description=study.get("description", ""), cases=cases,
                 output=output, execution=execution, sweep=sweep, text=raw_bytes, raw=raw)


def _parse_analysis(ld: _Loader, raw: dict, name: str, description: str,
                    raw_bytes: bytes) -> Study:
    """A study with [analysis]: validate the analysis kind, its keys and [landscape]."""
    given = ld.table(raw, "analysis")
    if "kind" not in given:
        ld.fail("analysis.kind", "required (one of "
                f"{', '.join(json.dumps(k) for k in ANALYSIS_KINDS)})")
    kind = ld.check("analysis.kind", _ANALYSIS_KIND, given["kind"])
    for sec in ("noise", "mesh", "solver", "case", "sweep", "output"):
        if sec in raw:
            shown = "[[case]]" if sec == "case" else f"[{sec}]"
            ld.fail(sec, f"{shown} is not allowed in a study with [analysis] (the analysis "
                    f"{kind!r} sets its own noise, meshes and outputs in [analysis]); a study "
                    "has either FE cases or one analysis")
    spec = _ANALYSES[kind]
    params = {"kind": kind}
    for k, v in given.items():
        if k == "kind":
            continue
        if k not in spec:
            other = [kk for kk, sp in _ANALYSES.items() if k in sp]
            if other:
                why = (f"not a key of analysis kind {kind!r} (it belongs to kind "
                       f"{other[0]!r}); kind {kind!r} accepts kind, {', '.join(spec)}")
            else:
                why = (f"unknown key{_suggest(k, list(spec) + ['kind'])}; analysis kind "
                       f"{kind!r} accepts kind, {', '.join(spec)}")
            ld.fail(f"analysis.{k}", why)
        params[k] = ld.check(f"analysis.{k}", spec[k], v)
    for k in spec:
        if k not in params:
            params[k] = copy.deepcopy(_ADEF[(kind, k)])
    _check_analysis(ld, kind, params, given)

    allowed = _ANALYSIS_LANDSCAPES[kind]
    landscape = None
    if allowed:
        flat = _flatten(ld.table(raw, "landscape"))
        landscape = ld.kind_section(flat, "landscape", "")
        if landscape["kind"] not in allowed:
            ld.fail("landscape.kind", f"analysis {kind!r} needs the paper landscape "
                    f'(kind = "paper", Eq. 9), got {landscape["kind"]!r}')
    elif "landscape" in raw:
        ld.fail("landscape", f"[landscape] is not used by analysis {kind!r} (its 2-D part "
                "draws random quadratics and the paper landscape itself); remove it")
    params["landscape"] = landscape

    execution = {"workers": 1, "scheduler": "local"}
    execution.update(ld.plain_section(raw, "execution"))
    if execution["scheduler"] != "local":
        ld.fail("execution.scheduler", 'an analysis runs locally: expected "local", got '
                f"{execution['scheduler']!r}")
    return Study(path=ld.path, name=name, description=description, cases=[], output={},
                 execution=execution, sweep=None, text=raw_bytes, raw=raw, analysis=params)


def _check_analysis(ld: _Loader, kind: str, p: dict, given: dict) -> None:
    """Checks between keys of one analysis (ranges that depend on other keys)."""
    def need(cond, key, message):
        if not cond:
            ld.fail(f"analysis.{key}", message)

    if kind == "figS5":
        need(p["h"] <= p["radius"] / 2, "h", f"expected 0 < h <= radius/2 = {p['radius'] / 2:g}, "
             f"got {p['h']!r}")
        need(p["extent"] <= p["radius"], "extent", f"expected 0 < extent <= radius = "
             f"{p['radius']:g}, got {p['extent']!r}")
    elif kind == "transition":
        for j, h in enumerate(p["h"]):
            need(h <= p["radius"] / 2, f"h[{j}]", f"expected 0 < h <= radius/2 = "
                 f"{p['radius'] / 2:g}, got {h!r}")
        need(p["h"] == sorted(p["h"], reverse=True), "h",
             f"expected mesh levels from coarse to fine (decreasing), got {p['h']!r}")
        need(p["xss_h"] <= p["radius"] / 2, "xss_h", f"expected 0 < xss_h <= radius/2 = "
             f"{p['radius'] / 2:g}, got {p['xss_h']!r}")
        need(p["mc_delta_s"] == sorted(p["mc_delta_s"]), "mc_delta_s",
             f"expected increasing values, got {p['mc_delta_s']!r}")
        need(p["mc_fit_width"] < p["radius"], "mc_fit_width",
             f"expected 0 < mc_fit_width < radius = {p['radius']:g}, got {p['mc_fit_width']!r}")
    elif kind == "phase_diagram":
        if p["paper_grid"]:
            clash = [k for k in ("eta", "n_eta", "sigma", "n_sigma", "T", "n_walkers")
                     if k in given]
            need(not clash, clash[0] if clash else "paper_grid",
                 "not allowed with paper_grid = true (the paper grid sets eta, n_eta, sigma, "
                 "n_sigma, T, n_walkers)")
            p.update(eta=[0.003, 0.3], n_eta=40, sigma=[0.001, 1000.0], n_sigma=61, T=10000.0,
                     n_walkers=64)
        need(p["eta"][1] <= 2.0, "eta", f"expected learning rates <= 2, got {p['eta']!r}")
        need(p["cut_eta"] <= 2.0, "cut_eta", f"expected a learning rate <= 2, got "
             f"{p['cut_eta']!r}")
    elif kind == "variance_flatness":
        need(p["window_2d"] < p["steps_2d"], "window_2d", f"expected window_2d < steps_2d = "
             f"{p['steps_2d']}, got {p['window_2d']!r}")
        need(p["window"] < p["iterations"], "window", f"expected window < iterations = "
             f"{p['iterations']}, got {p['window']!r}")


def load_study(path: str) -> Study:
    """Read and validate the study file at ``path``.

    Raises
    ------
    StudyError
        If the file cannot be read or anything in it is invalid (one line, naming
        the file and the key).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise StudyError(path, None, "study file not found") from None
    except IsADirectoryError:
        raise StudyError(path, None, "is a directory, expected a study .toml file") from None
    except OSError as exc:
        raise StudyError(path, None, f"cannot read the study file ({exc.strerror})") from None
    return parse_study(text, path)
