"""A small fully connected ReLU network with cross-entropy loss, numpy only.

All parameters live in one flat vector θ (weights row-major, then the bias, layer by
layer), so snapshots, PCA directions and flatness profiles are plain vectors.  Besides
the mean loss and gradient, the backward pass exposes what flatness-detecting noise
needs cheaply: gradients of per-sample-weighted losses (Σ_k z_k ∇l_k, one backward
pass), per-sample squared gradient norms and the diagonal of the empirical Fisher.
"""
from __future__ import annotations

import math

import numpy as np

from .._blas import blas_threads

__all__ = ["MLP", "blas_threads"]


class MLP:
    """Fully connected network ``sizes[0] → … → sizes[-1]``, ReLU hidden units, softmax output.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, e.g. ``(64, 30, 30, 10)`` for 8×8 digits.

    Examples
    --------
    >>> net = MLP((4, 3, 2))
    >>> theta = net.init(np.random.default_rng(0))
    >>> theta.shape
    (23,)
    """

    def __init__(self, sizes):
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"MLP: sizes must be at least two positive widths, got {sizes}")
        self.sizes = sizes
        self.n_layers = len(sizes) - 1
        self._w, self._b = [], []
        k = 0
        for i in range(self.n_layers):
            nw = sizes[i] * sizes[i + 1]
            self._w.append(slice(k, k + nw))
            self._b.append(slice(k + nw, k + nw + sizes[i + 1]))
            k += nw + sizes[i + 1]
        self.n_params = k

    def __repr__(self):
        return f"MLP({self.sizes})"

    def weight_slice(self, layer: int) -> slice:
        """Slice of θ holding the weight matrix of ``layer`` (0-based; 1 = hidden→hidden)."""
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"MLP: layer must be in 0..{self.n_layers - 1}, got {layer}")
        return self._w[layer]

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """He-normal weights (variance 2/fan-in), zero biases."""
        theta = np.zeros(self.n_params)
        for i in range(self.n_layers):
            fan_in = self.sizes[i]
            theta[self._w[i]] = rng.normal(0.0, math.sqrt(2.0 / fan_in),
                                           self.sizes[i] * self.sizes[i + 1])
        return theta

    def _unpack(self, theta):
        return [(theta[w].reshape(self.sizes[i], self.sizes[i + 1]), theta[b])
                for i, (w, b) in enumerate(zip(self._w, self._b))]

    def logits(self, theta, X) -> np.ndarray:
        a = X
        layers = self._unpack(theta)
        for i, (W, b) in enumerate(layers):
            z = a @ W + b
            a = np.maximum(z, 0.0) if i < self.n_layers - 1 else z
        return a

    @staticmethod
    def _log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def loss(self, theta, X, y) -> float:
        """Mean cross-entropy (SI Eq. S4)."""
        ls = self._log_softmax(self.logits(theta, X))
        return float(-ls[np.arange(len(y)), y].mean())

    def error(self, theta, X, y) -> float:
        """Fraction of misclassified samples."""
        return float(np.mean(np.argmax(self.logits(theta, X), axis=1) != y))

    def _backprop(self, theta, X, y):
        """Activations entering each layer and per-sample output deltas of every layer."""
        layers = self._unpack(theta)
        acts, a = [], X
        for i, (W, b) in enumerate(layers):
            acts.append(a)
            z = a @ W + b
            a = np.maximum(z, 0.0) if i < self.n_layers - 1 else z
        ls = self._log_softmax(a)
        losses = -ls[np.arange(len(y)), y]
        d = np.exp(ls)
        d[np.arange(len(y)), y] -= 1.0          # ∂l_k/∂logits, per sample
        deltas = [None] * self.n_layers
        deltas[-1] = d
        for i in range(self.n_layers - 1, 0, -1):
            d = (d @ layers[i][0].T) * (acts[i] > 0)
            deltas[i - 1] = d
        return acts, deltas, losses

    def _assemble(self, acts, deltas, weights):
        g = np.empty(self.n_params)
        for i in range(self.n_layers):
            dw = deltas[i] * weights[:, None]
            g[self._w[i]] = (acts[i].T @ dw).ravel()
            g[self._b[i]] = dw.sum(axis=0)
        return g

    def loss_grad(self, theta, X, y):
        """Mean cross-entropy and its gradient."""
        acts, deltas, losses = self._backprop(theta, X, y)
        n = len(y)
        return float(losses.mean()), self._assemble(acts, deltas, np.full(n, 1.0 / n))

    def weighted_grad(self, theta, X, y, weights) -> np.ndarray:
        """Σ_k weights_k ∇l_k (e.g. Gaussian weights: a draw with covariance Σ_k ∇l_k ∇l_kᵀ)."""
        acts, deltas, _ = self._backprop(theta, X, y)
        return self._assemble(acts, deltas, np.asarray(weights, dtype=float))

    def per_sample_sq_norms(self, theta, X, y) -> np.ndarray:
        """‖∇l_k‖² for every sample (outer-product structure: no per-sample gradients formed)."""
        acts, deltas, _ = self._backprop(theta, X, y)
        out = np.zeros(len(y))
        for a, d in zip(acts, deltas):
            dd = np.einsum("ij,ij->i", d, d)
            out += np.einsum("ij,ij->i", a, a) * dd + dd
        return out

    def fisher_diagonal(self, theta, X, y) -> np.ndarray:
        """diag of the empirical Fisher (1/n) Σ_k ∇l_k ∇l_kᵀ."""
        acts, deltas, _ = self._backprop(theta, X, y)
        out = np.empty(self.n_params)
        n = len(y)
        for i, (a, d) in enumerate(zip(acts, deltas)):
            out[self._w[i]] = ((a * a).T @ (d * d)).ravel() / n
            out[self._b[i]] = (d * d).sum(axis=0) / n
        return out
