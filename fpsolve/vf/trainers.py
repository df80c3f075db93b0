"""Trainers that produce parameter snapshots for the variance–flatness analysis.

* :func:`walkers_2d` — the Monte Carlo module's 2-D random-shift SGD (or any Langevin
  model, e.g. flatness-detecting noise) with recorded trajectories.
* :func:`train_digits` — a small fully connected network on scikit-learn's 8×8 digits,
  trained by minibatch SGD, plain gradient descent (GD), GD with flatness-detecting
  noise (FDN, Feng–Tu SI S10) or GD with isotropic noise of equal total strength.
  Snapshots of one layer are kept only inside the analysis window; A_g and C_g are
  streamed (two numbers per iteration).

Everything is seeded: the same arguments give bit-identical results.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..models import diffusion as _diffusion
from ..models import landscapes as _landscapes
from ..stochastic import montecarlo as _montecarlo
from . import order as _order
from ._checks import _count, _positive
from .network import MLP, blas_threads

__all__ = ["Trajectories2D", "walkers_2d", "DigitsData", "load_digits_data",
           "TrainingRun", "train_digits", "METHODS", "sharpness", "gd_noise"]

METHODS = ("sgd", "gd", "fdn", "isotropic")


# ------------------------------------------------------------------------ 2-D
@dataclass(frozen=True)
class Trajectories2D:
    """Recorded 2-D walkers: ``positions[frame, walker] = (x, y)`` at ``times[frame]``.

    ``step`` is the number of SGD iterations (or Euler–Maruyama steps) between frames.
    """

    positions: np.ndarray
    times: np.ndarray
    step: int
    landscape: _landscapes.Landscape
    params: dict

    def walker(self, i: int, window: int | None = None) -> np.ndarray:
        """The last ``window`` frames of walker ``i``, shape (T, 2)."""
        P = self.positions[:, i]
        if window is not None:
            P = P[-int(window):]
        if not np.all(np.isfinite(P)):
            raise ValueError(f"Trajectories2D.walker: walker {i} left the domain or diverged "
                             "inside the window")
        return P


def walkers_2d(L: _landscapes.Landscape, *, eta: float | None = None,
               sigma: float | None = None, diffusion: _diffusion.DiffusionModel | None = None,
               dt: float | None = None, n_walkers: int = 16, n_steps: int = 20_000,
               record_every: int = 1, seed=0, x0=(0.0, 0.0), radius: float | None = None,
               cross_diffusion: bool = True) -> Trajectories2D:
    """Record 2-D trajectories with :mod:`fpsolve.montecarlo`.

    Give either ``eta`` and ``sigma`` (the paper's random-shift SGD,
    :func:`fpsolve.montecarlo.sgd`) or ``diffusion`` and ``dt`` (Euler–Maruyama,
    :func:`fpsolve.montecarlo.langevin`, e.g. with :func:`fpsolve.diffusion.fdn`).

    Returns
    -------
    Trajectories2D
        ``n_steps // record_every + 1`` frames of every walker (the start included).
    """
    common = dict(n_walkers=n_walkers, n_steps=n_steps, n_burn=0, sample_every=record_every,
                  record_every=record_every, record_walkers=n_walkers, seed=seed,
                  radius=radius, x0=x0, bins=8, workers=1)
    if diffusion is None:
        if eta is None or sigma is None or dt is not None:
            raise ValueError("walkers_2d: give eta and sigma (SGD) or diffusion and dt "
                             "(Langevin), not a mix")
        mc = _montecarlo.sgd(L, eta, sigma, cross_diffusion=cross_diffusion, **common)
    else:
        if dt is None or eta is not None or sigma is not None:
            raise ValueError("walkers_2d: give eta and sigma (SGD) or diffusion and dt "
                             "(Langevin), not a mix")
        mc = _montecarlo.langevin(L, diffusion, dt, **common)
    return Trajectories2D(positions=mc.trajectories, times=mc.record_times,
                          step=int(record_every), landscape=L, params=dict(mc.params))


# --------------------------------------------------------------------- digits
@dataclass(frozen=True)
class DigitsData:
    """Train/test split of scikit-learn's 8×8 digits, pixels scaled to [0, 1]."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def load_digits_data(test_size: int = 497, seed=0) -> DigitsData:
    """Seeded split of ``sklearn.datasets.load_digits`` (1797 images, shipped offline).

    Raises
    ------
    ImportError
        If scikit-learn is not installed (``pip install fpsolve[digits]``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError("the digits data set needs scikit-learn: "
                          "pip install 'fpsolve[digits]'") from exc
    d = load_digits()
    X, y = d.data / 16.0, d.target.astype(np.int64)
    if not isinstance(test_size, int) or not 0 < test_size < len(y):
        raise ValueError(f"load_digits_data: test_size must be an integer in 1..{len(y) - 1}, "
                         f"got {test_size!r}")
    perm = np.random.default_rng(seed).permutation(len(y))
    te, tr = perm[:test_size], perm[test_size:]
    return DigitsData(X[tr], y[tr], X[te], y[te])


@dataclass
class TrainingRun:
    """The outcome of :func:`train_digits`.

    Attributes
    ----------
    method : str
        "sgd", "gd", "fdn" or "isotropic".
    net : MLP
    data : DigitsData
    theta : ndarray
        Final parameters.
    window_mean : ndarray
        Mean of all parameters over the analysis window (the "solution" θ*).
    layer : int
        Index of the layer whose weights are snapshotted (1: hidden 1 → hidden 2, the
        SI's choice).
    snapshots : ndarray, shape (T, n_layer)
        That layer's weights at every ``snapshot_every``-th iteration of the window.
    snapshot_every : int
    history : dict of ndarray
        "iteration", "train_loss", "train_error", "test_error" at the evaluations.
    A, C : ndarray
        A_g(t) and C_g(t) per iteration (of the applied step direction: the minibatch
        gradient for SGD, ∇L + noise for the GD variants).
    iterations_per_epoch : int
        M // B, the SGD epoch (used as the moving-average window of A_g and C_g).
    params : dict
        Every setting, for provenance.
    seconds : float
        Wall time of the training loop.
    """

    method: str
    net: MLP
    data: DigitsData
    theta: np.ndarray
    window_mean: np.ndarray
    layer: int
    snapshots: np.ndarray
    snapshot_every: int
    history: dict
    A: np.ndarray
    C: np.ndarray
    iterations_per_epoch: int
    params: dict
    seconds: float
    blas: int | None = field(default=1, repr=False)

    @property
    def layer_slice(self) -> slice:
        return self.net.weight_slice(self.layer)

    def train_loss(self, theta=None) -> float:
        with blas_threads(self.blas):
            return self.net.loss(self.theta if theta is None else theta,
                                 self.data.X_train, self.data.y_train)

    def test_error(self, theta=None) -> float:
        with blas_threads(self.blas):
            return self.net.error(self.theta if theta is None else theta,
                                  self.data.X_test, self.data.y_test)

    def layer_loss(self) -> Callable[[np.ndarray], float]:
        """w ↦ training loss with the layer's weights set to w, all else at the window mean."""
        base = self.window_mean.copy()
        sl = self.layer_slice
        net, X, y = self.net, self.data.X_train, self.data.y_train

        def loss(w):
            th = base.copy()
            th[sl] = w
            return net.loss(th, X, y)
        return loss

    def order_parameters(self, window: int | None = None) -> _order.OrderParameters:
        """Moving averages of A_g and C_g (default window: one SGD epoch, as the SI)."""
        w = self.iterations_per_epoch if window is None else window
        return _order._order_parameters(self.A, self.C, w)


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"train_digits: method must be one of {METHODS}, got {method!r}")


def train_digits(method: str = "sgd", *, hidden=(30, 30), lr: float = 0.1,
                 batch_size: int = 32, iterations: int = 8000, window: int = 2000,
                 layer: int = 1, snapshot_every: int = 1, noise_scale: float | None = None,
                 fisher: str = "minibatch", fisher_batch: int | None = None,
                 fisher_every: int = 50, eval_every: int | None = None, seed=0,
                 data: DigitsData | None = None, init_theta=None,
                 blas: int | None = 1) -> TrainingRun:
    """Train a 64–hidden–10 ReLU network on 8×8 digits and record the analysis window.

    Parameters
    ----------
    method : {"sgd", "gd", "fdn", "isotropic"}
        * "sgd": minibatch SGD, batches of ``batch_size`` drawn without replacement,
          reshuffled every epoch (M // B iterations; the remainder is skipped).
        * "gd": full-batch gradient descent.
        * "fdn": GD plus flatness-detecting noise (SI Eq. S21),
          θ ← θ − lr (∇L + ξ) with Cov ξ = noise_scale · F̂, F̂ an estimate of the
          empirical Fisher (1/M) Σ_k ∇l_k ∇l_kᵀ (``fisher`` below).
        * "isotropic": GD plus isotropic noise of *equal total strength*, Cov ξ =
          noise_scale · (tr F̂ / N) I with the same F̂ estimate at the same step — only
          the shape of the noise differs from "fdn".
    hidden : tuple of int
        Hidden widths (default 64–30–30–10, 3190 parameters).
    lr : float
        Learning rate α.
    batch_size : int
        SGD minibatch size B (also sets the default noise scale and the epoch).
    iterations : int
        Parameter updates.
    window : int
        The analysis window is the last ``window`` iterations.
    layer : int
        Layer whose weights are snapshotted (1 = between the two hidden layers).
    snapshot_every : int
        Iterations between snapshots in the window.
    noise_scale : float, optional
        σ_n of Eq. S21 (default 1/batch_size: minibatch SGD's gradient-noise
        covariance is ≈ F/B near a minimum, so FDN is then as strong as SGD's noise).
    fisher : {"minibatch", "diagonal"}
        "minibatch": F̂ = (1/B_F) Σ_{k∈b} ∇l_k ∇l_kᵀ over a fresh random minibatch b of
        ``fisher_batch`` samples (default ``batch_size``) each step; a draw is
        ξ = √(σ_n/B_F) Σ_k z_k ∇l_k, z ~ N(0, I) — one weighted backward pass, exact
        covariance σ_n F̂ of rank B_F, no eigendecomposition (the SI instead keeps the
        top 300 eigendirections of F per layer).  "diagonal": the diagonal of the full
        training set's empirical Fisher, refreshed every ``fisher_every`` iterations.
    eval_every : int, optional
        Iterations between evaluations of the training loss/error and test error
        (default: one SGD epoch).
    seed : int or SeedSequence
        Root seed: initialisation, minibatches and noise use independent child streams.
    data : DigitsData, optional
        Default: :func:`load_digits_data` with the same seed.
    init_theta : array_like, optional
        Start from these parameters instead of a fresh initialisation.
    blas : int or None
        BLAS threads during training (default 1: see :func:`network.blas_threads`).

    Returns
    -------
    TrainingRun
    """
    s = _settings(method, hidden, lr, batch_size, iterations, window, snapshot_every,
                  noise_scale, fisher, fisher_batch, fisher_every)
    data = load_digits_data(seed=seed) if data is None else data
    s, net = _fit_to_data(s, data, layer, eval_every)
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    theta, rb, rn = _initial_state(net, ss, init_theta)
    t0 = time.perf_counter()
    with blas_threads(blas):
        theta, rec = _training_loop(s, net, data, theta, rb, rn)
    seconds = time.perf_counter() - t0
    params = dict(method=method, sizes=list(net.sizes), **{k: getattr(s, k) for k in _PARAM_KEYS},
                  n_train=s.n_train, n_test=len(data.y_test),
                  seed=seed if isinstance(seed, int) else str(ss.entropy))
    return TrainingRun(method=method, net=net, data=data, theta=theta,
                       window_mean=rec.mean_sum / s.window, layer=s.layer, snapshots=rec.snaps,
                       snapshot_every=s.snapshot_every,
                       history={k: np.asarray(v) for k, v in rec.hist.items()},
                       A=rec.order.A, C=rec.order.C, iterations_per_epoch=s.ipe, params=params,
                       seconds=seconds, blas=blas)


#: Settings recorded in :attr:`TrainingRun.params` (in this order, after method and sizes).
_PARAM_KEYS = ("lr", "batch_size", "iterations", "window", "layer", "snapshot_every",
               "noise_scale", "fisher", "fisher_batch", "fisher_every", "eval_every")


@dataclass(frozen=True)
class _Settings:
    """Validated settings of :func:`train_digits` (layer, eval_every, ipe: from the data)."""

    method: str
    hidden: tuple
    lr: float
    batch_size: int
    iterations: int
    window: int
    snapshot_every: int
    noise_scale: float
    fisher: str
    fisher_batch: int
    fisher_every: int
    layer: int = 1
    eval_every: int = 1
    ipe: int = 1
    n_train: int = 0


def _settings(method, hidden, lr, batch_size, iterations, window, snapshot_every,
              noise_scale, fisher, fisher_batch, fisher_every) -> _Settings:
    fn = "train_digits"
    _check_method(method)
    hidden = tuple(hidden)
    if len(hidden) < 1 or any((not isinstance(h, int)) or h < 1 for h in hidden):
        raise ValueError(f"{fn}: hidden must be a tuple of positive integers, got {hidden!r}")
    lr = _positive(fn, "lr", lr)
    batch_size = _count(fn, "batch_size", batch_size)
    iterations = _count(fn, "iterations", iterations, 2)
    window = _count(fn, "window", window, 2)
    if window > iterations:
        raise ValueError(f"{fn}: window ({window}) must not exceed iterations ({iterations})")
    snapshot_every = _count(fn, "snapshot_every", snapshot_every)
    if window // snapshot_every < 2:
        raise ValueError(f"{fn}: window/snapshot_every gives fewer than 2 snapshots")
    noise_scale = 1.0 / batch_size if noise_scale is None else \
        _positive(fn, "noise_scale", noise_scale)
    if fisher not in ("minibatch", "diagonal"):
        raise ValueError(f"{fn}: fisher must be 'minibatch' or 'diagonal', got {fisher!r}")
    fisher_batch = batch_size if fisher_batch is None else \
        _count(fn, "fisher_batch", fisher_batch)
    fisher_every = _count(fn, "fisher_every", fisher_every)
    return _Settings(method, hidden, lr, batch_size, iterations, window, snapshot_every,
                     noise_scale, fisher, fisher_batch, fisher_every)


def _fit_to_data(s: _Settings, data: DigitsData, layer, eval_every):
    """Settings that depend on the data (epoch, evaluation interval, layer) and the network."""
    fn = "train_digits"
    M = len(data.y_train)
    if s.batch_size > M or s.fisher_batch > M:
        raise ValueError(f"{fn}: batch sizes must not exceed the {M} training samples")
    ipe = M // s.batch_size
    eval_every = ipe if eval_every is None else _count(fn, "eval_every", eval_every)
    net = MLP((data.X_train.shape[1], *s.hidden,
               int(max(data.y_train.max(), data.y_test.max())) + 1))
    if not 0 <= layer < net.n_layers:
        raise ValueError(f"{fn}: layer must be in 0..{net.n_layers - 1}, got {layer!r}")
    return replace(s, layer=layer, eval_every=eval_every, ipe=ipe, n_train=M), net


def _initial_state(net: MLP, ss: np.random.SeedSequence, init_theta):
    """θ(0) and the minibatch and noise generators (independent children of ``ss``)."""
    s_init, s_batch, s_noise = ss.spawn(3)
    if init_theta is None:
        theta = net.init(np.random.default_rng(s_init))
    else:
        theta = np.array(init_theta, dtype=float)
        if theta.shape != (net.n_params,):
            raise ValueError(f"train_digits: init_theta must have shape ({net.n_params},), "
                             f"got {theta.shape}")
    return theta, np.random.default_rng(s_batch), np.random.default_rng(s_noise)


class _Recorder:
    """What :func:`train_digits` keeps: window snapshots and mean, A_g/C_g, evaluations."""

    def __init__(self, s: _Settings, net: MLP, data: DigitsData):
        self.s, self.net, self.data = s, net, data
        self.sl = net.weight_slice(s.layer)
        self.w_start = s.iterations - s.window
        self.n_snap = s.window // s.snapshot_every
        self.snaps = np.empty((self.n_snap, self.sl.stop - self.sl.start))
        self.mean_sum = np.zeros(net.n_params)
        self.order = _order.GradientOrderParameters()
        self.hist = {"iteration": [], "train_loss": [], "train_error": [], "test_error": []}
        self.k = 0

    def evaluate(self, it, theta):
        net, d = self.net, self.data
        self.hist["iteration"].append(it)
        self.hist["train_loss"].append(net.loss(theta, d.X_train, d.y_train))
        self.hist["train_error"].append(net.error(theta, d.X_train, d.y_train))
        self.hist["test_error"].append(net.error(theta, d.X_test, d.y_test))

    def after_step(self, it, theta):
        s = self.s
        if it >= self.w_start:
            self.mean_sum += theta
            if (it - self.w_start) % s.snapshot_every == s.snapshot_every - 1 \
                    and self.k < self.n_snap:
                self.snaps[self.k] = theta[self.sl]
                self.k += 1
        if (it + 1) % s.eval_every == 0 or it + 1 == s.iterations:
            self.evaluate(it + 1, theta)


def _training_loop(s: _Settings, net: MLP, data: DigitsData, theta, rb, rn):
    """The parameter updates of :func:`train_digits`; returns θ and the :class:`_Recorder`."""
    Xtr, ytr = data.X_train, data.y_train
    rec = _Recorder(s, net, data)
    perm, pos = None, s.ipe
    fdiag = None
    rec.evaluate(0, theta)
    for it in range(s.iterations):
        if s.method == "sgd":
            if pos >= s.ipe:
                perm, pos = rb.permutation(s.n_train), 0
            idx = perm[pos * s.batch_size:(pos + 1) * s.batch_size]
            pos += 1
            _, step = net.loss_grad(theta, Xtr[idx], ytr[idx])
        else:
            _, step = net.loss_grad(theta, Xtr, ytr)
            if s.method in ("fdn", "isotropic"):
                if s.fisher == "diagonal" and it % s.fisher_every == 0:
                    fdiag = net.fisher_diagonal(theta, Xtr, ytr)
                step = step + gd_noise(net, theta, Xtr, ytr, method=s.method,
                                       fisher=s.fisher, noise_scale=s.noise_scale,
                                       fisher_batch=s.fisher_batch, rng_batch=rb,
                                       rng_noise=rn, fisher_diag=fdiag)
        rec.order.update(step)
        theta = theta - s.lr * step
        if not np.all(np.isfinite(theta)):
            raise FloatingPointError(f"train_digits: parameters diverged at iteration {it + 1} "
                                     f"(method={s.method}, lr={s.lr}); lower lr")
        rec.after_step(it, theta)
    return theta, rec


def gd_noise(net: MLP, theta, X, y, *, method: str, fisher: str, noise_scale: float,
             fisher_batch: int, rng_batch: np.random.Generator,
             rng_noise: np.random.Generator, fisher_diag=None) -> np.ndarray:
    """One draw ξ of the "fdn" or "isotropic" noise of :func:`train_digits`.

    "fdn": Cov ξ = noise_scale · F̂ with F̂ the minibatch empirical Fisher
    (1/B_F) Σ_{k∈b} ∇l_k ∇l_kᵀ (``fisher="minibatch"``, b drawn with ``rng_batch``) or
    diag(``fisher_diag``) (``fisher="diagonal"``).  "isotropic": Cov ξ =
    noise_scale · (tr F̂ / N) I with the same F̂ — equal total strength E‖ξ‖².
    """
    N = net.n_params
    if fisher == "minibatch":
        idx = rng_batch.choice(len(y), fisher_batch, replace=False)
        if method == "fdn":
            z = rng_noise.standard_normal(fisher_batch)
            # Σ_k z_k ∇l_k has covariance Σ_k ∇l_k ∇l_kᵀ = B_F F̂: one weighted backward pass
            return math.sqrt(noise_scale / fisher_batch) * net.weighted_grad(
                theta, X[idx], y[idx], z)
        tr = float(net.per_sample_sq_norms(theta, X[idx], y[idx]).mean())
        return math.sqrt(noise_scale * tr / N) * rng_noise.standard_normal(N)
    if fisher_diag is None:
        raise ValueError("gd_noise: fisher='diagonal' needs fisher_diag")
    if method == "fdn":
        return np.sqrt(noise_scale * fisher_diag) * rng_noise.standard_normal(N)
    return math.sqrt(noise_scale * float(np.sum(fisher_diag)) / N) * rng_noise.standard_normal(N)


def sharpness(run: TrainingRun, theta=None, *, n_iter: int = 50, seed=0,
              rel_step: float = 1e-4) -> float:
    """Largest Hessian eigenvalue of the training loss (power iteration on H v).

    H v is the central difference (∇L(θ + εv) − ∇L(θ − εv))/(2ε) of the exact
    gradient, ε = rel_step·max(1, ‖θ‖).  Power iteration finds the eigenvalue of
    largest magnitude; near a minimum that is the sharpest curvature.
    """
    th = run.theta if theta is None else np.asarray(theta, dtype=float)
    net, X, y = run.net, run.data.X_train, run.data.y_train
    v = np.random.default_rng(seed).standard_normal(th.size)
    v /= np.linalg.norm(v)
    eps = rel_step * max(1.0, float(np.linalg.norm(th)))
    lam = 0.0
    with blas_threads(run.blas):
        for _ in range(_count("sharpness", "n_iter", n_iter)):
            Hv = (net.loss_grad(th + eps * v, X, y)[1] - net.loss_grad(th - eps * v, X, y)[1]) \
                / (2 * eps)
            lam = float(v @ Hv)
            nrm = np.linalg.norm(Hv)
            if nrm == 0:
                return 0.0
            v = Hv / nrm
    return lam
