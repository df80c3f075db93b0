"""The keys of FE-case studies: sections, kinds, defaults and documentation.

Each key is a :class:`~fpsolve.study.schema.values.Key` (check, type, default,
doc).  :data:`KEYS` lists every dotted key; ``docs/studies.md`` is generated from
these tables by :func:`~fpsolve.study.schema.reference.reference_markdown`.
A new key of an existing section goes into its table here (and, if it has a
default, into :data:`_DEFAULTS` or the section's resolver in ``sections.py``).
"""
from __future__ import annotations

from .values import (Key, _bool, _choice, _expression, _fraction, _goals, _int_range, _k,
                     _matrix, _max_dofs, _name, _number, _panel, _params, _path, _positive,
                     _positive_list, _scheduler, _string, _vector2, _workers)

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
        "tol": _k(_fraction, "number, 0 < tol < 1", "none",
                  "Requested relative accuracy of the observables (⟨x²⟩, ⟨y²⟩, the escape rate "
                  "μ of an absorbing boundary, the L1 norm of P): the mesh is refined "
                  "adaptively from [mesh] until the estimated relative errors are ≤ tol, "
                  "within `max_dofs` (docs/adaptivity.md). Without it: one solve on the "
                  "given mesh, still with error estimates in summary.json. Each case's adapted "
                  "mesh is stored in `cases/<case>.npz` with its coefficients; the figures, "
                  "the panel, the flux and the `.vtu` files are on it.", True),
        "goals": _k(_goals, 'list of "x2", "y2", "escape_rate", "L1"', "all four",
                    "The observables `tol` applies to (only with `tol`): ⟨x²⟩, ⟨y²⟩, the escape "
                    "rate μ (absorbing boundaries) and the L1 norm of P. Every case reports all "
                    "four estimates in `error_estimate` either way."),
        "weighting": _k(_choice("auto", "gibbs", "none"), "string", '"auto"',
                        'The Gibbs-weighted discretisation P = e^(−(L − L₀)/δ)·u for noise in '
                        'detailed balance (noise.kind = "isotropic", no stabilisation): '
                        "exponentially small escape rates on a fraction of the dofs "
                        '(docs/adaptivity.md). "auto": with `tol` where it applies (absorbing: '
                        "where escape is rare, the boundary ≥ 4 nats of L/δ above the minimum); "
                        '"gibbs": always (an error for other noise, or an absorbing boundary '
                        '< 2 nats above the minimum); "none": never.'),
        "max_dofs": _k(_max_dofs, "integer ≥ 100", "from the available memory",
                       "Budget of unknowns per solve. The dofs and the peak memory of every "
                       "case are estimated when the study is validated; a case beyond the "
                       "budget or the available memory is an error before anything is "
                       "written (the default budget is what the available memory allows)."),
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
    "time": {
        "t_end": _k(_positive, "number > 0", "none",
                    "End time of the transient (with `n_out`, `spacing`); give `t_end` or "
                    "`times`."),
        "times": _k(_positive_list(1, 1000, nonneg=True), "list of numbers ≥ 0", "none",
                    "Explicit increasing output times (excludes `t_end`, `n_out`, `spacing`)."),
        "n_out": _k(_int_range(2, 1000), "integer 2–1000", "11",
                    "Number of output times from 0 to `t_end`, both included."),
        "spacing": _k(_choice("linear", "log"), "string", '"linear"',
                      '"linear" or "log" (0, then `n_out` − 1 times from `t_end`/1000 to '
                      "`t_end`, equally spaced in log t)."),
        "tol": _k(_fraction, "number in (0, 1)", "1e-6",
                  "Bound on the estimated local error of each TR-BDF2 step (relative to "
                  "max |P|)."),
        "initial_mean": _k(_vector2, "[number, number]", "[0.0, 0.0]",
                           "Mean of the Gaussian initial density."),
        "initial_cov": _k(_matrix, "2x2 matrix", "[[0.01, 0.0], [0.0, 0.01]]",
                          "Covariance of the Gaussian initial density (symmetric positive "
                          "definite)."),
        "spectrum": _k(_int_range(0, 50), "integer 0–50", "6",
                       "Number of slowest decay rates of the generator to report (0: none)."),
        "vtk": _k(_bool, "boolean", "true",
                  "Write `vtk/<case>_time.pvd` (one `.vtu` per output time) when `output.vtk`."),
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
        "analysis", "time")

#: Defaults of the kind-dependent keys that have one.
_DEFAULTS = {
    ("landscape", "paper", "eps"): 0.02, ("landscape", "paper", "lam0"): 8.0,
    ("landscape", "paper", "lam1"): -2.0, ("landscape", "paper", "lam2"): 1.0,
    ("landscape", "quadratic", "center"): [0.0, 0.0],
    ("noise", "sgd", "cross_diffusion"): True, ("noise", "expression", "D12"): "0",
}


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
    for sec in ("output", "execution", "time"):
        keys.update({f"{sec}.{k}": v for k, v in _PLAIN[sec].items()})
    return keys


#: Every documented key of FE-case studies, dotted (kind-specific keys appear once).
KEYS = _all_keys()

