"""Monte Carlo phase diagram of random-shift SGD (Yang–Tang–Tu Fig. 2, Figs. S2–S4).

Random-shift minibatch SGD (main text Eq. 1, 8; SM Eq. S1–S4)

.. math:: θ_{t+1} = θ_t − η\\,(∇L(θ_t) − H(θ_t) μ_t),\\qquad μ_t \\sim N(0, 2σ I),

on the paper's landscape L = ½ελ0x² + ½λ(x)y², λ = λ0 + λ1x² + λ2x⁴ with Fig. 2's
ε = 0.001, λ0 = 8, λ1 = −2, λ2 = 1 (:func:`fig2_landscape`), every walker started at
(1.5, 1.5).  Flatness F(x) = λ(x)^(−1/2); global minimum x* = 0, flattest solutions
x_F = ±1.

Observables of one (σ, η) grid point (``docs/phase_diagram.md`` gives the reasons)
----------------------------------------------------------------------------------
The paper defines x_ss as "the final steady-state solution", τ_s ≡ η⟨t_s⟩ with t_s
"the first passage time of reaching the solution x = x_ss", V_x ≡ ⟨x²⟩_ss − x_ss²,
V_y ≡ ⟨y²⟩_ss − y_ss² and phase III as "the system diverges".  It is silent on the
operational details, which are:

* **run**: every walker makes n = ⌈T/η⌉ steps (T in the paper's time unit τ = ηt, the
  same physical time at every η); the *window* is the last ``avg_fraction`` of them.
* **diverged**: |θ| > ``blowup`` or a non-finite state before the end of the run.
  Diverged walkers are left out of every other observable.
* **x_ss** = ⟨|x̄_w|⟩_w: x̄_w is walker w's time average of x over the window, the
  absolute value folds the two symmetric solutions ±x_ss (a walker settles on one
  side), the mean is over surviving walkers.  In phase I x̄_w → 0 (fluctuations
  average out), so x_ss is not biased by V_x as ⟨|x|⟩ would be.
* **F(x_ss)** = λ(x_ss)^(−1/2).
* **V_x** = ⟨x²⟩ − x_ss², **V_y** = ⟨y²⟩ − y_ss², with ⟨·⟩ the window and walker
  average and y_ss = ⟨ȳ_w⟩_w.
* **t_s** of a walker = the first step t with |x_t| ≤ x_ss + ``tol`` (walkers start
  above, |x0| = 1.5 > x_ss).  x_ss is known only at the end, so the kernel records the
  first-passage step to every level of a ladder ℓ_j = j·``level_step`` and t_s is read
  at the ladder level nearest to x_ss + tol.  A walker that never gets there is
  *censored* and counts with t_s = n (so τ_s is then a lower bound; the censored
  fraction is reported).  **τ_s** = η⟨t_s⟩_w.
* **phase**: III if the diverged fraction exceeds ``div_threshold``; else II if
  x_ss > ``x_threshold``; else I.

Reproducibility: the walkers of grid point (i, j) (η index i, σ index j) live in fixed
blocks of ``block_size``; block b draws from
``Generator(PCG64(SeedSequence(entropy, spawn_key=(*root_key, i, j, b))))``, the child
(i, j, b) of the root ``SeedSequence(seed)``.  Results are bit-identical for any
number of ``workers``.

>>> import fpsolve as fp
>>> g = fp.phase.run_grid([0.0, 0.2], [0.01], T=50.0, n_walkers=8, seed=1)
>>> g.x_ss.shape
(1, 2)
"""
from __future__ import annotations

import math
import numbers
import os
import time
from concurrent.futures import ThreadPoolExecutor, FIRST_COMPLETED, wait
from dataclasses import dataclass, field, fields

import numpy as np

from .._args import as_float as _float, as_int as _int, err as _err
from ..models import landscapes as _landscapes
from ..theory import reduction as _theory

__all__ = ["FIG2", "START", "fig2_landscape", "Trajectories", "trajectories", "PhaseGrid",
           "run_grid", "critical_sigma", "divergence_sigma", "ExponentFit", "fit_exponents",
           "exponents", "first_passage_steps"]

FIG2 = {"eps": 0.001, "lam0": 8.0, "lam1": -2.0, "lam2": 1.0}
"""Landscape coefficients of Fig. 2 and Figs. S3, S4."""

START = (1.5, 1.5)
"""Start of every walker (Fig. 2 caption)."""

ALIVE, DIVERGED = 0, 1
_N_ACC = 9
_INT32_MAX = 2 ** 31 - 1


def fig2_landscape() -> _landscapes.PaperLandscape:
    """The landscape of Fig. 2: ε = 0.001, λ0 = 8, λ1 = −2, λ2 = 1."""
    return _landscapes.paper(**FIG2)


# --------------------------------------------------------------------------- helpers
def _kernels():
    try:
        from . import _phase_kernels
    except ImportError as exc:   # pragma: no cover - numba is installed in the test extra
        raise ImportError("fpsolve.phase needs numba (pip install 'fpsolve[fast]'): "
                          f"{exc}") from exc
    return _phase_kernels


def _vector(fn, name, values, *, positive=False):
    try:
        a = np.atleast_1d(np.asarray(values, dtype=float))
    except (TypeError, ValueError):
        raise _err(fn, name, "a sequence of numbers", values) from None
    if a.ndim != 1 or a.size == 0:
        raise _err(fn, name, "a non-empty 1-D sequence of numbers", values)
    if not np.all(np.isfinite(a)) or np.any(a <= 0 if positive else a < 0):
        what = "positive" if positive else "non-negative"
        raise _err(fn, name, f"finite and {what}", values)
    return a


def _landscape(fn, landscape):
    if landscape is None:
        return fig2_landscape()
    if type(landscape) is not _landscapes.PaperLandscape:
        raise _err(fn, "landscape", "a fpsolve.landscapes.paper(...) landscape (the compiled "
                   "kernel implements that family only)", landscape)
    return landscape


def _start(fn, start):
    try:
        s = np.asarray(start, dtype=float)
    except (TypeError, ValueError):
        raise _err(fn, "start", "a point (x0, y0)", start) from None
    if s.shape != (2,) or not np.all(np.isfinite(s)):
        raise _err(fn, "start", "a finite point (x0, y0)", start)
    return float(s[0]), float(s[1])


def _root(fn, seed):
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
                        and seed >= 0):
        return np.random.SeedSequence(seed)
    raise _err(fn, "seed", "a non-negative integer, a numpy SeedSequence or None", seed)


def _child(root: np.random.SeedSequence, *key: int) -> np.random.Generator:
    ss = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, *key),
                                pool_size=root.pool_size)
    return np.random.Generator(np.random.PCG64(ss))


def _lp(L) -> np.ndarray:
    return np.array([L.eps * L.lam0, L.lam0, L.lam1, L.lam2])


def _progress(enabled: bool, total: float, description: str):
    """A started rich progress bar and its task id, or (None, None)."""
    if not enabled:
        return None, None
    try:
        from rich.progress import (BarColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
    except ImportError:        # rich is optional
        return None, None
    bar = Progress(TextColumn("{task.description}"), BarColumn(),
                   TextColumn("{task.percentage:>5.1f}%"), TimeElapsedColumn(),
                   TimeRemainingColumn())
    bar.start()
    return bar, bar.add_task(description, total=total)


# ----------------------------------------------------------------------- theory lines
def critical_sigma(eta, landscape=None, discrete: bool = True):
    """σ*(η) of the phase I → II transition.

    ``discrete=False``: the paper's boundary ησ = Δ_S* = −ε/λ1
    (:func:`fpsolve.theory.critical_delta_s`, S35).  ``discrete=True`` adds the
    finite-η correction of SGD's y-variance: at x = 0 the update
    y ← (1 − ηλ0) y + η√(2σ) λ0 z has the stationary variance
    ⟨y²⟩ = Δ_Sλ0/(1 − ηλ0/2) instead of the continuous-time Δ_Sλ0, and the
    noise-induced drift −½λ'⟨y²⟩ that destabilises x = 0 grows by the same factor:
    ησ* = Δ_S*(1 − ηλ0/2).  (η = 0.04: σ* = 0.0105, the paper's value.)

    Parameters
    ----------
    eta : float or array_like
        Learning rate(s) > 0.
    landscape : PaperLandscape, optional
        Default :func:`fig2_landscape`.
    discrete : bool
        Include the finite-η factor (default True).

    Returns
    -------
    float or ndarray
        σ*; NaN where ηλ0 ≥ 2 (x = 0 itself is unstable for plain GD).
    """
    L = _landscape("critical_sigma", landscape)
    eta = np.asarray(eta, dtype=float)
    if not np.all(np.isfinite(eta)) or np.any(eta <= 0):
        raise _err("critical_sigma", "eta", "positive and finite", eta)
    ds = _theory.critical_delta_s(L)
    factor = 1.0 - 0.5 * eta * L.lam0 if discrete else np.ones_like(eta)
    with np.errstate(invalid="ignore"):
        out = np.where(factor > 0, ds * factor / eta, np.nan)
    return float(out) if out.ndim == 0 else out


def divergence_sigma(eta, landscape=None, approx: str = "S39"):
    """σ_m(η) = Δ_m(η)/η from the paper's divergence bound (S39, or S40 = main text).

    Uses :func:`fpsolve.theory.delta_m` with η_min = η; NaN where S39 has no
    solution (ηλ(x_F) ≥ 2).  The paper calls these analytical values an *upper*
    bound of the true Δ_m; the Monte Carlo boundary lies far below it (see
    ``docs/phase_diagram.md``).
    """
    L = _landscape("divergence_sigma", landscape)
    e = np.asarray(eta, dtype=float)
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise _err("divergence_sigma", "eta", "positive and finite", eta)
    if approx not in ("S39", "S40"):
        raise _err("divergence_sigma", "approx", "'S39' or 'S40'", approx)
    flat = e.ravel()
    out = np.full(flat.shape, np.nan)
    for k, v in enumerate(flat):
        try:
            out[k] = _theory.delta_m(L, float(v), approx=approx) / v
        except ValueError:        # S39: η λ(x_F) ≥ 2 diverges at any Δ_S
            pass
    return float(out[0]) if e.ndim == 0 else out.reshape(e.shape)


# ----------------------------------------------------------------------- trajectories
@dataclass
class Trajectories:
    """Recorded SGD trajectories (Fig. 2a, c; Fig. S2a).

    Attributes
    ----------
    sigma : ndarray (n_sigma,)
    eta : float
    t : ndarray (n_frames,)
        Iteration number of each frame (frame 0 is the start).
    x, y : ndarray (n_sigma, n_walkers, n_frames)
        Positions; NaN after a walker diverged.
    diverged : ndarray (n_sigma, n_walkers) of bool
    """

    sigma: np.ndarray
    eta: float
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    diverged: np.ndarray
    landscape: dict = field(default_factory=dict)


def trajectories(sigma=(0.0, 0.02, 0.2), eta: float = 0.01, n_steps: int = 100_000, *,
                 landscape=None, start=START, n_walkers: int = 1, record_every: int = 10,
                 blowup: float = 1e3, seed=0) -> Trajectories:
    """SGD trajectories at one learning rate and several noise strengths (Fig. 2a, c).

    Parameters
    ----------
    sigma : sequence of float
        Noise strengths σ ≥ 0 (default Fig. 2's 0, 0.02, 0.2).
    eta : float
        Learning rate (default 0.01, Fig. 2a).
    n_steps : int
        Iterations, a multiple of ``record_every``.
    landscape : PaperLandscape, optional
        Default :func:`fig2_landscape`.
    start : (float, float)
        Start of every walker (default (1.5, 1.5)).
    n_walkers : int
        Independent walkers per σ.
    record_every : int
        Record every this many iterations.
    blowup : float
        Divergence radius.
    seed : int, SeedSequence or None
        Walkers of σ index j use child (j,) of the root SeedSequence.

    Returns
    -------
    Trajectories
    """
    fn = "trajectories"
    L = _landscape(fn, landscape)
    sig = _vector(fn, "sigma", sigma)
    eta = _float(fn, "eta", eta, positive=True)
    n_steps = _int(fn, "n_steps", n_steps, 1)
    n_walkers = _int(fn, "n_walkers", n_walkers, 1)
    every = _int(fn, "record_every", record_every, 1)
    if n_steps % every:
        raise _err(fn, "n_steps", f"a multiple of record_every={every}", n_steps)
    x0, y0 = _start(fn, start)
    blowup = _float(fn, "blowup", blowup, positive=True)
    if x0 * x0 + y0 * y0 >= blowup * blowup:
        raise _err(fn, "blowup", f"larger than |start| = {math.hypot(x0, y0):g}", blowup)
    root = _root(fn, seed)
    K = _kernels()
    nf = n_steps // every + 1
    X = np.full((sig.size, n_walkers, nf), np.nan)
    Y = np.full_like(X, np.nan)
    div = np.zeros((sig.size, n_walkers), bool)
    for j, s in enumerate(sig):
        rec = np.full((nf, n_walkers, 2), np.nan)
        rec[0, :, 0], rec[0, :, 1] = x0, y0
        hit = np.full((n_walkers, 1), -1, np.int32)
        acc = np.zeros((n_walkers, _N_ACC))
        status = np.zeros(n_walkers, np.int8)
        t_end = np.zeros(n_walkers, np.int64)
        K.run_block(_child(root, j), _lp(L), eta, eta * math.sqrt(2 * s), x0, y0, n_steps,
                    n_steps, blowup * blowup, 1.0, hit, acc, status, t_end, rec, every)
        X[j], Y[j] = rec[:, :, 0].T, rec[:, :, 1].T
        div[j] = status == DIVERGED
        for w in np.flatnonzero(div[j]):        # frames after divergence are meaningless
            X[j, w, t_end[w] // every + 1:] = np.nan
            Y[j, w, t_end[w] // every + 1:] = np.nan
    return Trajectories(sig, eta, np.arange(nf) * every, X, Y, div, dict(L.params))


# ------------------------------------------------------------------ grid observables
def first_passage_steps(hit: np.ndarray, level_step: float, level) -> np.ndarray:
    """First-passage steps to |x| ≤ ``level`` from a ladder record.

    Parameters
    ----------
    hit : int array (n_walkers, n_levels)
        hit[w, j] = first step with |x| ≤ j·level_step, −1 if never.
    level_step : float
        Ladder spacing.
    level : float or array (n_walkers,)
        Target level(s); rounded to the nearest ladder level (levels above the
        ladder count as reached at step 0).

    Returns
    -------
    ndarray of float (n_walkers,)
        Steps; ``inf`` where the level was never reached (censored).
    """
    hit = np.asarray(hit)
    nlev = hit.shape[1]
    j = np.rint(np.asarray(level, dtype=float) / level_step).astype(np.int64)
    j = np.broadcast_to(np.clip(j, 0, nlev - 1), hit.shape[:1])
    t = hit[np.arange(hit.shape[0]), j].astype(float)
    t[t < 0] = np.inf
    return t


def _point_stats(eta, n_steps, avg_start, acc, status, hit, level_step, tols, L):
    """Observables of one grid point from its walkers' window sums and ladders."""
    alive = status == ALIVE
    m = n_steps - avg_start
    m1 = m // 2
    m2 = m - m1
    n = int(alive.sum())
    out = {"diverged": 1.0 - n / status.size, "n_alive": n}
    if n == 0:
        return out, None
    a = acc[alive]
    xbar = (a[:, 0] + a[:, 1]) / m
    absx = np.abs(xbar)
    x_ss = float(absx.mean())
    ybar = a[:, 3] / m
    y_ss = float(ybar.mean())
    out.update(
        x_ss=x_ss, x_ss_se=float(absx.std(ddof=1) / math.sqrt(n)) if n > 1 else np.nan,
        x_drift=float(np.abs(a[:, 1] / m2).mean() - np.abs(a[:, 0] / m1).mean()),
        V_x=float((a[:, 2] / m).mean() - x_ss ** 2),
        V_y=float((a[:, 4] / m).mean() - y_ss ** 2),
        y_ss=y_ss, lam=float((a[:, 5] / m).mean()), lam2=float((a[:, 6] / m).mean()),
        dlam2=float((a[:, 7] / m).mean()), abs_x=float((a[:, 8] / m).mean()))
    out["F_ss"] = float(L.flatness(x_ss))
    h = hit[alive]
    ts = np.stack([first_passage_steps(h, level_step, x_ss + tl) for tl in tols])
    capped = np.minimum(ts, n_steps)            # censored walkers count with the run length
    out["tau"] = eta * capped.mean(axis=1)
    out["tau_se"] = (eta * capped.std(axis=1, ddof=1) / math.sqrt(n) if n > 1
                     else np.full(len(tols), np.nan))
    out["censored"] = np.isinf(ts).mean(axis=1)
    return out, (xbar, ts, h)


@dataclass
class PhaseGrid:
    """Observables on a (η, σ) grid; arrays are indexed ``[i_eta, j_sigma]``.

    Attributes
    ----------
    sigma, eta : ndarray
        Grid axes.
    n_steps : ndarray (n_eta,)
        Steps per walker, ⌈T/η⌉.
    x_ss, x_ss_se, F_ss : ndarray
        Steady-state solution ⟨|x̄_w|⟩, its standard error, F(x_ss).
    tau_s, tau_s_se, censored : ndarray
        τ_s = η⟨t_s⟩ at x_ss + ``tol``, its standard error, censored fraction.
    tau_tols, censored_tols : ndarray (n_tols, n_eta, n_sigma)
        The same for every tolerance in ``tols``.
    V_x, V_y : ndarray
        Steady-state fluctuations.
    diverged : ndarray
        Fraction of walkers that diverged.
    x_drift : ndarray
        ⟨|x̄_w|⟩ over the second half of the window minus over the first half: a
        non-stationarity diagnostic (≈ 0 when x_ss has converged).
    abs_x, y_ss, lam_mean, lam2_mean, dlam2_mean : ndarray
        Window averages ⟨|x|⟩, ⟨y⟩, ⟨λ⟩, ⟨λ²⟩, ⟨λ'²⟩ (inputs of S8, S9).
    walker_xbar : ndarray (n_eta, n_sigma, n_walkers) or None
        Per-walker time averages x̄_w (NaN for diverged walkers), with
        ``keep_walkers``.
    walker_ts : ndarray (n_tols, n_eta, n_sigma, n_walkers) or None
        Per-walker t_s in steps (inf censored, NaN diverged), with ``keep_walkers``.
    hits : list or None
        Per point the ladder record of the surviving walkers, with ``keep_hits``.
    settings : dict
        Every run parameter (landscape, T, seed entropy, ...).
    elapsed : float
        Wall time of the run in seconds.
    """

    sigma: np.ndarray
    eta: np.ndarray
    n_steps: np.ndarray
    x_ss: np.ndarray
    x_ss_se: np.ndarray
    F_ss: np.ndarray
    tau_s: np.ndarray
    tau_s_se: np.ndarray
    censored: np.ndarray
    tau_tols: np.ndarray
    tau_tols_se: np.ndarray
    censored_tols: np.ndarray
    V_x: np.ndarray
    V_y: np.ndarray
    diverged: np.ndarray
    x_drift: np.ndarray
    abs_x: np.ndarray
    y_ss: np.ndarray
    lam_mean: np.ndarray
    lam2_mean: np.ndarray
    dlam2_mean: np.ndarray
    settings: dict
    elapsed: float = 0.0
    walker_xbar: np.ndarray | None = None
    walker_ts: np.ndarray | None = None
    hits: list | None = None

    @property
    def landscape(self) -> _landscapes.PaperLandscape:
        return _landscapes.paper(**self.settings["landscape"])

    @property
    def tol(self) -> float:
        return self.settings["tol"]

    @property
    def tols(self) -> tuple:
        return tuple(self.settings["tols"])

    def phase(self, div_threshold: float | None = None,
              x_threshold: float | None = None) -> np.ndarray:
        """Phase label 1, 2 or 3 of every grid point (see the module docstring)."""
        dt = self.settings["div_threshold"] if div_threshold is None else div_threshold
        xt = self.settings["x_threshold"] if x_threshold is None else x_threshold
        ph = np.where(self.x_ss > xt, 2, 1)
        return np.where((self.diverged > dt) | ~np.isfinite(self.x_ss), 3, ph)

    def convergence(self) -> dict:
        """S8/S9 multipliers m1 = 1 − η⟨λ⟩, m2 from the measured window moments."""
        E = self.eta[:, None]
        S = self.sigma[None, :]
        m1 = 1 - E * self.lam_mean
        m2 = 1 + E ** 2 * self.lam2_mean - 2 * E * self.lam_mean + 2 * E ** 2 * S * self.dlam2_mean
        return {"m1": m1, "m2": m2}

    def row(self, eta: float) -> int:
        """Index of the grid row whose η is closest to ``eta``."""
        return int(np.argmin(np.abs(np.log(self.eta / eta))))

    def save(self, path, include_hits: bool = False) -> None:
        """Write the grid to an ``.npz`` file (settings as JSON).

        ``include_hits`` also stores the first-passage ladders (concatenated, with
        the number of surviving walkers per point), so that :func:`exponents` can
        resample a reloaded grid exactly as the original.
        """
        import json
        arrays = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("settings", "hits") or v is None:
                continue
            arrays[f.name] = np.asarray(v)
        if include_hits and self.hits is not None:
            count = np.array([[-1 if h is None else h.shape[0] for h in row]
                              for row in self.hits], dtype=np.int64)
            parts = [h for row in self.hits for h in row if h is not None]
            arrays["hits_count"] = count
            arrays["hits_data"] = (np.concatenate(parts) if parts
                                   else np.zeros((0, 1), np.int32))
        np.savez_compressed(path, settings=json.dumps(self.settings), **arrays)

    @classmethod
    def load(cls, path) -> "PhaseGrid":
        """Read a grid written by :meth:`save`."""
        import json
        with np.load(path, allow_pickle=False) as z:
            kw = {k: z[k] for k in z.files if k not in ("settings", "hits_count", "hits_data")}
            kw["settings"] = json.loads(str(z["settings"]))
            if "hits_count" in z.files:
                count, data = z["hits_count"], z["hits_data"]
                hits, pos = [], 0
                for row in count:
                    hits.append([])
                    for c in row:
                        hits[-1].append(None if c < 0 else data[pos:pos + c])
                        pos += max(int(c), 0)
                kw["hits"] = hits
        kw["elapsed"] = float(kw.get("elapsed", 0.0))
        return cls(**kw)

    def __repr__(self):
        return (f"PhaseGrid({self.eta.size} eta x {self.sigma.size} sigma, "
                f"{self.settings['n_walkers']} walkers, T={self.settings['T']:g}, "
                f"{self.elapsed:.1f} s)")


def run_grid(sigma, eta, *, landscape=None, T: float = 3000.0, n_walkers: int = 64,
             start=START, avg_fraction: float = 0.25, tol: float = 0.05,
             tols=(0.01, 0.02, 0.05, 0.1), level_step: float = 0.0025,
             blowup: float = 1e3, div_threshold: float = 0.5, x_threshold: float = 0.1,
             seed=0, workers: int | None = None, block_size: int = 32,
             progress: bool = False, keep_walkers: bool = False,
             keep_hits: bool = False) -> PhaseGrid:
    """Run random-shift SGD on every (σ, η) of a grid and measure the Fig. 2 observables.

    One compiled kernel advances one block of walkers of one grid point; all
    (point, block) tasks go through a thread pool of ``workers`` threads (the kernel
    releases the GIL).  The most expensive points (small η) are submitted first.

    Parameters
    ----------
    sigma : sequence of float
        Noise strengths σ ≥ 0 (columns).
    eta : sequence of float
        Learning rates η > 0 (rows).
    landscape : PaperLandscape, optional
        Default :func:`fig2_landscape` (ε = 0.001, λ = (8, −2, 1)).
    T : float
        Run length in the paper's time unit τ = ηt: ⌈T/η⌉ steps at every η.
    n_walkers : int
        Walkers per grid point.
    start : (float, float)
        Start of every walker (default (1.5, 1.5)).
    avg_fraction : float
        Fraction of the run at its end over which x_ss, V_x, V_y are averaged.
    tol : float
        First-passage tolerance: t_s = first t with |x_t| ≤ x_ss + tol.
    tols : sequence of float
        Further tolerances for which τ_s is also computed (``tau_tols``); ``tol``
        is added if missing.
    level_step : float
        Spacing of the first-passage ladder (resolution of x_ss + tol).
    blowup : float
        Divergence radius: |θ| > blowup (or a non-finite state) ends a walker.
    div_threshold : float
        Phase III when more than this fraction of walkers diverged.
    x_threshold : float
        Phase II when x_ss exceeds this (and the point is not phase III).
    seed : int, SeedSequence or None
        Root seed; see the module docstring.
    workers : int, optional
        Threads (default: the number of CPUs).  Does not change the results.
    block_size : int
        Walkers per random-number block.  Part of the seed.
    progress : bool
        Show a rich progress bar (ignored if rich is not installed).
    keep_walkers : bool
        Keep per-walker x̄_w and t_s (``walker_xbar``, ``walker_ts``).
    keep_hits : bool
        Keep the first-passage ladders (needed by :func:`exponents` to re-evaluate
        t_s at a resampled x_ss; memory n_points × n_walkers × |start_x|/level_step
        × 4 bytes).

    Returns
    -------
    PhaseGrid
    """
    fn = "run_grid"
    L = _landscape(fn, landscape)
    sig = _vector(fn, "sigma", sigma)
    eta = _vector(fn, "eta", eta, positive=True)
    T = _float(fn, "T", T, positive=True)
    n_walkers = _int(fn, "n_walkers", n_walkers, 2)
    x0, y0 = _start(fn, start)
    avg_fraction = _float(fn, "avg_fraction", avg_fraction, positive=True)
    if avg_fraction >= 1:
        raise _err(fn, "avg_fraction", "in (0, 1)", avg_fraction)
    tol = _float(fn, "tol", tol, nonneg=True)
    tl = [] if tols is None or np.size(tols) == 0 else list(_vector(fn, "tols", tols))
    if tol not in tl:
        tl.append(tol)
    tl = tuple(sorted(set(float(v) for v in tl)))
    level_step = _float(fn, "level_step", level_step, positive=True)
    blowup = _float(fn, "blowup", blowup, positive=True)
    if x0 * x0 + y0 * y0 >= blowup * blowup:
        raise _err(fn, "blowup", f"larger than |start| = {math.hypot(x0, y0):g}", blowup)
    div_threshold = _float(fn, "div_threshold", div_threshold, nonneg=True)
    if div_threshold >= 1:
        raise _err(fn, "div_threshold", "in [0, 1)", div_threshold)
    x_threshold = _float(fn, "x_threshold", x_threshold, nonneg=True)
    workers = _int(fn, "workers", (os.cpu_count() or 1) if workers is None else workers, 1)
    block_size = _int(fn, "block_size", block_size, 1)
    root = _root(fn, seed)

    n_steps = np.ceil(T / eta - 1e-9).astype(np.int64)
    if np.any(n_steps > _INT32_MAX):
        raise _err(fn, "T", f"at most {_INT32_MAX} steps at the smallest eta "
                   f"({float(eta.min()):g})", T)
    avg_start = n_steps - np.floor(avg_fraction * n_steps).astype(np.int64)
    if np.any(n_steps - avg_start < 2):
        raise _err(fn, "T", "long enough for at least 2 steps in the averaging window "
                   f"(T*avg_fraction/eta >= 2 at eta={float(eta.max()):g})", T)
    n_levels = int(math.floor(abs(x0) / level_step)) + 2
    K = _kernels()
    lp = _lp(L)
    n_blocks = -(-n_walkers // block_size)
    ne, ns, nt = eta.size, sig.size, len(tl)

    res = {k: np.full((ne, ns), np.nan) for k in
           ("x_ss", "x_ss_se", "F_ss", "V_x", "V_y", "x_drift", "abs_x", "y_ss", "lam",
            "lam2", "dlam2")}
    res["diverged"] = np.zeros((ne, ns))
    tau = np.full((nt, ne, ns), np.nan)
    tau_se = np.full((nt, ne, ns), np.nan)
    cens = np.full((nt, ne, ns), np.nan)
    wx = np.full((ne, ns, n_walkers), np.nan) if keep_walkers else None
    wt = np.full((nt, ne, ns, n_walkers), np.nan) if keep_walkers else None
    hits = [[None] * ns for _ in range(ne)] if keep_hits else None

    def task(i, j, b):
        nb = min(block_size, n_walkers - b * block_size)
        hit = np.full((nb, n_levels), -1, np.int32)
        acc = np.zeros((nb, _N_ACC))
        status = np.zeros(nb, np.int8)
        t_end = np.zeros(nb, np.int64)
        c = eta[i] * math.sqrt(2.0 * sig[j])
        K.run_block(_child(root, i, j, b), lp, float(eta[i]), c, x0, y0, int(n_steps[i]),
                    int(avg_start[i]), blowup * blowup, level_step, hit, acc, status, t_end,
                    np.zeros((1, 0, 2)), 0)
        return hit, acc, status

    order = [(i, j) for i in np.argsort(-n_steps, kind="stable") for j in range(ns)]
    tasks = [(i, j, b) for i, j in order for b in range(n_blocks)]
    pending_blocks: dict = {}

    def reduce(i, j):
        blocks = pending_blocks.pop((i, j))
        hit = np.concatenate([blocks[b][0] for b in range(n_blocks)])
        acc = np.concatenate([blocks[b][1] for b in range(n_blocks)])
        status = np.concatenate([blocks[b][2] for b in range(n_blocks)])
        out, per = _point_stats(float(eta[i]), int(n_steps[i]), int(avg_start[i]), acc,
                                status, hit, level_step, tl, L)
        res["diverged"][i, j] = out["diverged"]
        if per is None:
            return
        for k in ("x_ss", "x_ss_se", "F_ss", "V_x", "V_y", "x_drift", "abs_x", "y_ss", "lam",
                  "lam2", "dlam2"):
            res[k][i, j] = out[k]
        tau[:, i, j], tau_se[:, i, j], cens[:, i, j] = out["tau"], out["tau_se"], out["censored"]
        alive = status == ALIVE
        if keep_walkers:
            wx[i, j, alive] = per[0]
            wt[:, i, j, alive] = per[1]
        if keep_hits:
            hits[i][j] = per[2]

    def consume(key, output):
        i, j, b = key
        pending_blocks.setdefault((i, j), {})[b] = output
        if len(pending_blocks[(i, j)]) == n_blocks:
            reduce(i, j)

    cost = {i: int(n_steps[i]) for i in range(ne)}

    def work(key):          # walker-steps of a task, for the progress bar
        return cost[key[0]] * min(block_size, n_walkers - key[2] * block_size)

    bar, bar_task = _progress(progress, float(sum(cost[i] * n_walkers for i, _ in order)),
                              f"SGD phase grid {ne}x{ns}")
    t0 = time.perf_counter()
    try:
        if workers == 1:
            for key in tasks:
                consume(key, task(*key))
                if bar is not None:
                    bar.advance(bar_task, work(key))
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                it = iter(tasks)
                running = {}
                for key in it:   # bounded number of tasks in flight: bounded memory
                    running[pool.submit(task, *key)] = key
                    if len(running) >= 4 * workers:
                        break
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        key = running.pop(fut)
                        consume(key, fut.result())
                        if bar is not None:
                            bar.advance(bar_task, work(key))
                        nxt = next(it, None)
                        if nxt is not None:
                            running[pool.submit(task, *nxt)] = nxt
    finally:
        if bar is not None:
            bar.stop()
    elapsed = time.perf_counter() - t0

    k = tl.index(tol)
    settings = {"landscape": dict(L.params), "T": T, "n_walkers": n_walkers,
                "start": [x0, y0], "avg_fraction": avg_fraction, "tol": tol, "tols": list(tl),
                "level_step": level_step, "blowup": blowup, "div_threshold": div_threshold,
                "x_threshold": x_threshold, "block_size": block_size,
                "seed_entropy": str(root.entropy), "seed_spawn_key": list(root.spawn_key),
                "workers": workers}
    return PhaseGrid(
        sigma=sig, eta=eta, n_steps=n_steps, x_ss=res["x_ss"], x_ss_se=res["x_ss_se"],
        F_ss=res["F_ss"], tau_s=tau[k], tau_s_se=tau_se[k], censored=cens[k], tau_tols=tau,
        tau_tols_se=tau_se, censored_tols=cens, V_x=res["V_x"], V_y=res["V_y"],
        diverged=res["diverged"], x_drift=res["x_drift"], abs_x=res["abs_x"],
        y_ss=res["y_ss"], lam_mean=res["lam"], lam2_mean=res["lam2"],
        dlam2_mean=res["dlam2"], settings=settings, elapsed=elapsed, walker_xbar=wx,
        walker_ts=wt, hits=hits)


# --------------------------------------------------------------- critical exponents
@dataclass
class ExponentFit:
    """Critical exponents at one learning rate (SM Sec. II C, S43–S46) with bootstrap CIs.

    Conventions of S46 (also docs/transition.md): with r = |σ − σ*|/σ*,

    * α  : F(x_ss) − F(0) ∝ r^α above σ*;
    * β1 : τ_s ∝ r^(−β1) **below** σ* (SM Sec. II C calls this one β2 ≈ 0.56);
    * β2 : τ_s ∝ r^(−β2) **above** σ* (SM Sec. II C calls this one β1 ≈ 0.48).

    Attributes
    ----------
    alpha, beta1, beta2 : float
        Least-squares slopes on log–log axes over the fit windows.
    sigma_star : float
        σ* used (given, or fitted with α).
    ci : dict
        ``name -> (lo, hi)`` percentile bootstrap interval at level ``level`` for
        ``alpha``, ``beta1``, ``beta2`` (and ``sigma_star`` when fitted).
    boot : dict
        ``name -> ndarray`` of bootstrap replicates.
    windows : dict
        ``name -> (r_lo, r_hi)`` fit windows in r.
    data : dict
        ``sigma``, ``F_gain``, ``tau_s``, ``tau_s_se`` and the boolean masks
        ``alpha``, ``beta1``, ``beta2`` of the points inside each window.
    """

    alpha: float
    beta1: float
    beta2: float
    sigma_star: float
    ci: dict
    boot: dict
    windows: dict
    data: dict
    level: float
    n_boot: int
    eta: float

    def __repr__(self):
        def f(k):
            lo, hi = self.ci.get(k, (np.nan, np.nan))
            return f"{k}={getattr(self, k):.3f} [{lo:.3f}, {hi:.3f}]"
        return (f"ExponentFit(eta={self.eta:g}, sigma*={self.sigma_star:.5g}, "
                + ", ".join(f(k) for k in ("alpha", "beta1", "beta2")) + ")")


def _slope(r, y, mask) -> float:
    """Least-squares slope of ln y against ln r over ``mask`` (NaN if < 3 usable points)."""
    m = mask & (y > 0) & np.isfinite(y) & (r > 0)
    if m.sum() < 3:
        return np.nan
    return float(np.polyfit(np.log(r[m]), np.log(y[m]), 1)[0])


def _alpha_profile(sigma, gain, sel, s_lo, s_hi):
    """σ* and α minimising the residual of ln gain = a + α ln(σ − σ*) over ``sel``."""
    from scipy.optimize import minimize_scalar
    s, g = sigma[sel], gain[sel]
    ok = (g > 0) & np.isfinite(g)
    s, g = s[ok], g[ok]
    if s.size < 4:
        return np.nan, np.nan
    lg = np.log(g)

    def rss(sstar):
        X = np.log(s - sstar)
        A = np.vstack([X, np.ones_like(X)]).T
        coef, res, *_ = np.linalg.lstsq(A, lg, rcond=None)
        return float(np.sum((A @ coef - lg) ** 2))

    hi = min(s_hi, s.min() * (1 - 1e-9))
    opt = minimize_scalar(rss, bounds=(s_lo, hi), method="bounded",
                          options={"xatol": 1e-9 * hi})
    sstar = float(opt.x)
    return sstar, float(np.polyfit(np.log(s - sstar), lg, 1)[0])


def fit_exponents(sigma, xbar, *, eta: float, sigma_star, ts=None, hits=None,
                  level_step: float | None = None, tol: float | None = None,
                  n_steps: int | None = None, landscape=None,
                  window_alpha=(0.05, 1.0), window_below=(0.05, 0.6),
                  window_above=(0.05, 1.0), sigma_star_bracket=(0.5, 1.0),
                  n_boot: int = 1000, level: float = 0.95, seed=0) -> ExponentFit:
    """Fit α, β1, β2 from per-walker data at one η, with walker-bootstrap intervals.

    Parameters
    ----------
    sigma : array (n,)
        Noise strengths of the sweep (increasing or not).
    xbar : sequence of n arrays
        Per point the time averages x̄_w of the surviving walkers (NaN entries are
        dropped); x_ss = ⟨|x̄_w|⟩.
    eta : float
        Learning rate (τ_s = η⟨t_s⟩).
    sigma_star : float or "fit"
        Critical noise strength; ``"fit"`` fits it together with α (least squares
        of ln[F(x_ss) − F(0)] = a + α ln(σ − σ*) over the points whose σ lies in
        ``window_alpha`` around the starting value :func:`critical_sigma`, σ*
        bounded by ``sigma_star_bracket`` × the smallest such σ).
    ts : sequence of n arrays, optional
        Per-walker first-passage steps (inf = censored); used when ``hits`` is None.
        Either one entry per entry of ``xbar`` (those where x̄ is NaN are dropped) or
        one per finite x̄.
    hits : sequence of n int arrays (n_walkers, n_levels), optional
        Ladder records (:func:`run_grid` with ``keep_hits``); t_s is then re-read at
        the resampled x_ss + ``tol`` in every bootstrap replicate.
    level_step, tol : float
        Ladder spacing and tolerance (required with ``hits``).
    n_steps : int, optional
        Run length: censored walkers count with t_s = n_steps (required if any
        t_s is infinite).
    landscape : PaperLandscape, optional
        For F(x) = λ(x)^(−1/2); default :func:`fig2_landscape`.
    window_alpha, window_below, window_above : (float, float)
        Fit windows in r = |σ − σ*|/σ* for α, β1 (below σ*) and β2 (above σ*).
    sigma_star_bracket : (float, float)
        Bounds of a fitted σ*, as fractions of the smallest σ in the α window.
    n_boot : int
        Bootstrap replicates (walkers resampled with replacement at every σ).
    level : float
        Confidence level of the percentile intervals.
    seed : int or None
        Seed of the bootstrap.

    Returns
    -------
    ExponentFit
    """
    fn = "fit_exponents"
    L = _landscape(fn, landscape)
    sig = _vector(fn, "sigma", sigma)
    eta = _float(fn, "eta", eta, positive=True)
    n = sig.size
    if len(xbar) != n:
        raise _err(fn, "xbar", f"a sequence of {n} arrays (one per sigma)", f"{len(xbar)} arrays")
    xs = [np.asarray(v, dtype=float) for v in xbar]
    keep = [np.isfinite(v) for v in xs]
    xs = [v[k] for v, k in zip(xs, keep)]
    if any(v.size < 2 for v in xs):
        raise _err(fn, "xbar", "at least 2 finite walkers per sigma", [v.size for v in xs])
    if hits is not None:
        if len(hits) != n:
            raise _err(fn, "hits", f"a sequence of {n} arrays", f"{len(hits)} arrays")
        if level_step is None or tol is None:
            raise ValueError(f"{fn}: level_step and tol are required with hits")
        level_step = _float(fn, "level_step", level_step, positive=True)
        tol = _float(fn, "tol", tol, nonneg=True)
        hs = [np.asarray(h) for h in hits]
        for h, v in zip(hs, xs):
            if h.ndim != 2 or h.shape[0] != v.size:
                raise _err(fn, "hits", "one (n_walkers, n_levels) array per sigma matching xbar",
                           h.shape)
        tss = None
    elif ts is not None:
        if len(ts) != n:
            raise _err(fn, "ts", f"a sequence of {n} arrays", f"{len(ts)} arrays")
        tss = [np.asarray(t, dtype=float)[k] if np.size(t) == k.size else np.asarray(t, float)
               for t, k in zip(ts, keep)]
        if any(t.size != v.size for t, v in zip(tss, xs)):
            raise _err(fn, "ts", "one value per walker of xbar", [t.size for t in tss])
        if any(np.any(np.isnan(t)) for t in tss):
            raise _err(fn, "ts", "free of NaN (drop diverged walkers)", "NaN entries")
        hs = None
    else:
        raise ValueError(f"{fn}: give per-walker first-passage steps (ts) or ladders (hits)")
    cap = np.inf if n_steps is None else float(_int(fn, "n_steps", n_steps, 1))
    for name, w in (("window_alpha", window_alpha), ("window_below", window_below),
                    ("window_above", window_above), ("sigma_star_bracket", sigma_star_bracket)):
        w = tuple(w)
        if len(w) != 2 or not (0 < w[0] < w[1]):
            raise _err(fn, name, "(lo, hi) with 0 < lo < hi", w)
    n_boot = _int(fn, "n_boot", n_boot, 0)
    level = _float(fn, "level", level, positive=True)
    if level >= 1:
        raise _err(fn, "level", "in (0, 1)", level)
    fit_star = isinstance(sigma_star, str)
    if fit_star and sigma_star != "fit":
        raise _err(fn, "sigma_star", "a positive number or 'fit'", sigma_star)
    s0 = critical_sigma(eta, L) if fit_star else _float(fn, "sigma_star", sigma_star, positive=True)
    if fit_star and not np.isfinite(s0):
        raise _err(fn, "sigma_star", "a number (no finite-eta estimate at this eta)", sigma_star)
    sel_alpha0 = (sig > s0 * (1 + window_alpha[0])) & (sig < s0 * (1 + window_alpha[1]))
    F0 = float(L.flatness(0.0))

    def observe(idx):
        """(F gain, τ_s) per point for walker index arrays ``idx`` (None: all walkers)."""
        gain = np.empty(n)
        tau = np.empty(n)
        for k in range(n):
            sl = slice(None) if idx is None else idx[k]
            x_ss = float(np.abs(xs[k][sl]).mean())
            gain[k] = float(L.flatness(x_ss)) - F0
            if hs is not None:
                t = first_passage_steps(hs[k][sl], level_step, x_ss + tol)
            else:
                t = tss[k][sl]
            if np.isinf(cap) and np.any(np.isinf(t)):
                raise ValueError(f"{fn}: censored walkers (t_s = inf) need n_steps")
            tau[k] = eta * float(np.minimum(t, cap).mean())
        return gain, tau

    def exps(gain, tau):
        if fit_star:
            sstar, a = _alpha_profile(sig, gain, sel_alpha0,
                                      sigma_star_bracket[0] * sig[sel_alpha0].min()
                                      if sel_alpha0.any() else s0, sigma_star_bracket[1]
                                      * (sig[sel_alpha0].min() if sel_alpha0.any() else s0))
        else:
            sstar = s0
        r = np.abs(sig - sstar) / sstar
        above, below = sig > sstar, sig < sstar
        m_a = above & (r >= window_alpha[0]) & (r <= window_alpha[1])
        m_b1 = below & (r >= window_below[0]) & (r <= window_below[1])
        m_b2 = above & (r >= window_above[0]) & (r <= window_above[1])
        if not fit_star:
            a = _slope(r, gain, m_a)
        return (a, -_slope(r, tau, m_b1), -_slope(r, tau, m_b2), sstar), (m_a, m_b1, m_b2)

    gain, tau = observe(None)
    (a, b1, b2, sstar), masks = exps(gain, tau)
    rng = np.random.default_rng(seed)
    reps = np.full((n_boot, 4), np.nan)
    for bi in range(n_boot):
        idx = [rng.integers(0, v.size, v.size) for v in xs]
        reps[bi] = exps(*observe(idx))[0]
    q = (0.5 * (1 - level), 0.5 * (1 + level))
    names = ("alpha", "beta1", "beta2", "sigma_star")
    boot = {k: reps[:, i] for i, k in enumerate(names)}
    ci = {}
    for k in names[:3] + (names[3:] if fit_star else ()):
        v = boot[k][np.isfinite(boot[k])]
        ci[k] = tuple(float(c) for c in np.quantile(v, q)) if v.size else (np.nan, np.nan)
    tau_se = np.array([eta * np.std(np.minimum(
        first_passage_steps(hs[k], level_step, np.abs(xs[k]).mean() + tol) if hs is not None
        else tss[k], cap), ddof=1) / math.sqrt(xs[k].size) for k in range(n)])
    return ExponentFit(alpha=a, beta1=b1, beta2=b2, sigma_star=sstar, ci=ci, boot=boot,
                       windows={"alpha": tuple(window_alpha), "beta1": tuple(window_below),
                                "beta2": tuple(window_above)},
                       data={"sigma": sig, "F_gain": gain, "tau_s": tau, "tau_s_se": tau_se,
                             "alpha": masks[0], "beta1": masks[1], "beta2": masks[2]},
                       level=level, n_boot=n_boot, eta=eta)


def exponents(grid: PhaseGrid, eta: float | None = None, **kwargs) -> ExponentFit:
    """:func:`fit_exponents` on one row of a :class:`PhaseGrid`.

    The grid must have been run with ``keep_hits=True`` (t_s re-read at every
    resampled x_ss) or ``keep_walkers=True`` (t_s at the full-sample x_ss).
    Keyword arguments go to :func:`fit_exponents` (``sigma_star`` is required).

    Parameters
    ----------
    grid : PhaseGrid
    eta : float, optional
        Row whose η is closest to this (default: the only row).
    """
    fn = "exponents"
    if eta is None:
        if grid.eta.size != 1:
            raise _err(fn, "eta", f"given for a grid with {grid.eta.size} rows", eta)
        i = 0
    else:
        i = grid.row(_float(fn, "eta", eta, positive=True))
    if grid.walker_xbar is None:
        raise ValueError(f"{fn}: the grid has no per-walker data; run it with keep_walkers=True")
    live = ~np.isnan(grid.diverged[i]) & (grid.diverged[i] < 1)
    sig = grid.sigma[live]
    xb = [grid.walker_xbar[i, j] for j in np.flatnonzero(live)]
    kw = dict(eta=float(grid.eta[i]), n_steps=int(grid.n_steps[i]), landscape=grid.landscape)
    if grid.hits is not None:
        kw.update(hits=[grid.hits[i][j] for j in np.flatnonzero(live)],
                  level_step=grid.settings["level_step"], tol=grid.tol)
    else:
        k = grid.tols.index(grid.tol)
        kw["ts"] = [grid.walker_ts[k, i, j][np.isfinite(grid.walker_xbar[i, j])]
                    for j in np.flatnonzero(live)]
    kw.update(kwargs)
    return fit_exponents(sig, xb, **kw)
