"""Landscape-dependent constraints (LDC) against catastrophic forgetting, and EWC.

Feng & Tu (PNAS 2021, main text Fig. 4 and SI S8–S9): a network learns task 1, then
task 2 under a quadratic constraint that keeps it near the task-1 solution w₁* along
the directions that matter for task 1.

* **LDC**: the PCA of the SGD weight fluctuations around w₁* (window of task-1
  training) gives directions θ_i and variances σ_i².  The inverse variance–flatness
  relation σ_i² ∝ F_i^(−ψ) gives the flatness without a Hessian, F_i ∝ σ_i^(−2/ψ), and
  task 2 minimises L₂(w) + λ Σ_{i≤N_c} F_i^(−2) ((w − w₁*)·θ_i)² over the N_c
  directions of largest variance (the sharpest).  Here F_i^(−2) = (σ_i²)^(2/ψ) with
  unit prefactor, and the strength is reported as λ̃ = 10^ψ λ, as in the SI (Fig. S13).
* **EWC** (Kirkpatrick et al., PNAS 2017): L₂(w) + λ Σ_j F_jj (w_j − w₁*_j)², F_jj the
  diagonal of the empirical Fisher information of task 1 at w₁*.
* **No constraint**: plain sequential training.

Both penalties are quadratic forms diagonal in a known orthonormal basis, so each SGD
step on L₂ is followed by the exact proximal step of the penalty (the component
u_i = (w − w₁*)·θ_i becomes u_i / (1 + 2 α λ c_i)).  For small α λ c_i this is the
plain gradient step on L₂ + penalty; unlike it, it stays stable for any λ, so one λ
grid spans "no constraint" to "frozen".  All constrained copies (every λ, ψ, N_c and
EWC) are trained in lockstep on the same minibatch sequence, so their differences are
due to the constraint alone.

Tasks use a shared output head: the k-th digit of either task is output k (the SI
does not describe its head; with one 10-way head the task-1 classes are never
predicted after task 2 and the task-1 error goes to 1).  ε_t is the test error on
task t's test images.  numpy only; the data come from :mod:`.trainers`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ._checks import _count, _positive
from .network import MLP, blas_threads
from .spectrum import PCAResult, pca
from .trainers import DigitsData

__all__ = ["Task", "make_task", "load_mnist", "Anchor", "learn_task1", "Constraint",
           "ldc_weights", "learn_task2", "KINDS"]

KINDS = ("none", "ldc", "ewc")


# ------------------------------------------------------------------------ data
@dataclass(frozen=True)
class Task:
    """One task: the images of ``digits``, labelled by the digit's position in ``digits``."""

    digits: tuple
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def make_task(data: DigitsData, digits) -> Task:
    """The images of ``digits`` (distinct labels of ``data``), relabelled 0..len − 1."""
    try:
        ds = tuple(int(d) for d in digits)
    except (TypeError, ValueError):
        raise ValueError(f"make_task: digits must be a list of integers, got {digits!r}") from None
    present = set(np.unique(data.y_train).tolist())
    if len(ds) < 2 or len(set(ds)) != len(ds) or not set(ds) <= present:
        raise ValueError(f"make_task: digits must be >= 2 distinct labels of the data "
                         f"({sorted(present)}), got {list(digits)!r}")
    lut = np.full(max(max(present), max(ds)) + 1, -1)
    lut[list(ds)] = np.arange(len(ds))
    tr, te = np.isin(data.y_train, ds), np.isin(data.y_test, ds)
    if not te.any():
        raise ValueError(f"make_task: no test images of digits {list(ds)}")
    return Task(ds, data.X_train[tr], lut[data.y_train[tr]], data.X_test[te],
                lut[data.y_test[te]])


def load_mnist(path: str) -> DigitsData:
    """MNIST from a local ``.npz`` file (Keras ``mnist.npz`` layout); nothing is downloaded.

    The file must hold ``x_train``, ``y_train``, ``x_test``, ``y_test``: images of any
    shape (n, ...) with pixels 0..255, labels 0..9.  Images are flattened and scaled
    to [0, 1].
    """
    fn = "load_mnist"
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise ValueError(f"{fn}: {path!r} is not a file (give the path of a local mnist.npz)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrs = {k: np.asarray(f[k]) for k in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as exc:
        raise ValueError(f"{fn}: {path}: missing array {exc} (need x_train, y_train, "
                         "x_test, y_test)") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{fn}: {path}: not a readable .npz file ({exc})") from None
    out = []
    for part in ("train", "test"):
        X, y = arrs[f"x_{part}"], arrs[f"y_{part}"]
        if X.ndim < 2 or y.shape != (X.shape[0],) or X.shape[0] == 0:
            raise ValueError(f"{fn}: {path}: x_{part} must be (n, ...) images and y_{part} "
                             f"n labels, got {X.shape} and {y.shape}")
        X = X.reshape(X.shape[0], -1).astype(float)
        if not np.all(np.isfinite(X)) or X.min() < 0 or X.max() > 255:
            raise ValueError(f"{fn}: {path}: x_{part} pixels must be in 0..255")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
            raise ValueError(f"{fn}: {path}: y_{part} must be integer labels 0..9")
        out += [X / 255.0, y.astype(np.int64)]
    if out[0].shape[1] != out[2].shape[1]:
        raise ValueError(f"{fn}: {path}: train and test images differ in size")
    return DigitsData(*out)


# ---------------------------------------------------------------------- task 1
@dataclass(frozen=True)
class Anchor:
    """The task-1 solution that task 2 is constrained to.

    Attributes
    ----------
    net : MLP
    theta : ndarray
        w₁*, the mean of all parameters over the window.
    pca : PCAResult
        PCA of the window's snapshots of *all* parameters (directions θ_i, σ_i²).
    fisher : ndarray
        Diagonal of the empirical Fisher information of task 1 at w₁* (for EWC).
    eps1 : float
        Task-1 test error at w₁*.
    train_loss : float
        Task-1 training loss at w₁*.
    """

    net: MLP
    theta: np.ndarray
    pca: PCAResult
    fisher: np.ndarray
    eps1: float
    train_loss: float


def _batches(rng, n, batch_size):
    """Minibatch index arrays: without replacement, reshuffled every epoch (n // B each)."""
    per_epoch = n // batch_size
    while True:
        perm = rng.permutation(n)
        for k in range(per_epoch):
            yield perm[k * batch_size:(k + 1) * batch_size]


def learn_task1(task: Task, *, hidden=(30, 30), lr: float = 0.05, batch_size: int = 32,
                iterations: int = 4000, window: int = 1000, snapshot_every: int = 2,
                seed=0, blas: int | None = 1) -> Anchor:
    """Train on task 1 by minibatch SGD and analyse the last ``window`` iterations.

    Parameters
    ----------
    task : Task
    hidden : tuple of int
        Hidden widths (the network is inputs–hidden–len(task.digits)).
    lr, batch_size, iterations
        SGD learning rate α, minibatch size B, parameter updates.
    window, snapshot_every
        The PCA window is the last ``window`` iterations, one snapshot of all
        parameters every ``snapshot_every`` iterations (≥ 3 snapshots).
    seed : int or SeedSequence
        Initialisation and minibatches (independent child streams).

    Returns
    -------
    Anchor
    """
    fn = "learn_task1"
    lr = _positive(fn, "lr", lr)
    batch_size = _count(fn, "batch_size", batch_size)
    iterations = _count(fn, "iterations", iterations, 2)
    window = _count(fn, "window", window, 2)
    snapshot_every = _count(fn, "snapshot_every", snapshot_every)
    if window > iterations or window // snapshot_every < 3:
        raise ValueError(f"{fn}: need window <= iterations and >= 3 snapshots, got window="
                         f"{window}, iterations={iterations}, snapshot_every={snapshot_every}")
    X, y = task.X_train, task.y_train
    if batch_size > len(y):
        raise ValueError(f"{fn}: batch_size {batch_size} exceeds the {len(y)} task-1 samples")
    net = MLP((X.shape[1], *hidden, len(task.digits)))
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    s_init, s_batch = ss.spawn(2)
    theta = net.init(np.random.default_rng(s_init))
    batches = _batches(np.random.default_rng(s_batch), len(y), batch_size)
    snaps = np.empty((window // snapshot_every, net.n_params))
    w_start, k = iterations - window, 0
    with blas_threads(blas):
        for it in range(iterations):
            idx = next(batches)
            theta = theta - lr * net.loss_grad(theta, X[idx], y[idx])[1]
            if it >= w_start and (it - w_start) % snapshot_every == snapshot_every - 1:
                snaps[k] = theta
                k += 1
        if not np.all(np.isfinite(snaps)):
            raise FloatingPointError(f"{fn}: SGD diverged (lr={lr}); lower lr")
        P = pca(snaps)
        w1 = P.mean
        return Anchor(net=net, theta=w1, pca=P, fisher=net.fisher_diagonal(w1, X, y),
                      eps1=net.error(w1, task.X_test, task.y_test),
                      train_loss=net.loss(w1, X, y))


# ---------------------------------------------------------------------- task 2
@dataclass(frozen=True)
class Constraint:
    """One way to learn task 2: ``kind`` "none", "ldc" or "ewc" with strength ``lam``.

    ``psi`` and ``n_c`` (the exponent ψ and the number N_c of constrained directions)
    matter for "ldc" only; ``lam_tilde`` = 10^ψ λ is the SI's normalised strength.
    """

    kind: str
    lam: float = 0.0
    psi: float = 4.0
    n_c: int = 0

    @property
    def lam_tilde(self) -> float:
        return 10.0 ** self.psi * self.lam

    def check(self, n_directions: int) -> None:
        fn = "Constraint"
        if self.kind not in KINDS:
            raise ValueError(f"{fn}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "none":
            return
        _positive(fn, "lam", self.lam)
        if self.kind == "ldc":
            _positive(fn, "psi", self.psi)
            if not 1 <= _count(fn, "n_c", self.n_c) <= n_directions:
                raise ValueError(f"{fn}: n_c must be in 1..{n_directions} (the PCA directions "
                                 f"of the task-1 window), got {self.n_c}")


def ldc_weights(variances, psi: float, n_c: int) -> np.ndarray:
    """F_i^(−2) = (σ_i²)^(2/ψ) for the first ``n_c`` directions, 0 beyond (SI S8)."""
    v = np.asarray(variances, dtype=float)
    if v.ndim != 1 or np.any(~np.isfinite(v)) or np.any(v < 0):
        raise ValueError("ldc_weights: variances must be a 1-D array of finite numbers >= 0")
    psi = _positive("ldc_weights", "psi", psi)
    if not 0 <= _count("ldc_weights", "n_c", n_c, 0) <= v.size:
        raise ValueError(f"ldc_weights: n_c must be in 0..{v.size}, got {n_c}")
    c = np.zeros_like(v)
    c[:n_c] = v[:n_c] ** (2.0 / psi)
    return c


class _Proximal:
    """Exact proximal steps of every member's penalty, grouped so one GEMM serves a group."""

    def __init__(self, anchor: Anchor, constraints, lr: float):
        P = anchor.pca
        self.w1 = anchor.theta
        self.ldc = {}                        # n_c -> (members, shrink factors (k, n_c))
        ewc, ewc_shrink = [], []
        for m, c in enumerate(constraints):
            if c.kind == "ldc":
                w = ldc_weights(P.variances, c.psi, c.n_c)[:c.n_c]
                self.ldc.setdefault(c.n_c, ([], []))
                self.ldc[c.n_c][0].append(m)
                self.ldc[c.n_c][1].append(1.0 - 1.0 / (1.0 + 2.0 * lr * c.lam * w))
            elif c.kind == "ewc":
                ewc.append(m)
                ewc_shrink.append(1.0 / (1.0 + 2.0 * lr * c.lam * anchor.fisher))
        self.ldc = {n: (np.array(ms), np.array(sh)) for n, (ms, sh) in sorted(self.ldc.items())}
        self.theta = {n: np.ascontiguousarray(P.directions[:n]) for n in self.ldc}
        self.ewc = (np.array(ewc, dtype=int),
                    np.array(ewc_shrink).reshape(len(ewc), anchor.theta.size))

    def apply(self, W: np.ndarray) -> None:
        """W[m] ← prox of member m's penalty at W[m], in place."""
        for n, (ms, shrink) in self.ldc.items():
            Th = self.theta[n]
            u = (W[ms] - self.w1) @ Th.T                 # (k, n_c) components along θ_i
            W[ms] -= (u * shrink) @ Th
        ms, shrink = self.ewc
        if ms.size:
            W[ms] = self.w1 + (W[ms] - self.w1) * shrink


def learn_task2(anchor: Anchor, task2: Task, constraints, *, tasks_test=(), lr: float = 0.05,
                batch_size: int = 32, iterations: int = 1000, seed=0,
                blas: int | None = 1) -> np.ndarray:
    """Learn task 2 from w₁* under each constraint; the test errors afterwards.

    Parameters
    ----------
    anchor : Anchor
        The task-1 solution (:func:`learn_task1`).
    task2 : Task
        Must have as many digits as task 1 (shared output head).
    constraints : sequence of Constraint
        One trained copy per constraint, all in lockstep on the same minibatches.
    tasks_test : sequence of Task
        Tasks whose test error is returned (typically ``(task1, task2)``).
    lr, batch_size, iterations
        SGD on task 2 (each step followed by the penalty's proximal step).
    seed : int or SeedSequence
        Minibatch sequence.

    Returns
    -------
    ndarray, shape (len(constraints), len(tasks_test))
        Test error of every trained copy on every task.
    """
    fn = "learn_task2"
    net = anchor.net
    constraints = list(constraints)
    if not constraints or not all(isinstance(c, Constraint) for c in constraints):
        raise ValueError(f"{fn}: constraints must be a non-empty list of Constraint")
    for c in constraints:
        c.check(anchor.pca.variances.size)
    if len(task2.digits) != net.sizes[-1] or task2.X_train.shape[1] != net.sizes[0]:
        raise ValueError(f"{fn}: task 2 must have {net.sizes[-1]} digits of "
                         f"{net.sizes[0]} pixels (the task-1 network)")
    lr = _positive(fn, "lr", lr)
    batch_size = _count(fn, "batch_size", batch_size)
    iterations = _count(fn, "iterations", iterations)
    X, y = task2.X_train, task2.y_train
    if batch_size > len(y):
        raise ValueError(f"{fn}: batch_size {batch_size} exceeds the {len(y)} task-2 samples")
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    batches = _batches(np.random.default_rng(ss.spawn(1)[0]), len(y), batch_size)
    W = np.tile(anchor.theta, (len(constraints), 1))
    prox = _Proximal(anchor, constraints, lr)
    with blas_threads(blas):
        for _ in range(iterations):
            idx = next(batches)
            Xb, yb = X[idx], y[idx]
            for m in range(W.shape[0]):
                W[m] -= lr * net.loss_grad(W[m], Xb, yb)[1]
            prox.apply(W)
        bad = np.flatnonzero(~np.all(np.isfinite(W), axis=1))
        if bad.size:
            raise FloatingPointError(f"{fn}: SGD diverged for {constraints[bad[0]]} "
                                     f"(lr={lr}); lower lr")
        return np.array([[net.error(w, t.X_test, t.y_test) for t in tasks_test] for w in W])


def error_summary(values) -> dict:
    """Mean, standard deviation (ddof 1), min and max over seeds, and the count."""
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else math.nan,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}
