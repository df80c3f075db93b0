"""Result objects draw themselves: ``plot()`` returns labelled matplotlib Figures and
``_repr_html_`` shows the key numbers; ``import fpsolve`` still imports no matplotlib."""
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fpsolve as fp
from fpsolve import display


@pytest.fixture(scope="module")
def sol():
    L = fp.landscapes.paper(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)    # coarse mesh: negative mass
        return fp.solve(L, fp.diffusion.sgd(L, 0.012), fp.disk_mesh(2.0, 0.15), order=2)


@pytest.fixture(scope="module")
def flux(sol):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        return fp.flux(sol)


@pytest.fixture(scope="module")
def mc():
    L = fp.landscapes.quadratic([[1.0, 0.0], [0.0, 2.0]])
    return fp.montecarlo.langevin(L, fp.diffusion.isotropic(0.2), dt=0.01, n_walkers=512,
                                  n_steps=400, seed=3, bins=20, backend="numpy", workers=1)


def _labels(fig):
    return {(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes}


def test_import_fpsolve_imports_no_matplotlib():
    code = ("import sys, fpsolve; import fpsolve.fe.solution; "
            "assert 'matplotlib' not in sys.modules and 'fpsolve.display' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_solution_plot_returns_a_labelled_figure(sol):
    from matplotlib.figure import Figure
    fig = sol.plot()
    assert isinstance(fig, Figure)
    assert ("x", "y") in _labels(fig)
    assert any(ax.get_ylabel() == "∫P dy" for ax in fig.axes)       # x-marginal panel
    assert any(ax.get_ylabel() == "P(x, y)" for ax in fig.axes)      # colour bar
    assert "Delta_S" in fig.axes[1].get_title()


def test_flux_plot_returns_a_labelled_figure(flux):
    fig = flux.plot(title="flux")
    labels = {ax.get_ylabel() for ax in fig.axes}
    assert ("x", "y") in _labels(fig)
    assert {"stream function ψ", "|J| (projected)"} <= labels
    assert fig.get_suptitle() == "flux"


def test_montecarlo_plot_returns_a_labelled_figure(mc):
    fig = mc.plot()
    assert ("x", "y") in _labels(fig)
    assert ("x", "P(x) = ∫P dy") in _labels(fig) and ("y", "P(y) = ∫P dx") in _labels(fig)
    assert "512 walkers" in fig.get_suptitle()


def test_sweep_plot_shows_the_observables_against_delta_s():
    L = fp.landscapes.paper(eps=0.02, lam0=8.0, lam1=-2.0, lam2=1.0)
    prob = fp.Problem(L, fp.diffusion.sgd(L, 0.01), fp.disk_mesh(2.0, 0.2), order=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FPSolveWarning)
        sols = prob.sweep([0.009, 0.012])
    fig = display.plot_sweep(sols)
    axes = fig.axes
    assert [ax.get_xlabel() for ax in axes] == ["Δ_S"] * 3
    assert [ax.get_ylabel() for ax in axes] == ["second moments", "escape rate μ",
                                                "|x| of the x-marginal maximum"]
    assert axes[1].get_yscale() == "log"
    x, y = axes[0].lines[0].get_data()
    assert np.allclose(x, [0.009, 0.012])
    assert np.allclose(y, [s.expectation(lambda a, b: a * a) for s in sols])
    with pytest.raises(ValueError, match="values: expected 2 values"):
        display.plot_sweep(sols, values=[1.0])
    with pytest.raises(TypeError, match="sols: expected a Solution"):
        display.plot_sweep([sols[0], "x"])


def test_solution_html_shows_the_key_numbers(sol):
    h = sol._repr_html_()
    assert f"<td style='text-align:left'>{sol.diagnostics['dofs']}</td>" in h
    assert f"{sol.escape_rate:.6g}" in h
    assert f"{sol.diagnostics['negative_mass']:.6g}" in h
    assert f"{sol.expectation(lambda x, y: x * x):.6g}" in h and "⟨x²⟩" in h
    assert sol.error_estimate       # the solver's dual-weighted residual estimates
    for k, v in sol.error_estimate.items():
        assert f"<td style='text-align:left'>{v:.6g}</td>" in h
    assert "est. relative error of ⟨x²⟩" in h and "untrusted" in h


def test_flux_and_montecarlo_html(flux, mc):
    h = flux._repr_html_()
    assert f"{flux.diagnostics['psi_max_abs']:.6g}" in h and "cycles" in h
    h = mc._repr_html_()
    m = mc.moments()
    assert f"{m['cov'][0, 0]:.6g} ± {m['cov_se'][0, 0]:.2g}" in h
    assert f"{mc.escape_rate:.6g}" in h and "512 × 400" in h


def test_html_escapes_text(sol):
    assert "<script>" not in display._table("<script>", [("a", "<b>")])
    with pytest.raises(ValueError, match="kind: expected one of"):
        display.figure("nope", sol)


def test_sweep_plot_flags_untrusted_and_nonpositive_escape_rates():
    from matplotlib.figure import Figure
    ax = Figure().subplots()
    display._escape_panel(ax, [1, 2, 3, 4], [-1e-9, 1e-8, 1e-6, 1e-5], [True, True, False, False])
    labels = ax.get_legend_handles_labels()[1]
    assert "1 value(s) μ ≤ 0 not shown" in labels
    assert "μ untrusted (estimated error too large)" in labels
    flagged = [ln for ln in ax.lines if ln.get_label().startswith("μ untrusted")][0]
    assert list(flagged.get_xdata()) == [2]
    assert ax.get_yscale() == "log"


def test_html_of_an_evolve_snapshot_shows_time_and_survival():
    L = fp.landscapes.quadratic(0.5 * np.eye(2))
    ev = fp.evolve(L, fp.diffusion.isotropic(0.15), fp.disk_mesh(1.0, 0.2),
                   fp.gaussian([0.0, 0.0], 0.01 * np.eye(2)), [0.0, 1.0])
    h = ev[1]._repr_html_()
    assert "time t" in h and f"{ev.mass[1]:.6g}" in h and "survival S(t)" in h
