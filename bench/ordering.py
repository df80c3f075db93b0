"""Fill-reducing orderings for the sparse LU factorisations (benchmark, not a test).

Problem: the Fig. 3 problem of ``bench/solve.py`` (paper landscape, SGD noise
Δ_S = 0.012, disk of radius 2, absorbing).  Per level (element order, h), in a
fresh subprocess, the interior block ``A = prob.operator.A(0.012)[I][:, I]`` is
factorised with

* ``mmd``    — ``splu(A, permc_spec="MMD_AT_PLUS_A", SymmetricMode)`` (the solver's ordering
  before nested dissection);
* ``colamd`` — SuperLU's default (COLAMD on AᵀA);
* ``mmd_ata`` — ``permc_spec="MMD_ATA"``;
* ``metis``  — METIS nested dissection (``pymetis``) applied symmetrically, ``A[p][:, p]``,
  then ``splu(..., permc_spec="NATURAL", SymmetricMode)``;
* ``geo``    — a pure numpy geometric nested dissection on the dof coordinates
  (``fpsolve.fe.ordering.geometric_nd_order``, leaves of 16 dofs) the same way;

and the same (without ``colamd``/``mmd_ata``) for the SPD matrices of
``fpsolve.flux`` (Dirichlet Laplacian K_II and mass M, ``diag_pivot_thresh=0``).
Columns: ordering time (graph + ordering), factorisation time (symmetric permutation
+ ``splu``), nnz(L+U), the relative difference of the solution of A x = M·1 against
``mmd``, and the scaled residual max|Ax−b| / (‖A‖∞ max|x|).  COLAMD and MMD_ATA are
skipped above 170k dofs (too slow).

Writes ``bench/results/ordering.json`` and ``docs/ordering.md``.

Usage::

    python bench/ordering.py             # all levels, ~5 min
    python bench/ordering.py --render    # re-render docs/ordering.md from the JSON
    python bench/ordering.py --level 3 0.04   # one level, JSON on stdout (internal)
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from _report import write_report  # noqa: E402  (bench/_report.py)

DOC = os.path.join(ROOT, "docs", "ordering.md")
RAW = os.path.join(HERE, "results", "ordering.json")
LEVELS = [(2, 0.05), (2, 0.025), (2, 0.0177), (2, 0.0125),
          (3, 0.05), (3, 0.04), (3, 0.028), (3, 0.02)]
REFERENCE_ONLY_MAX = 170_000     # COLAMD / MMD_ATA only up to this many dofs
ORDERINGS = ["mmd", "colamd", "mmd_ata", "metis", "geo"]
SPD_ORDERINGS = ["mmd", "metis", "geo"]

# Conclusions and the hand-measured end-to-end timings, appended to the page.
NOTES = """## Conclusion

* **METIS nested dissection** leaves less fill than MMD everywhere (0.76–0.96×) and factorises faster once its order is known: 1.6–2.0× for P2, 2.4–17× for P3 (0.29 s vs 0.79 s at 81k P3 dofs, 1.88 s vs 31.55 s at 325k; the P3 mass matrix at 325k: 1.76 s vs 77 s). SuperLU's MMD is particularly slow on the denser P3 graphs (~17 nonzeros per row against ~11 for P2). The METIS call itself (0.37 s at 81k P3, 1.8 s at 325k; 0.56 s at 92k P2) is paid once per sparsity pattern. Counting it: P3 gains from ~50k dofs on (1.05× at 52k, 1.19× at 81k, 2.9× at 166k, 8.5× at 325k); P2 loses on a single factorisation (0.61–0.85×) and gains only from about the third factorisation on the same mesh.
* **Geometric nested dissection** (pure numpy, no dependency): the one-sided median-cut separators are about twice as thick as METIS's, so it fills in 1.2–1.8× as much as MMD; on the FP operator it beats MMD only for P3 from ~150k dofs (4.5× at 325k), and it is worse than METIS everywhere. Not used.
* **COLAMD and MMD_ATA** fill in 2–3.3× as much as MMD and are slower everywhere (as found before, [performance.md](performance.md)).
* **Accuracy**: all scaled residuals are ~1e-17 (SPD: ~5e-16). The FP solutions by different orderings differ by ≤ 8e-7 relative, within the conditioning of the nearly singular interior block (COLAMD against MMD: up to 4e-6); the SPD solutions agree to ≤ 6e-13.

**What the solver does now** (`fpsolve/fe/ordering.py`): `solver._splu` and `flux._spd_lu` permute by a METIS nested-dissection order and factorise with `permc_spec="NATURAL"` in symmetric mode (pivoting unchanged) when `pymetis` is installed (a core dependency: Fig. 3 ran 12.0 s without it, 8.7 s with it; without it the solver falls back), the matrix has ≥ 20000 rows and ≥ 14 nonzeros per row (P3 and denser stencils); otherwise SuperLU's MMD on Aᵀ+A as before. The order is cached per sparsity pattern (digest of the CSC structure, the 16 most recent patterns), so all Δ_S values and all cases on one mesh share one METIS call. `flux._mesh_operators` orders the mass matrix once and uses the induced order for the Dirichlet and pinned Laplacian sub-blocks.

## End-to-end effect

Measured by hand on 2026-11-25 after the table above (not re-run by this script): Fig. 3 problem, P3, same machine and session, MMD = the previous code path (`_ordering.MIN_SIZE` set above the size; for the study run a checkout of the previous commit), METIS = the new one; two runs each where a range is given.

| measurement | MMD (before) | METIS (after) | speed-up |
|---|---:|---:|---:|
| P3 h = 0.04 (81865 dofs): `Problem` + `solve()` | 1.45–1.97 s | 1.32–1.34 s | 1.1–1.5× |
| … of which factorisation (METIS call included) | 0.78–0.80 s | 0.70–0.71 s | 1.1× |
| … second `solve(0.009)` on the same problem (order cached) | 0.95–1.00 s | 0.44–0.45 s | 2.2× |
| … first `Flux(sol)` (mass and two Laplace LUs) | 4.49–4.57 s | 2.13–2.17 s | 2.1× |
| … `Problem.sweep` of 10 Δ_S values | 9.51 s | 4.97 s | 1.9× |
| P3 h = 0.02 (326587 dofs): `Problem` + `solve()` | 31.93 s | 8.21 s | 3.9× |
| … of which factorisation | 28.57 s | 3.76 s | 7.6× |
| … second `solve(0.009)` | 29.70 s | 2.39 s | 12× |
| … first `Flux(sol)` | 102.5 s | 10.9 s | 9.4× |
| `fpsolve run studies/fig3.toml` (4 P3 cases, 82k dofs, with flux) | 19.1–19.9 s | 14.7–15.7 s | 1.3× |

μ agrees to 12 digits (5.265066610920e-08 both ways at h = 0.04; 5.26510025328{4,5}e-08 at h = 0.02). In the Fig. 3 study summary every quantity agrees to ≤ 2e-8 relative except those at the round-off floor (the eigenvalue estimate of μ, 1e-4 relative, which the solver already flags as below its floor, and values that are zero by symmetry); two mirror-image cycles of equal strength can be listed in swapped order."""


def _factorise(A, name, coords, spd=False):
    """(order s, factor s, lu, perm or None) for one ordering."""
    import scipy.sparse.linalg as spla
    from fpsolve.fe import ordering as _ordering

    extra = {"diag_pivot_thresh": 0.0} if spd else {}
    perm, t_order = None, 0.0
    if name in ("metis", "geo"):
        t0 = time.perf_counter()
        perm = (_ordering.metis_order(A) if name == "metis"
                else _ordering.geometric_nd_order(A, coords, leaf=16))
        t_order = time.perf_counter() - t0
    t0 = time.perf_counter()
    if perm is not None:
        lu = spla.splu(A[perm][:, perm].tocsc(), permc_spec="NATURAL",
                       options={"SymmetricMode": True}, **extra)
    elif name == "mmd":
        lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True}, **extra)
    elif name == "colamd":
        lu = spla.splu(A, **extra)
    elif name == "mmd_ata":
        lu = spla.splu(A, permc_spec="MMD_ATA", **extra)
    else:
        raise ValueError(name)
    return t_order, time.perf_counter() - t0, lu, perm


def _compare(A, b, coords, names, spd=False):
    import scipy.sparse.linalg as spla

    normA = spla.norm(A, np.inf)
    rows, x_ref = {}, None
    for name in names:
        if name in ("colamd", "mmd_ata") and A.shape[0] > REFERENCE_ONLY_MAX:
            continue
        if name == "metis":
            try:
                import pymetis  # noqa: F401
            except ImportError:
                continue
        t_order, t_fact, lu, perm = _factorise(A, name, coords, spd)
        if perm is None:
            x = lu.solve(b)
        else:
            x = np.empty_like(b)
            x[perm] = lu.solve(b[perm])
        if x_ref is None:
            x_ref = x
        rows[name] = {
            "order_s": t_order, "factor_s": t_fact, "total_s": t_order + t_fact,
            "nnz_lu": int(lu.L.nnz + lu.U.nnz),
            "rel_diff": float(np.linalg.norm(x - x_ref) / np.linalg.norm(x_ref)),
            "residual": float(np.max(np.abs(A @ x - b)) / (normA * np.max(np.abs(x)))),
        }
        del lu
    return rows


def run_level(order: int, h: float) -> dict:
    import fpsolve as fp
    from fpsolve import flux

    L = fp.landscapes.paper()
    D = fp.diffusion.sgd(L, 0.012)
    mesh = fp.disk_mesh(2.0, h)
    prob = fp.Problem(L, D, mesh, order=order)
    I = prob.interior_dofs
    X = prob.basis.doflocs
    A = prob.operator.A(0.012)[I][:, I].tocsc()
    M = prob.operator.M
    b = np.asarray(M[I][:, I].sum(axis=1)).ravel()
    out = {"order": order, "h": h, "dofs": int(prob.dofs), "n": int(A.shape[0]),
           "nnz_A": int(A.nnz), "fp": _compare(A, b, X[:, I], ORDERINGS)}
    Mf = M.tocsc()                      # the mass matrix flux._mesh_operators factorises
    K = flux._laplace.assemble(prob.basis).tocsr()
    KII = K[I][:, I].tocsc()
    out["spd_K"] = _compare(KII, b, X[:, I], SPD_ORDERINGS, spd=True)
    bM = np.asarray(Mf.sum(axis=1)).ravel()
    out["spd_M"] = _compare(Mf, bM, X, SPD_ORDERINGS, spd=True)
    return out


def render(data: dict) -> str:
    def fmt_table(key, names, title):
        lines = [title, "",
                 "| element | h | dofs | ordering | order s | factor s | total s | vs MMD | "
                 "nnz(L+U) | fill vs MMD | rel. diff vs MMD | residual |",
                 "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for lev in data["levels"]:
            rows = lev[key]
            ref = rows["mmd"]
            for name in names:
                if name not in rows:
                    continue
                r = rows[name]
                lines.append(
                    f"| P{lev['order']} | {lev['h']:g} | {lev['n']} | {name} | "
                    f"{r['order_s']:.2f} | {r['factor_s']:.2f} | {r['total_s']:.2f} | "
                    f"{ref['total_s'] / r['total_s']:.2f}× | {r['nnz_lu'] / 1e6:.1f}M | "
                    f"{r['nnz_lu'] / ref['nnz_lu']:.2f} | {r['rel_diff']:.1e} | "
                    f"{r['residual']:.1e} |")
        return "\n".join(lines)

    meta = data["meta"]
    head = f"""# Fill-reducing orderings for the sparse LU

Generated by `python bench/ordering.py` on {meta['date']} ({meta['machine']}, 2 cores, Python {meta['python']}, SciPy {meta['scipy']}, pymetis {meta['pymetis']}); raw numbers in `bench/results/ordering.json` (git-ignored; `--render` re-renders this page). Wall-clock times, one run each, each level in a fresh subprocess (expect ±20 % run to run on this shared machine).

Problem: the Fig. 3 problem of [performance.md](performance.md) (paper landscape, Δ_S = 0.012, disk of radius 2, absorbing). Matrix: the interior block `prob.operator.A(0.012)[I][:, I]` of the non-symmetric (structurally symmetric) Fokker–Planck operator; *dofs* is its size. Orderings:

* **mmd** — `splu(A, permc_spec="MMD_AT_PLUS_A", options={{"SymmetricMode": True}})`, the solver's ordering before this study;
* **colamd** — SuperLU's default (COLAMD on AᵀA); **mmd_ata** — `permc_spec="MMD_ATA"` (both only up to 170k dofs);
* **metis** — METIS multilevel nested dissection (`pymetis.nested_dissection` on the pattern of A + Aᵀ), applied symmetrically `A[p][:, p]`, then `splu(..., permc_spec="NATURAL", options={{"SymmetricMode": True}})` (SuperLU still post-orders the elimination tree and keeps partial pivoting);
* **geo** — pure numpy geometric nested dissection on the dof coordinates (`fpsolve.fe.ordering.geometric_nd_order`: median bisection of the longer extent, separator = the vertices of one side adjacent to the other, leaves of ≤ 16 dofs, separators last), applied the same way.

Columns: *order s* = symmetrised graph + ordering (paid once per mesh; the solver caches it), *factor s* = symmetric permutation + `splu`, *total s* = both, *vs MMD* = MMD's total / this total, *fill vs MMD* = nnz(L+U) / MMD's, *rel. diff vs MMD* = ‖x − x_MMD‖ / ‖x_MMD‖ for A x = M·1 (the matrix is nearly singular — μ ≈ 1e-8 — so solutions by different orderings differ at the 1e-7…1e-6 level; COLAMD shows the round-off scale), *residual* = max|Ax − b| / (‖A‖∞ max|x|).
"""
    parts = [head,
             fmt_table("fp", ORDERINGS, "## Fokker–Planck operator (interior block, partial pivoting)"),
             fmt_table("spd_K", SPD_ORDERINGS,
                       "## SPD: Dirichlet Laplacian K_II (`fpsolve.flux`, no pivoting)"),
             fmt_table("spd_M", SPD_ORDERINGS, "## SPD: mass matrix M (all dofs, no pivoting)")]
    parts.append(NOTES)
    return "\n\n".join(parts) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--level", nargs=2, metavar=("ORDER", "H"))
    args = ap.parse_args(argv)
    if args.level:
        print(json.dumps(run_level(int(args.level[0]), float(args.level[1]))))
        return
    if args.render:
        with open(RAW) as f:
            data = json.load(f)
        write_report(DOC, render(data))
    else:
        import scipy
        try:
            import pymetis
            pm = getattr(pymetis, "version", "?")
        except ImportError:
            pm = "not installed"
        levels = []
        for order, h in LEVELS:
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, __file__, "--level", str(order), str(h)],
                                 check=True, capture_output=True, text=True)
            lev = json.loads(res.stdout.strip().splitlines()[-1])
            levels.append(lev)
            print(f"P{order} h={h}: {lev['n']} dofs, "
                  + ", ".join(f"{k} {v['total_s']:.2f}s/{v['nnz_lu'] / 1e6:.1f}M"
                              for k, v in lev["fp"].items())
                  + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
        data = {"meta": {"date": datetime.date.today().isoformat(), "machine": platform.machine(),
                         "python": platform.python_version(), "scipy": scipy.__version__,
                         "pymetis": str(pm)},
                "levels": levels}
        write_report(DOC, render(data), RAW, data)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
