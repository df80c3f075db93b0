"""Reduction of block outputs of :mod:`fpsolve.stochastic.montecarlo` (in block order).

Blocks are folded in their index order whatever thread or process computed them, so
the float sums — and every statistic — are bit-identical for any number of workers.
"""
from __future__ import annotations

import numpy as np

from ._mc_run import BlockOut, Run, rec_len


class Sums:
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


class Reducer:
    """Folds block outputs in block order (fixed order = bit-identical floats)."""

    def __init__(self, run: Run, n_walkers: int, n_blocks: int, n_rec: int):
        self.hist = Sums(run.gshape, integer=True)
        self.margx = Sums(run.mshape[0], integer=True)
        self.margy = Sums(run.mshape[1], integer=True)
        self.cur = Sums((2, *run.gshape))
        self.mom = np.zeros((n_blocks, run.n_batches, 6))
        self.counters = np.zeros((n_blocks, 6), np.int64)
        self.N = 0.0
        self.Nsq = 0.0
        self.X = np.empty(n_walkers)
        self.Y = np.empty(n_walkers)
        self.status = np.empty(n_walkers, np.int8)
        self.rec = np.full((rec_len(run), n_rec, 2), np.nan)
        self.next = 0
        self.pos = 0
        self.rpos = 0

    def add_all(self, outs: list[BlockOut]):
        """Fold the outputs of one task (consecutive blocks)."""
        for out in outs:
            self.add(out)

    def add(self, out: BlockOut):
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
