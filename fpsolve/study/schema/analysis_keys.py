"""The keys of ``[analysis]``: studies that run an analysis driver instead of FE cases.

:data:`_ANALYSES` maps each analysis kind to its keys; :data:`_ADEF` holds their
resolved defaults.  A new analysis kind adds an entry to :data:`_ANALYSES` and
:data:`_ANALYSIS_LANDSCAPES`, its cross-key checks to ``analysis.py`` and its
driver to ``fpsolve/study/analyses/``.
"""
from __future__ import annotations

import json

from .values import (REQUIRED, Key, _Bad, _bool, _bool_list, _choice, _int_range, _interval,
                     _k, _positive, _positive_list, _seed, _show)

#: Resolved default value of every analysis key: (kind, key) -> value.
_ADEF: dict = {}


def _a(kind, name, check, type_, default, doc):
    _ADEF[(kind, name)] = default
    shown = "required" if default is REQUIRED else json.dumps(default, ensure_ascii=False)
    return name, Key(check, type_, shown, doc)


def _int_list(lo, hi, distinct=True):
    """A non-empty list of (distinct) integers from lo to hi (numbers of constraints, widths)."""
    def check(v):
        if not (isinstance(v, list) and v and all(isinstance(a, int) and not isinstance(a, bool)
                                                  and lo <= a <= hi for a in v)
                and (len(set(v)) == len(v) or not distinct)):
            what = "distinct integers" if distinct else "integers"
            raise _Bad(f"expected a non-empty list of {what} from {lo} to {hi}, got {_show(v)}")
        return list(v)
    return check


def _digit_tasks(v):
    """Two disjoint lists of equally many distinct digits 0–9: [[task 1], [task 2]]."""
    ok = (isinstance(v, list) and len(v) == 2
          and all(isinstance(t, list) and len(t) >= 2 for t in v)
          and all(isinstance(a, int) and not isinstance(a, bool) and 0 <= a <= 9
                  for t in v for a in t))
    if ok:
        flat = v[0] + v[1]
        ok = len(v[0]) == len(v[1]) and len(set(flat)) == len(flat)
    if not ok:
        raise _Bad("expected [[task-1 digits], [task-2 digits]]: two lists of equally many "
                   f"distinct digits 0–9, none in both, got {_show(v)}")
    return [list(v[0]), list(v[1])]


def _list_of_cases(v):
    if not (isinstance(v, list) and v and all(c in ("split", "pair") for c in v)
            and len(set(v)) == len(v)):
        raise _Bad(f'expected a non-empty list of distinct "split", "pair", got {_show(v)}')
    return list(v)


def _data_source(v):
    if not isinstance(v, str) or not v.strip():
        raise _Bad('expected "digits" (scikit-learn, offline) or the path of a local MNIST '
                   f".npz file, got {_show(v)}")
    return v


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
    "ldc": _spec(
        _a("ldc", "seed", _seed, "integer ≥ 0", 0,
           "First seed; the runs use seed, seed + 1, … (data split, initialisation, minibatches)."),
        _a("ldc", "n_seeds", _int_range(1, 100), "integer 1–100", 5,
           "Seeds per case: every reported error has its spread over these."),
        _a("ldc", "cases", _list_of_cases, 'list of "split", "pair"', ["split", "pair"],
           "Which task pairs to run: split (5 + 5 digits, the SI's harder case) and pair."),
        _a("ldc", "split", _digit_tasks, "[[digits], [digits]]", [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]],
           "Task-1 and task-2 digits of the split case (shared output head)."),
        _a("ldc", "pair", _digit_tasks, "[[digits], [digits]]", [[0, 1], [2, 3]],
           "Task-1 and task-2 digits of the pair case (like the main text's two-digit tasks)."),
        _a("ldc", "data", _data_source, "string", "digits",
           '"digits": scikit-learn\'s 8×8 digits (offline, split by seed); otherwise the path '
           "(relative to the study file) of a local MNIST .npz (x_train, y_train, x_test, "
           "y_test). Nothing is downloaded."),
        _a("ldc", "hidden", _int_list(1, 10000, distinct=False), "list of integers", [30, 30],
           "Hidden-layer widths of the network (inputs–hidden–digits per task)."),
        _a("ldc", "lr", _positive, "number > 0", 0.05, "SGD learning rate α (both tasks)."),
        _a("ldc", "batch_size", _int_range(1, 100000), "integer ≥ 1", 32, "SGD minibatch size."),
        _a("ldc", "iterations_1", _int_range(10, 10 ** 7), "integer ≥ 10", 4000,
           "SGD updates on task 1."),
        _a("ldc", "window", _int_range(6, 10 ** 7), "integer ≥ 6", 2000,
           "PCA window: the last task-1 iterations (≤ iterations_1)."),
        _a("ldc", "snapshot_every", _int_range(1, 10 ** 6), "integer ≥ 1", 2,
           "Iterations between snapshots of all weights in the window (≥ 3 snapshots)."),
        _a("ldc", "iterations_2", _int_range(1, 10 ** 7), "integer ≥ 1", 1000,
           "SGD updates on task 2 (each followed by the constraint's exact proximal step)."),
        _a("ldc", "lambda_ewc", _positive_list(1), "list of numbers > 0",
           [10.0 ** k for k in range(0, 9)], "EWC strengths λ."),
        _a("ldc", "lambda_tilde", _positive_list(1), "list of numbers > 0",
           [10.0 ** k for k in range(4, 13)], "LDC strengths λ̃ = 10^ψ λ (Fig. S13, S14A)."),
        _a("ldc", "psis", _positive_list(1, 10), "list of numbers > 0", [3.0, 4.0, 5.0],
           "Exponents ψ of F_i ∝ σ_i^(−2/ψ) compared in Fig. S13."),
        _a("ldc", "psi", _positive, "number > 0", 4.0,
           "ψ of the main LDC result and of the N_c scan (the SI's choice: 4)."),
        _a("ldc", "n_c", _int_range(0, 10 ** 6), "integer ≥ 0", 0,
           "Constrained directions N_c of the ψ comparison; 0: all directions of the window."),
        _a("ldc", "n_c_scan", _int_list(1, 10 ** 6), "list of integers ≥ 1",
           [3, 10, 30, 100, 300, 1000],
           "N_c values of the minimum-⟨ε⟩ scan (Fig. S14B); capped at the window's directions."),
        _a("ldc", "lambda_tilde_scan", _positive_list(1), "list of numbers > 0",
           [10.0 ** k for k in range(6, 12)], "λ̃ grid of the N_c scan."),
    ),
}
ANALYSIS_KINDS = tuple(_ANALYSES)
_ANALYSIS_KIND = _k(_choice(*ANALYSIS_KINDS), "string", "required",
                    "What the study computes instead of FE cases: " +
                    ", ".join(f'"{k}"' for k in ANALYSIS_KINDS) + ". Excludes [noise], "
                    "[mesh], [solver], [[case]], [sweep], [output].")
#: The landscape kinds each analysis accepts (an empty tuple: no [landscape]).
_ANALYSIS_LANDSCAPES = {"figS5": ("paper",), "transition": ("paper",),
                        "phase_diagram": ("paper",), "variance_flatness": (),
                        "ldc": ()}

#: Every key of [analysis]: ``(kind, key) -> Key`` (``(None, "kind")`` for the kind itself).
ANALYSIS_KEYS = {(None, "kind"): _ANALYSIS_KIND,
                 **{(kind, k): v for kind, spec in _ANALYSES.items() for k, v in spec.items()}}
