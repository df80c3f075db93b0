"""Time-dependent FPE (TR-BDF2), relaxation spectrum and mean exit times against exact answers."""
import numpy as np
import pytest
import scipy.sparse as sp

import fpsolve as fp
from fpsolve.fe.ordering import splu
from fpsolve.fe.timestep import TRBDF2
from fpsolve.theory.exact import (ou_spectrum, ou_transient, radial_ou_escape_rate,
                                  radial_ou_mfpt)

OU_A = np.array([[1.0, 0.3], [0.3, 2.0]])
OU_D = np.array([[0.10, 0.04], [0.04, 0.05]])
M0, S0 = np.array([0.5, -0.3]), 0.02 * np.eye(2)


@pytest.fixture(scope="module")
def ou_reflecting():
    return fp.Problem(fp.landscapes.quadratic(OU_A), fp.diffusion.constant(OU_D),
                      fp.disk_mesh(2.0, 0.15), boundary="reflecting", order=3)


# -- time stepping ----------------------------------------------------------------------
def test_trbdf2_step_is_third_order_locally_and_its_estimate_is_sharp():
    lam = np.array([1.0, 3.0])
    st = TRBDF2(sp.diags(lam), sp.identity(2))
    errs = []
    for h in (0.04, 0.02, 0.01):
        P, est = st.step(np.ones(2), h)
        err = P - np.exp(-lam * h)
        errs.append(np.abs(err).max())
        assert np.allclose(np.abs(est), np.abs(err), rtol=0.02)
    rates = np.log2(np.array(errs[:-1]) / errs[1:])
    assert np.all(np.abs(rates - 3) < 0.1), rates
    assert st.factorisations == 3


def test_trbdf2_is_l_stable():
    st = TRBDF2(sp.diags([1e8]), sp.identity(1))
    P, _ = st.step(np.ones(1), 1.0)
    assert abs(P[0]) < 1e-7          # the stiff mode is damped, not reflected


def test_ou_transient_matches_the_exact_gaussian():
    """Mean and covariance to 1e-6 relative (P3, h = 0.2; t = 2 is in docs/dynamics.md)."""
    times = [0.0, 0.25, 0.5, 1.0]
    ev = fp.evolve(fp.landscapes.quadratic(OU_A), fp.diffusion.constant(OU_D),
                   fp.disk_mesh(2.0, 0.2), fp.gaussian(M0, S0), times, order=3,
                   boundary="reflecting", tol=2e-8)
    assert np.allclose(ev.mass, 1.0, atol=1e-11)             # reflecting: conserved
    for i, t in enumerate(times):
        m, C = ou_transient(OU_A, OU_D, M0, S0, t)
        mo = ev[i].moments()
        assert np.abs(mo["mean"] - m).max() / np.abs(m).max() < 1e-6, t
        assert np.abs(mo["cov"] - C).max() / np.abs(C).max() < 1e-6, t
    assert ev.stats["factorisations"] < 25
    assert ev.stats["max_error"] <= 2e-8


def test_evolution_at_between_outputs_and_errors(ou_reflecting):
    ev = fp.fe.dynamics.evolve_problem(ou_reflecting, fp.gaussian(M0, S0), [0.2, 0.4], tol=1e-6)
    mid = ev.at(0.3).moments()
    m, C = ou_transient(OU_A, OU_D, M0, S0, 0.3)
    assert np.abs(mid["mean"] - m).max() < 1e-5
    assert ev.at(0.4).P is not None and ev.at(0.4).diagnostics["time"] == 0.4
    with pytest.raises(ValueError, match="before the first output"):
        ev.at(0.1)
    with pytest.raises(ValueError, match="times"):
        fp.fe.dynamics.evolve_problem(ou_reflecting, fp.gaussian(M0, S0), [0.4, 0.2])
    with pytest.raises(TypeError, match="p0"):
        fp.fe.dynamics.evolve_problem(ou_reflecting, 3.0, [0.2])
    with pytest.raises(ValueError, match="cov"):
        fp.gaussian([0, 0], [[1, 2], [2, 1]])


def test_survival_from_the_quasi_stationary_state_is_exponential():
    L = fp.landscapes.quadratic(np.eye(2))
    prob = fp.Problem(L, fp.diffusion.isotropic(0.1), fp.disk_mesh(1.0, 0.1),
                      boundary="absorbing", order=3)
    qsd = prob.solve()
    times = [0.0, 2.0, 5.0, 10.0]
    ev = fp.fe.dynamics.evolve_problem(prob, qsd, times, tol=1e-7)
    mu = qsd.escape_rate
    assert np.allclose(ev.mass, np.exp(-mu * np.array(times)), rtol=1e-6)
    assert np.allclose(ev.escape_rate, mu, rtol=1e-6)
    assert abs(mu / radial_ou_escape_rate(0.1) - 1) < 1e-4
    assert ev[3].mass == pytest.approx(1.0) and ev[3].diagnostics["survival"] < 0.6


def test_evolve_facade_absorbing_loses_mass():
    L = fp.landscapes.quadratic(np.eye(2))
    ev = fp.evolve(L, fp.diffusion.isotropic(0.2), fp.disk_mesh(1.0, 0.2),
                   fp.gaussian([0.3, 0.0], 0.01 * np.eye(2)), [0.5, 1.0], order=2, tol=1e-5)
    assert 0 < ev.mass[1] < ev.mass[0] < 1
    assert ev.escape_rate[1] > 0
    assert "Evolution(absorbing" in repr(ev)


# -- spectrum ---------------------------------------------------------------------------
def test_ou_spectrum_reflecting(ou_reflecting):
    spec = ou_reflecting.spectrum(6)
    exact = ou_spectrum(OU_A, 6)
    assert abs(spec.rates[0]) < 1e-10
    assert np.allclose(spec.rates[1:], exact[1:], rtol=1e-5, atol=0)
    assert spec.relaxation_time == pytest.approx(1 / exact[1].real, rel=1e-6)
    assert spec.frequency < 1e-8                              # gradient drift: real
    assert spec.modes.shape == (6, ou_reflecting.dofs)


def test_spectrum_of_a_rotating_drift_is_complex():
    B = np.array([[1.0, -2.0], [2.0, 1.0]])               # eig 1 ± 2i
    drift = lambda x, y: np.stack([-(B[0, 0] * x + B[0, 1] * y), -(B[1, 0] * x + B[1, 1] * y)])  # noqa: E731
    prob = fp.Problem(None, fp.diffusion.isotropic(0.05), fp.disk_mesh(1.5, 0.15),
                      boundary="reflecting", order=3, drift=drift)
    spec = prob.spectrum(4)          # the 4 nearest 0: 0, 1±2i, 2 (then 3±2i, 2±4i)
    exact = ou_spectrum(B, 4)
    assert np.allclose(np.sort_complex(spec.rates), np.sort_complex(exact), atol=1e-5)
    assert spec.frequency == pytest.approx(2.0, rel=1e-5)
    assert spec.relaxation_time == pytest.approx(1.0, rel=1e-5)


def test_absorbing_spectrum_starts_with_the_escape_rate():
    prob = fp.Problem(fp.landscapes.quadratic(np.eye(2)), fp.diffusion.isotropic(0.1),
                      fp.disk_mesh(1.0, 0.1), boundary="absorbing", order=3)
    spec = prob.spectrum(3)
    assert spec.rates[0].real == pytest.approx(prob.solve().escape_rate, rel=1e-8)
    assert np.all(spec.rates.real[1:] > spec.rates[0].real)
    with pytest.raises(ValueError, match="k"):
        prob.spectrum(0)
    assert spec.warnings == []


def test_unresolved_escape_rate_is_flagged():
    prob = fp.Problem(fp.landscapes.quadratic(np.eye(2)), fp.diffusion.isotropic(0.005),
                      fp.disk_mesh(1.0, 0.2), boundary="absorbing", order=2)
    spec = prob.spectrum(2)
    assert spec.rates[0].real < 0 and "not trustworthy" in spec.summary()["warnings"][0]


# -- mean first-passage time ------------------------------------------------------------
def _radial(delta, h):
    L = fp.landscapes.quadratic(np.eye(2))
    return fp.mfpt(L, fp.diffusion.isotropic(delta), fp.disk_mesh(1.0, h), order=3)


@pytest.mark.parametrize("delta, h, rtol", [(0.1, 0.05, 1e-4), (0.05, 0.05, 1e-4),
                                             (0.02, 0.025, 3e-4)])
def test_radial_mfpt_matches_ein(delta, h, rtol):
    T = _radial(delta, h)
    pts = np.array([[0.0, 0.0], [0.5, 0.0], [0.0, -0.8]])
    exact = radial_ou_mfpt(np.hypot(*pts.T), delta)
    assert np.all(np.abs(T(pts) / exact - 1) < rtol)
    assert T.escape_rate == pytest.approx(radial_ou_escape_rate(delta), rel=rtol)
    # the discrete identity μ · E_QSD[T] = 1
    assert T.escape_rate * T.mean_qsd == pytest.approx(1.0, rel=1e-12)
    assert T([5.0, 5.0]) == 0.0
    if delta == 0.05:       # the same μ as the quasi-stationary solver's
        assert T.escape_rate == pytest.approx(T.problem.solve().escape_rate, rel=1e-8)


def test_mfpt_keeps_relative_accuracy_where_a_direct_solve_fails():
    """δ = 0.01: T(0) = 5.3e19, μ = 1.9e-20 ≪ ε‖A‖.  The deflated solve is limited by the
    boundary layer (h = 0.025: 1.6 %); a plain LU solve of A_IIᵀ t = M1 is off by 1e5."""
    delta = 0.01
    T = _radial(delta, 0.025)
    exact = radial_ou_mfpt(0.0, delta)
    assert abs(T([0.0, 0.0]) / exact - 1) < 2e-2
    prob = T.problem
    A, M, I = prob.operator.A(), prob.operator.M, prob.interior_dofs
    direct = splu(A[I][:, I].T.tocsc()).solve(M[I][:, I] @ np.ones(len(I)))
    assert np.max(direct) / exact < 0.1


def test_peclet_graded_mesh_resolves_the_small_noise_exit_time():
    """δ = 0.02 from h = 0.1: uniform P3 is off by 21 %; grading to Péclet ≤ 1.5 gives
    T(0) and μ to 2e-4 (measured 1.1e-4), every element then within the bound."""
    from fpsolve.fe.adapt import element_peclet

    L, D, delta = fp.landscapes.quadratic(np.eye(2)), fp.diffusion.isotropic(0.02), 0.02
    T = fp.mfpt(L, D, fp.disk_mesh(1.0, 0.1), order=3, peclet=1.5)
    g = T.diagnostics["grading"]
    assert g["above_bound"] == 0 and g["levels"] >= 2 and g["max_peclet"] <= 1.5
    assert element_peclet(T).max() <= 1.5            # T carries mesh, landscape, D
    assert abs(T([0.0, 0.0]) / radial_ou_mfpt(0.0, delta) - 1) < 2e-4
    assert T.escape_rate == pytest.approx(radial_ou_escape_rate(delta), rel=2e-4)
    assert abs(_radial(delta, 0.1)([0.0, 0.0]) / radial_ou_mfpt(0.0, delta) - 1) > 0.1
    with pytest.raises(ValueError, match="peclet"):
        fp.mfpt(L, D, fp.disk_mesh(1.0, 0.1), peclet=0.0)


@pytest.mark.slow
def test_peclet_graded_mesh_at_delta_001():
    """δ = 0.01 (T(0) = 5.3e19): uniform h = 0.025 is off by 1.6e-2; Péclet ≤ 1.5 from
    h = 0.1 gives ≤ 1e-3 (measured 3.2e-4, 211k dofs)."""
    T = fp.mfpt(fp.landscapes.quadratic(np.eye(2)), fp.diffusion.isotropic(0.01),
                fp.disk_mesh(1.0, 0.1), order=3, peclet=1.5)
    assert abs(T([0.0, 0.0]) / radial_ou_mfpt(0.0, 0.01) - 1) < 1e-3
    assert T.escape_rate == pytest.approx(radial_ou_escape_rate(0.01), rel=1e-3)


@pytest.mark.slow
def test_mfpt_inverse_iteration_converges_in_the_layer_at_delta_0005():
    """δ = 0.005 (μ = 7.4e-42), Péclet ≤ 2 from h = 0.1 (387k dofs): a max-norm stop
    gave μ = 3.4e-35 after two steps; the componentwise residual stop gives 4.5e-3."""
    T = fp.mfpt(fp.landscapes.quadratic(np.eye(2)), fp.diffusion.isotropic(0.005),
                fp.disk_mesh(1.0, 0.1), order=3, peclet=2.0)
    assert T.escape_rate == pytest.approx(radial_ou_escape_rate(0.005), rel=1e-2)
    assert T([0.0, 0.0]) == pytest.approx(radial_ou_mfpt(0.0, 0.005), rel=1e-2)


def test_graded_mesh_flags_a_diffusion_that_vanishes_along_the_drift():
    from fpsolve.fe.mfpt import graded_mesh

    L = fp.landscapes.quadratic(np.eye(2))
    D = fp.diffusion.constant([[0.1, 0.0], [0.0, 0.0]])
    with pytest.warns(fp.FPSolveWarning, match="Péclet number above"):
        mesh, rec = graded_mesh(L, D, fp.disk_mesh(1.0, 0.3), 2.0, max_levels=2)
    assert rec["levels"] == 2 and rec["above_bound"] > 0


def test_mfpt_rejects_reflecting():
    prob = fp.Problem(fp.landscapes.quadratic(np.eye(2)), fp.diffusion.isotropic(0.1),
                      fp.disk_mesh(1.0, 0.2), boundary="reflecting", order=2)
    with pytest.raises(ValueError, match="absorbing"):
        fp.fe.mfpt.mfpt_problem(prob)


def test_exact_ou_references():
    import scipy.linalg as sl

    m, C = ou_transient(OU_A, OU_D, M0, S0, 0.0)
    assert np.allclose(m, M0) and np.allclose(C, S0)
    m, C = ou_transient(OU_A, OU_D, M0, S0, 50.0)
    assert np.allclose(m, 0, atol=1e-15)
    assert np.allclose(C, sl.solve_continuous_lyapunov(OU_A, 2 * OU_D))
    # d/dt Σ = −AΣ − ΣAᵀ + 2D (finite difference at t = 0.3)
    dt = 1e-6
    (_, Cp), (_, Cm) = (ou_transient(OU_A, OU_D, M0, S0, 0.3 + s) for s in (dt, -dt))
    _, C = ou_transient(OU_A, OU_D, M0, S0, 0.3)
    assert np.allclose((Cp - Cm) / (2 * dt), -OU_A @ C - C @ OU_A.T + 2 * OU_D, atol=1e-8)
    a = np.linalg.eigvalsh(OU_A)
    assert np.allclose(ou_spectrum(OU_A, 4), [0, a[0], 2 * a[0], a[1]])


def test_series_and_mfpt_export_read_back(tmp_path):
    import json

    import meshio

    L = fp.landscapes.quadratic(np.eye(2))
    ev = fp.evolve(L, fp.diffusion.isotropic(0.2), fp.disk_mesh(1.0, 0.25),
                   fp.gaussian([0.3, 0.0], 0.02 * np.eye(2)), [0.0, 0.5], order=2, tol=1e-4)
    pvd = fp.export_series(ev, tmp_path / "run.pvd")
    text = open(pvd).read()
    assert 'timestep="0.5"' in text and "run_0001.vtu" in text
    frame = meshio.read(tmp_path / "run_0001.vtu")
    assert np.allclose(frame.point_data["P"], ev[1].P)
    T = fp.mfpt(L, fp.diffusion.isotropic(0.2), fp.disk_mesh(1.0, 0.25), order=2)
    out = fp.export_field(T, tmp_path / "T.vtu")
    back = meshio.read(out)
    assert np.allclose(back.point_data["T"], T.T)
    params = json.loads(bytes(back.field_data["parameters_json"]).decode())
    assert params["escape_rate"] == pytest.approx(T.escape_rate)
    with pytest.raises(TypeError, match="evolution"):
        fp.export_series(T, tmp_path / "x.pvd")


# -- the study [time] section -----------------------------------------------------------
OU_TIME_STUDY = """
[landscape]
kind = "quadratic"
A = [[1.0, 0.3], [0.3, 2.0]]
[noise]
kind = "constant"
matrix = [[0.10, 0.04], [0.04, 0.05]]
[mesh]
h = 0.25
[solver]
order = 3
boundary = "reflecting"
[output]
figures = false
panel = false
flux = false
[time]
t_end = 1.0
n_out = 3
tol = 1e-7
initial_mean = [0.5, -0.3]
initial_cov = [[0.02, 0.0], [0.0, 0.02]]
spectrum = 4
"""


def test_progress_only_observes_the_integration():
    """progress=True (rich bar) and a callback give bit-identical results; the callback
    sees every accepted step, with a fraction that rises to 1 at the last output."""
    args = (fp.landscapes.quadratic(OU_A), fp.diffusion.constant(OU_D), fp.disk_mesh(2.0, 0.4),
            fp.gaussian(M0, S0), [0.1, 0.5, 1.0])
    kw = {"order": 3, "boundary": "absorbing", "tol": 1e-6}
    plain = fp.evolve(*args, **kw)
    calls = []
    seen = fp.evolve(*args, **kw, progress=lambda t, frac: calls.append((t, frac)))
    bar = fp.evolve(*args, **kw, progress=True)
    for ev in (seen, bar):
        assert np.array_equal(ev.P, plain.P) and np.array_equal(ev.mass, plain.mass)
        assert ev.stats["steps"] == plain.stats["steps"]
    t, frac = np.array(calls).T
    assert len(calls) == plain.stats["steps"] + 3          # steps, then one per output
    assert np.all(np.diff(t) >= 0) and np.all(np.diff(frac) >= 0)
    assert t[-1] == 1.0 and frac[-1] == 1.0 and 0 < frac[0] < 1 / 3
    assert np.isclose(frac[np.flatnonzero(t == 0.5)[0]], 2 / 3)   # interval 0.1-0.5 done
    with pytest.raises(TypeError, match="progress"):
        fp.evolve(*args, **kw, progress="yes")


def test_study_time_section_runs_spectrum_and_transient(tmp_path):
    from fpsolve.study import Reporter, load_study, run_study

    class Steps(Reporter):
        calls = []

        def time_step(self, case, t, fraction):
            self.calls.append((case, t, fraction))

    path = tmp_path / "ou_time.toml"
    path.write_text(OU_TIME_STUDY)
    res = run_study(load_study(str(path)), str(tmp_path / "out"), reporter=Steps())
    assert Steps.calls[-1] == ("ou_time", 1.0, 1.0)        # the study's progress hook
    assert len(Steps.calls) >= res.summary["cases"][0]["time"]["steps"]
    case = res.summary["cases"][0]
    assert np.allclose(case["spectrum"]["rates_real"][1:], ou_spectrum(OU_A, 4)[1:].real,
                       rtol=1e-4)
    tr = case["time"]
    assert tr["times"] == [0.0, 0.5, 1.0]
    for t, mean, cov in zip(tr["times"], tr["mean"], tr["cov"]):
        m, C = ou_transient(OU_A, OU_D, M0, S0, t)
        assert np.allclose(mean, m, atol=1e-5) and np.allclose(cov, C, atol=1e-5)
    assert tr["distance_to_stationary"][0] > tr["distance_to_stationary"][-1]
    assert (tmp_path / "out" / "vtk" / "ou_time_time.pvd").is_file()
    assert (tmp_path / "out" / "vtk" / "ou_time_time_0002.vtu").is_file()


@pytest.mark.parametrize("extra, message", [
    ("n_out = 3", "time.t_end: required"),
    ("t_end = 1.0\ntimes = [1.0]", "time.t_end: give either"),
    ("times = [0.0, 1.0, 0.5]", "time.times: expected increasing"),
    ("times = [0.5]\nspacing = \"log\"", "time.spacing: only with time.t_end"),
    ("t_end = -1.0", "time.t_end: expected a positive number"),
    ("t_end = 1.0\ninitial_cov = [[1.0, 2.0], [2.0, 1.0]]", "time.initial_cov"),
    ("t_end = 1.0\ntoll = 1e-6", "did you mean 'tol'"),
])
def test_study_time_section_errors_name_the_key(tmp_path, extra, message):
    from fpsolve.study import StudyError, load_study

    head = OU_TIME_STUDY.split("[time]")[0]
    path = tmp_path / "bad.toml"
    path.write_text(head + "[time]\n" + extra + "\n")
    with pytest.raises(StudyError, match=message) as exc:
        load_study(str(path))
    assert "\n" not in str(exc.value)


def test_study_time_section_of_an_adaptive_case_runs_on_the_adapted_mesh(tmp_path):
    """[solver] tol with [time]: spectrum and transient on the case's adapted mesh."""
    import meshio

    from fpsolve.study import load_study, run_study

    path = tmp_path / "ou_tol.toml"
    path.write_text(OU_TIME_STUDY.replace("h = 0.25", "h = 0.5").replace(
        'boundary = "reflecting"', 'boundary = "reflecting"\ntol = 1e-3'))
    res = run_study(load_study(str(path)), str(tmp_path / "out"))
    case = res.summary["cases"][0]
    levels = case["diagnostics"]["adapt"]
    assert len(levels) > 1 and case["dofs"] == levels[-1]["dofs"] and "adapted_mesh" in case
    assert np.allclose(case["spectrum"]["rates_real"][1:], ou_spectrum(OU_A, 4)[1:].real,
                       rtol=1e-3)
    tr = case["time"]
    for t, mean, cov in zip(tr["times"], tr["mean"], tr["cov"]):
        m, C = ou_transient(OU_A, OU_D, M0, S0, t)
        assert np.allclose(mean, m, atol=1e-4) and np.allclose(cov, C, atol=1e-4)
    frame = meshio.read(tmp_path / "out" / "vtk" / "ou_tol_time_0002.vtu")
    assert len(frame.points) == case["dofs"]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_graded_mesh_rejects_bad_max_levels(bad):
    from fpsolve.fe.mfpt import graded_mesh
    L = fp.landscapes.quadratic(np.eye(2))
    with pytest.raises(ValueError, match="max_levels: expected an integer >= 0"):
        graded_mesh(L, fp.diffusion.isotropic(0.1), fp.disk_mesh(1.0, 0.3), 1.5, max_levels=bad)
