"""Implementation of :mod:`fpsolve.variance_flatness` (analysis, network, trainers).

Import from :mod:`fpsolve.variance_flatness`; the split into submodules is internal.
"""
