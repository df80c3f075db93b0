"""Golden values of the shipped Fig. 3 study: what summary.json holds, and how to compare.

``golden_values(summary)`` keeps every result of a ``studies/fig3.toml`` summary.json and
drops what is not one: measurements of time (``runtime_s``, ``timings_s``, the solver's
``timings``), the fpsolve version and the configuration hashes (provenance: a hash of
the inputs and the version; the inputs themselves are compared), the ``reused`` flags,
warning texts (their number is kept).
``compare(actual, golden)`` walks both trees and returns one line per mismatch, naming
its JSON path: integers, booleans, strings, ``None`` and the structure (keys, list
lengths) must be equal; floats are compared with the tolerance of the first rule of
``RULES`` whose pattern matches the path with its list indices written ``[*]`` (in a
pattern, ``*`` stands for any text, everything else for itself), else ``RTOL``.

The reference is ``tests/data/fig3_summary_golden.json``, made by
``tests/data/make_fig3_golden.py`` (which says how); the test is
``tests/test_study_fig3.py``.
"""
import math
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "data", "fig3_summary_golden.json")

#: keys dropped wherever they stand: time, provenance and run bookkeeping (not every key
#: ending in "_s" is a time: noise.delta_s)
DROPPED = {"runtime_s", "timings_s", "timings", "reused", "fpsolve", "config_hash"}

#: relative tolerance of a float no rule names
RTOL = 1e-9

#: (pattern, rtol, atol, why) -- the first matching pattern gives a float's tolerance.
#: Measured (tests/data/make_fig3_golden.py, 2026-12-07): two runs, in process without the
#: renderer and with the CLI's renderer and forked estimates give the same floats bit for
#: bit; the differences below are those of a run with one BLAS thread and of a run
#: without pymetis (minimum-degree LU orderings), i.e. of another build.  Every other
#: float moved by <= 1.4e-10 relative (RTOL = 1e-9), x2 and y2 by <= 8.7e-13.  Each
#: measured change is <= 0.26 of what its rule allows (``make_fig3_golden.py --summary``
#: prints this margin for any summary.json).
RULES = [
    (".cases[*].mean[*]", 0.0, 1e-11,
     "zero by symmetry (L and D are even in x and y): |mean| <= 8.9e-13 is round-off, "
     "moved by 4.9e-13"),
    (".cases[*].cov[*][*]", RTOL, 1e-13,
     "the off-diagonal entries are zero by symmetry (round-off, <= 1e-16, moved by 5e-17)"),
    (".cases[*].mode[*]", 0.0, 1e-4,
     "argmax of P on shrinking grids; the maxima are flat (noD12-0.012: P(0,0)/P(max) = "
     "0.97), so round-off picks the point: withD12-0.012's y = +7.2e-6 became -7.2e-6 "
     "with one BLAS thread"),
    (".cases[*].marginal_mode_x", 0.0, 1e-7,
     "maximum of a flat marginal (bounded search, xatol 1e-10): moved by 1.8e-8"),
    ("*cycles[*].center[*]", 1e-7, 0.0,
     "extremum searches of the stream function: moved by 2e-8 relative (5e-9)"),
    (".cases[*].flux.cycles[*].density", 1e-7, 0.0,
     "P at the cycle centre, which moves by 5e-9: moved by 2.6e-8"),
    (".cases[*].flux.cycles[*].current_line", 1e-8, 0.0,
     "the current through a line ending at the cycle centres: moved by 9e-10"),
    (".cases[*].flux.diagnostics.cycle_center_mismatch", 0.0, 2e-8,
     "distance between mirrored centres (<= 8e-9): the searches' resolution, moved by 3.2e-9"),
    (".cases[*].flux.diagnostics.cycle_circulation_mismatch", 0.0, 2e-11,
     "difference of mirrored circulations (<= 7.4e-12): round-off, moved by 3.9e-12"),
    ("*escape_rate_eig", 1e-3, 0.0,
     "the eigenvalue of three cases is below its round-off floor (diagnostics."
     "escape_rate_eig_floor ~1e-9 > mu): moved by 1.2e-4 relative; the escape rate "
     "itself is the outflow (RTOL)"),
    (".cases[*].diagnostics.escape_rate_mismatch", 0.0, 1e-3,
     "(eigenvalue - outflow) / outflow: the eigenvalue's round-off (above), moved by 1.2e-4"),
    (".cases[*].flux.diagnostics.grad_phi_*", 1e-3, 0.0,
     "the gradient part of J is ~1e-9 of it: round-off of the Helmholtz decomposition, "
     "moved by 2.3e-5 relative"),
    (".cases[*].flux.diagnostics.*_flux_x0", 0.0, 1e-12,
     "currents through x = 0 are zero by symmetry (<= 3.2e-13): moved by 1e-14"),
    (".cases[*].flux.diagnostics.net_flux_y0", 1e-7, 0.0,
     "a net current through y = 0 that cancels its parts up to 1e3-fold (withD12-0.012: "
     "1.0e-6 net of 1.1e-3, abs_flux_y0): moved by 5.5e-9"),
    (".cases[*].flux.diagnostics.outflow_residual_mismatch", 0.0, 1e-14,
     "round-off (<= 1.3e-16)"),
    (".cases[*].diagnostics.solver.stop.componentwise_residual", 0.0, 1e-11,
     "the inverse iteration's componentwise residual at its stop: round-off (<= 2e-13; "
     "the stop accepts <= 1e-4)"),
    ("*.residual", 0.0, 1e-15,
     "the eigen-residual is round-off (<= 1.7e-17), moved by 5.4e-18"),
    ("*.error_*.escape_rate", 1e-5, 0.0,
     "error estimate and correction of mu: a sum of element terms that cancel, moved by "
     "2.7e-7 (and by 3.2e-5 when the recovery operators were re-associated); an estimate "
     "is good to a factor 0.5-1.4, so 1e-5 is far inside its own accuracy"),
    ("*.error_*", 1e-7, 0.0,
     "error estimates and corrections of x2, y2, L1: moved by 3.4e-9; see mu above"),
]


def golden_values(summary):
    """The results of a summary.json (a tree of dicts and lists), without timings,
    provenance, ``reused`` flags and warning texts (a ``warnings`` list becomes its
    length)."""
    if isinstance(summary, dict):
        return {k: (len(v) if k == "warnings" and isinstance(v, list) else golden_values(v))
                for k, v in summary.items() if k not in DROPPED}
    if isinstance(summary, list):
        return [golden_values(v) for v in summary]
    return summary


def pattern_of(path):
    """A JSON path with its list indices written ``[*]`` (what ``RULES`` match)."""
    return re.sub(r"\[\d+\]", "[*]", path)


def matches(pattern, generic):
    """Whether a ``RULES`` pattern matches a path written by :func:`pattern_of`."""
    return re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), generic) is not None


def tolerance(path):
    """``(rtol, atol)`` of the float at ``path``."""
    generic = pattern_of(path)
    for pattern, rtol, atol, _ in RULES:
        if matches(pattern, generic):
            return rtol, atol
    return RTOL, 0.0


def _floats_match(a, g, path):
    if math.isnan(g) or math.isinf(g):
        return (math.isnan(a) and math.isnan(g)) or a == g, "(exact)"
    rtol, atol = tolerance(path)
    return abs(a - g) <= atol + rtol * abs(g), f"(rtol {rtol:g}, atol {atol:g})"


def compare(actual, golden, path=""):
    """Every difference between two trees of :func:`golden_values`, one line each.

    Parameters
    ----------
    actual, golden : dict, list or scalar
        The values of a run and the reference.
    path : str
        JSON path of this subtree (``""`` for the root).

    Returns
    -------
    list of str
        ``"<path>: <what differs>"``; empty when everything matches.
    """
    where = path or "."
    if isinstance(golden, dict) and isinstance(actual, dict):
        out = [f"{path}.{k}: missing (golden {golden[k]!r:.60})" for k in golden if k not in actual]
        out += [f"{path}.{k}: not in the golden values" for k in actual if k not in golden]
        for k in golden:
            if k in actual:
                out += compare(actual[k], golden[k], f"{path}.{k}")
        return out
    if isinstance(golden, list) and isinstance(actual, list):
        if len(actual) != len(golden):
            return [f"{where}: {len(actual)} entries, golden {len(golden)}"]
        return [m for i, (a, g) in enumerate(zip(actual, golden))
                for m in compare(a, g, f"{path}[{i}]")]
    if type(actual) is float and type(golden) is float:
        ok, tol = _floats_match(actual, golden, path)
        if ok:
            return []
        rel = abs(actual - golden) / abs(golden) if golden else math.inf
        return [f"{where}: {actual!r} != golden {golden!r} (relative {rel:.2g}) {tol}"]
    if type(actual) is not type(golden) or actual != golden:
        return [f"{where}: {actual!r:.80} != golden {golden!r:.80} (exact)"]
    return []
