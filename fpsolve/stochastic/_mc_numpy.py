"""numpy block execution of :mod:`fpsolve.stochastic.montecarlo`.

:func:`numpy_task` advances a group of blocks vectorised over all their walkers.  It
mirrors ``_mc_kernels.run_block``: per chunk each block draws its (walkers, k, 2)
normals in one call, float accumulators are filled with ``np.add.at`` in walker order,
Fleming–Viot donors are drawn per block in walker order.  On the compiled models the
step uses the kernel's floating-point operations in the kernel's order, so both
backends give identical bits.
"""
from __future__ import annotations

import numpy as np

from ._mc_models import LK_PAPER, NK_CONST, NK_HESS
from ._mc_run import (ALIVE, C_DIVERGED, C_EXITS, C_EXITS_BURN, C_REMOVED, C_STEPS,
                      C_STEPS_BURN, DIVERGED, EXITED, REMOVED, Block, BlockOut, Run, rec_len)


class NumpyStepper:
    """θ ← (θ − a g) + c (B z) for m walkers, into caller-provided output arrays.

    The compiled landscapes use preallocated buffers and exactly the operations (and
    their order) of the numba kernel, so both backends produce identical bits.  Any
    other model goes through ``L.gradient`` / ``L.hessian`` / ``D.noise_factor``.
    """

    def __init__(self, run: Run, n: int):
        self.run = run
        self.a, self.c = run.a, run.c
        if run.fast is not None and run.fast.lk is not None:
            self.lk, self.nk = run.fast.lk, run.fast.nk
            self.lp = [float(v) for v in run.fast.lp]
            self.bm = [float(v) for v in run.fast.bm]
            self.buf = np.empty((10, n))
            self.step = self._paper if self.lk == LK_PAPER else self._quadratic
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
        if self.nk == NK_CONST:
            self._noise_const(z1, z2, nx, ny, t)
        else:
            np.multiply(x2, p6, out=hxx)             # hxx = p0 + 0.5 ((p4 + p6 x2) y2)
            np.add(hxx, p4, out=hxx)
            np.multiply(hxx, y2, out=hxx)
            np.multiply(hxx, 0.5, out=hxx)
            np.add(hxx, p0, out=hxx)
            hxy = x2                                 # x2 is no longer needed
            np.multiply(dlam, y, out=hxy)
            if self.nk == NK_HESS:
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


def _bin2(run: Run, x, y):
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


def numpy_task(run: Run, blocks: list[Block]) -> list[BlockOut]:
    """Advance a group of blocks with numpy (vectorised over all their walkers)."""
    # errstate is per thread: diverging walkers overflow by design
    with np.errstate(over="ignore", invalid="ignore"):
        g = _Group(run, blocks)
        for ch in range(run.n_chunks):
            g.chunk(ch)
        return g.outputs()


class _Group:
    """The concatenated walkers and per-block accumulators of a group of blocks."""

    def __init__(self, run: Run, blocks: list[Block]):
        self.run, self.blocks = run, blocks
        nbk = self.nbk = len(blocks)
        sizes = np.array([b.X.size for b in blocks])
        self.off = off = np.concatenate(([0], np.cumsum(sizes)))
        n = int(off[-1])
        self.X = np.concatenate([b.X for b in blocks])
        self.Y = np.concatenate([b.Y for b in blocks])
        self.status = np.concatenate([b.status for b in blocks])
        self.bid = np.repeat(np.arange(nbk), sizes)
        gnx, gny = run.gshape
        G = self.G = gnx * gny
        mnx, mny = run.mshape
        self.hist = np.zeros(nbk * G, np.int64)
        self.margx = np.zeros(nbk * mnx, np.int64)
        self.margy = np.zeros(nbk * mny, np.int64)
        self.cur = np.zeros(nbk * 2 * G)
        self.mom = np.zeros(nbk * run.n_batches * 6)
        self.counters = np.zeros((nbk, 6), np.int64)
        self.recs = [np.full((rec_len(run), b.n_rec, 2), np.nan) for b in blocks]
        for b, r in zip(blocks, self.recs):
            if r.shape[0]:
                r[0] = np.stack([b.X[:b.n_rec], b.Y[:b.n_rec]], axis=1)
        self.stepper = NumpyStepper(run, n)
        self.bufs = np.empty((2, 2, n))            # ping-pong state buffers (x, y)
        self.Z = np.empty((n, run.k, 2))
        self.n_acc = run.n_chunks - run.n_burn_chunks

    def chunk(self, ch):
        """Advance every alive walker by k steps, then sample, re-insert and record."""
        run, blocks, off = self.run, self.blocks, self.off
        acc = ch >= run.n_burn_chunks
        batch = ((ch - run.n_burn_chunks) * run.n_batches) // self.n_acc if acc else 0
        for i, b in enumerate(blocks):
            b.rng.standard_normal(out=self.Z[off[i]:off[i + 1]])
        act, xa, ya, m = self._steps(acc)
        self.X[act] = xa
        self.Y[act] = ya
        if m:
            col = C_STEPS if acc else C_STEPS_BURN
            self.counters[:, col] += run.k * np.bincount(self.bid[act], minlength=self.nbk)
        if acc and m:
            self._sample(act, xa, ya, batch)
        if run.absorbing:
            self._reinsert()
        if run.rec_every and (ch + 1) % run.rec_every == 0:
            self._record((ch + 1) // run.rec_every)

    def _steps(self, acc):
        """The k steps of a chunk; returns (alive indices, their x, y, count)."""
        run, status, bufs = self.run, self.status, self.bufs
        n = self.X.size
        act = np.flatnonzero(status == ALIVE)
        za = self.Z if act.size == n else self.Z[act]
        cur_buf = 0
        m = act.size
        xa, ya = bufs[cur_buf, 0, :m], bufs[cur_buf, 1, :m]
        xa[...] = self.X[act]
        ya[...] = self.Y[act]
        for s in range(run.k):
            if m == 0:
                break
            xo, yo = bufs[1 - cur_buf, 0, :m], bufs[1 - cur_buf, 1, :m]
            self.stepper.step(xa, ya, za[:, s, 0], za[:, s, 1], xo, yo)
            out = ~(xo * xo + yo * yo <= run.R2)
            any_out = bool(out.any())
            if any_out:
                self._leave(act, out, xo, yo, s, acc)
            if acc and s == run.k - 1:
                self._current(act, xa, ya, xo, yo)
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
        return act, xa, ya, m

    def _leave(self, act, out, xo, yo, s, acc):
        """Flag walkers that left the disk in step s as exited or diverged."""
        run, counters, bid = self.run, self.counters, self.bid
        oi = np.flatnonzero(out)
        w = act[oi]
        xe, ye = xo[oi], yo[oi]
        ok = np.isfinite(xe) & np.isfinite(ye)
        ok[ok] = xe[ok] * xe[ok] + ye[ok] * ye[ok] <= run.blow2
        exited = ok & run.absorbing
        self.status[w] = np.where(exited, EXITED, DIVERGED)
        self.X[w] = xe
        self.Y[w] = ye
        np.add.at(counters[:, C_STEPS if acc else C_STEPS_BURN], bid[w], s + 1)
        np.add.at(counters[:, C_EXITS if acc else C_EXITS_BURN], bid[w[exited]], 1)
        np.add.at(counters[:, C_DIVERGED], bid[w[~exited]], 1)

    def _current(self, act, xa, ya, xo, yo):
        """Last step's displacement at its midpoint, every walker that was alive before
        the step and did not diverge (exits included)."""
        G = self.G
        use = self.status[act] != DIVERGED
        xm = (xa[use] + xo[use]) * 0.5
        ym = (ya[use] + yo[use]) * 0.5
        dx = xo[use] - xa[use]
        dy = yo[use] - ya[use]
        idx = _bin2(self.run, xm, ym)
        sel = idx >= 0
        base = self.bid[act[use]][sel] * (2 * G) + idx[sel]
        np.add.at(self.cur, base, dx[sel])
        np.add.at(self.cur, base + G, dy[sel])

    def _sample(self, act, xa, ya, batch):
        run, nbk, G = self.run, self.nbk, self.G
        mnx, mny = run.mshape
        ab = self.bid[act]
        idx = _bin2(run, xa, ya)
        sel = idx >= 0
        self.hist += np.bincount(ab[sel] * G + idx[sel], minlength=nbk * G)
        idx = _bin1(run.mgrid[0], run.mgrid[1], mnx, xa)
        sel = idx >= 0
        self.margx += np.bincount(ab[sel] * mnx + idx[sel], minlength=nbk * mnx)
        idx = _bin1(run.mgrid[2], run.mgrid[3], mny, ya)
        sel = idx >= 0
        self.margy += np.bincount(ab[sel] * mny + idx[sel], minlength=nbk * mny)
        dx = xa - run.shift[0]
        dy = ya - run.shift[1]
        base = ab * (run.n_batches * 6) + batch * 6
        mom = self.mom
        np.add.at(mom, base, 1.0)
        np.add.at(mom, base + 1, dx)
        np.add.at(mom, base + 2, dy)
        np.add.at(mom, base + 3, dx * dx)
        np.add.at(mom, base + 4, dx * dy)
        np.add.at(mom, base + 5, dy * dy)

    def _reinsert(self):
        """Fleming–Viot: exited walkers clone a random survivor of their block."""
        off = self.off
        for i, b in enumerate(self.blocks):
            st = self.status[off[i]:off[i + 1]]
            ex = np.flatnonzero(st == EXITED)
            if not ex.size:
                continue
            alive = np.flatnonzero(st == ALIVE)
            Xb, Yb = self.X[off[i]:off[i + 1]], self.Y[off[i]:off[i + 1]]
            if self.run.reinsert and alive.size:
                j = (b.rng.random(ex.size) * alive.size).astype(np.int64)
                d = alive[np.minimum(j, alive.size - 1)]
                Xb[ex] = Xb[d]
                Yb[ex] = Yb[d]
                st[ex] = ALIVE
            else:
                st[ex] = REMOVED
                self.counters[i, C_REMOVED] += ex.size

    def _record(self, r):
        off = self.off
        for i, b in enumerate(self.blocks):
            sl = slice(off[i], off[i] + b.n_rec)
            ok = self.status[sl] == ALIVE
            self.recs[i][r, :, 0] = np.where(ok, self.X[sl], np.nan)
            self.recs[i][r, :, 1] = np.where(ok, self.Y[sl], np.nan)

    def outputs(self) -> list[BlockOut]:
        run, off, nbk = self.run, self.off, self.nbk
        gnx, gny = run.gshape
        mnx, mny = run.mshape
        hist = self.hist.reshape(nbk, gnx, gny)
        cur = self.cur.reshape(nbk, 2, gnx, gny)
        mom = self.mom.reshape(nbk, run.n_batches, 6)
        outs = []
        for i in range(nbk):
            sl = slice(off[i], off[i + 1])
            outs.append(BlockOut(hist[i], self.margx[i * mnx:(i + 1) * mnx],
                                 self.margy[i * mny:(i + 1) * mny], cur[i], mom[i],
                                 self.counters[i], self.X[sl], self.Y[sl], self.status[sl],
                                 self.recs[i]))
        return outs
