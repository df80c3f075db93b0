"""FE ↔ Monte Carlo cross-check: a finite-element Solution against direct simulation.

:func:`crosscheck` takes a solved (quasi-)stationary FE case and runs the simulators of
:mod:`fpsolve.stochastic.montecarlo` on the same model and the same absorbing disk:

* **Euler–Maruyama** (``langevin``) at several time steps ``dts``.  EM is weak order 1,
  so each stationary observable is extrapolated linearly in dt to dt → 0
  (:func:`extrapolate`, standard error propagated from the runs).  The dt → 0 values
  are what is compared with FE.
* **SGD** (``sgd``) at several learning rates ``etas`` at fixed Δ_S = ησ (only for the
  SGD diffusion model), to show the finite-η bias and its trend.  For D = Δ_S H² the
  SGD update *is* EM with dt = η (docs/montecarlo.md), so these rows are EM at larger
  steps: their bias is the same O(η) bias, seen where it is large.

Compared, side by side: ⟨x²⟩, ⟨y²⟩, ⟨|x|⟩, |x| of the mode of the marginal P(x), the
L1 distance between the FE and MC marginals (with the L1 that MC noise alone would
give), the binned probability current J (FE J averaged over the MC bins; χ²/bin and a
fitted scale J_MC ≈ s J_FE over the bins where J is significant) and the escape rate.

Error bars come from the simulators' independent walker blocks (docs/montecarlo.md).
Quantities the simulators do not accumulate (⟨|x|⟩, the bin-bin correlation of the
marginal histogram, the stationarity check) come from recorded frames of every walker,
grouped by the same blocks.  Runs of one family are *chained*: each starts from the
final positions of the previous one (a new, independent random stream), so only the
first needs the long burn-in from the initial condition.  The burn-in is compared with
the relaxation times of the FE operator (:func:`relaxation_times`).

Examples
--------
>>> import fpsolve as fp
>>> L = fp.landscapes.paper()
>>> sol = fp.solve(L, fp.diffusion.sgd(L, 0.012), fp.disk_mesh(2.0, h=0.035))
>>> cc = fp.compare.crosscheck(sol, seed=1)                   # doctest: +SKIP
>>> print(cc.to_markdown())                                   # doctest: +SKIP
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from numbers import Integral

import numpy as np

from ..models import diffusion as _diffusion
from ..fe.solution import Solution
from ._checks import _count, _positive, _positive_floats
from .criteria import P_LIMIT, Z_LIMIT, _agreement
from .reference import _fe_reference
from .relaxation import relaxation_times
from .report import CrossCheck
from .runs import _extrapolated, _simulate

__all__ = ["crosscheck"]


def crosscheck(sol: Solution, *, dts=(4e-3, 2e-3, 1e-3), etas="auto", n_walkers: int = 4096,
               t_burn: float | None = None, t_warm: float | None = None,
               t_sample: float = 300.0, seed=0, x0=None, chain: bool = True,
               coarse: Solution | None = None, marginal_bins: int = 160, current_bins=20,
               current_sub: int = 4, j_threshold: float = 3.0, frame_dt: float = 1.0,
               sample_every: int = 10, block_size: int = 128, workers: int | None = None,
               spectrum=True, label: str | None = None,
               verbose: bool = False) -> CrossCheck:
    """Cross-check an FE solution against Euler–Maruyama and SGD simulations.

    Parameters
    ----------
    sol : Solution
        Quasi-stationary FE solution, absorbing boundary, on a disk centred at the origin
        (the simulators' disk is absorbing too, with Fleming–Viot re-insertion).
    dts : sequence of float
        Euler–Maruyama time steps (at least two, for the dt → 0 extrapolation).
    etas : sequence of float, "auto" or None
        SGD learning rates at fixed Δ_S = ησ (σ = Δ_S/η); only the SGD diffusion model
        has them.  "auto": (0.04, 0.02, 0.01) for the SGD model, none otherwise.
    n_walkers : int
        Walkers per run.
    t_burn, t_warm : float, optional
        Burn-in from the initial condition (first run of each family) and of a chained
        run.  Default 10 × and 5 × the slowest relaxation time of the FE operator that
        the start can excite (:func:`relaxation_times`; needs ``spectrum``).
    t_sample : float
        Sampling time after burn-in, per run.
    seed : int or numpy.random.SeedSequence
        Root seed; run i uses the i-th child (EM runs in the order of ``dts``, then SGD).
    x0 : optional
        Initial condition of the first run of each family (default: the simulators').
    chain : bool
        Start each further run of a family from the previous run's final positions.
    coarse : Solution, optional
        The same problem on a coarser mesh: |sol − coarse| is the FE error of each scalar.
    marginal_bins : int
        Bins of the x-marginal histogram over [−R, R].
    current_bins : int or (int, int)
        Bins of the 2-D histogram over [−R, R]² in which J is compared.
    current_sub : int
        FE J is averaged over current_sub² points per bin.
    j_threshold : float
        J is compared in the bins where |J_FE| > j_threshold × SE_MC (per component).
    frame_dt : float
        Spacing of the recorded frames behind ⟨|x|⟩, the marginal's bin-bin correlation
        and the stationarity check.
    sample_every, block_size, workers
        Passed to the simulators (``block_size`` sets the independent groups behind
        every error bar: use ≥ 16 blocks).
    spectrum : bool or dict
        Compute :func:`relaxation_times` (needed for the default burn-in), or pass its
        result computed elsewhere (e.g. on a coarser mesh of the same problem).
    label : str, optional
        Name of the case in tables and figures.
    verbose : bool
        Print one line per run.

    Returns
    -------
    CrossCheck
    """
    s = _settings(**locals())          # every argument checked, in the order above
    spec = _burn_in(sol, s, spectrum)
    fe, fe_marg, fe_cur, curve, dens_grid, notes = _fe_reference(
        sol, coarse, s.medges, s.cedges, s.current_sub, 801)
    fe.update(dofs=int(sol.P.size), h=float(sol.mesh.h), order=sol.order)
    runs, rng = _simulate(sol, s, fe, fe_marg, fe_cur, notes)
    em0, em_arrays = _extrapolated([r for r in runs if r["kind"] == "em"], fe, fe_marg,
                                   fe_cur, s.width, s.j_threshold, rng, s.centres, escape=True)
    sgd_runs = [r for r in runs if r["kind"] == "sgd"]
    sgd0 = None if len(sgd_runs) < 2 else _extrapolated(
        sgd_runs, fe, fe_marg, fe_cur, s.width, s.j_threshold, rng, s.centres, escape=False)[0]
    arrays = {"marginal_edges": s.medges, "current_edges": s.cedges, "fe_marginal": fe_marg,
              "fe_current": fe_cur, "fe_marginal_curve": curve, "fe_density_grid": dens_grid,
              **em_arrays}
    return CrossCheck(label=_label(sol, label), fe=fe, runs=runs, em0=em0, sgd0=sgd0,
                      agreement=_agreement(fe, em0), spectrum=spec, config=_config(sol, s),
                      notes=notes + _fit_notes(em0) + _drift_notes(runs), arrays=arrays)


@dataclass
class _Settings:
    """The checked arguments of :func:`crosscheck` and the bins derived from them."""

    t_start: float          # perf_counter() at the call, for config["seconds"]
    R: float
    D: object
    dts: tuple
    etas: tuple
    n_walkers: int
    block_size: int
    n_blocks: int
    t_sample: float
    marginal_bins: int
    cb: tuple               # current bins (nx, ny)
    current_sub: int
    j_threshold: float
    frame_dt: float
    sample_every: int
    seed: np.random.SeedSequence
    x0: object
    chain: bool
    workers: int | None
    verbose: bool
    t_burn: float | None = None
    t_warm: float | None = None

    def __post_init__(self):
        R = self.R
        self.medges = np.linspace(-R, R, self.marginal_bins + 1)
        self.cedges = (np.linspace(-R, R, self.cb[0] + 1), np.linspace(-R, R, self.cb[1] + 1))
        self.width = np.diff(self.medges)
        self.centres = 0.5 * (self.medges[1:] + self.medges[:-1])


def _settings(sol, dts, etas, n_walkers, t_burn, t_warm, t_sample, seed, x0, chain, coarse,
              marginal_bins, current_bins, current_sub, j_threshold, frame_dt, sample_every,
              block_size, workers, spectrum, label, verbose) -> _Settings:
    """Check the arguments of :func:`crosscheck` (spectrum and burn-in: :func:`_burn_in`)."""
    t_start = time.perf_counter()
    _check_solutions(sol, coarse)
    dts = _positive_floats("dts", dts, 2)
    etas = _sgd_rates(sol, etas)
    n_walkers = _count("n_walkers", n_walkers, 2)
    block_size = _count("block_size", block_size, 1)
    n_blocks = -(-n_walkers // block_size)
    if n_blocks < 4:
        raise ValueError(f"n_walkers: {n_walkers} walkers in blocks of {block_size} give "
                         f"{n_blocks} independent groups; error bars need at least 4")
    t_sample = _positive("t_sample", t_sample)
    marginal_bins = _count("marginal_bins", marginal_bins, 8)
    if isinstance(current_bins, (tuple, list)):
        if len(current_bins) != 2:
            raise ValueError(f"current_bins: expected an int or (nx, ny), got {current_bins!r}")
        cb = (_count("current_bins", current_bins[0], 2), _count("current_bins",
                                                                 current_bins[1], 2))
    else:
        cb = (_count("current_bins", current_bins, 2),) * 2
    current_sub = _count("current_sub", current_sub, 1)
    j_threshold = _positive("j_threshold", j_threshold)
    frame_dt = _positive("frame_dt", frame_dt)
    sample_every = _count("sample_every", sample_every, 1)
    if not isinstance(seed, np.random.SeedSequence):
        if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
            raise ValueError(f"seed: expected a non-negative integer or a SeedSequence, "
                             f"got {seed!r}")
        seed = np.random.SeedSequence(int(seed))
    return _Settings(t_start, sol.mesh.radius, sol.diffusion, dts, etas, n_walkers, block_size,
                     n_blocks, t_sample, marginal_bins, cb, current_sub, j_threshold, frame_dt,
                     sample_every, seed, x0, chain, workers, verbose, t_burn, t_warm)


def _check_solutions(sol, coarse) -> None:
    """``sol`` must describe what the simulators can run: an absorbing disk at the origin."""
    if not isinstance(sol, Solution):
        raise TypeError(f"sol: expected a fpsolve Solution, got {type(sol).__name__}")
    if sol.boundary != "absorbing":
        raise ValueError(f"sol: the simulators have absorbing disks or free space, no "
                         f"reflecting wall; solve with boundary='absorbing' (got "
                         f"{sol.boundary!r})")
    R = sol.mesh.radius
    if R is None or not np.allclose(sol.mesh.center, 0.0):
        raise ValueError("sol: the Monte Carlo disk is centred at the origin; the mesh must "
                         "be a disk centred at (0, 0) (disk_mesh(radius) or load_mesh with "
                         "radius)")
    if sol.landscape is None:
        raise ValueError("sol: needs a landscape (the simulators take a loss L)")
    if coarse is not None and not isinstance(coarse, Solution):
        raise TypeError(f"coarse: expected a fpsolve Solution or None, got "
                        f"{type(coarse).__name__}")


def _sgd_rates(sol, etas) -> tuple:
    """The SGD learning rates: only the SGD diffusion model, on sol's own landscape."""
    D = sol.diffusion
    is_sgd = isinstance(D, _diffusion.SGD)
    if isinstance(etas, str):
        if etas != "auto":
            raise ValueError(f"etas: expected 'auto', None or a sequence of learning rates, "
                             f"got {etas!r}")
        etas = (0.04, 0.02, 0.01) if is_sgd and sol.drift is None else ()
    elif etas is None:
        etas = ()
    else:
        etas = _positive_floats("etas", etas, 0)
        if etas and not is_sgd:
            raise ValueError(f"etas: SGD runs need the SGD diffusion model "
                             f"(fpsolve.diffusion.sgd), sol uses {D.kind!r}")
        if etas and sol.drift is not None:
            raise ValueError("etas: SGD runs cannot include the user drift of sol")
    if is_sgd and etas:
        DL = D.landscape
        if not (DL is sol.landscape or (type(DL) is type(sol.landscape)
                                        and DL.params == sol.landscape.params)):
            raise ValueError("etas: the SGD noise is built on another landscape than sol's; "
                             "SGD runs would simulate a different model")
    return etas


def _burn_in(sol, s: _Settings, spectrum):
    """The FE relaxation spectrum (or None) and the burn-in times derived from it."""
    if isinstance(spectrum, dict):
        missing = {"tau_slowest", "tau_even", "density_parity"} - set(spectrum)
        if missing:
            raise ValueError(f"spectrum: a dict must come from relaxation_times (missing "
                             f"{sorted(missing)})")
        spec = spectrum
    elif spectrum is True:
        spec = relaxation_times(sol)
    elif spectrum is False or spectrum is None:
        spec = None
    else:
        raise TypeError(f"spectrum: expected True, False or a relaxation_times dict, got "
                        f"{type(spectrum).__name__}")
    if s.t_burn is None or s.t_warm is None:
        if spec is None:
            raise ValueError("t_burn: give t_burn and t_warm, or spectrum=True to derive them "
                             "from the FE relaxation times")
        # a symmetric start does not excite the odd modes of a symmetric problem
        symmetric = s.x0 is None and spec["density_parity"] > 0.99
        tau = spec["tau_even"] if symmetric and math.isfinite(spec["tau_even"]) \
            else spec["tau_slowest"]
        if s.t_burn is None:
            s.t_burn = 10.0 * tau
        if s.t_warm is None:
            s.t_warm = 5.0 * tau
    s.t_burn = _positive("t_burn", s.t_burn)
    s.t_warm = _positive("t_warm", s.t_warm)
    return spec


def _fit_notes(em0) -> list:
    notes = []
    for q, e in (("x2", "<x^2>"), ("y2", "<y^2>"), ("absx", "<|x|>"), ("mode", "mode |x|")):
        if em0[q]["p_value"] is not None and em0[q]["p_value"] < P_LIMIT:
            notes.append(f"{e}: the straight line in dt does not describe the EM values "
                         f"(fit p = {em0[q]['p_value']:.2g}); the dt → 0 value is suspect")
    return notes


def _drift_notes(runs) -> list:
    drifts = [(r["kind"], r["step"], k, z) for r in runs for k, z in r["stationarity"].items()
              if z is not None and math.isfinite(z) and abs(z) > Z_LIMIT]
    return [f"{kind} step {step:g}: {k} differs between the halves of the sampling "
            f"window by {z:.1f} SE (not stationary? lengthen the burn-in)"
            for kind, step, k, z in drifts]


def _config(sol, s: _Settings) -> dict:
    """Everything needed to rerun the cross-check."""
    D, seed = s.D, s.seed
    return {"dts": list(s.dts), "etas": list(s.etas), "n_walkers": s.n_walkers,
            "block_size": s.block_size, "n_blocks": s.n_blocks, "t_burn": s.t_burn,
            "t_warm": s.t_warm, "t_sample": s.t_sample, "chain": s.chain,
            "sample_every": s.sample_every, "frame_dt": s.frame_dt,
            "marginal_bins": s.marginal_bins, "current_bins": list(s.cb),
            "current_sub": s.current_sub, "j_threshold": s.j_threshold, "radius": s.R,
            "seed_entropy": seed.entropy, "seed_spawn_key": list(seed.spawn_key),
            "diffusion": D.kind, "diffusion_params": getattr(D, "params", {}),
            "strength": D.strength, "landscape": sol.landscape.kind,
            "landscape_params": sol.landscape.params,
            "seconds": time.perf_counter() - s.t_start}


def _label(sol, label):
    if label is not None:
        return label
    D = sol.diffusion
    if isinstance(D, _diffusion.SGD):
        return (f"Δ_S = {D.strength:g}, {'with' if D.cross_diffusion else 'without'} "
                f"cross-diffusion")
    return f"{D.kind} strength {D.strength:g}"
