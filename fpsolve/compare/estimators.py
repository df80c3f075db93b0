"""Monte Carlo estimators with error bars: marginal mode, L1 and current tests, frame blocks.

Every error bar comes from the simulators' independent walker blocks; the tests
compare an MC quantity with its FE counterpart against the noise the blocks show.
"""
from __future__ import annotations

import math

import numpy as np

from .criteria import MIN_BIN_SAMPLES

# Draws of the Gaussian noise model of the marginal (L1 null distribution, mode SE).
_NULL_DRAWS = 4000


class _ModeEstimator:
    """|x| of the maximum of a marginal histogram smoothed with a Gaussian kernel.

    The kernel (standard deviation one bin width) turns the noisy argmax of a
    histogram into the maximum of a smooth function of all the bins, so noise shifts it
    only a little; applied to the FE bin averages it gives what the MC estimate
    converges to (binning and smoothing move a sharp, skewed peak — e.g. by −0.004 for
    Δ_S = 0.012 with 160 bins on [−2, 2] — so that, not the exact FE mode, is the
    comparison target).
    """

    def __init__(self, centres):
        w = centres[1] - centres[0]
        self.x = np.linspace(centres[0], centres[-1], 8 * (centres.size - 1) + 1)
        self.K = np.exp(-0.5 * ((self.x[:, None] - centres[None, :]) / w) ** 2)

    def __call__(self, values):
        """values (nbins,) or (ndraws, nbins) -> |mode| (float or (ndraws,))."""
        s = np.atleast_2d(values) @ self.K.T
        i = np.clip(np.argmax(s, axis=1), 1, self.x.size - 2)
        r = np.arange(s.shape[0])
        y0, y1, y2 = s[r, i - 1], s[r, i], s[r, i + 1]
        den = y0 - 2 * y1 + y2
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.where(den < 0, 0.5 * (y0 - y2) / den, 0.0)    # parabola through 3 points
        m = np.abs(self.x[i] + off * (self.x[1] - self.x[0]))
        return float(m[0]) if np.ndim(values) == 1 else m


def _gaussian_draws(cov, n, rng):
    """n draws of N(0, cov) (cov PSD, possibly rank deficient)."""
    w, V = np.linalg.eigh(0.5 * (cov + cov.T))
    B = V * np.sqrt(np.clip(w, 0, None))
    return rng.standard_normal((n, w.size)) @ B.T


def _l1_test(diff, cov, width, rng):
    """L1 = Σ w|diff| against its distribution under N(0, cov) noise alone."""
    l1 = float(np.sum(width * np.abs(diff)))
    null = np.sum(width * np.abs(_gaussian_draws(cov, _NULL_DRAWS, rng)), axis=1)
    return {"l1": l1,
            "noise": float(math.sqrt(2 / math.pi) * np.sum(width * np.sqrt(np.diag(cov)))),
            "noise_q95": float(np.quantile(null, 0.95)),
            "p_value": float((np.sum(null >= l1) + 1) / (null.size + 1))}


def _current_test(J, se, Jfe, threshold, counts, groups, rng):
    """χ²/bin of J_MC − J_FE over the bins where |J_FE| > threshold·SE (and that hold
    at least MIN_BIN_SAMPLES samples), and the scale s of the weighted fit
    J_MC ≈ s·J_FE over the same bins.

    The standard errors are themselves estimated from ``groups`` independent blocks,
    so each z is closer to Student's t with groups − 1 degrees of freedom than to a
    normal variate: the p-value is that of Σ t² (simulated), not of χ².
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        use = ((se > 0) & np.isfinite(se) & (np.abs(Jfe) > threshold * se)
               & (counts >= MIN_BIN_SAMPLES)[None])
    n = int(use.sum())
    if n == 0:
        return {"chi2_per_bin": float("nan"), "n": 0, "p_value": float("nan"),
                "scale": float("nan"), "scale_se": float("nan")}
    z = (J[use] - Jfe[use]) / se[use]
    chi2 = float(np.sum(z * z))
    wf = Jfe[use] / se[use] ** 2
    null = np.sum(rng.standard_t(max(groups - 1, 1), size=(_NULL_DRAWS, n)) ** 2, axis=1)
    p = float((np.sum(null >= chi2) + 1) / (_NULL_DRAWS + 1))
    return {"chi2_per_bin": chi2 / n, "n": n, "p_value": p,
            "scale": float(np.sum(wf * J[use]) / np.sum(wf * Jfe[use])),
            "scale_se": float(1.0 / math.sqrt(np.sum(wf * Jfe[use])))}


class _Frames:
    """Per-block statistics of the recorded frames after burn-in (blocks are independent)."""

    def __init__(self, mc, block_size, medges):
        t0 = mc.n_burn * mc.dt * (1 - 1e-12)
        keep = mc.record_times >= t0
        tr = mc.trajectories[keep]                    # (frames, walkers, 2)
        nf, nw = tr.shape[0], tr.shape[1]
        G = -(-nw // block_size)
        pad = G * block_size - nw
        if pad:
            tr = np.concatenate([tr, np.full((nf, pad, 2), np.nan)], axis=1)
        tr = tr.reshape(nf, G, block_size, 2)
        alive = np.isfinite(tr[..., 0])
        x = np.where(alive, tr[..., 0], 0.0)
        y = np.where(alive, tr[..., 1], 0.0)
        half = nf // 2
        self.G, self.nf = G, nf
        self.n = alive.sum(axis=(0, 2)).astype(float)                  # (G,)
        self.n_half = (alive[:half].sum(axis=(0, 2)).astype(float),
                       alive[half:].sum(axis=(0, 2)).astype(float))
        self.sums, self.halves = {}, {}
        for name, f in (("x2", x * x), ("y2", y * y), ("absx", np.abs(x))):
            self.sums[name] = f.sum(axis=(0, 2))
            self.halves[name] = (f[:half].sum(axis=(0, 2)), f[half:].sum(axis=(0, 2)))
        # per-block x-histograms on the marginal bins: the bin-bin correlation structure
        ix = np.floor((tr[..., 0] - medges[0]) / (medges[1] - medges[0])).astype(np.int64)
        nb = medges.size - 1
        ok = alive & (ix >= 0) & (ix < nb)
        blk = np.broadcast_to(np.arange(G)[None, :, None], ix.shape)
        self.hist = np.zeros((G, nb))
        np.add.at(self.hist, (blk[ok], ix[ok]), 1.0)

    def _ratio(self, S, n):
        N = n.sum()
        r = S.sum(0) / N
        e = (S - np.multiply.outer(n, r) if np.ndim(r) else S - r * n) / N
        return r, e

    def mean(self, name):
        """Ratio estimate and its standard error over blocks."""
        r, e = self._ratio(self.sums[name], self.n)
        return float(r), float(math.sqrt(self.G / (self.G - 1) * np.sum(e * e)))

    def drift(self, name):
        """(second half − first half) of the sampling window, in standard errors."""
        (S1, S2), (n1, n2) = self.halves[name], self.n_half
        r1, e1 = self._ratio(S1, n1)
        r2, e2 = self._ratio(S2, n2)
        se = math.sqrt(self.G / (self.G - 1) * np.sum((e2 - e1) ** 2))
        return float((r2 - r1) / se) if se > 0 else float("nan")

    def correlation(self):
        """Correlation matrix of the marginal histogram bins (identity where empty)."""
        r, e = self._ratio(self.hist, self.n)
        C = self.G / (self.G - 1) * e.T @ e
        d = np.sqrt(np.diag(C))
        R = np.eye(d.size)
        ok = d > 0
        R[np.ix_(ok, ok)] = C[np.ix_(ok, ok)] / np.outer(d[ok], d[ok])
        return R
