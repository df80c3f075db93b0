"""FE ↔ Monte Carlo cross-check: extrapolation, exact OU agreement, planted failures, I/O."""
import copy
import json
import math

import numpy as np
import pytest
import scipy.linalg as sla

import fpsolve as fp
from fpsolve import compare

# Ornstein–Uhlenbeck: D does not commute with A, so the stationary current rotates
A_OU = np.array([[1.0, 0.3], [0.3, 0.5]])
D_OU = np.array([[0.05, -0.02], [-0.02, 0.02]])
# the disk is > 6 standard deviations wide: the absorbing wall is invisible (μ ~ 1e-7)
R_OU = 2.0
OU_RUN = dict(dts=(0.04, 0.02, 0.01), n_walkers=2048, block_size=64, t_sample=60.0,
              marginal_bins=48, current_bins=12)


def ou_exact():
    return sla.solve_continuous_lyapunov(A_OU, 2 * D_OU)


def em_exact(dt, A=A_OU, D=D_OU):
    """Stationary covariance of EM, θ ← (I − dt A) θ + √(2dt) B ξ."""
    return sla.solve_discrete_lyapunov(np.eye(2) - dt * A, 2 * dt * D)


@pytest.fixture(scope="module")
def ou_sol():
    return fp.solve(fp.landscapes.quadratic(A_OU), fp.diffusion.constant(D_OU),
                    fp.disk_mesh(R_OU, h=0.08))


@pytest.fixture(scope="module")
def ou_check(ou_sol):
    return compare.crosscheck(ou_sol, seed=11, **OU_RUN)


# ----------------------------------------------------------------- extrapolation
def test_extrapolation_recovers_a_planted_linear_bias_exactly():
    h = [0.004, 0.002, 0.001]
    y = 0.3 + 2.0 * np.array(h)
    for kw in ({}, {"se": [0.01, 0.02, 0.03]}, {"se": [0.01] * 3, "weighted": False}):
        ex = compare.extrapolate(h, y, **kw)
        assert ex.value == pytest.approx(0.3, abs=1e-13)
        assert ex.slope == pytest.approx(2.0, rel=1e-10)
        assert ex.dof == 1
    # vectors: one fit per trailing element, with the same h
    Y = 0.3 + np.outer(h, [1.0, -5.0, 0.0])
    ex = compare.extrapolate(h, Y, np.full_like(Y, 0.01), weighted=False)
    np.testing.assert_allclose(ex.value, 0.3, atol=1e-13)
    np.testing.assert_allclose(ex.slope, [1.0, -5.0, 0.0], atol=1e-9)
    assert ex.weights.shape == (3, 3)                 # equal weights: the same per column
    np.testing.assert_allclose(ex.weights, ex.weights[:, :1] * np.ones((1, 3)))
    np.testing.assert_allclose(ex.weights.sum(0), 1.0)
    # an escape rate with an O(√dt) monitoring bias in the exponent
    mu = 0.01 * np.exp(-3.0 * np.sqrt(h))
    ex = compare.extrapolate(h, mu, 0.01 * mu, power=0.5, log=True)
    assert ex.value == pytest.approx(0.01, rel=1e-12)
    assert ex.slope == pytest.approx(-3.0, rel=1e-10)
    assert ex.se == pytest.approx(ex.value * math.sqrt(np.sum(ex.weights ** 2 * 0.01 ** 2)),
                                  rel=1e-10)


def test_extrapolation_error_bar_and_fit_test_are_calibrated():
    rng = np.random.default_rng(3)
    h = np.array([0.004, 0.002, 0.001])
    se = np.array([0.02, 0.025, 0.03])
    n = 20000
    y = 1.0 + 10.0 * h[:, None] + se[:, None] * rng.standard_normal((3, n))
    for weighted in (True, False):
        ex = compare.extrapolate(h, y, np.broadcast_to(se[:, None], y.shape).copy(),
                                 weighted=weighted)
        pull = (ex.value - 1.0) / ex.se
        assert abs(pull.mean()) < 0.03 and abs(pull.std() - 1.0) < 0.03
        assert abs(np.mean(ex.p_value < 0.05) - 0.05) < 0.01      # χ² of the fit
    # a curved truth is rejected by the fit's p-value
    bent = 1.0 + 10.0 * h + 4e4 * h ** 2
    assert compare.extrapolate(h, bent, [1e-3] * 3).p_value < 1e-6


@pytest.mark.parametrize("kwargs, match", [
    (dict(h=[0.1, 0.1], values=[1, 2]), "h: values must be distinct"),
    (dict(h=[0.1], values=[1]), "h: expected at least 2"),
    (dict(h=[0.1, -0.2], values=[1, 2]), "h: expected positive"),
    (dict(h=[0.1, 0.2], values=[1, 2, 3]), "values: expected a leading axis"),
    (dict(h=[0.1, 0.2], values=[1, np.nan]), "values: must be finite"),
    (dict(h=[0.1, 0.2], values=[1, 2], se=[0.1]), "se: expected the shape"),
    (dict(h=[0.1, 0.2], values=[1, 2], se=[0.1, -1]), "se: standard errors"),
    (dict(h=[0.1, 0.2], values=[1, 2], se=[0.1, 0.0]), "se: weighted=True"),
    (dict(h=[0.1, 0.2], values=[1, 2], power=0), "power: expected a positive"),
    (dict(h=[0.1, 0.2], values=[1, -2], log=True), "values: log=True"),
])
def test_extrapolate_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare.extrapolate(**kwargs)


# --------------------------------------------------------------- relaxation times
def test_relaxation_times_of_ou_are_sums_of_eigenvalues_of_A(ou_sol):
    """The OU Fokker–Planck operator has eigenvalues n1 a1 + n2 a2 (a_i those of A), for
    any D; parity (−1)^(n1+n2)."""
    a1, a2 = np.linalg.eigvalsh(A_OU)
    rt = compare.relaxation_times(ou_sol, k=5)
    np.testing.assert_allclose(rt["rates"], [a1, 2 * a1, 3 * a1, a2], rtol=2e-3)
    np.testing.assert_allclose(rt["parity"], [-1, 1, -1, -1], atol=1e-3)
    assert rt["tau_slowest"] == pytest.approx(1 / a1, rel=2e-3)
    assert rt["tau_even"] == pytest.approx(1 / (2 * a1), rel=2e-3)
    assert rt["density_parity"] == pytest.approx(1.0, abs=1e-6)
    # a fixed ARPACK start vector: the default burn-in derived from it is reproducible
    assert compare.relaxation_times(ou_sol, k=5) == rt


# ------------------------------------------------------------- the OU cross-check
def test_ou_crosscheck_agrees_with_fe_and_with_the_exact_solution(ou_sol, ou_check):
    cc = ou_check
    S = ou_exact()
    for q in ("<x^2>", "<y^2>", "<|x|>", "mode |x|", "marginal L1", "J chi2/bin", "J scale"):
        assert cc.agreement[q]["ok"], (q, cc.agreement[q])
    # μ·(walker time) ≈ 0.1: no exits expected, and the table says the rate is untestable
    assert cc.agreement["escape rate"]["ok"] is None
    assert "unobservable" in cc.agreement["escape rate"]["statistic_text"]
    # the dt → 0 values agree with the exact Gaussian, not only with FE
    for k, i in (("x2", 0), ("y2", 1)):
        e = cc.em0[k]
        assert abs(e["value"] - S[i, i]) < 4 * e["se"], (k, e, S[i, i])
        assert abs(cc.fe[k] - S[i, i]) < 1e-4 * S[i, i]
    absx = math.sqrt(2 * S[0, 0] / math.pi)                 # E|x| of N(0, S_xx)
    assert abs(cc.em0["absx"]["value"] - absx) < 4 * cc.em0["absx"]["se"]
    # every run reproduces EM's own exact stationary covariance at its dt
    for r in cc.runs:
        Sdt = em_exact(r["step"])
        for k, i in (("x2", 0), ("y2", 1)):
            assert abs(r[k][0] - Sdt[i, i]) < 4 * r[k][1], (r["step"], k, r[k], Sdt[i, i])
        assert max(abs(z) for z in r["stationarity"].values()) < 4
    # the marginal L1 is what MC noise gives: below the null's 99th percentile region
    m = cc.em0["marginal"]
    assert m["p_value"] >= compare.P_LIMIT and m["l1"] < 2 * m["noise"]
    # the rotating current is seen in many bins, with the right amplitude
    c = cc.em0["current"]
    assert c["n"] >= 15 and abs(c["scale"] - 1) < 4 * c["scale_se"]
    # burn-in from the FE spectrum: 10 × the slowest mode a symmetric start excites
    assert cc.config["t_burn"] == pytest.approx(10 / (2 * np.linalg.eigvalsh(A_OU)[0]),
                                                rel=2e-3)
    assert cc.ok and cc.notes == []


def test_crosscheck_flags_a_wrong_fe_density(ou_sol):
    """An FE density for 1.15 D, labelled with D: the MC (which simulates D) must differ."""
    wrong = fp.solve(fp.landscapes.quadratic(A_OU), fp.diffusion.constant(1.15 * D_OU),
                     fp.disk_mesh(R_OU, h=0.08))
    bad = copy.copy(wrong)
    bad.diffusion = ou_sol.diffusion
    cc = compare.crosscheck(bad, seed=12, spectrum=False, t_burn=14.0, t_warm=7.0,
                            **{**OU_RUN, "dts": (0.02, 0.01)})
    for q in ("<x^2>", "<y^2>", "<|x|>", "marginal L1"):
        assert cc.agreement[q]["ok"] is False, (q, cc.agreement[q])
    assert not cc.ok and "DIFFER" in cc.to_markdown()


@pytest.mark.filterwarnings("ignore:escape rate from the eigenvalue:fpsolve.FPSolveWarning")
def test_sgd_rows_show_the_exact_finite_eta_bias():
    """SGD on a quadratic: the stationary covariance at learning rate η is the discrete
    Lyapunov solution with noise 2σ η² A² — a bias that the table resolves and that
    shrinks linearly with η."""
    A = np.diag([1.0, 4.0])
    L = fp.landscapes.quadratic(A)
    ds = 0.004
    sol = fp.solve(L, fp.diffusion.sgd(L, ds), fp.disk_mesh(1.5, h=0.07))
    cc = compare.crosscheck(sol, dts=(0.02, 0.01), etas=(0.08, 0.04, 0.02), n_walkers=2048,
                            block_size=64, t_sample=40.0, seed=5, marginal_bins=40,
                            current_bins=10)
    assert [r["step"] for r in cc.sgd_runs] == [0.08, 0.04, 0.02]
    for r in cc.sgd_runs:
        Seta = em_exact(r["step"], A, ds * A @ A)
        assert abs(r["y2"][0] - Seta[1, 1]) < 4 * r["y2"][1]
    big = cc.sgd_runs[0]
    assert (big["y2"][0] - cc.fe["y2"]) > 8 * big["y2"][1]       # a resolved η bias ...
    assert abs(cc.sgd0["y2"]["value"] - cc.fe["y2"]) < 4 * cc.sgd0["y2"]["se"] + 0.01 * cc.fe["y2"]
    assert cc.agreement["<y^2>"]["ok"] and cc.agreement["<x^2>"]["ok"]
    md = cc.to_markdown()
    assert "SGD η=0.08" in md and "SGD η→0 (line)" in md


# ------------------------------------------------------------------- outputs
def test_json_and_markdown_round_trip(ou_check, tmp_path):
    cc = ou_check
    path = tmp_path / "cc.json"
    text = cc.to_json(str(path))
    d = json.loads(path.read_text())
    assert d == json.loads(text)
    assert [row["quantity"] for row in d["table"]] == list(compare.ROWS)
    assert len(d["runs"]) == 3 and all(len(row["em"]) == 3 for row in d["table"])
    assert d["table"][0]["fe"]["value"] == pytest.approx(cc.fe["x2"])
    assert d["agreement"]["<x^2>"]["ok"] is True
    # NaN becomes null (an unobservable escape rate has no standard error)
    assert d["runs"][0]["escape_rate"] == 0.0 and "NaN" not in text
    full = json.loads(cc.to_json(arrays=True))
    assert len(full["arrays"]["fe_marginal"]) == OU_RUN["marginal_bins"]
    assert np.array(full["arrays"]["em0_current"]).shape == (2, 12, 12)
    md = cc.to_markdown().splitlines()
    header = md[0].split(" | ")
    assert header[0] == "| quantity" and "EM dt→0" in md[0] and "EM dt=0.04" in md[0]
    assert md[1].count("---") == len(header)
    body = [ln for ln in md[2:] if ln.startswith("| ")]
    assert len(body) == len(compare.ROWS)
    assert all(ln.count(" | ") == len(header) - 1 for ln in body)
    assert body[0].startswith("| <x^2> | 0.06634")
    assert "burn-in" in md[-1]
    # JSON -> CrossCheck -> the same table (what bench/crosscheck.py --from-json does)
    back = compare.CrossCheck.from_dict(full)
    assert back.to_markdown() == cc.to_markdown() and back.ok == cc.ok
    assert back.to_dict()["table"] == d["table"]
    with pytest.raises(ValueError, match="d: not a CrossCheck"):
        compare.CrossCheck.from_dict({"label": "x"})


def test_figure_is_written(ou_check, tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = ou_check.plot(str(tmp_path / "cc.png"))
    assert (tmp_path / "cc.png").stat().st_size > 20000
    assert len(fig.axes) >= 4
    plt.close(fig)
    # ... also from a CrossCheck rebuilt from JSON with arrays, not without
    back = compare.CrossCheck.from_dict(json.loads(ou_check.to_json(arrays=True)))
    plt.close(back.plot(str(tmp_path / "again.png")))
    assert (tmp_path / "again.png").stat().st_size > 20000
    with pytest.raises(ValueError, match="arrays"):
        compare.CrossCheck.from_dict(ou_check.to_dict()).to_dict(arrays=True)


def test_same_seed_same_result(ou_sol):
    kw = dict(dts=(0.02, 0.01), n_walkers=256, block_size=32, t_sample=5.0, t_burn=3.0,
              t_warm=2.0, spectrum=False, marginal_bins=24, current_bins=6, workers=2)
    a = compare.crosscheck(ou_sol, seed=np.random.SeedSequence(4), **kw).to_dict()
    b = compare.crosscheck(ou_sol, seed=np.random.SeedSequence(4), **{**kw, "workers": 1})
    b = b.to_dict()
    for d in (a, b):
        d["config"].pop("seconds")
        for r in d["runs"]:
            r.pop("seconds")
    assert a == b


# -------------------------------------------------------------------- arguments
@pytest.mark.filterwarnings("ignore:negative mass:fpsolve.FPSolveWarning")
def test_bad_arguments_raise_errors_naming_the_argument(ou_sol):
    refl = fp.solve(fp.landscapes.quadratic(A_OU), fp.diffusion.constant(D_OU),
                    fp.disk_mesh(R_OU, h=0.2), boundary="reflecting")
    quick = dict(spectrum=False, t_burn=1.0, t_warm=1.0, t_sample=1.0, n_walkers=256,
                 block_size=32)
    with pytest.raises(TypeError, match="sol: expected a fpsolve Solution"):
        compare.crosscheck("not a solution")
    with pytest.raises(ValueError, match="sol: .*absorbing"):
        compare.crosscheck(refl, **quick)
    with pytest.raises(ValueError, match="dts: expected at least 2"):
        compare.crosscheck(ou_sol, dts=(0.01,), **quick)
    with pytest.raises(ValueError, match="dts: expected positive"):
        compare.crosscheck(ou_sol, dts=(0.01, 0), **quick)
    with pytest.raises(ValueError, match="etas: SGD runs need the SGD diffusion model"):
        compare.crosscheck(ou_sol, etas=(0.01, 0.02), **quick)
    with pytest.raises(ValueError, match="etas: expected 'auto'"):
        compare.crosscheck(ou_sol, etas="all", **quick)
    with pytest.raises(ValueError, match="n_walkers: .*at least 4"):
        compare.crosscheck(ou_sol, **{**quick, "n_walkers": 64})
    with pytest.raises(ValueError, match="t_burn: give t_burn"):
        compare.crosscheck(ou_sol, spectrum=False)
    with pytest.raises(ValueError, match="seed: expected"):
        compare.crosscheck(ou_sol, seed=-1, **quick)
    with pytest.raises(ValueError, match="current_bins"):
        compare.crosscheck(ou_sol, current_bins=(4, 4, 4), **quick)
    with pytest.raises(TypeError, match="coarse: expected"):
        compare.crosscheck(ou_sol, coarse=3, **quick)
    with pytest.raises(TypeError, match="sol: expected"):
        compare.relaxation_times(None)
    with pytest.raises(ValueError, match="spectrum: a dict must come from relaxation_times"):
        compare.crosscheck(ou_sol, spectrum={"tau_slowest": 1.0})
    with pytest.raises(TypeError, match="spectrum: expected"):
        compare.crosscheck(ou_sol, spectrum="yes")


def test_module_is_exported():
    assert fp.compare is compare and "compare" in fp.__all__


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::fpsolve.FPSolveWarning")
def test_paper_landscape_escape_case_agrees_and_shows_the_sgd_bias():
    """Δ_S = 0.012 on a disk of radius 1.3: μ ≈ 4e-3 is measurable; FE and EM(dt → 0) agree
    on moments, marginal, current and escape rate, and SGD at η = 0.01 is visibly off."""
    L = fp.landscapes.paper()
    D = fp.diffusion.sgd(L, 0.012)
    sol = fp.solve(L, D, fp.disk_mesh(1.3, h=0.04))
    cc = compare.crosscheck(sol, dts=(2e-3, 1e-3, 5e-4), etas=(0.02, 0.01), n_walkers=2048,
                            block_size=64, t_sample=100.0, seed=3, current_bins=24)
    assert cc.ok, cc.summary()
    assert cc.agreement["escape rate"]["ok"] and "z" in cc.agreement["escape rate"]
    # the discrete-monitoring bias is resolved: the smallest step still sees too few exits
    small = min(cc.em_runs, key=lambda r: r["step"])
    assert (cc.fe["escape_rate"] - small["escape_rate"]) > 3 * small["escape_rate_se"]
    eta01 = next(r for r in cc.sgd_runs if r["step"] == 0.01)
    assert eta01["x2"][0] / cc.fe["x2"] - 1 > 0.1
