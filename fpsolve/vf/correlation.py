"""D_i and τ_i of the principal-direction projections (Feng–Tu SI S5, Eqs. S15–S19).

Velocities v_i = Δθ_i/Δt of the projections, D_i = C_i(0) = ⟨v_i²⟩, c_i = C_i/D_i,
G_i(t) = ∫_{−t}^{t} c_i, S_i(t) = D_i^{-1}⟨θ_i(t)²⟩ = ∫_0^t G_i,
τ_i = T_w^{-1} Δt^{-1} ∫_0^{T_w} S_i dt.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import _count, _positive

__all__ = ["CorrelationResult", "diffusion_and_correlation"]


@dataclass(frozen=True)
class CorrelationResult:
    """Per-direction velocity statistics (SI S5), from :func:`diffusion_and_correlation`.

    Attributes
    ----------
    D : ndarray, shape (K,)
        D_i = C_i(0) = ⟨v_i²⟩ with v_i = Δθ_i/Δt (fluctuations: the window's mean
        velocity, the drift, is removed).
    tau : ndarray, shape (K,)
        τ_i = T_w^{-1} Δt^{-1} ∫_0^{T_w} S_i(t) dt (Eq. S19, trapezoid rule).
    lags : ndarray, shape (M,)
        Times t = n Δt of the lag functions below.
    c, G, S : ndarray, shape (K, M)
        Normalised velocity autocorrelation c_i(t), G_i(t) = ∫_{−t}^{t} c_i and
        S_i(t) = ⟨θ_i(t)²⟩ / D_i (mean squared displacement over t, time-averaged over
        the window's origins).
    dt : float
        Δt, the time between snapshots.
    window : float
        T_w = (T − 1) Δt.
    """

    D: np.ndarray
    tau: np.ndarray
    lags: np.ndarray
    c: np.ndarray
    G: np.ndarray
    S: np.ndarray
    dt: float
    window: float


def _autocov_fft(v):
    """Unbiased autocovariance of the (already centred) columns of v, lags 0..T−1."""
    T = v.shape[0]
    nfft = 1 << (2 * T - 1).bit_length()
    f = np.fft.rfft(v, n=nfft, axis=0)
    ac = np.fft.irfft(f * np.conj(f), n=nfft, axis=0)[:T]
    return ac / (T - np.arange(T))[:, None]


def _msd_fft(x):
    """Time-averaged mean squared displacement of the columns of x, lags 0..T−1."""
    T = x.shape[0]
    nfft = 1 << (2 * T - 1).bit_length()
    f = np.fft.rfft(x, n=nfft, axis=0)
    s2 = np.fft.irfft(f * np.conj(f), n=nfft, axis=0)[:T]        # Σ_t x_t x_{t+n}
    sq = x * x
    cs = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(sq, axis=0)])
    n = np.arange(T)
    # Σ_{t<T−n} (x_{t+n}² + x_t²) = (cs[T] − cs[n]) + cs[T − n]
    s1 = (cs[T][None, :] - cs[n]) + cs[T - n]
    return (s1 - 2 * s2) / (T - n)[:, None]


def diffusion_and_correlation(theta, *, dt: float = 1.0,
                              max_lag: int | None = None) -> CorrelationResult:
    """D_i and τ_i of the projections θ_i(t) on the principal directions (SI S5).

    Parameters
    ----------
    theta : array_like, shape (T, K)
        Projections of the window's snapshots, e.g. :meth:`PCAResult.project`.
    dt : float
        Δt, time between snapshots (1 for one snapshot per iteration: the SI's unit).
    max_lag : int, optional
        Return c, G, S up to this many lags (τ always integrates over the whole window).

    Returns
    -------
    CorrelationResult

    Notes
    -----
    C_i is the autocovariance of the velocity *fluctuations* (the window's mean
    velocity is subtracted; it is the drift of the SI's mode p_1 and ≈ 0 for the
    diffusive modes i ≥ 2).  S_i(t) is estimated by the time-averaged mean squared
    displacement of θ_i, which is the double integral ∫∫ c_i of Eq. S18 for stationary
    velocities with far less noise than integrating the estimated c_i twice.  It is not
    detrended: removing a linear trend fitted to the same window biases the
    displacements at lags ~ T_w by O(1) (tested: +20..30 % on τ of an OU process), so a
    drifting mode gets a τ that includes its drift, as in the SI's definition.  The
    estimate of τ_i is unbiased for stationary increments but noisy when T_w is only a
    few tens of relaxation times (≈ 25 % scatter at T_w = 40 relaxation times).

    With this, D_i Δt τ_i is the window average of ⟨θ_i²(t)⟩ measured from the window
    start — the first term of Eq. S17.
    The SI drops the second term, −⟨θ̄_i²⟩, when it writes σ_i² = D_i Δt τ_i, so that
    relation holds only up to an O(1) factor: D_i Δt τ_i → 2σ_i² for a confined
    (Ornstein–Uhlenbeck) direction with T_w ≫ its relaxation time and 3σ_i² for free
    diffusion (D T_w/2 against D T_w/6).
    """
    fn = "diffusion_and_correlation"
    X = np.asarray(theta, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] < 3:
        raise ValueError(f"{fn}: theta must have shape (T, K) with T >= 3, got {np.shape(theta)}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{fn}: theta contains NaN or inf")
    dt = _positive(fn, "dt", dt)
    T = X.shape[0]
    M = T - 1
    if max_lag is not None:
        M = min(_count(fn, "max_lag", max_lag, 1), T - 1)
    dX = np.diff(X, axis=0)
    dX = dX - dX.mean(axis=0)                       # velocity fluctuations
    X = X - X.mean(axis=0)                          # no effect on MSD; less round-off
    msd = _msd_fft(X)                               # lags 0..T−1, per step
    C = _autocov_fft(dX)                            # lags 0..T−2
    if np.any(C[0] <= 0) or np.any(msd[1] <= 0):
        bad = np.flatnonzero((C[0] <= 0) | (msd[1] <= 0)).tolist()
        raise ValueError(f"{fn}: direction(s) {bad} do not move (zero velocity variance)")
    c = C / C[0]
    G = np.cumsum(np.concatenate([c[:1], 2 * c[1:]]), axis=0)
    s = msd / C[0]                                  # S(n Δt) / Δt²
    n_lags = T - 1
    # τ = T_w^{-1} Δt^{-1} ∫_0^{T_w} S dt, trapezoid with S(0) = 0, T_w = (T−1) Δt
    tau = dt * (s[1:n_lags].sum(axis=0) + 0.5 * s[n_lags]) / n_lags
    D = C[0] / dt ** 2
    lags = dt * np.arange(M + 1)
    Mc = min(M, c.shape[0] - 1)
    return CorrelationResult(D=D, tau=tau, lags=lags,
                             c=np.pad(c[:Mc + 1], ((0, M - Mc), (0, 0)),
                                      constant_values=np.nan).T,
                             G=np.pad(G[:Mc + 1], ((0, M - Mc), (0, 0)),
                                      constant_values=np.nan).T,
                             S=(s[:M + 1] * dt ** 2).T, dt=dt, window=n_lags * dt)
