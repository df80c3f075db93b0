"""Variance–flatness analysis of SGD (Feng & Tu, PNAS 2021, and its SI).

Analysis (arrays in, numbers out; numpy/scipy only):

* :func:`pca`, :class:`StreamingPCA` — principal directions p_i and variances σ_i² of
  the weight fluctuations in a window; :func:`accumulated_variance`,
  :func:`learning_dimension` (D_l, 99.9 % of the variance).
* :func:`flatness_1d`, :func:`flatness` — F_i, the width of the interval along p_i
  where the loss stays below e·L0, searched on both sides (left/right widths);
  :func:`quadratic_flatness`, :func:`log_quadratic_flatness` — exact values for a
  quadratic with an offset and for a log-quadratic profile.
* :func:`power_law_fit` — σ_i² ∝ F_i^(−ψ) with a bootstrap confidence interval.
* :func:`diffusion_and_correlation` — D_i, τ_i and c_i, G_i, S_i (SI Eqs. S15–S19).
* :class:`GradientOrderParameters`, :func:`gradient_order_parameters`,
  :func:`moving_average`, :func:`transition_time` — A_g(t), C_g(t) (Eqs. S2–S3).
* :func:`variance_flatness` — all of the above on one window.

Trainers:

* :func:`walkers_2d` — recorded 2-D SGD / Langevin walkers from :mod:`fpsolve.montecarlo`.
* :func:`train_digits` — a 64–30–30–10 network on scikit-learn's 8×8 digits by
  minibatch SGD, GD, GD + flatness-detecting noise or GD + isotropic noise of equal
  total strength (needs ``pip install 'fpsolve[digits]'``); :func:`sharpness`.

Experiments (what ``bench/variance_flatness.py`` runs; seeded, JSON-able dicts):
:func:`experiment_2d`, :func:`experiment_digits`, :func:`experiment_fdn`.

Catastrophic forgetting (SI S8–S9): :mod:`.ldc` — landscape-dependent constraints
from the PCA of the task-1 weight fluctuations, EWC, sequential tasks of digits
(:func:`make_task`, :func:`learn_task1`, :class:`Constraint`, :func:`learn_task2`,
:func:`load_mnist` for a local MNIST file); :func:`experiment_ldc` (the study ``ldc``).

This subpackage imports the models and the Monte Carlo module, never FE code.
(``fpsolve.variance_flatness`` is the same package.)
"""
from __future__ import annotations

from .analysis import (CorrelationResult, Flatness1D, FlatnessResult,
                          GradientOrderParameters, OrderParameters, PCAResult,
                          PowerLawFit, StreamingPCA, VarianceFlatness,
                          accumulated_variance, diffusion_and_correlation, flatness,
                          flatness_1d, gradient_order_parameters, learning_dimension,
                          log_quadratic_flatness, log_spaced_indices, moving_average, pca,
                          power_law_fit, quadratic_flatness, transition_time,
                          variance_flatness)
from .experiments import experiment_2d, experiment_digits, experiment_fdn
from .forgetting import experiment_ldc
from .ldc import Anchor, Constraint, Task, learn_task1, learn_task2, load_mnist, make_task
from .network import MLP
from .trainers import (METHODS, DigitsData, Trajectories2D, TrainingRun,
                          gd_noise, load_digits_data, sharpness, train_digits,
                          walkers_2d)

__all__ = ["CorrelationResult", "Flatness1D", "FlatnessResult", "GradientOrderParameters",
           "OrderParameters", "PCAResult", "PowerLawFit", "StreamingPCA",
           "VarianceFlatness", "accumulated_variance", "diffusion_and_correlation",
           "flatness", "flatness_1d", "gradient_order_parameters", "learning_dimension",
           "log_quadratic_flatness", "log_spaced_indices", "moving_average", "pca",
           "power_law_fit", "quadratic_flatness", "transition_time", "variance_flatness",
           "MLP", "METHODS", "DigitsData", "Trajectories2D", "TrainingRun",
           "load_digits_data", "sharpness", "train_digits", "walkers_2d", "gd_noise",
           "experiment_2d", "experiment_digits", "experiment_fdn", "experiment_ldc",
           "Anchor", "Constraint", "Task", "learn_task1", "learn_task2", "load_mnist",
           "make_task"]
