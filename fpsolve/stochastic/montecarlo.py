"""Monte Carlo simulation of SGD and of the Fokker–Planck (Langevin) dynamics.

An independent check of the finite-element solver: this module imports only the
models (:mod:`fpsolve.landscapes`, :mod:`fpsolve.diffusion`), never FE code.

Two simulators share one streaming engine (walkers are vectorised, nothing is stored
per step unless ``record_every`` asks for it):

* :func:`sgd` — the paper's random-shift minibatch SGD (Yang–Tang–Tu Eq. 1, 8, S1–S4)

  .. math:: θ_{t+1} = θ_t − η (∇L(θ_t) − H(θ_t) μ_t),\\qquad μ_t \\sim N(0, 2σ I),

  i.e. noise covariance η² 2σ H², diffusion D = Δ_S H² with Δ_S = η σ and time step
  η.  ``cross_diffusion=False`` replaces H μ by a noise of covariance
  2σ·diag((H²)₁₁, (H²)₂₂) (H² with its off-diagonal dropped), the discrete model of the
  FPE without D12 (Fig. S5).
* :func:`langevin` — Euler–Maruyama for the Itô SDE dθ = (−∇L + b) dt + √(2 dt) B ξ with
  B Bᵀ = D, whose Fokker–Planck flux is J = (−∇L + b) P − ∇·(D P) (DESIGN.md).  No
  ∇·D drift is added: see ``docs/montecarlo.md``.

Both are the same kernel, θ ← (θ − a ∇L) + c B z: SGD with (η, σ) is Euler–Maruyama
with dt = η and D = ησ H², step for step.

Results come back as a :class:`MonteCarloResult`: density histogram, marginals,
moments with standard errors, empirical probability current, exit counts and the
escape rate through an absorbing disk (walkers re-inserted Fleming–Viot style by
default, so the density converges to the quasi-stationary density).

Reproducibility: walkers live in fixed blocks of ``block_size``; block ``i`` draws
from ``Generator(PCG64(SeedSequence(seed).spawn(...)[i]))``.  Results are
bit-identical for any ``workers`` / ``blocks_per_task`` and — on the models the numba
kernel supports — for either backend.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .._args import as_bool as _bool, as_float as _float, as_int as _int, err as _err
from ..models import diffusion as _diffusion
from ..models import landscapes as _landscapes

__all__ = ["sgd", "langevin", "MonteCarloResult", "MonteCarloWarning", "numba_available",
           "BLOCK_SIZE", "ALIVE", "EXITED", "DIVERGED", "REMOVED"]

BLOCK_SIZE = 256
"""Default walkers per random-number block (the unit of seeding, Fleming–Viot
re-insertion and of the independent groups behind the error bars)."""

# walker status codes (also in _mc_kernels)
ALIVE, EXITED, DIVERGED, REMOVED = 0, 1, 2, 3
C_EXITS_BURN, C_EXITS, C_DIVERGED, C_STEPS_BURN, C_STEPS, C_REMOVED = range(6)

_LK_PAPER, _LK_QUADRATIC = 0, 1
_NK_CONST, _NK_HESS, _NK_HESS_DIAG = 0, 1, 2

_BACKENDS = ("auto", "numba", "numpy")
_DEFAULT_X0_SCALE = 0.05
_NUMPY_WALKERS_PER_TASK = 16384      # numpy pays per ufunc call: vectorise over many blocks
_NUMPY_NORMALS_PER_TASK = 1 << 22    # ... but keep a task's (walkers, k, 2) normals <= 32 MB


class MonteCarloWarning(RuntimeWarning):
    """A Monte Carlo run finished but its statistics need care (divergence, extinction)."""


# --------------------------------------------------------------------------- numba
_KERNELS = None


def _kernels():
    """The numba kernel module, or None if numba cannot be imported (lazy, cached)."""
    global _KERNELS
    if _KERNELS is None:
        try:
            from . import _mc_kernels
        except ImportError:
            _KERNELS = False
        else:
            _KERNELS = _mc_kernels
    return _KERNELS or None


def numba_available() -> bool:
    """True if numba can be imported, i.e. ``backend="numba"`` is possible."""
    return _kernels() is not None


# --------------------------------------------------------------------- validation
# ------------------------------------------------------------------ run settings
@dataclass
class _Run:
    """Everything a backend needs to advance blocks (plain data)."""

    simulator: str
    landscape: _landscapes.Landscape
    dt: float                      # physical time per step (η for SGD)
    a: float                       # drift coefficient
    c: float                       # noise scale
    fast: tuple | None             # (lk, lp, nk, bm) when the numba kernel applies
    noise: str                     # generic path: "sgd", "sgd-nocross" or "model"
    model: object                  # DiffusionModel for the generic Langevin path
    drift: Callable | None
    R2: float
    blow2: float
    absorbing: bool
    reinsert: bool
    k: int
    n_chunks: int
    n_burn_chunks: int
    n_batches: int
    grid: np.ndarray               # (x0, 1/dx, y0, 1/dy) of the 2-D histogram
    gshape: tuple
    mgrid: np.ndarray              # same for the two 1-D marginal histograms
    mshape: tuple
    shift: np.ndarray              # reference point of the moment sums
    rec_every: int                 # in chunks; 0 = no recording
    record_walkers: int


@dataclass
class _Block:
    index: int
    start: int
    rng: np.random.Generator
    X: np.ndarray
    Y: np.ndarray
    status: np.ndarray
    n_rec: int                     # walkers of this block that are recorded


@dataclass
class _BlockOut:
    hist: np.ndarray
    margx: np.ndarray
    margy: np.ndarray
    cur: np.ndarray
    mom: np.ndarray
    counters: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    status: np.ndarray
    rec: np.ndarray


def _same_landscape(L1, L2) -> bool:
    return (L1 is L2) or (type(L1) is type(L2) and L1.params == L2.params)


def _landscape_code(L):
    """(lk, lp) for the compiled landscapes; None for anything else (incl. subclasses)."""
    if type(L) is _landscapes.PaperLandscape:
        lp = [L.eps * L.lam0, L.lam0, L.lam1, L.lam2, 2 * L.lam1, 4 * L.lam2, 12 * L.lam2, 0.0]
        return _LK_PAPER, np.array(lp)
    if type(L) is _landscapes.QuadraticLandscape:
        A, c = L.A, L.center
        return _LK_QUADRATIC, np.array([A[0, 0], A[0, 1], A[1, 1], c[0], c[1], 0.0, 0.0, 0.0])
    return None


def _constant_factor(D):
    """Noise factor B of a position-independent diffusion model, else None."""
    t = type(D)
    constant = t in (_diffusion.Isotropic, _diffusion.Constant) or (
        t is _diffusion.SGD and type(D.landscape) is _landscapes.QuadraticLandscape)
    if not constant:
        return None
    return np.ascontiguousarray(D.noise_factor(np.zeros(1), np.zeros(1))[:, :, 0]).ravel()


def _sgd_hessian_factor(A, cross):
    """B for SGD on a quadratic (constant) Hessian A."""
    if cross:
        return np.array([A[0, 0], A[0, 1], A[1, 0], A[1, 1]], dtype=float)
    b1 = math.sqrt(A[0, 0] * A[0, 0] + A[0, 1] * A[0, 1])
    b2 = math.sqrt(A[0, 1] * A[0, 1] + A[1, 1] * A[1, 1])
    return np.array([b1, 0.0, 0.0, b2])


# ------------------------------------------------------------------ numpy backend
class _NumpyStepper:
    """θ ← (θ − a g) + c (B z) for m walkers, into caller-provided output arrays.

    The compiled landscapes use preallocated buffers and exactly the operations (and
    their order) of the numba kernel, so both backends produce identical bits.  Any
    other model goes through ``L.gradient`` / ``L.hessian`` / ``D.noise_factor``.
    """

    def __init__(self, run: _Run, n: int):
        self.run = run
        self.a, self.c = run.a, run.c
        if run.fast is not None:
            self.lk, lp, self.nk, bm = run.fast
            self.lp = [float(v) for v in lp]
            self.bm = [float(v) for v in bm]
            self.buf = np.empty((10, n))
            self.step = self._paper if self.lk == _LK_PAPER else self._quadratic
        else:
            self.step = self._generic

    def _noise_const(self, z1, z2, nx, ny, t):
        b00, b01, b10, b11 = self.bm
        np.multiply(z2, b01, out=t)
        np.multiply(z1, b00, out=nx)
        np.add(nx, t, out=nx)
        np.multiply(z2, b11, out=t)
        np.multiply(z1, b10, out=ny)
        np.add(ny, t, out=ny)

    def _finish(self, x, y, gx, gy, nx, ny, xo, yo):
        np.multiply(gx, self.a, out=gx)
        np.subtract(x, gx, out=xo)
        np.multiply(nx, self.c, out=nx)
        np.add(xo, nx, out=xo)
        np.multiply(gy, self.a, out=gy)
        np.subtract(y, gy, out=yo)
        np.multiply(ny, self.c, out=ny)
        np.add(yo, ny, out=yo)

    def _paper(self, x, y, z1, z2, xo, yo):
        m = x.shape[0]
        x2, y2, lam, dlam, gx, gy, t, hxx, nx, ny = (b[:m] for b in self.buf)
        p0, p1, p2, p3, p4, p5, p6, _ = self.lp
        np.multiply(x, x, out=x2)
        np.multiply(y, y, out=y2)
        np.multiply(x2, p2, out=lam)                 # lam = (p1 + p2 x2) + p3 (x2 x2)
        np.add(lam, p1, out=lam)
        np.multiply(x2, x2, out=t)
        np.multiply(t, p3, out=t)
        np.add(lam, t, out=lam)
        np.multiply(x, p4, out=dlam)                 # dlam = p4 x + p5 (x x2)
        np.multiply(x, x2, out=t)
        np.multiply(t, p5, out=t)
        np.add(dlam, t, out=dlam)
        np.multiply(dlam, y2, out=t)                 # gx = p0 x + 0.5 (dlam y2)
        np.multiply(t, 0.5, out=t)
        np.multiply(x, p0, out=gx)
        np.add(gx, t, out=gx)
        np.multiply(lam, y, out=gy)
        if self.nk == _NK_CONST:
            self._noise_const(z1, z2, nx, ny, t)
        else:
            np.multiply(x2, p6, out=hxx)             # hxx = p0 + 0.5 ((p4 + p6 x2) y2)
            np.add(hxx, p4, out=hxx)
            np.multiply(hxx, y2, out=hxx)
            np.multiply(hxx, 0.5, out=hxx)
            np.add(hxx, p0, out=hxx)
            hxy = x2                                 # x2 is no longer needed
            np.multiply(dlam, y, out=hxy)
            if self.nk == _NK_HESS:
                np.multiply(hxx, z1, out=nx)
                np.multiply(hxy, z2, out=t)
                np.add(nx, t, out=nx)
                np.multiply(hxy, z1, out=ny)
                np.multiply(lam, z2, out=t)
                np.add(ny, t, out=ny)
            else:
                np.multiply(hxx, hxx, out=nx)        # √(hxx² + hxy²) z1
                np.multiply(hxy, hxy, out=t)
                np.add(nx, t, out=nx)
                np.sqrt(nx, out=nx)
                np.multiply(nx, z1, out=nx)
                np.multiply(lam, lam, out=ny)        # √(hxy² + lam²) z2
                np.add(t, ny, out=ny)
                np.sqrt(ny, out=ny)
                np.multiply(ny, z2, out=ny)
        self._finish(x, y, gx, gy, nx, ny, xo, yo)

    def _quadratic(self, x, y, z1, z2, xo, yo):
        m = x.shape[0]
        u, v, gx, gy, t, nx, ny = (b[:m] for b in self.buf[:7])
        p0, p1, p2, p3, p4 = self.lp[:5]
        np.subtract(x, p3, out=u)
        np.subtract(y, p4, out=v)
        np.multiply(u, p0, out=gx)                   # gx = p0 u + p1 v
        np.multiply(v, p1, out=t)
        np.add(gx, t, out=gx)
        np.multiply(u, p1, out=gy)                   # gy = p1 u + p2 v
        np.multiply(v, p2, out=t)
        np.add(gy, t, out=gy)
        self._noise_const(z1, z2, nx, ny, t)
        self._finish(x, y, gx, gy, nx, ny, xo, yo)

    def _generic(self, x, y, z1, z2, xo, yo):
        run = self.run
        L = run.landscape
        g = np.asarray(L.gradient(x, y), dtype=float)
        gx, gy = g[0], g[1]
        if run.drift is not None:
            b = np.asarray(run.drift(x, y), dtype=float)
            gx, gy = gx - b[0], gy - b[1]
        if run.noise == "model":
            B = run.model.noise_factor(x, y)
        else:
            H = L.hessian(x, y)
            if run.noise == "sgd":
                B = H
            else:   # B = diag(√(H²)11, √(H²)22): H² with its off-diagonal dropped
                z = np.zeros_like(x)
                B = np.array([[np.sqrt(H[0, 0] * H[0, 0] + H[0, 1] * H[1, 0]), z],
                              [z, np.sqrt(H[1, 0] * H[0, 1] + H[1, 1] * H[1, 1])]])
        xo[...] = (x - self.a * gx) + self.c * (B[0, 0] * z1 + B[0, 1] * z2)
        yo[...] = (y - self.a * gy) + self.c * (B[1, 0] * z1 + B[1, 1] * z2)


def _bin2(run: _Run, x, y):
    """Flat 2-D histogram bin of each point, -1 outside the grid (numba's rule)."""
    gx0, gsx, gy0, gsy = run.grid
    gnx, gny = run.gshape
    u = (x - gx0) * gsx
    v = (y - gy0) * gsy
    inside = (u >= 0.0) & (u < gnx) & (v >= 0.0) & (v < gny)
    idx = np.full(x.shape, -1, dtype=np.int64)
    idx[inside] = u[inside].astype(np.int64) * gny + v[inside].astype(np.int64)
    return idx


def _bin1(x0, sx, n, x):
    u = (x - x0) * sx
    inside = (u >= 0.0) & (u < n)
    idx = np.full(x.shape, -1, dtype=np.int64)
    idx[inside] = u[inside].astype(np.int64)
    return idx


def _numpy_task(run: _Run, blocks: list[_Block]) -> list[_BlockOut]:
    """Advance a group of blocks with numpy (vectorised over all their walkers).

    Mirrors ``_mc_kernels.run_block``: per chunk each block draws its (walkers, k, 2)
    normals in one call, float accumulators are filled with ``np.add.at`` in walker
    order, Fleming–Viot donors are drawn per block in walker order.
    """
    # errstate is per thread: diverging walkers overflow by design
    with np.errstate(over="ignore", invalid="ignore"):
        return _numpy_task_body(run, blocks)


def _numpy_task_body(run: _Run, blocks: list[_Block]) -> list[_BlockOut]:
    nbk = len(blocks)
    sizes = np.array([b.X.size for b in blocks])
    off = np.concatenate(([0], np.cumsum(sizes)))
    n = int(off[-1])
    k = run.k
    X = np.concatenate([b.X for b in blocks])
    Y = np.concatenate([b.Y for b in blocks])
    status = np.concatenate([b.status for b in blocks])
    bid = np.repeat(np.arange(nbk), sizes)
    gnx, gny = run.gshape
    G = gnx * gny
    mnx, mny = run.mshape
    hist = np.zeros(nbk * G, np.int64)
    margx = np.zeros(nbk * mnx, np.int64)
    margy = np.zeros(nbk * mny, np.int64)
    cur = np.zeros(nbk * 2 * G)
    mom = np.zeros(nbk * run.n_batches * 6)
    counters = np.zeros((nbk, 6), np.int64)
    recs = [np.full((_rec_len(run), b.n_rec, 2), np.nan) for b in blocks]
    for b, r in zip(blocks, recs):
        if r.shape[0]:
            r[0] = np.stack([b.X[:b.n_rec], b.Y[:b.n_rec]], axis=1)
    stepper = _NumpyStepper(run, n)
    bufs = np.empty((2, 2, n))            # ping-pong state buffers (x, y)
    Z = np.empty((n, k, 2))
    n_acc = run.n_chunks - run.n_burn_chunks
    mom_stride = run.n_batches * 6

    for ch in range(run.n_chunks):
        acc = ch >= run.n_burn_chunks
        batch = ((ch - run.n_burn_chunks) * run.n_batches) // n_acc if acc else 0
        steps_col = C_STEPS if acc else C_STEPS_BURN
        for i, b in enumerate(blocks):
            b.rng.standard_normal(out=Z[off[i]:off[i + 1]])
        act = np.flatnonzero(status == ALIVE)
        za = Z if act.size == n else Z[act]
        cur_buf = 0
        m = act.size
        xa, ya = bufs[cur_buf, 0, :m], bufs[cur_buf, 1, :m]
        xa[...] = X[act]
        ya[...] = Y[act]
        for s in range(k):
            if m == 0:
                break
            xo, yo = bufs[1 - cur_buf, 0, :m], bufs[1 - cur_buf, 1, :m]
            stepper.step(xa, ya, za[:, s, 0], za[:, s, 1], xo, yo)
            out = ~(xo * xo + yo * yo <= run.R2)
            any_out = bool(out.any())
            if any_out:
                oi = np.flatnonzero(out)
                w = act[oi]
                xe, ye = xo[oi], yo[oi]
                ok = np.isfinite(xe) & np.isfinite(ye)
                ok[ok] = xe[ok] * xe[ok] + ye[ok] * ye[ok] <= run.blow2
                exited = ok & run.absorbing
                status[w] = np.where(exited, EXITED, DIVERGED)
                X[w] = xe
                Y[w] = ye
                np.add.at(counters[:, steps_col], bid[w], s + 1)
                np.add.at(counters[:, C_EXITS if acc else C_EXITS_BURN], bid[w[exited]], 1)
                np.add.at(counters[:, C_DIVERGED], bid[w[~exited]], 1)
            if acc and s == k - 1:
                # current: last step's displacement at its midpoint, every walker that
                # was alive before the step and did not diverge (exits included)
                use = status[act] != DIVERGED
                xm = (xa[use] + xo[use]) * 0.5
                ym = (ya[use] + yo[use]) * 0.5
                dx = xo[use] - xa[use]
                dy = yo[use] - ya[use]
                idx = _bin2(run, xm, ym)
                sel = idx >= 0
                base = bid[act[use]][sel] * (2 * G) + idx[sel]
                np.add.at(cur, base, dx[sel])
                np.add.at(cur, base + G, dy[sel])
            if any_out:
                keep = ~out
                act = act[keep]
                m = act.size
                za = za[keep]
                bufs[cur_buf, 0, :m] = xo[keep]
                bufs[cur_buf, 1, :m] = yo[keep]
            else:
                cur_buf = 1 - cur_buf
            xa, ya = bufs[cur_buf, 0, :m], bufs[cur_buf, 1, :m]
        X[act] = xa
        Y[act] = ya
        if m:
            counters[:, steps_col] += k * np.bincount(bid[act], minlength=nbk)
        if acc and m:
            ab = bid[act]
            idx = _bin2(run, xa, ya)
            sel = idx >= 0
            hist += np.bincount(ab[sel] * G + idx[sel], minlength=nbk * G)
            idx = _bin1(run.mgrid[0], run.mgrid[1], mnx, xa)
            sel = idx >= 0
            margx += np.bincount(ab[sel] * mnx + idx[sel], minlength=nbk * mnx)
            idx = _bin1(run.mgrid[2], run.mgrid[3], mny, ya)
            sel = idx >= 0
            margy += np.bincount(ab[sel] * mny + idx[sel], minlength=nbk * mny)
            dx = xa - run.shift[0]
            dy = ya - run.shift[1]
            base = ab * mom_stride + batch * 6
            np.add.at(mom, base, 1.0)
            np.add.at(mom, base + 1, dx)
            np.add.at(mom, base + 2, dy)
            np.add.at(mom, base + 3, dx * dx)
            np.add.at(mom, base + 4, dx * dy)
            np.add.at(mom, base + 5, dy * dy)
        if run.absorbing:
            for i, b in enumerate(blocks):
                st = status[off[i]:off[i + 1]]
                ex = np.flatnonzero(st == EXITED)
                if not ex.size:
                    continue
                alive = np.flatnonzero(st == ALIVE)
                Xb, Yb = X[off[i]:off[i + 1]], Y[off[i]:off[i + 1]]
                if run.reinsert and alive.size:
                    j = (b.rng.random(ex.size) * alive.size).astype(np.int64)
                    d = alive[np.minimum(j, alive.size - 1)]
                    Xb[ex] = Xb[d]
                    Yb[ex] = Yb[d]
                    st[ex] = ALIVE
                else:
                    st[ex] = REMOVED
                    counters[i, C_REMOVED] += ex.size
        if run.rec_every and (ch + 1) % run.rec_every == 0:
            r = (ch + 1) // run.rec_every
            for i, b in enumerate(blocks):
                sl = slice(off[i], off[i] + b.n_rec)
                ok = status[sl] == ALIVE
                recs[i][r, :, 0] = np.where(ok, X[sl], np.nan)
                recs[i][r, :, 1] = np.where(ok, Y[sl], np.nan)

    outs = []
    hist = hist.reshape(nbk, gnx, gny)
    cur = cur.reshape(nbk, 2, gnx, gny)
    mom = mom.reshape(nbk, run.n_batches, 6)
    for i in range(nbk):
        sl = slice(off[i], off[i + 1])
        outs.append(_BlockOut(hist[i], margx[i * mnx:(i + 1) * mnx], margy[i * mny:(i + 1) * mny],
                              cur[i], mom[i], counters[i], X[sl], Y[sl], status[sl], recs[i]))
    return outs


def _rec_len(run: _Run) -> int:
    """Number of recorded frames (initial state included), 0 without recording."""
    return run.n_chunks // run.rec_every + 1 if run.rec_every else 0


def _numba_task(run: _Run, blocks: list[_Block]) -> list[_BlockOut]:
    K = _kernels()
    lk, lp, nk, bm = run.fast
    gnx, gny = run.gshape
    mnx, mny = run.mshape
    outs = []
    for b in blocks:
        hist = np.zeros((gnx, gny), np.int64)
        margx = np.zeros(mnx, np.int64)
        margy = np.zeros(mny, np.int64)
        cur = np.zeros((2, gnx, gny))
        mom = np.zeros((run.n_batches, 6))
        counters = np.zeros(6, np.int64)
        X, Y, status = b.X.copy(), b.Y.copy(), b.status.copy()
        rec = np.full((max(_rec_len(run), 1), b.n_rec, 2), np.nan)
        if _rec_len(run):
            rec[0, :, 0] = X[:b.n_rec]
            rec[0, :, 1] = Y[:b.n_rec]
        K.run_block(b.rng, X, Y, status, lk, nk, lp, bm, run.a, run.c, run.R2, run.blow2,
                    run.absorbing, run.reinsert, run.k, run.n_chunks, run.n_burn_chunks,
                    run.n_batches, run.grid, run.mgrid, run.shift, hist, margx, margy, cur,
                    mom, counters, rec, run.rec_every)
        outs.append(_BlockOut(hist, margx, margy, cur, mom, counters, X, Y, status,
                              rec[:_rec_len(run)]))
    return outs


# ----------------------------------------------------------------------- reduction
class _Sums:
    """Streaming Σc_b, Σc_b², Σc_b n_b over blocks (ratio estimator c/n and its SE)."""

    def __init__(self, shape, integer=False):
        self.s = np.zeros(shape, np.int64 if integer else float)
        self.s2 = np.zeros(shape)
        self.sn = np.zeros(shape)

    def add(self, c, n):
        self.s += c
        cf = c.astype(float, copy=False)
        self.s2 += cf * cf
        self.sn += cf * n

    def ratio(self, N, Nsq, G):
        """(Σc/N, standard error) with the ratio-estimator variance over G groups."""
        with np.errstate(divide="ignore", invalid="ignore"):
            R = self.s / N if N > 0 else np.full(self.s.shape, np.nan)
            if G < 2 or N <= 0:
                return R, np.full(self.s.shape, np.nan)
            ss = self.s2 - 2 * R * self.sn + R * R * Nsq
            se = np.sqrt(np.maximum(ss, 0.0) * G / (G - 1)) / N
        return R, se


class _Reducer:
    """Folds block outputs in block order (fixed order = bit-identical floats)."""

    def __init__(self, run: _Run, n_walkers: int, n_blocks: int, n_rec: int):
        self.hist = _Sums(run.gshape, integer=True)
        self.margx = _Sums(run.mshape[0], integer=True)
        self.margy = _Sums(run.mshape[1], integer=True)
        self.cur = _Sums((2, *run.gshape))
        self.mom = np.zeros((n_blocks, run.n_batches, 6))
        self.counters = np.zeros((n_blocks, 6), np.int64)
        self.N = 0.0
        self.Nsq = 0.0
        self.X = np.empty(n_walkers)
        self.Y = np.empty(n_walkers)
        self.status = np.empty(n_walkers, np.int8)
        self.rec = np.full((_rec_len(run), n_rec, 2), np.nan)
        self.next = 0
        self.pos = 0
        self.rpos = 0

    def add(self, out: _BlockOut):
        n = float(out.mom[:, 0].sum())
        self.N += n
        self.Nsq += n * n
        self.hist.add(out.hist, n)
        self.margx.add(out.margx, n)
        self.margy.add(out.margy, n)
        self.cur.add(out.cur, n)
        self.mom[self.next] = out.mom
        self.counters[self.next] = out.counters
        m = out.X.size
        self.X[self.pos:self.pos + m] = out.X
        self.Y[self.pos:self.pos + m] = out.Y
        self.status[self.pos:self.pos + m] = out.status
        r = out.rec.shape[1]
        if r and self.rec.shape[0]:
            self.rec[:, self.rpos:self.rpos + r] = out.rec
        self.rpos += r
        self.pos += m
        self.next += 1


def _run_ordered(tasks, fn, workers, consume):
    """Run fn over tasks on a thread pool, consuming results in task order.

    At most 2·workers tasks are in flight so memory stays bounded.
    """
    if workers == 1 or len(tasks) == 1:
        for t in tasks:
            for out in fn(t):
                consume(out)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque()
        it = iter(tasks)
        for t in it:
            pending.append(pool.submit(fn, t))
            if len(pending) >= 2 * workers:
                break
        while pending:
            outs = pending.popleft().result()
            t = next(it, None)
            if t is not None:
                pending.append(pool.submit(fn, t))
            for out in outs:
                consume(out)


# ------------------------------------------------------------------- the engine
def _simulate(fn, *, simulator, L, dt, a, c, fast, noise, model, drift, n_walkers, n_steps,
              n_burn, sample_every, seed, radius, x0, bins, extent, marginal_bins, n_batches,
              reinsert, blowup_radius, backend, workers, block_size, blocks_per_task,
              record_every, record_walkers, params):
    n_walkers = _int(fn, "n_walkers", n_walkers, 1)
    n_steps = _int(fn, "n_steps", n_steps, 1)
    k = _int(fn, "sample_every", sample_every, 1)
    if n_steps % k:
        raise _err(fn, "n_steps", f"a multiple of sample_every={k}", n_steps)
    if n_burn is None:
        n_burn = (n_steps // 5) // k * k
    n_burn = _int(fn, "n_burn", n_burn, 0)
    if n_burn % k:
        raise _err(fn, "n_burn", f"a multiple of sample_every={k}", n_burn)
    if n_burn >= n_steps:
        raise _err(fn, "n_burn", f"smaller than n_steps={n_steps}", n_burn)
    n_chunks, n_burn_chunks = n_steps // k, n_burn // k
    n_batches = min(_int(fn, "n_batches", n_batches, 1), n_chunks - n_burn_chunks)
    block_size = _int(fn, "block_size", block_size, 1)
    if backend not in _BACKENDS:
        raise _err(fn, "backend", f"one of {_BACKENDS}", backend)
    if workers is None:
        workers = os.cpu_count() or 1
    workers = _int(fn, "workers", workers, 1)
    reinsert = _bool(fn, "reinsert", reinsert)
    blowup = _float(fn, "blowup_radius", blowup_radius, positive=True)
    if radius is not None:
        radius = _float(fn, "radius", radius, positive=True)
        if blowup < radius:
            raise _err(fn, "blowup_radius", f"at least radius={radius}", blowup_radius)

    # histogram grid
    if extent is None:
        extent = (-radius, radius, -radius, radius) if radius is not None else (-2.0, 2.0, -2.0, 2.0)
    try:
        ext = [float(v) for v in extent]
    except (TypeError, ValueError):
        raise _err(fn, "extent", "(xmin, xmax, ymin, ymax)", extent) from None
    if len(ext) != 4 or not all(map(math.isfinite, ext)) or ext[0] >= ext[1] or ext[2] >= ext[3]:
        raise _err(fn, "extent", "(xmin, xmax, ymin, ymax) with xmin < xmax, ymin < ymax", extent)
    if isinstance(bins, (tuple, list)) and len(bins) == 2:
        gshape = (_int(fn, "bins", bins[0], 1), _int(fn, "bins", bins[1], 1))
    else:
        gshape = (_int(fn, "bins", bins, 1),) * 2
    if marginal_bins is None:
        mshape = (4 * gshape[0], 4 * gshape[1])
    else:
        mshape = (_int(fn, "marginal_bins", marginal_bins, 1),) * 2
    grid = np.array([ext[0], gshape[0] / (ext[1] - ext[0]), ext[2], gshape[1] / (ext[3] - ext[2])])
    mgrid = np.array([ext[0], mshape[0] / (ext[1] - ext[0]), ext[2], mshape[1] / (ext[3] - ext[2])])

    # recording
    if record_every is None:
        rec_every, n_rec = 0, 0
    else:
        record_every = _int(fn, "record_every", record_every, 1)
        if record_every % k:
            raise _err(fn, "record_every", f"a multiple of sample_every={k}", record_every)
        rec_every = record_every // k
        n_rec = n_walkers if record_walkers is None else min(
            _int(fn, "record_walkers", record_walkers, 1), n_walkers)

    # seeding: block i always gets child i of the root sequence
    if isinstance(seed, np.random.SeedSequence):
        root = seed
    elif seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0):
        root = np.random.SeedSequence(seed)
    else:
        raise _err(fn, "seed", "a non-negative integer, a numpy SeedSequence or None", seed)
    n_blocks = -(-n_walkers // block_size)
    children = [np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, i),
                                       pool_size=root.pool_size) for i in range(n_blocks)]

    # initial condition
    if x0 is None:
        centre = np.zeros(2)
        scale = _DEFAULT_X0_SCALE if radius is None else min(_DEFAULT_X0_SCALE, radius / 20)
        x0_arr = None
    else:
        x0_arr = np.asarray(x0, dtype=float)
        if x0_arr.shape == (2,):
            centre = x0_arr
        elif x0_arr.shape == (n_walkers, 2):
            centre = x0_arr.mean(axis=0)
        else:
            raise _err(fn, "x0", f"None, a point (2,) or an array of shape ({n_walkers}, 2)",
                       f"array of shape {x0_arr.shape}")
        if not np.all(np.isfinite(x0_arr)):
            raise _err(fn, "x0", "finite", "non-finite values")
        r2 = np.sum(x0_arr.reshape(-1, 2) ** 2, axis=1)
        if radius is not None and np.any(r2 >= radius * radius):
            raise _err(fn, "x0", f"inside the disk of radius {radius}", "points outside it")
    blocks = []
    for i, ss in enumerate(children):
        start = i * block_size
        nb = min(block_size, n_walkers - start)
        rng = np.random.Generator(np.random.PCG64(ss))
        if x0_arr is None:
            z = rng.standard_normal((nb, 2))
            X, Y = centre[0] + scale * z[:, 0], centre[1] + scale * z[:, 1]
            if radius is not None:   # a 20-sigma draw could land outside: pull it in
                r = np.hypot(X, Y)
                far = r >= radius
                X[far] *= 0.5 * radius / r[far]
                Y[far] *= 0.5 * radius / r[far]
        elif x0_arr.shape == (2,):
            X, Y = np.full(nb, centre[0]), np.full(nb, centre[1])
        else:
            X, Y = x0_arr[start:start + nb, 0].copy(), x0_arr[start:start + nb, 1].copy()
        blocks.append(_Block(i, start, rng, np.ascontiguousarray(X), np.ascontiguousarray(Y),
                             np.zeros(nb, np.int8), max(0, min(nb, n_rec - start))))

    run = _Run(simulator=simulator, landscape=L, dt=dt, a=a, c=c, fast=fast, noise=noise,
               model=model, drift=drift,
               R2=radius * radius if radius is not None else blowup * blowup,
               blow2=blowup * blowup, absorbing=radius is not None, reinsert=reinsert, k=k,
               n_chunks=n_chunks, n_burn_chunks=n_burn_chunks, n_batches=n_batches, grid=grid,
               gshape=gshape, mgrid=mgrid, mshape=mshape, shift=np.array(centre, dtype=float),
               rec_every=rec_every, record_walkers=n_rec)

    # backend
    if backend == "numba":
        if _kernels() is None:
            raise ImportError(f"{fn}: backend='numba' needs numba, which cannot be imported; "
                              f"install it or use backend='numpy'")
        if fast is None:
            raise ValueError(f"{fn}: backend='numba' supports the paper and quadratic landscapes "
                             f"with sgd/isotropic/constant noise and no drift; use backend='numpy' "
                             f"or 'auto' for this model")
        use = "numba"
    elif backend == "numpy" or fast is None or _kernels() is None:
        use = "numpy"
    else:
        use = "numba"

    if use == "numba":
        task_fn = lambda blks: _numba_task(run, blks)  # noqa: E731
        per_task = 1 if blocks_per_task is None else _int(fn, "blocks_per_task", blocks_per_task, 1)
        # compile (or load from cache) once in this thread, before the pool starts
        tiny = dataclasses.replace(run, n_chunks=1, n_burn_chunks=0, n_batches=1)
        _numba_task(tiny, [_Block(0, 0, np.random.default_rng(0), np.zeros(1), np.zeros(1),
                                  np.zeros(1, np.int8), 0)])
    else:
        task_fn = lambda blks: _numpy_task(run, blks)  # noqa: E731
        walkers = min(_NUMPY_WALKERS_PER_TASK, _NUMPY_NORMALS_PER_TASK // (2 * k))
        per_task = (max(1, walkers // block_size) if blocks_per_task is None
                    else _int(fn, "blocks_per_task", blocks_per_task, 1))
    tasks = [blocks[i:i + per_task] for i in range(0, n_blocks, per_task)]
    workers = min(workers, len(tasks))

    red = _Reducer(run, n_walkers, n_blocks, n_rec)
    t0 = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):   # diverging walkers are expected
        _run_ordered(tasks, task_fn, workers, red.add)
    elapsed = time.perf_counter() - t0

    res = MonteCarloResult._from_reduction(
        red, run, simulator=simulator, params=params, n_walkers=n_walkers, n_steps=n_steps,
        n_burn=n_burn, radius=radius, extent=tuple(ext), n_blocks=n_blocks,
        block_size=block_size, backend=use, workers=workers, seed_entropy=root.entropy,
        seed_spawn_key=tuple(root.spawn_key), elapsed=elapsed)
    res._warn()
    return res


# ----------------------------------------------------------------------- result
@dataclass
class MonteCarloResult:
    """Statistics of a Monte Carlo run (streamed; see :func:`sgd`, :func:`langevin`).

    Densities are normalised by the total number of walker samples, so that they
    integrate to the fraction of samples inside the histogram range (1 for a disk whose
    extent covers it).  Standard errors come from independent walker groups (the
    random-number blocks) unless stated otherwise.

    Attributes
    ----------
    simulator : str
        ``"sgd"`` or ``"langevin"``.
    params : dict
        Model and run parameters (JSON-friendly).
    dt : float
        Physical time per step (η for SGD, dt for Langevin).
    n_walkers, n_steps, n_burn, sample_every : int
        Run size; statistics use steps ``n_burn < t <= n_steps`` every ``sample_every``.
    edges : tuple of ndarray
        ``(xedges, yedges)`` of the 2-D histogram.
    exits : int
        Walkers that left the absorbing disk after burn-in.
    exits_burn_in : int
        Exits during burn-in (not in the escape rate).
    diverged : int
        Walkers flagged as diverged (non-finite or beyond ``blowup_radius``), removed.
    removed : int
        Exited walkers that were not re-inserted (``reinsert=False`` or extinct block).
    walker_time : float
        Σ over walkers of the time they spent alive after burn-in.
    n_samples : int
        Walker samples accumulated (walkers alive at a sampling time).
    positions : ndarray, shape (n_walkers, 2)
        Final positions; NaN for walkers that are no longer alive.
    status : ndarray of int8, shape (n_walkers,)
        Final status: 0 alive, 2 diverged, 3 removed.
    trajectories : ndarray, shape (n_records, n_recorded, 2) or None
        Recorded positions (``record_every``), NaN where a walker is not alive.
    record_times : ndarray or None
        Times of the recorded frames.
    backend, workers, n_blocks, block_size, elapsed
        How the run was executed; ``elapsed`` in seconds.
    seed_entropy
        Entropy of the root ``SeedSequence``: passing it as ``seed`` reproduces the run.
    """

    simulator: str
    params: dict
    dt: float
    n_walkers: int
    n_steps: int
    n_burn: int
    sample_every: int
    radius: float | None
    reinsert: bool
    extent: tuple
    edges: tuple
    marginal_edges: tuple
    exits: int
    exits_burn_in: int
    diverged: int
    removed: int
    walker_time: float
    n_samples: int
    positions: np.ndarray
    status: np.ndarray
    trajectories: np.ndarray | None
    record_times: np.ndarray | None
    backend: str
    workers: int
    n_blocks: int
    block_size: int
    elapsed: float
    seed_entropy: int
    seed_spawn_key: tuple
    _density: tuple = field(repr=False, default=None)
    _marg: dict = field(repr=False, default=None)
    _current: tuple = field(repr=False, default=None)
    _mom: np.ndarray = field(repr=False, default=None)
    _shift: np.ndarray = field(repr=False, default=None)
    _block_exits: np.ndarray = field(repr=False, default=None)   # (blocks, [exits, steps])

    @classmethod
    def _from_reduction(cls, red: _Reducer, run: _Run, **kw):
        G = kw["n_blocks"]
        N, Nsq = red.N, red.Nsq
        ext = kw["extent"]
        gnx, gny = run.gshape
        xe = np.linspace(ext[0], ext[1], gnx + 1)
        ye = np.linspace(ext[2], ext[3], gny + 1)
        area = (xe[1] - xe[0]) * (ye[1] - ye[0])
        R, se = red.hist.ratio(N, Nsq, G)
        density = (R / area, se / area)
        Rc, sec = red.cur.ratio(N, Nsq, G)
        current = (Rc / (area * run.dt), sec / (area * run.dt))
        mxe = np.linspace(ext[0], ext[1], run.mshape[0] + 1)
        mye = np.linspace(ext[2], ext[3], run.mshape[1] + 1)
        marg = {}
        for ax, sums, e in (("x", red.margx, mxe), ("y", red.margy, mye)):
            r, s = sums.ratio(N, Nsq, G)
            w = e[1] - e[0]
            marg[ax] = (r / w, s / w)
        per_block = red.counters
        c = per_block.sum(axis=0)
        alive = red.status == ALIVE
        pos = np.where(alive[:, None], np.stack([red.X, red.Y], axis=1), np.nan)
        rec_times = None
        if run.rec_every:
            rec_times = np.arange(red.rec.shape[0]) * run.rec_every * run.k * run.dt
        return cls(
            simulator=kw["simulator"], params=kw["params"], dt=run.dt,
            n_walkers=kw["n_walkers"], n_steps=kw["n_steps"], n_burn=kw["n_burn"],
            sample_every=run.k, radius=kw["radius"], reinsert=run.reinsert, extent=ext,
            edges=(xe, ye), marginal_edges=(mxe, mye), exits=int(c[C_EXITS]),
            exits_burn_in=int(c[C_EXITS_BURN]), diverged=int(c[C_DIVERGED]),
            removed=int(c[C_REMOVED]), walker_time=float(c[C_STEPS]) * run.dt,
            n_samples=int(round(N)), positions=pos, status=red.status,
            trajectories=red.rec if run.rec_every else None, record_times=rec_times,
            backend=kw["backend"], workers=kw["workers"], n_blocks=G,
            block_size=kw["block_size"], elapsed=kw["elapsed"],
            seed_entropy=kw["seed_entropy"], seed_spawn_key=kw["seed_spawn_key"],
            _density=density, _marg=marg, _current=current, _mom=red.mom,
            _shift=run.shift.copy(), _block_exits=per_block[:, [C_EXITS, C_STEPS]].copy())

    # ---- densities
    @property
    def density(self):
        """``(P, xedges, yedges)``: 2-D density histogram, ``P[i, j]`` on bin (x_i, y_j)."""
        return self._density[0], self.edges[0], self.edges[1]

    @property
    def density_se(self) -> np.ndarray:
        """Standard error of :attr:`density` per bin (independent walker groups)."""
        return self._density[1]

    @property
    def centers(self):
        """``(xc, yc)``: bin centres of the 2-D histogram."""
        xe, ye = self.edges
        return 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])

    @property
    def current(self) -> np.ndarray:
        """Empirical probability current, shape (2, nx, ny): ``[Jx, Jy]`` per bin.

        J ≈ Σ Δθ / (N_samples · Δt · bin area), Δθ the displacement of the last step of
        each sampling interval, binned at its midpoint (θ_t + θ_{t+1})/2 — this binning
        makes the diffusive part average to −∇·(D P), see ``docs/montecarlo.md``.
        """
        return self._current[0]

    @property
    def current_se(self) -> np.ndarray:
        """Standard error of :attr:`current`, shape (2, nx, ny)."""
        return self._current[1]

    def marginal(self, axis: str, xs=None, return_se: bool = False):
        """Marginal density P(x) = ∫ P dy (``axis="x"``) or P(y) (``axis="y"``).

        From a 1-D histogram of ``marginal_bins`` bins over the extent (walkers at any
        value of the other coordinate count).

        Parameters
        ----------
        axis : {"x", "y"}
        xs : array_like, optional
            Where to evaluate: piecewise-linear through the bin centres, the edge bins'
            values in the outer half bins, 0 outside the extent.  Without ``xs`` the
            bin centres and values are returned.
        return_se : bool
            Also return the standard error (interpolated the same way).

        Returns
        -------
        values or (centres, values), with ``se`` appended if ``return_se``.
        """
        if axis not in ("x", "y"):
            raise ValueError(f"marginal: axis must be 'x' or 'y', got {axis!r}")
        e = self.marginal_edges[0 if axis == "x" else 1]
        val, se = self._marg[axis]
        centres = 0.5 * (e[1:] + e[:-1])
        if xs is None:
            return (centres, val, se) if return_se else (centres, val)
        xs = np.asarray(xs, dtype=float)
        outside = (xs < e[0]) | (xs > e[-1])
        v = np.where(outside, 0.0, np.interp(xs, centres, val))
        if return_se:
            return v, np.where(outside, 0.0, np.interp(xs, centres, se))
        return v

    # ---- moments
    def moments(self, error: str = "walkers") -> dict:
        """Mean and covariance of the sampled positions with standard errors.

        Parameters
        ----------
        error : {"walkers", "time"}
            ``"walkers"`` (default): delete-one-group jackknife over the independent
            random-number blocks (exact independence, no autocorrelation assumption;
            needs at least 2 blocks).  ``"time"``: jackknife over ``n_batches``
            consecutive time batches, all walkers pooled (valid only if a batch is much
            longer than the correlation time; the only option for a single block).

        Returns
        -------
        dict
            ``mean`` (2,), ``cov`` (2, 2) (population covariance over all samples),
            ``mean_se`` (2,), ``cov_se`` (2, 2), ``n_samples``, ``n_groups``, ``error``.
        """
        if error == "walkers":
            groups = self._mom.sum(axis=1)
        elif error == "time":
            groups = self._mom.sum(axis=0)
        else:
            raise ValueError(f"moments: error must be 'walkers' or 'time', got {error!r}")
        total = groups.sum(axis=0)
        mean, cov = _mean_cov(total, self._shift)
        G = groups.shape[0]
        if G < 2 or total[0] <= 0:
            mean_se, cov_se = np.full(2, np.nan), np.full((2, 2), np.nan)
        else:
            jm, jc = zip(*(_mean_cov(total - g, self._shift) for g in groups))
            jm, jc = np.array(jm), np.array(jc)
            with np.errstate(invalid="ignore"):
                mean_se = np.sqrt((G - 1) / G * np.sum((jm - jm.mean(0)) ** 2, axis=0))
                cov_se = np.sqrt((G - 1) / G * np.sum((jc - jc.mean(0)) ** 2, axis=0))
        return {"mean": mean, "cov": cov, "mean_se": mean_se, "cov_se": cov_se,
                "n_samples": int(total[0]), "n_groups": G, "error": error}

    def moment_trace(self):
        """Mean and covariance per time batch (pooled over walkers): a stationarity check.

        Returns
        -------
        times : ndarray (n_batches,)
            Mid time of each batch.
        mean : ndarray (n_batches, 2)
        cov : ndarray (n_batches, 2, 2)
        """
        per = self._mom.sum(axis=0)
        mc = [_mean_cov(p, self._shift) for p in per]
        nb = per.shape[0]
        t0 = self.n_burn * self.dt
        span = (self.n_steps - self.n_burn) * self.dt
        times = t0 + (np.arange(nb) + 0.5) * span / nb
        return times, np.array([m for m, _ in mc]), np.array([c for _, c in mc])

    # ---- escape
    @property
    def escape_rate(self) -> float:
        """Exits per walker per unit time after burn-in (NaN in free space).

        With Fleming–Viot re-insertion this estimates the quasi-stationary escape rate μ
        (the principal eigenvalue of the absorbing FPE).
        """
        if self.radius is None or self.walker_time <= 0:
            return float("nan")
        return self.exits / self.walker_time

    @property
    def escape_rate_se(self) -> float:
        """Standard error of :attr:`escape_rate` (NaN in free space).

        Ratio-estimator spread over the independent blocks (which also covers the
        correlations Fleming–Viot cloning introduces); √exits / walker_time (Poisson)
        when there is a single block.
        """
        if self.radius is None or self.walker_time <= 0:
            return float("nan")
        e, s = self._block_exits[:, 0].astype(float), self._block_exits[:, 1].astype(float)
        G = e.size
        if G < 2:
            return math.sqrt(self.exits) / self.walker_time
        r = e.sum() / s.sum()
        return float(math.sqrt(G / (G - 1) * np.sum((e - r * s) ** 2)) / s.sum() / self.dt)

    @property
    def alive(self) -> int:
        """Walkers alive at the end."""
        return int(np.count_nonzero(self.status == ALIVE))

    @property
    def throughput(self) -> float:
        """Walker-steps per second of wall time."""
        return self.n_walkers * self.n_steps / self.elapsed if self.elapsed > 0 else float("inf")

    # ---- export
    def to_dict(self, arrays: bool = False) -> dict:
        """JSON-friendly summary (plain floats, ints, lists).

        Parameters
        ----------
        arrays : bool
            Also include the density, its SE, the marginals and the current as nested
            lists (large).
        """
        m = self.moments()

        def f(v):
            v = float(v)
            return v if math.isfinite(v) else None

        def lst(a):
            return np.where(np.isfinite(a), a, np.nan).tolist()

        out = {
            "simulator": self.simulator, "params": self.params, "dt": self.dt,
            "n_walkers": self.n_walkers, "n_steps": self.n_steps, "n_burn": self.n_burn,
            "sample_every": self.sample_every, "radius": self.radius,
            "reinsert": self.reinsert, "extent": list(self.extent),
            "bins": [len(self.edges[0]) - 1, len(self.edges[1]) - 1],
            "mean": m["mean"].tolist(), "mean_se": lst(m["mean_se"]),
            "cov": m["cov"].tolist(), "cov_se": lst(m["cov_se"]),
            "n_samples": self.n_samples, "n_groups": m["n_groups"],
            "exits": self.exits, "exits_burn_in": self.exits_burn_in,
            "escape_rate": f(self.escape_rate), "escape_rate_se": f(self.escape_rate_se),
            "walker_time": self.walker_time, "diverged": self.diverged,
            "removed": self.removed, "alive": self.alive, "backend": self.backend,
            "workers": self.workers, "n_blocks": self.n_blocks, "block_size": self.block_size,
            "elapsed_s": self.elapsed, "walker_steps_per_s": f(self.throughput),
            "seed_entropy": str(self.seed_entropy), "seed_spawn_key": list(self.seed_spawn_key),
        }
        if arrays:
            P, xe, ye = self.density
            out.update(xedges=xe.tolist(), yedges=ye.tolist(), density=lst(P),
                       density_se=lst(self.density_se), current=lst(self.current),
                       current_se=lst(self.current_se))
            for ax in ("x", "y"):
                c, v, s = self.marginal(ax, return_se=True)
                out[f"marginal_{ax}"] = {"centres": c.tolist(), "density": lst(v), "se": lst(s)}
        return out

    def summary(self) -> str:
        """A few human-readable lines."""
        m = self.moments()
        def fmt(v, se):
            return ", ".join(f"{a:.5g} ± {b:.2g}" for a, b in zip(np.ravel(v), np.ravel(se)))

        lines = [f"{self.simulator} Monte Carlo: {self.n_walkers} walkers x {self.n_steps} steps "
                 f"(burn-in {self.n_burn}), dt={self.dt:g}, backend={self.backend}, "
                 f"{self.throughput / 1e6:.1f} M walker-steps/s",
                 f"mean (x, y)            = {fmt(m['mean'], m['mean_se'])}",
                 f"cov (xx, xy, yx, yy)   = {fmt(m['cov'], m['cov_se'])}"]
        if self.radius is not None:
            lines.append(f"exits = {self.exits}, escape rate = {self.escape_rate:.4g} "
                         f"± {self.escape_rate_se:.2g} (radius {self.radius:g})")
        if self.diverged:
            lines.append(f"diverged walkers: {self.diverged}")
        return "\n".join(lines)

    def __repr__(self):
        return (f"MonteCarloResult(simulator={self.simulator!r}, n_walkers={self.n_walkers}, "
                f"n_steps={self.n_steps}, dt={self.dt:g}, exits={self.exits}, "
                f"diverged={self.diverged}, backend={self.backend!r})")

    def _warn(self):
        if self.diverged:
            warnings.warn(f"{self.simulator}: {self.diverged} of {self.n_walkers} walkers diverged "
                          f"(non-finite or beyond blowup_radius) and were removed; samples they "
                          f"gave before diverging are included", MonteCarloWarning, stacklevel=4)
        extinct = self.removed if (self.radius is not None and self.reinsert) else 0
        if extinct:
            warnings.warn(f"{self.simulator}: {extinct} exited walkers could not be re-inserted "
                          f"because their whole block had died out", MonteCarloWarning,
                          stacklevel=4)


def _mean_cov(s, shift):
    """Mean and covariance from sums [n, Σdx, Σdy, Σdx², Σdxdy, Σdy²] about ``shift``."""
    n = s[0]
    if n <= 0:
        return np.full(2, np.nan), np.full((2, 2), np.nan)
    mx, my = s[1] / n, s[2] / n
    cxx = s[3] / n - mx * mx
    cxy = s[4] / n - mx * my
    cyy = s[5] / n - my * my
    return np.array([mx + shift[0], my + shift[1]]), np.array([[cxx, cxy], [cxy, cyy]])


# ------------------------------------------------------------------ public API
_COMMON_DOC = """
    n_walkers : int
        Number of walkers (independent unless re-insertion couples them within a block).
    n_steps : int
        Total number of steps, burn-in included; a multiple of ``sample_every``.
    n_burn : int, optional
        Steps at the start that are not accumulated (default: 20 % of ``n_steps``,
        rounded down to a multiple of ``sample_every``).  Exits during burn-in are
        reported separately and do not enter the escape rate.
    sample_every : int
        Accumulate every ``sample_every`` steps (default 10); the walker-major kernel
        runs this many steps per walker between samples.
    seed : int, numpy.random.SeedSequence or None
        Root seed.  Block ``i`` of walkers uses child ``i`` of the root SeedSequence.
        ``None`` draws fresh entropy, recorded as ``result.seed_entropy``.
    radius : float or None
        Absorbing disk |θ| < radius centred at the origin (default 2, the paper's
        domain); ``None`` for free space.
    x0 : array_like, optional
        Initial condition: a point (2,) where all walkers start, or an array
        (n_walkers, 2).  Default: a narrow Gaussian at the origin (standard deviation
        0.05, or radius/20 if smaller).
    bins : int or (int, int)
        Bins per axis of the 2-D histogram (default 100) over ``extent``.
    extent : (xmin, xmax, ymin, ymax), optional
        Histogram range; default the disk's bounding square, or (-2, 2, -2, 2) in free
        space.  Samples outside are not binned (the density then integrates to < 1).
    marginal_bins : int, optional
        Bins of the 1-D marginal histograms (default 4 × bins).
    n_batches : int
        Time batches of the moment sums (for ``moments(error="time")`` and
        ``moment_trace``), default 20.
    reinsert : bool
        With an absorbing disk: re-insert an exited walker at the position of a
        uniformly chosen surviving walker of its block at the end of the sampling
        interval (Fleming–Viot; the density converges to the quasi-stationary
        density).  ``False`` removes exited walkers (the density is then that of the
        survivors).  Default True.
    blowup_radius : float
        A walker further than this from the origin, or non-finite, is flagged as
        diverged and removed (default 1e6).
    backend : {"auto", "numba", "numpy"}
        "auto" uses the numba kernel when numba is importable and the model is
        compiled (paper or quadratic landscape; sgd, isotropic or constant noise; no
        drift), else numpy.  Both give bit-identical results on the compiled models.
    workers : int, optional
        Threads working on blocks (default: the number of CPUs).  Does not change
        the results.
    block_size : int
        Walkers per random-number block (default 256).  Part of the seed: changing
        it changes the results.
    blocks_per_task : int, optional
        Blocks handed to a worker at once (numpy vectorises over them).  Does not
        change the results.
    record_every : int, optional
        Record positions every this many steps (a multiple of ``sample_every``),
        starting with the initial state; off by default.
    record_walkers : int, optional
        Record only the first this many walkers (default all).

    Returns
    -------
    MonteCarloResult
"""


def sgd(L: _landscapes.Landscape, eta: float, sigma: float, *, n_walkers: int = 10_000,
        n_steps: int = 20_000, n_burn: int | None = None, sample_every: int = 10,
        seed=None, radius: float | None = 2.0, x0=None, cross_diffusion: bool = True,
        bins=100, extent=None, marginal_bins: int | None = None, n_batches: int = 20,
        reinsert: bool = True, blowup_radius: float = 1e6, backend: str = "auto",
        workers: int | None = None, block_size: int = BLOCK_SIZE,
        blocks_per_task: int | None = None, record_every: int | None = None,
        record_walkers: int | None = None) -> MonteCarloResult:
    fn = "sgd"
    if not isinstance(L, _landscapes.Landscape):
        raise TypeError(f"{fn}: L must be a fpsolve Landscape, got {type(L).__name__}")
    eta = _float(fn, "eta", eta, positive=True)
    sigma = _float(fn, "sigma", sigma, nonneg=True)
    cross = _bool(fn, "cross_diffusion", cross_diffusion)
    c = eta * math.sqrt(2.0 * sigma)
    fast = None
    code = _landscape_code(L)
    if code is not None:
        lk, lp = code
        if lk == _LK_PAPER:
            fast = (lk, lp, _NK_HESS if cross else _NK_HESS_DIAG, np.zeros(4))
        else:
            fast = (lk, lp, _NK_CONST, _sgd_hessian_factor(L.A, cross))
    params = {"landscape": L.kind, **L.params, "eta": eta, "sigma": sigma,
              "delta_s": eta * sigma, "cross_diffusion": cross}
    return _simulate(fn, simulator="sgd", L=L, dt=eta, a=eta, c=c, fast=fast,
                     noise="sgd" if cross else "sgd-nocross", model=None, drift=None,
                     n_walkers=n_walkers, n_steps=n_steps, n_burn=n_burn,
                     sample_every=sample_every, seed=seed, radius=radius, x0=x0, bins=bins,
                     extent=extent, marginal_bins=marginal_bins, n_batches=n_batches,
                     reinsert=reinsert, blowup_radius=blowup_radius, backend=backend,
                     workers=workers, block_size=block_size, blocks_per_task=blocks_per_task,
                     record_every=record_every, record_walkers=record_walkers, params=params)


sgd.__doc__ = """Random-shift minibatch SGD (Yang–Tang–Tu Eq. 1, 8; SM Sec. I A).

    Update, for every walker independently:

    .. math:: θ ← θ − η ∇L(θ) + η \\sqrt{2σ}\\, B(θ) z,\\qquad z \\sim N(0, I),

    with B = H(θ) (``cross_diffusion=True``: exactly −η ∇L^μ with μ ~ N(0, 2σ I),
    noise covariance 2σ η² H², FPE diffusion D = Δ_S H², Δ_S = ησ) or
    B = diag(√(H²)₁₁, √(H²)₂₂) (``cross_diffusion=False``: covariance 2σ η² H² with its
    off-diagonal dropped, the discrete model of the FPE without D12 used for Fig. S5).
    Time advances by η per step (the paper's τ = η t), so escape rates and
    ``record_times`` are in the FPE's time unit.

    Parameters
    ----------
    L : Landscape
        Loss; the paper family and quadratics run in the compiled kernel, any other
        landscape (e.g. an expression) in numpy through ``L.gradient`` / ``L.hessian``.
    eta : float
        Learning rate (> 0).
    sigma : float
        Shift noise strength σ (≥ 0; 0 is plain gradient descent).
    cross_diffusion : bool
        See above (default True, the paper's model).
""" + _COMMON_DOC + """
    Examples
    --------
    >>> import fpsolve as fp
    >>> L = fp.landscapes.paper()
    >>> mc = fp.montecarlo.sgd(L, eta=0.01, sigma=1.2, n_walkers=512, n_steps=2000, seed=1)
    >>> mc.moments()["cov"].shape
    (2, 2)
"""


def _as_diffusion(fn, D):
    if isinstance(D, _diffusion.DiffusionModel):
        return D
    if isinstance(D, numbers.Real) and not isinstance(D, bool):
        return _diffusion.isotropic(_float(fn, "D", D, positive=True))
    try:
        arr = None if callable(D) else np.asarray(D, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is not None and arr.shape == (2, 2):
        try:
            return _diffusion.constant(arr)
        except ValueError as exc:
            raise ValueError(f"{fn}: D: {exc}") from None
    raise _err(fn, "D", "a DiffusionModel, a positive number (isotropic) or a 2x2 matrix", D)


def langevin(L: _landscapes.Landscape, D, dt: float = 1e-3, *, drift: Callable | None = None,
             n_walkers: int = 10_000, n_steps: int = 20_000, n_burn: int | None = None,
             sample_every: int = 10, seed=None, radius: float | None = 2.0, x0=None,
             bins=100, extent=None, marginal_bins: int | None = None, n_batches: int = 20,
             reinsert: bool = True, blowup_radius: float = 1e6, backend: str = "auto",
             workers: int | None = None, block_size: int = BLOCK_SIZE,
             blocks_per_task: int | None = None, record_every: int | None = None,
             record_walkers: int | None = None) -> MonteCarloResult:
    fn = "langevin"
    if not isinstance(L, _landscapes.Landscape):
        raise TypeError(f"{fn}: L must be a fpsolve Landscape, got {type(L).__name__}")
    D = _as_diffusion(fn, D)
    dt = _float(fn, "dt", dt, positive=True)
    if drift is not None and not callable(drift):
        raise TypeError(f"{fn}: drift must be callable b(x, y) -> (2, *x.shape) or None, "
                        f"got {type(drift).__name__}")
    if drift is not None:
        probe = np.linspace(-0.5, 0.5, 3)
        try:
            b = np.asarray(drift(probe, probe[::-1]), dtype=float)
        except Exception as exc:
            raise ValueError(f"{fn}: calling drift(x, y) with arrays of shape (3,) failed: "
                             f"{exc}") from exc
        if b.shape != (2, 3):
            raise ValueError(f"{fn}: drift(x, y) must return shape (2, *x.shape) = (2, 3), "
                             f"got {b.shape}")
    fast = None
    code = _landscape_code(L)
    B = _constant_factor(D)
    if code is not None and drift is None:
        lk, lp = code
        if B is not None:
            fast = (lk, lp, _NK_CONST, B)
        elif (type(D) is _diffusion.SGD and lk == _LK_PAPER
              and _same_landscape(D.landscape, L)):
            fast = (lk, lp, _NK_HESS if D.cross_diffusion else _NK_HESS_DIAG, np.zeros(4))
    if fast is not None and fast[2] != _NK_CONST:
        c = math.sqrt(2.0 * dt * D.strength)     # B = √Δ_S H (or its diagonal variant)
    else:
        c = math.sqrt(2.0 * dt)
    params = {"landscape": L.kind, **L.params, "diffusion": D.kind, **D.params,
              "dt": dt, "drift": getattr(drift, "__name__", "drift") if drift else None}
    return _simulate(fn, simulator="langevin", L=L, dt=dt, a=dt, c=c, fast=fast, noise="model",
                     model=D, drift=drift, n_walkers=n_walkers, n_steps=n_steps,
                     n_burn=n_burn, sample_every=sample_every, seed=seed, radius=radius,
                     x0=x0, bins=bins, extent=extent, marginal_bins=marginal_bins,
                     n_batches=n_batches, reinsert=reinsert, blowup_radius=blowup_radius,
                     backend=backend, workers=workers, block_size=block_size,
                     blocks_per_task=blocks_per_task, record_every=record_every,
                     record_walkers=record_walkers, params=params)


langevin.__doc__ = """Euler–Maruyama simulation of the Fokker–Planck (Itô Langevin) dynamics.

    .. math:: θ ← θ + (−∇L(θ) + b(θ))\\, dt + \\sqrt{2\\, dt}\\, B(θ) ξ,
              \\qquad B Bᵀ = D(θ),\\ ξ \\sim N(0, I).

    This is the Itô SDE whose Fokker–Planck equation is
    ∂P/∂t = −∇·((−∇L + b) P) + Σ ∂_i ∂_j (D_ij P), i.e. exactly the flux
    J = (−∇L + b) P − ∇·(D P) that the FE solver discretises.  No ∇·D term is added to
    the drift: in the Itô convention the noise-induced drift is already contained in
    the second-derivative term (see ``docs/montecarlo.md``).

    Parameters
    ----------
    L : Landscape
        Loss.
    D : DiffusionModel, float or 2x2 array
        Diffusion tensor: any :mod:`fpsolve.diffusion` model (its ``noise_factor`` is
        used, so custom and expression tensors work), a number Δ (isotropic Δ I) or a
        constant matrix.  The numba kernel handles isotropic and constant tensors, and
        ``diffusion.sgd(L, Δ_S)`` of the same paper landscape (with or without
        cross-diffusion); other models run in numpy.
    dt : float
        Time step (> 0).  The EM bias of stationary statistics is O(dt).
    drift : callable, optional
        Extra non-gradient drift ``b(x, y) -> (2, *x.shape)`` (numpy backend).
""" + _COMMON_DOC + """
    Examples
    --------
    >>> import fpsolve as fp
    >>> L = fp.landscapes.quadratic([[1.0, 0.0], [0.0, 2.0]])
    >>> mc = fp.montecarlo.langevin(L, 0.1, dt=0.01, n_walkers=512, n_steps=2000,
    ...                             radius=None, seed=3)
    >>> round(float(mc.moments()["cov"][0, 0]), 1)
    0.1
"""
