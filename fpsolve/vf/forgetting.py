"""Seeded catastrophic-forgetting experiment: LDC against EWC and no constraint.

:func:`experiment_ldc` runs, for every case (a pair of digit sets) and seed: task 1
by SGD with the PCA window (:func:`.ldc.learn_task1`), then task 2 from w₁* for all
constraints in lockstep (:func:`.ldc.learn_task2`):

* no constraint;
* EWC over a grid of λ;
* LDC with N_c = ``n_c`` directions over a grid of λ̃ for each ψ in ``psis`` (Fig. S13);
* LDC with ψ = ``psi`` over a grid of λ̃ for each N_c in ``n_c_scan`` (Fig. S14B).

It returns a JSON-able dict: the settings, per case and seed the errors (ε₁, ε₂) of
every constraint, and per case a summary over seeds.  λ (or λ̃) is chosen on the
seed-mean ⟨ε⟩ = (ε₁ + ε₂)/2 curve, one value for all seeds as a user would, and the
spread over seeds is reported at that value.  N_c* is the smallest N_c whose best
seed-mean ⟨ε⟩ lies within one standard error (over seeds) of the lowest over N_c.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from . import ldc as _ldc
from . import trainers as _t
from ._checks import _count

__all__ = ["experiment_ldc", "CASES"]

#: The SI's harder case (S9) and a two-digit pair like the main text's.
CASES = {"split": ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9)), "pair": ((0, 1), (2, 3))}


def _constraints(p):
    """The constraint list of one task-2 run, and where each group sits in it."""
    C, where = [_ldc.Constraint("none")], {"none": 0}
    where["ewc"] = list(range(len(C), len(C) + len(p["lambda_ewc"])))
    C += [_ldc.Constraint("ewc", lam=lam) for lam in p["lambda_ewc"]]
    where["psi"] = {}
    for psi in p["psis"]:
        where["psi"][psi] = list(range(len(C), len(C) + len(p["lambda_tilde"])))
        C += [_ldc.Constraint("ldc", lam=lt * 10.0 ** -psi, psi=psi, n_c=p["n_c"])
              for lt in p["lambda_tilde"]]
    where["scan"] = {}
    for nc in p["n_c_scan"]:
        where["scan"][nc] = list(range(len(C), len(C) + len(p["lambda_tilde_scan"])))
        C += [_ldc.Constraint("ldc", lam=lt * 10.0 ** -p["psi"], psi=p["psi"], n_c=nc)
              for lt in p["lambda_tilde_scan"]]
    return C, where


def _one_run(job):
    """Task 1 and task 2 of one (case, seed): errors of every constraint (a worker job)."""
    case, digits1, digits2, seed, p, data = job
    t0 = time.perf_counter()
    if data is None:
        data = _t.load_digits_data(seed=seed)
    elif isinstance(data, str):
        data = _ldc.load_mnist(data)
    task1, task2 = _ldc.make_task(data, digits1), _ldc.make_task(data, digits2)
    ss = np.random.SeedSequence([seed, len(digits1), *digits1, *digits2])
    s1, s2 = ss.spawn(2)
    anchor = _ldc.learn_task1(task1, hidden=p["hidden"], lr=p["lr"], batch_size=p["batch_size"],
                              iterations=p["iterations_1"], window=p["window"],
                              snapshot_every=p["snapshot_every"], seed=s1)
    t1 = time.perf_counter()
    K = anchor.pca.variances.size
    pp = dict(p, n_c=min(p["n_c"] or K, K),
              n_c_scan=tuple(sorted({min(n, K) for n in p["n_c_scan"]})))
    C, where = _constraints(pp)
    E = _ldc.learn_task2(anchor, task2, C, tasks_test=(task1, task2), lr=p["lr"],
                         batch_size=p["batch_size"], iterations=p["iterations_2"], seed=s2)
    v = anchor.pca.variances
    return {"case": case, "seed": seed, "eps1_after_task1": anchor.eps1,
            "train_loss_task1": anchor.train_loss, "n_directions": K, "n_c": pp["n_c"],
            "n_c_scan": list(pp["n_c_scan"]),
            "variances": [float(x) for x in v[_ldc_spectrum_points(K)]],
            "variance_index": [int(i) + 1 for i in _ldc_spectrum_points(K)],
            "no_constraint": E[where["none"]].tolist(),
            "ewc": E[where["ewc"]].tolist(),
            "ldc_psi": {_key(k): E[ix].tolist() for k, ix in where["psi"].items()},
            "ldc_scan": {_key(k): E[ix].tolist() for k, ix in where["scan"].items()},
            "seconds": {"task1": t1 - t0, "task2": time.perf_counter() - t1}}


def _key(x) -> str:
    """JSON key of a ψ or N_c value: 4.0 -> "4"."""
    return f"{x:g}"


def _ldc_spectrum_points(K):
    return np.unique(np.round(np.geomspace(1, K, min(K, 40))).astype(int) - 1)


def _curve(runs, key, sub=None):
    """Seed-stacked errors of one constraint group: array (seeds, grid, 2)."""
    return np.array([r[key] if sub is None else r[key][sub] for r in runs], dtype=float)


def _best(E, grid):
    """The grid value minimising the seed-mean ⟨ε⟩ and the spread over seeds there."""
    avg = E.mean(axis=2)                                  # (seeds, grid)
    j = int(np.argmin(avg.mean(axis=0)))
    return {"value": float(grid[j]), "index": j, "per_seed": avg[:, j].tolist(),
            "avg_error": _ldc.error_summary(avg[:, j]),
            "eps1": _ldc.error_summary(E[:, j, 0]), "eps2": _ldc.error_summary(E[:, j, 1]),
            "curve": {"avg": avg.mean(axis=0).tolist(),
                      "avg_std": (avg.std(axis=0, ddof=1) if len(avg) > 1
                                  else np.full(avg.shape[1], math.nan)).tolist(),
                      "eps1": E[:, :, 0].mean(axis=0).tolist(),
                      "eps2": E[:, :, 1].mean(axis=0).tolist()}}


def _summary(runs, p):
    """Per case: no constraint, EWC, LDC by ψ and by N_c, N_c*, over the seeds."""
    E0 = _curve(runs, "no_constraint")                    # (seeds, 2)
    ewc = _best(_curve(runs, "ewc"), p["lambda_ewc"])
    by_psi = {}
    for psi in p["psis"]:
        b = _best(_curve(runs, "ldc_psi", _key(psi)), p["lambda_tilde"])
        by_psi[_key(psi)] = dict(b, lambda_tilde=b["value"], lam=b["value"] * 10.0 ** -psi)
    by_nc, n_c_list = {}, runs[0]["n_c_scan"]
    for nc in n_c_list:
        by_nc[_key(nc)] = _best(_curve(runs, "ldc_scan", _key(nc)), p["lambda_tilde_scan"])
    means = np.array([by_nc[_key(n)]["avg_error"]["mean"] for n in n_c_list])
    se = np.array([by_nc[_key(n)]["avg_error"]["std"] for n in n_c_list]) / math.sqrt(len(runs))
    k = int(np.argmin(means))
    tol = se[k] if np.isfinite(se[k]) else 0.0
    nc_star = int(n_c_list[int(np.flatnonzero(means <= means[k] + tol)[0])])
    main = by_psi.get(_key(p["psi"]))
    avg0 = E0.mean(axis=1)
    per_psi = np.array([b["per_seed"] for b in by_psi.values()])      # (psis, seeds)
    compare = {"ldc_minus_ewc": None if main is None else _ldc.error_summary(
                   np.subtract(main["per_seed"], ewc["per_seed"])),
               "psi_range": _ldc.error_summary(per_psi.max(axis=0) - per_psi.min(axis=0))}
    return {
        "no_constraint": {"eps1": _ldc.error_summary(E0[:, 0]),
                          "eps2": _ldc.error_summary(E0[:, 1]),
                          "avg_error": _ldc.error_summary(avg0)},
        "after_task1": {"eps1": _ldc.error_summary([r["eps1_after_task1"] for r in runs])},
        "ewc": {"best_avg_error": ewc["avg_error"], "best_lambda": ewc["value"],
                "eps1": ewc["eps1"], "eps2": ewc["eps2"], "curve": ewc["curve"]},
        "ldc": {"best_avg_error": None if main is None else main["avg_error"],
                "best_lambda": None if main is None else main["lam"],
                "best_lambda_tilde": None if main is None else main["lambda_tilde"],
                "psi": p["psi"], "n_c": runs[0]["n_c"], "Nc_star": nc_star,
                "Nc_star_is_largest": nc_star == n_c_list[-1],   # the scan did not saturate
                "by_psi": by_psi, "by_nc": by_nc},
        "paired": compare,
    }


def experiment_ldc(*, seeds=(0, 1, 2, 3, 4), cases=None, hidden=(30, 30), lr: float = 0.05,
                   batch_size: int = 32, iterations_1: int = 4000, window: int = 2000,
                   snapshot_every: int = 2, iterations_2: int = 1000,
                   lambda_ewc=tuple(10.0 ** np.arange(0, 9)),
                   lambda_tilde=tuple(10.0 ** np.arange(4, 13)), psis=(3.0, 4.0, 5.0),
                   psi: float = 4.0, n_c: int | None = None, n_c_scan=(3, 10, 30, 100, 300, 1000),
                   lambda_tilde_scan=tuple(10.0 ** np.arange(6, 12)), data=None,
                   workers: int = 1) -> dict:
    """LDC vs EWC vs no constraint on sequential digit tasks, over seeds.

    Parameters
    ----------
    seeds : sequence of int
        One task-1 + task-2 run per seed and case (data split, initialisation and
        minibatches depend on it).
    cases : dict, optional
        name -> (task-1 digits, task-2 digits) of equal length (default :data:`CASES`).
    hidden, lr, batch_size
        Network hidden widths and SGD settings (both tasks).
    iterations_1, window, snapshot_every
        Task-1 SGD updates and the PCA window (last ``window`` iterations, one snapshot
        of all parameters every ``snapshot_every``).
    iterations_2 : int
        Task-2 SGD updates.
    lambda_ewc : sequence of float
        EWC strengths λ.
    lambda_tilde, psis, n_c
        LDC strengths λ̃ = 10^ψ λ for each ψ in ``psis`` at N_c = ``n_c`` (default: all
        directions of the window, T − 1).
    psi, n_c_scan, lambda_tilde_scan
        The N_c scan: ψ, the N_c values (capped at the window's directions) and its λ̃.
    data : None, DigitsData or str
        None: scikit-learn's 8×8 digits split by seed; a str: a local MNIST ``.npz``
        (:func:`.ldc.load_mnist`), its own train/test split.
    workers : int
        Processes for the (case, seed) runs; the results do not depend on it.

    Returns
    -------
    dict
        ``"params"``, ``"cases"`` (per case: digits, ``"runs"`` per seed, ``"summary"``).
    """
    t0 = time.perf_counter()
    seeds = [int(s) for s in seeds]
    if len(seeds) < 1 or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"experiment_ldc: seeds must be distinct integers >= 0, got {seeds}")
    cases = dict(CASES if cases is None else cases)
    for name, (d1, d2) in cases.items():
        if len(d1) != len(d2) or set(d1) & set(d2):
            raise ValueError(f"experiment_ldc: case {name!r}: the two tasks must have as many "
                             f"digits and share none, got {list(d1)} and {list(d2)}")
    p = dict(hidden=tuple(int(h) for h in hidden), lr=float(lr), batch_size=int(batch_size),
             iterations_1=int(iterations_1), window=int(window),
             snapshot_every=int(snapshot_every), iterations_2=int(iterations_2),
             lambda_ewc=[float(x) for x in lambda_ewc],
             lambda_tilde=[float(x) for x in lambda_tilde], psis=[float(x) for x in psis],
             psi=float(psi), n_c=None if n_c is None else _count("experiment_ldc", "n_c", n_c),
             n_c_scan=[_count("experiment_ldc", "n_c_scan", n) for n in n_c_scan],
             lambda_tilde_scan=[float(x) for x in lambda_tilde_scan])
    jobs = [(name, tuple(d1), tuple(d2), s, p, data) for name, (d1, d2) in cases.items()
            for s in seeds]
    runs = _map(_one_run, jobs, _count("experiment_ldc", "workers", workers))
    out = {"params": dict(p, seeds=seeds, data="digits" if data is None else
                          (data if isinstance(data, str) else "given")),
           "cases": {}}
    for name, (d1, d2) in cases.items():
        rs = [r for r in runs if r["case"] == name]
        out["cases"][name] = {"task1": list(d1), "task2": list(d2), "runs": rs,
                              "summary": _summary(rs, p)}
    out["seconds"] = time.perf_counter() - t0
    return out


def _map(fn, jobs, workers):
    """``[fn(j) for j in jobs]``, in ``workers`` processes when > 1 (same results)."""
    if workers == 1 or len(jobs) == 1:
        return [fn(j) for j in jobs]
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as ex:
        return list(ex.map(fn, jobs))
