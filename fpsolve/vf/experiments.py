"""Seeded experiments behind ``bench/variance_flatness.py``; each returns a JSON-able dict.

A study runner calls these functions with keyword arguments and stores the dict
(``"arrays"`` holds the per-point data the figures need).

* :func:`experiment_2d` — 2-D walkers: numerical flatness against the Hessian-based
  value on the paper landscape, and σ_i² against F_i for three noise models on random
  quadratics (SGD D = Δ_S H², FDN D = Δ H⁺, isotropic D = Δ I).
* :func:`experiment_digits` — the SI's analysis of minibatch SGD on 8×8 digits:
  A_g/C_g, transition, PCA spectrum, D_l, σ_i², F_i, D_i, τ_i and the three exponents.
* :func:`experiment_fdn` — GD, GD + FDN, GD + isotropic noise of equal strength and
  SGD on digits: test error and flatness of the solutions reached, over seeds.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..models import diffusion as _diffusion
from ..models import landscapes as _landscapes
from . import analysis as _a
from . import trainers as _t
from .network import blas_threads

__all__ = ["experiment_2d", "experiment_digits", "experiment_fdn"]


def _fit_dict(f):
    if f is None:
        return None
    return {"exponent": f.exponent, "ci": list(f.ci), "level": f.level, "se": f.se,
            "r2": f.r2, "n": f.n, "n_excluded": f.n_excluded, "prefactor": f.prefactor}


def _floats(a):
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=float).ravel()]


def experiment_2d(*, seed: int = 0, offset: float = 0.01, n_landscapes: int = 8,
                  n_walkers: int = 4, n_steps: int = 40_000, window: int = 30_000,
                  record_every: int = 10, delta: float = 0.004, eta: float = 0.01,
                  paper_delta_s: float = 0.009) -> dict:
    """2-D variance–flatness: Hessian-based vs numerical flatness, ψ for three noises.

    Parameters
    ----------
    seed : int
        Root seed (landscapes, walkers).
    offset : float
        L0 added to the losses (their minimum is 0; the SI's flatness needs L0 > 0).
    n_landscapes : int
        Random quadratics ½ θᵀ R diag(h1, h2) Rᵀ θ, h log-uniform in [0.3, 30].
    n_walkers, n_steps, window, record_every
        Walkers per run, steps per walker, analysis window (steps) and recording
        interval; the first n_steps − window steps are burn-in.
    delta : float
        Noise strength of every model: Δ_S = ησ = delta for SGD (η = ``eta``),
        D = delta·H⁺ for FDN and D = delta·I for isotropic noise.
    eta : float
        SGD learning rate and the Langevin time step.
    paper_delta_s : float
        Δ_S of the SGD run on the paper landscape (below Δ_S* = 0.01: one mode).

    Returns
    -------
    dict
        ``"paper"``: per walker and direction σ², F (numerical), F from the Hessian at
        the window mean, left/right widths; ``"models"``: for "sgd", "fdn",
        "isotropic" the points (F, σ²) and the fit of ψ, with the continuum
        prediction (2, 0, −2).
    """
    t0 = time.perf_counter()
    ss = np.random.SeedSequence(seed)
    s_land, s_paper, *s_runs = ss.spawn(2 + n_landscapes)
    nw = window // record_every
    out = {"params": dict(seed=seed, offset=offset, n_landscapes=n_landscapes,
                          n_walkers=n_walkers, n_steps=n_steps, window=window,
                          record_every=record_every, delta=delta, eta=eta,
                          paper_delta_s=paper_delta_s)}

    out["paper"] = _paper_landscape_rows(offset, n_walkers, n_steps, record_every, eta,
                                         paper_delta_s, nw, s_paper)
    out["models"] = _noise_models(seed, offset, n_landscapes, n_walkers, n_steps,
                                  record_every, delta, eta, nw, s_land, s_runs)
    out["seconds"] = time.perf_counter() - t0
    return out


def _paper_landscape_rows(offset, n_walkers, n_steps, record_every, eta, paper_delta_s,
                          nw, s_paper):
    """Paper landscape: numerical F_i against the Hessian-based value at the window mean."""
    L = _landscapes.paper()
    tr = _t.walkers_2d(L, eta=eta, sigma=paper_delta_s / eta, n_walkers=n_walkers,
                       n_steps=n_steps, record_every=record_every, seed=s_paper)
    rows = []
    for w in range(n_walkers):
        P = _a.pca(tr.walker(w, nw))
        loss = lambda th: offset + float(L.value(th[0], th[1]))      # noqa: E731
        fl = _a.flatness(loss, P.mean, P.directions)
        H = L.hessian(P.mean[0], P.mean[1])
        h = np.einsum("ki,ij,kj->k", P.directions, H, P.directions)
        rows.append(dict(walker=w, mean=_floats(P.mean), variance=_floats(P.variances),
                         F=_floats(fl.width), left=_floats(fl.left), right=_floats(fl.right),
                         h=_floats(h), F_hessian=_floats(_a.quadratic_flatness(h, fl.L0)),
                         L0=fl.L0, direction=[_floats(p) for p in P.directions]))
    return rows


def _random_quadratics(rng, n_landscapes):
    """½ θᵀ R diag(h1, h2) Rᵀ θ with h log-uniform in [0.3, 30]: list of (h, matrix)."""
    lands = []
    for _ in range(n_landscapes):
        h = np.exp(rng.uniform(math.log(0.3), math.log(30.0), 2))
        a = rng.uniform(0, math.pi)
        R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        lands.append((h, R @ np.diag(h) @ R.T))
    return lands


def _noise_models(seed, offset, n_landscapes, n_walkers, n_steps, record_every, delta, eta,
                  nw, s_land, s_runs):
    """σ² vs F for three noise models on the same random quadratics."""
    lands = _random_quadratics(np.random.default_rng(s_land), n_landscapes)
    models = {}
    for name, expected in (("sgd", 2.0), ("fdn", 0.0), ("isotropic", -2.0)):
        F_all, v_all, h_all = [], [], []
        for k, (h, A) in enumerate(lands):
            Lq = _landscapes.quadratic(A)
            if name == "sgd":
                trk = _t.walkers_2d(Lq, eta=eta, sigma=delta / eta, n_walkers=n_walkers,
                                    n_steps=n_steps, record_every=record_every, seed=s_runs[k])
            else:
                D = _diffusion.fdn(Lq, delta) if name == "fdn" else _diffusion.isotropic(delta)
                trk = _t.walkers_2d(Lq, diffusion=D, dt=eta, n_walkers=n_walkers,
                                    n_steps=n_steps, record_every=record_every, seed=s_runs[k])
            P = _a.pca(np.concatenate([trk.walker(w, nw) for w in range(n_walkers)]))
            fl = _a.flatness(lambda th, Lq=Lq: offset + float(Lq.value(th[0], th[1])),
                             np.zeros(2), P.directions)
            F_all += list(fl.width)
            v_all += list(P.variances)
            h_all += list(np.einsum("ki,ij,kj->k", P.directions, A, P.directions))
        fit = _a.power_law_fit(F_all, v_all, seed=seed)
        models[name] = {"F": _floats(F_all), "variance": _floats(v_all), "h": _floats(h_all),
                        "psi": _fit_dict(fit), "psi_continuum": expected}
    return models


def experiment_digits(*, seed: int = 0, hidden=(30, 30), lr: float = 0.05,
                      batch_size: int = 32, iterations: int = 16_000, window: int = 4000,
                      n_directions: int = 60, n_boot: int = 2000, sub_windows=(1000,),
                      data=None) -> dict:
    """The SI's variance–flatness analysis of minibatch SGD on 8×8 digits.

    The window is the last ``window`` iterations (one snapshot per iteration) of the
    hidden-1 → hidden-2 weights; the run must have reached zero training error
    before the window (checked and reported as ``"window_in_exploration"``).
    ``sub_windows`` repeats the PCA, flatness and ψ fit on the last few iterations of
    the window only, to show how the results depend on the window length.

    Returns
    -------
    dict
        Settings, training history, order parameters (moving averages over one
        epoch) and the transition time, the accumulated variance spectrum, D_l, and per
        analysed direction σ², F, left/right widths, D, τ, with the fits of ψ, ψ_D, ψ_τ
        (directions ≥ 2) and also ψ over all analysed directions; D_l of all directions
        and of the directions ≥ 2 alone (the drift mode p_1 can hold almost all the
        variance of a long window).
    """
    t0 = time.perf_counter()
    run = _t.train_digits("sgd", hidden=tuple(hidden), lr=lr, batch_size=batch_size,
                          iterations=iterations, window=window, seed=seed, data=data)
    t_train = time.perf_counter() - t0
    with blas_threads(run.blas):
        res = _a.variance_flatness(run.snapshots, run.layer_loss(), n_directions=n_directions,
                                   n_boot=n_boot, seed=seed)
        ss = np.random.SeedSequence(seed).spawn(1)[0]
        fit_all = _a.power_law_fit(res.flat.width, res.variance, n_boot=n_boot, seed=ss)
        subs = []
        for w in sub_windows:
            r = _a.variance_flatness(run.snapshots[-int(w):], run.layer_loss(),
                                     n_directions=n_directions, n_boot=n_boot, seed=seed)
            rv = r.pca.variances
            subs.append({"window": int(w), "psi": _fit_dict(r.fit_variance),
                         "learning_dimension": r.learning_dimension,
                         "learning_dimension_without_drift": _a.learning_dimension(
                             rv[1:], r.fraction, r.pca.total_variance - rv[0])})
    op = run.order_parameters()
    t_star = _a.transition_time(op.t_avg, op.C_avg)
    h = run.history
    zero = np.flatnonzero(h["train_error"] == 0)
    t_zero = float(h["iteration"][zero[0]]) if zero.size else math.nan
    ipe = run.iterations_per_epoch
    stride = max(1, op.t_avg.size // 2000)          # keep the JSON small
    d = res.to_dict()
    d.update({"psi_all_directions": _fit_dict(fit_all)})
    v = res.pca.variances
    dl2 = _a.learning_dimension(v[1:], res.fraction, res.pca.total_variance - v[0])
    return {
        "params": dict(run.params),
        "seconds": {"train": t_train, "analysis": time.perf_counter() - t0 - t_train},
        "iterations_per_epoch": ipe,
        "history": {k: _floats(v) for k, v in h.items()},
        "order": {"t": _floats(op.t_avg[::stride]), "A": _floats(op.A_avg[::stride]),
                  "C": _floats(op.C_avg[::stride]), "window": op.window},
        "transition_iteration": t_star,
        "zero_train_error_iteration": t_zero,
        "window_in_exploration": bool(np.isfinite(t_zero) and t_zero <= iterations - window),
        "final": {"train_loss": float(h["train_loss"][-1]),
                  "train_error": float(h["train_error"][-1]),
                  "test_error": float(h["test_error"][-1])},
        "analysis": d,
        "learning_dimension_without_drift": dl2,
        "sub_windows": subs,
        "lags": {"t": _floats(res.corr.lags[:201]),
                 "G": [_floats(g[:201]) for g in res.corr.G],
                 "S": [_floats(s[:201]) for s in res.corr.S]},
    }


def experiment_fdn(*, seeds=(0, 1, 2), methods=_t.METHODS, iterations: int = 5000,
                   lr: float = 0.05, batch_size: int = 32, noise_scale: float | None = None,
                   fisher: str = "minibatch", n_random_directions: int = 20,
                   data=None) -> dict:
    """GD, GD + flatness-detecting noise, GD + isotropic noise and SGD on 8×8 digits.

    Every method starts from the same initialisation for a given seed and takes the
    same number of parameter updates with the same learning rate.  The solution
    reached is characterised by its test error, training loss, sharpness (largest
    Hessian eigenvalue) and the SI flatness F along ``n_random_directions`` random unit
    directions of the full parameter space (the same directions for every method;
    geometric mean reported).

    Returns
    -------
    dict
        ``"runs"``: one record per (method, seed); ``"summary"``: per method the mean
        and standard deviation over seeds; ``"curves"``: test error and training loss
        against iteration for the first seed.
    """
    t0 = time.perf_counter()
    if data is None:
        data = _t.load_digits_data(seed=0)
    runs, curves = [], {}
    for seed in seeds:
        for m in methods:
            r = _t.train_digits(m, lr=lr, batch_size=batch_size, iterations=iterations,
                                window=2, seed=seed, noise_scale=noise_scale, fisher=fisher,
                                data=data)
            rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
            dirs = rng.standard_normal((n_random_directions, r.net.n_params))
            with blas_threads(r.blas):
                fl = _a.flatness(lambda th, r=r: r.net.loss(th, data.X_train, data.y_train),
                                 r.theta, dirs, step=1e-2)
            lam = _t.sharpness(r, n_iter=30, seed=seed)
            runs.append(dict(method=m, seed=seed, test_error=r.test_error(),
                             train_error=float(r.history["train_error"][-1]),
                             train_loss=r.train_loss(), sharpness=lam,
                             F_random_geomean=float(np.exp(np.mean(np.log(fl.width)))),
                             seconds=r.seconds))
            if seed == seeds[0]:
                curves[m] = {k: _floats(r.history[k]) for k in
                             ("iteration", "train_loss", "test_error")}
    summary = {}
    for m in methods:
        rs = [x for x in runs if x["method"] == m]
        summary[m] = {k: {"mean": float(np.mean([x[k] for x in rs])),
                          "std": float(np.std([x[k] for x in rs], ddof=1)) if len(rs) > 1
                          else math.nan}
                      for k in ("test_error", "train_loss", "sharpness", "F_random_geomean")}
    return {"params": dict(seeds=list(seeds), methods=list(methods), iterations=iterations,
                           lr=lr, batch_size=batch_size,
                           noise_scale=1.0 / batch_size if noise_scale is None else noise_scale,
                           fisher=fisher, n_random_directions=n_random_directions,
                           n_test=len(data.y_test)),
            "runs": runs, "summary": summary, "curves": curves,
            "seconds": time.perf_counter() - t0}
