"""Order parameters of the learning phases (Feng–Tu SI Eqs. S2–S3).

A_g(t) = ‖g(t)‖ and C_g(t) = g(t)·g(t+1) / (A_g(t) A_g(t+1)) of the minibatch
gradients, averaged over a moving window (one epoch in the SI).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._checks import _count, _fraction

__all__ = ["moving_average", "OrderParameters", "GradientOrderParameters",
           "gradient_order_parameters", "transition_time"]


def moving_average(x, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` samples ('valid' part: len(x) − window + 1).

    NaNs (e.g. C_g where a gradient vanished) are skipped in each window.
    """
    x = np.asarray(x, dtype=float)
    window = _count("moving_average", "window", window)
    if x.ndim != 1 or x.size < window:
        raise ValueError(f"moving_average: need a 1-D array of at least window={window} "
                         f"values, got shape {x.shape}")
    ok = np.isfinite(x)
    cs = np.concatenate([[0.0], np.cumsum(np.where(ok, x, 0.0))])
    cn = np.concatenate([[0], np.cumsum(ok)])
    num = cs[window:] - cs[:-window]
    den = cn[window:] - cn[:-window]
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)


@dataclass(frozen=True)
class OrderParameters:
    """A_g(t), C_g(t) per iteration and their moving averages (SI Eqs. S2–S3).

    ``C[t]`` pairs the gradients of iterations t and t+1, so it has one value fewer
    than ``A``; ``t_avg`` are the iterations at which the trailing windows end.
    """

    A: np.ndarray
    C: np.ndarray
    window: int
    t_avg: np.ndarray
    A_avg: np.ndarray
    C_avg: np.ndarray


class GradientOrderParameters:
    """Streaming A_g and C_g: feed one minibatch gradient per iteration, keep two numbers.

    Only the previous gradient is stored, so this runs alongside a training loop at
    O(N) memory.
    """

    def __init__(self):
        self._prev = None
        self._prev_norm = math.nan
        self._A: list[float] = []
        self._C: list[float] = []

    def update(self, g) -> None:
        g = np.asarray(g, dtype=float).ravel()
        a = float(np.sqrt(g @ g))
        if self._prev is not None:
            if g.shape != self._prev.shape:
                raise ValueError("GradientOrderParameters.update: gradient size changed "
                                 f"from {self._prev.size} to {g.size}")
            den = a * self._prev_norm
            self._C.append(float(g @ self._prev) / den if den > 0 else math.nan)
        self._A.append(a)
        self._prev, self._prev_norm = g.copy(), a

    @property
    def A(self) -> np.ndarray:
        return np.array(self._A)

    @property
    def C(self) -> np.ndarray:
        return np.array(self._C)

    def result(self, window: int) -> OrderParameters:
        return _order_parameters(self.A, self.C, window)


def _order_parameters(A, C, window):
    window = _count("order parameters", "window", window)
    if A.size < window + 1:
        raise ValueError(f"order parameters: need more than window={window} iterations, "
                         f"have {A.size}")
    A_avg = moving_average(A[:-1], window)
    C_avg = moving_average(C, window)
    t_avg = np.arange(window - 1, A.size - 1)
    return OrderParameters(A=A, C=C, window=window, t_avg=t_avg, A_avg=A_avg, C_avg=C_avg)


def gradient_order_parameters(gradients, window: int) -> OrderParameters:
    """A_g and C_g from stored minibatch gradients, shape (T, N)."""
    G = np.asarray(gradients, dtype=float)
    if G.ndim != 2 or G.shape[0] < 2:
        raise ValueError(f"gradient_order_parameters: gradients must have shape (T, N) with "
                         f"T >= 2, got {G.shape}")
    acc = GradientOrderParameters()
    for g in G:
        acc.update(g)
    return acc.result(window)


def transition_time(t, C_avg, fraction: float = 0.5, tail: float = 0.1) -> float:
    """Time of the fast-learning → exploration transition from ⟨C_g⟩(t).

    Operational definition (the SI marks the transition region by eye): the first time
    after the maximum of ⟨C_g⟩ at which it falls below
    C_end + fraction·(C_max − C_end), with C_end the mean over the last ``tail`` of the
    record.  NaN if ⟨C_g⟩ never falls that far.
    """
    t = np.asarray(t, dtype=float)
    c = np.asarray(C_avg, dtype=float)
    if t.shape != c.shape or t.ndim != 1 or t.size < 3:
        raise ValueError("transition_time: t and C_avg must be 1-D arrays of the same length >= 3")
    fraction = _fraction("transition_time", "fraction", fraction)
    tail = _fraction("transition_time", "tail", tail)
    ok = np.isfinite(c)
    if ok.sum() < 3:
        raise ValueError("transition_time: C_avg has fewer than 3 finite values")
    n_tail = max(1, int(round(tail * c.size)))
    c_end = float(np.nanmean(c[-n_tail:]))
    i_max = int(np.nanargmax(c))
    level = c_end + fraction * (c[i_max] - c_end)
    below = np.flatnonzero(ok[i_max:] & (c[i_max:] < level))
    return float(t[i_max + below[0]]) if below.size else math.nan
