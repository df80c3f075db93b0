"""Adaptive studies ([solver] tol, issue 17): every output on the adapted mesh."""
import os

import numpy as np
import pytest

import fpsolve as fp
from fpsolve.study import load_study, run_study
from study_helpers import (HAVE_FLUX, HAVE_IO, HAVE_PLOT, STUDIES, assert_same_files,
                           write)

ADAPTIVE = """
[landscape]
kind = "quadratic"
A = [[1.0, 0.3], [0.3, 2.0]]
[noise]
kind = "constant"
matrix = [[0.10, 0.04], [0.04, 0.05]]
[mesh]
radius = 1.5
h = 0.5
[solver]
order = 2
tol = 1e-3
[[case]]
name = "a"
[[case]]
name = "b"
noise.matrix = [[0.12, 0.0], [0.0, 0.05]]
"""


@pytest.mark.skipif(not (HAVE_PLOT and HAVE_IO and HAVE_FLUX), reason="plot/io/flux missing")
def test_adaptive_study_writes_every_output_on_the_adapted_mesh(tmp_path):
    """A tol study: the adapted mesh is stored with the coefficients in cases/, the .vtu
    holds the adapted mesh's dofs, figures and panel are drawn from it in this process and
    by the renderer (the same bytes), and a rerun reuses every case."""
    import meshio

    from fpsolve.fe.assembly import make_basis
    from fpsolve.study.build import case_mesh

    path = write(tmp_path, ADAPTIVE, "adaptive.toml")
    study = load_study(path)
    coarse = fp.disk_mesh(1.5, 0.5)
    runs = {}
    for background in (False, True):
        out = tmp_path / f"out-{background}"
        res = run_study(load_study(path), str(out), background=background)
        runs[background] = out
        assert res.computed == ["a", "b"] and res.summary["panel"] == "panel.png"
        for c, case in zip(res.summary["cases"], study.cases):
            am = c["adapted_mesh"]
            with np.load(out / am["file"]) as z:
                P = z["P"]
                mesh = case_mesh(case.config["mesh"], z)
            basis = make_basis(mesh, 2)
            assert mesh.nvertices == am["vertices"] > coarse.nvertices
            assert mesh.radius == 1.5 and basis.N == P.size == c["dofs"]
            assert c["dofs"] == c["diagnostics"]["adapt"][-1]["dofs"]
            vtu = meshio.read(out / "vtk" / f"{c['name']}.vtu")
            assert len(vtu.points) == basis.N
            np.testing.assert_allclose(vtu.points[:, :2], basis.doflocs.T, atol=1e-12)
            for name, v in vtu.point_data.items():
                assert np.all(np.isfinite(v)), name
            np.testing.assert_allclose(vtu.point_data["P"], P, rtol=1e-12, atol=1e-300)
            assert os.path.isfile(out / "figures" / f"{c['name']}.png")
            fl = c["flux"]["diagnostics"]     # the flux of the adapted solution
            assert fl["outflow_residual"] == pytest.approx(c["escape_rate"], rel=1e-9)
            assert len(c["cycles"]) == 1          # the OU current's one cycle
    assert_same_files(runs[False], runs[True], ["vtk/a.vtu", "vtk/b.vtu", "figures/a.png",
                                                 "figures/b.png", "panel.png"])
    # a rerun reuses both cases; a lost panel is redrawn from the stored meshes
    out = runs[True]
    panel = (out / "panel.png").read_bytes()
    os.remove(out / "panel.png")
    res = run_study(load_study(path), str(out))
    assert res.reused == ["a", "b"] and res.computed == []
    assert (out / "panel.png").read_bytes() == panel


@pytest.mark.slow
@pytest.mark.skipif(not (HAVE_PLOT and HAVE_IO and HAVE_FLUX), reason="plot/io/flux missing")
def test_small_noise_study_writes_everything_on_the_adapted_meshes(tmp_path):
    """studies/small_noise.toml end to end (about 5 minutes): every case on its adapted
    mesh (.vtu point count = its dofs, fields finite), figures and panel; a goal missed
    within max_dofs is flagged (untrusted, a warning), never returned as converged."""
    import meshio

    study = load_study(os.path.join(STUDIES, "small_noise.toml"))
    out = tmp_path / "out"
    res = run_study(study, str(out))
    assert res.computed == ["ds-0.004", "ds-0.002"] and res.summary["panel"] == "panel.png"
    for c in res.summary["cases"]:
        d, est = c["diagnostics"], c["error_estimate"]
        assert c["dofs"] == c["adapt"][-1]["dofs"] <= 300000
        assert c["adapted_mesh"]["file"] == f"cases/{c['name']}.npz"
        vtu = meshio.read(out / "vtk" / f"{c['name']}.vtu")
        assert len(vtu.points) == c["dofs"]
        assert all(np.all(np.isfinite(v)) for v in vtu.point_data.values())
        assert os.path.isfile(out / "figures" / f"{c['name']}.png")
        missed = [g for g in ("x2", "escape_rate") if not (est[g] is not None and est[g] <= 1e-3)]
        assert d["adapt_converged"] is (not missed and c["negative_mass"] <= 1e-8)
        if missed or not c["escape_rate"] > 0:
            assert d["untrusted"] is True
            assert any("not reached" in w or "not positive" in w for w in c["warnings"])
    res = run_study(load_study(os.path.join(STUDIES, "small_noise.toml")), str(out))
    assert res.reused == ["ds-0.004", "ds-0.002"]

