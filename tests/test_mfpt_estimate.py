"""The mean exit time's error estimate (T_k against T_{k+1} on the same mesh) against the
exact radial OU exit time T(0) = ½ Ein(R²/2δ): honest where the boundary layer is
resolved, unknown (inf) and warned about where it is not (redteam F4: T(0) 250× too
small came back without a word)."""
import warnings

import numpy as np
import pytest

import fpsolve as fp
from fpsolve.theory.exact import radial_ou_mfpt

RADIAL = fp.landscapes.quadratic(np.eye(2))


def _mfpt(delta, R, order, h, **kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        T = fp.mfpt(RADIAL, fp.diffusion.isotropic(delta), fp.disk_mesh(R, h), order=order, **kw)
    err = abs(T([[0.0, 0.0]])[0] / float(radial_ou_mfpt(0.0, delta, R)) - 1)
    return T, err, [str(w.message) for w in rec if issubclass(w.category, fp.FPSolveWarning)]


@pytest.mark.parametrize("delta, R, order, h", [(0.1, 1.0, 2, 0.2), (1.0, 0.5, 3, 0.25),
                                                (1.0, 0.5, 1, 0.2), (0.05, 1.0, 3, 0.1)])
def test_estimate_is_honest_where_the_layer_is_resolved(delta, R, order, h):
    T, err, msgs = _mfpt(delta, R, order, h)
    assert err > 1e-6                                   # measurable: the test can fail
    assert 0.5 * err <= T.error_estimate["T_center"] <= 10 * err
    assert set(T.error_estimate) == {"T_center", "T_max", "mean_qsd", "escape_rate", "T_L1"}
    assert T.summary()["error_estimate"] == T.error_estimate
    assert T.diagnostics["untrusted"] == (max(T.error_estimate.values()) > 0.1)
    assert bool(msgs) == T.diagnostics["untrusted"]


@pytest.mark.parametrize("weighting", ["none", "gibbs"])
def test_an_unresolved_layer_is_flagged(weighting):
    # δ = 0.02, P3 on h = 0.1: T(0) 21 % (plain) and 6 % (Gibbs) low; the layer's cell
    # Péclet number is 5, where T_k and T_{k+1} can be wrong alike
    T, err, msgs = _mfpt(0.02, 1.0, 3, 0.1, weighting=weighting)
    assert err > 0.05
    assert T.diagnostics["untrusted"] and all(np.isinf(list(T.error_estimate.values())))
    assert "not resolved" in T.diagnostics["estimate"]["skipped"]
    assert any("not known to 10 %" in m for m in msgs)


def test_estimate_can_be_skipped():
    T, _, msgs = _mfpt(0.1, 1.0, 2, 0.2, estimate=False)
    assert T.error_estimate == {} and "untrusted" not in T.diagnostics and not msgs
