"""PCA of the weight fluctuations in a window and the variance spectrum (Feng–Tu SI).

PCA of the fluctuations in a window of T snapshots θ(t) ∈ R^N: principal directions p_i
(unit vectors) and variances σ_i² (population variance, ddof = 0, Eq. S17), ordered
σ_1² ≥ σ_2² ≥ …; accumulated variance spectrum Σ_{j≤i} σ_j² / Σ_j σ_j²; learning
dimension D_l = the smallest number of directions holding 99.9 % of the variance
(Fig. S16).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import _count, _fraction, _snapshots

__all__ = ["PCAResult", "pca", "StreamingPCA", "accumulated_variance", "learning_dimension"]


def _fix_signs(V):
    """Make the largest-magnitude component of every row positive (reproducible output)."""
    idx = np.argmax(np.abs(V), axis=1)
    s = np.sign(V[np.arange(V.shape[0]), idx])
    s[s == 0] = 1.0
    return V * s[:, None]


@dataclass(frozen=True)
class PCAResult:
    """Principal components of the fluctuations in a window of snapshots.

    Attributes
    ----------
    mean : ndarray, shape (N,)
        Window mean θ̄ (the "solution" around which flatness is measured).
    directions : ndarray, shape (K, N)
        Unit principal directions p_i as rows, by decreasing variance.
    variances : ndarray, shape (K,)
        σ_i² = variance of θ·p_i over the window (ddof = 0).
    total_variance : float
        Trace of the window covariance (the sum over *all* directions, also those
        not kept in ``directions``).
    n_snapshots : int
        T, the number of snapshots in the window.
    """

    mean: np.ndarray
    directions: np.ndarray
    variances: np.ndarray
    total_variance: float
    n_snapshots: int

    @property
    def n_params(self) -> int:
        return self.mean.shape[0]

    def accumulated(self) -> np.ndarray:
        """Normalised accumulated variance Σ_{j≤i} σ_j² / tr(cov), shape (K,)."""
        return accumulated_variance(self.variances, self.total_variance)

    def learning_dimension(self, fraction: float = 0.999) -> int:
        """D_l: the number of directions holding ``fraction`` of the variance."""
        return learning_dimension(self.variances, fraction, self.total_variance)

    def project(self, snapshots, n: int | None = None) -> np.ndarray:
        """θ_i(t) = (θ(t) − θ̄)·p_i for the first ``n`` directions, shape (T, n)."""
        X = _snapshots("PCAResult.project", snapshots, min_rows=1)
        if X.shape[1] != self.n_params:
            raise ValueError(f"PCAResult.project: snapshots have {X.shape[1]} parameters, "
                             f"the PCA has {self.n_params}")
        P = self.directions if n is None else self.directions[:_count("project", "n", n)]
        return (X - self.mean) @ P.T


def pca(snapshots, n_components: int | None = None) -> PCAResult:
    """PCA of the fluctuations of a window of parameter snapshots.

    Parameters
    ----------
    snapshots : array_like, shape (T, N)
        θ(t) for the T snapshots of the window (T ≥ 2).
    n_components : int, optional
        Keep only the first K directions (default: all min(T − 1, N) directions that a
        window of T snapshots can span).

    Returns
    -------
    PCAResult

    Notes
    -----
    Thin SVD of the centred (T, N) matrix, which costs O(min(T, N)² max(T, N)) and never
    forms the N × N covariance when T < N (a window of a few epochs of a network).
    Signs are fixed so that each direction's largest component is positive.
    """
    X = _snapshots("pca", snapshots)
    T, N = X.shape
    mean = X.mean(axis=0)
    Xc = X - mean
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    var = s ** 2 / T
    k = min(T - 1, N)
    if n_components is not None:
        k = min(k, _count("pca", "n_components", n_components))
    return PCAResult(mean=mean, directions=_fix_signs(Vt[:k]), variances=var[:k].copy(),
                     total_variance=float(np.sum(Xc * Xc) / T), n_snapshots=T)


class StreamingPCA:
    """Streaming accumulator of the window mean and covariance: O(N²) memory, no snapshots.

    For windows too long to store (T ≫ N).  Sums are taken about the first snapshot
    (a shift that avoids the cancellation of a raw Σθθᵀ − T θ̄θ̄ᵀ when the fluctuations
    are small compared with θ).

    Examples
    --------
    >>> acc = StreamingPCA(3)
    >>> for theta in np.random.default_rng(0).normal(size=(100, 3)):
    ...     acc.update(theta)
    >>> acc.result().n_snapshots
    100
    """

    def __init__(self, n_params: int):
        self.n_params = _count("StreamingPCA", "n_params", n_params)
        self.count = 0
        self._shift = None
        self._s1 = np.zeros(self.n_params)
        self._s2 = np.zeros((self.n_params, self.n_params))

    def update(self, theta) -> None:
        """Add one snapshot (N,) or a batch (b, N)."""
        X = np.asarray(theta, dtype=float)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.n_params:
            raise ValueError(f"StreamingPCA.update: expected shape ({self.n_params},) or "
                             f"(b, {self.n_params}), got {np.shape(theta)}")
        if not np.all(np.isfinite(X)):
            raise ValueError("StreamingPCA.update: snapshot contains NaN or inf")
        if self._shift is None:
            self._shift = X[0].copy()
        Y = X - self._shift
        self._s1 += Y.sum(axis=0)
        self._s2 += Y.T @ Y
        self.count += X.shape[0]

    def covariance(self) -> np.ndarray:
        """Window covariance (ddof = 0), shape (N, N)."""
        if self.count < 2:
            raise ValueError(f"StreamingPCA: need at least 2 snapshots, have {self.count}")
        m = self._s1 / self.count
        C = self._s2 / self.count - np.outer(m, m)
        return 0.5 * (C + C.T)

    def result(self, n_components: int | None = None) -> PCAResult:
        """The PCA of everything accumulated so far (same conventions as :func:`pca`)."""
        C = self.covariance()
        w, V = np.linalg.eigh(C)
        order = np.argsort(w)[::-1]
        w, V = np.maximum(w[order], 0.0), V[:, order]
        k = min(self.count - 1, self.n_params)
        if n_components is not None:
            k = min(k, _count("StreamingPCA.result", "n_components", n_components))
        return PCAResult(mean=self._shift + self._s1 / self.count,
                         directions=_fix_signs(V[:, :k].T.copy()), variances=w[:k].copy(),
                         total_variance=float(np.trace(C)), n_snapshots=self.count)


def accumulated_variance(variances, total: float | None = None) -> np.ndarray:
    """Normalised accumulated variance spectrum Σ_{j≤i} σ_j² / total (Fig. S16A)."""
    v = np.asarray(variances, dtype=float)
    if v.ndim != 1 or v.size == 0 or np.any(v < 0) or not np.all(np.isfinite(v)):
        raise ValueError("accumulated_variance: variances must be a non-empty 1-D array of "
                         "finite non-negative numbers")
    tot = float(v.sum()) if total is None else float(total)
    if not tot > 0:
        raise ValueError("accumulated_variance: total variance is zero (no fluctuations)")
    return np.cumsum(v) / tot


def learning_dimension(variances, fraction: float = 0.999, total: float | None = None) -> int:
    """D_l: smallest number of leading directions holding ``fraction`` of the variance.

    ``variances`` must be sorted in decreasing order (as :func:`pca` returns them).
    """
    fraction = _fraction("learning_dimension", "fraction", fraction)
    acc = accumulated_variance(variances, total)
    if np.any(np.diff(np.asarray(variances, dtype=float)) > 0):
        raise ValueError("learning_dimension: variances must be in decreasing order")
    # tolerance: the accumulated sum of an exactly-represented spectrum may end at 1 - 1e-16
    k = int(np.searchsorted(acc, fraction * (1 - 1e-12))) + 1
    if k > acc.size:
        raise ValueError(f"learning_dimension: the {acc.size} directions given hold only "
                         f"{acc[-1]:.6g} of the total variance, less than {fraction}")
    return k
