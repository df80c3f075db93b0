"""Running a study: the outputs it writes, reruns that reuse cases, failures, assembly
reuse in a sweep, atomic files, and the OU study against its exact covariance.

Meshes are coarse (h = 0.25–0.5) so that runs take a fraction of a second; the
negative-mass warnings such meshes produce are part of what is checked.
"""
import json
import os
import re

import numpy as np
import pytest
import scipy.linalg as sl

import fpsolve as fp
from fpsolve.study import Reporter, StudyError, StudyRunError, load_study, run_study
from fpsolve.study.outputs import atomic_path, atomic_write, remove_stale_temporaries
from study_helpers import (FAST, HAVE_FLUX, HAVE_IO, HAVE_PLOT, PANEL_ROWS, STUDIES, files,
                           write)



def test_ou_study_matches_the_lyapunov_covariance(tmp_path):
    """studies/ou.toml on the shipped mesh file against its exact answer."""
    study = load_study(os.path.join(STUDIES, "ou.toml"))
    res = run_study(study, str(tmp_path / "ou"))
    (c,) = res.summary["cases"]
    A = np.array(c["parameters"]["landscape"]["A"])
    D = np.array(c["parameters"]["noise"]["matrix"])
    S = sl.solve_continuous_lyapunov(A, 2 * D)
    assert np.max(np.abs(np.array(c["cov"]) - S)) / np.max(np.abs(S)) < 1e-4
    assert np.max(np.abs(c["mean"])) < 1e-6
    # the exact values quoted in the description
    assert "[[0.0955497, 0.0148342], [0.0148342, 0.0227749]]" in study.description
    assert np.allclose(S, [[0.0955497, 0.0148342], [0.0148342, 0.0227749]], atol=1e-7)
    if HAVE_FLUX:
        # one rotating cycle around the origin; exact J = −(Aθ − D S⁻¹θ) P, and its
        # circulation is the current through the ray from the centre, ∫ J_y dx on y = 0
        (cyc,) = c["cycles"]
        assert np.hypot(*cyc["center"]) < 0.05
        x = np.linspace(0.0, 2.0, 4001)
        th = np.stack([x, 0 * x])
        P = np.exp(-0.5 * np.einsum("in,ij,jn->n", th, np.linalg.inv(S), th)) / (
            2 * np.pi * np.sqrt(np.linalg.det(S)))
        J = -(A @ th - D @ np.linalg.solve(S, th)) * P
        current = np.trapezoid(J[1], x)
        assert cyc["sense"] == ("ccw" if current > 0 else "cw")
        assert abs(abs(cyc["circulation"]) - abs(current)) < 1e-3 * abs(current)


# -- planning: one assembly per group ------------------------------------------------------

def test_sweep_reuses_one_assembly(tmp_path, monkeypatch):
    """A Δ_S sweep builds one Problem and calls solve(Δ_S) for each value."""
    import fpsolve.study.tasks as tasks
    made, solved = [], []

    class Spy(fp.Problem):
        def __init__(self, *a, **k):
            made.append(1)
            super().__init__(*a, **k)

        def solve(self, strength=None):
            solved.append(strength)
            return super().solve(strength)

    monkeypatch.setattr(tasks, "Problem", Spy)
    path = write(tmp_path, """
        [noise]
        delta_s = 0.01
        [mesh]
        h = 0.3
        [sweep]
        parameter = "noise.delta_s"
        values = [0.008, 0.01, 0.012]
        [output]
        flux = false
        figures = false
        panel = false
    """)
    res = run_study(load_study(path), str(tmp_path / "o"))
    assert len(made) == 1 and solved == [0.008, 0.01, 0.012]
    (sw,) = res.summary["sweeps"]
    assert sw["parameter"] == "noise.delta_s" and sw["values"] == [0.008, 0.01, 0.012]
    assert sw["cases"] == ["delta_s=0.008", "delta_s=0.01", "delta_s=0.012"]
    assert os.path.isfile(tmp_path / "o" / sw["plot"])
    if HAVE_IO:
        pvd = (tmp_path / "o" / sw["pvd"]).read_text()
        for name in sw["cases"]:
            assert f"{name}.vtu" in pvd
    # the same study solved case by case gives the same numbers
    fresh = [fp.solve(fp.landscapes.paper(), fp.diffusion.sgd(fp.landscapes.paper(), d),
                      fp.disk_mesh(2.0, 0.3)).moments()["cov"][0, 0] for d in sw["values"]]
    assert np.allclose([c["cov"][0][0] for c in res.summary["cases"]], fresh, rtol=1e-12)


# -- the runner ------------------------------------------------------------------------------

class Recorder(Reporter):
    def __init__(self):
        self.events = []

    def start(self, study, total, reused, tasks, workers):
        self.events.append(("start", total, reused, tasks))

    def case_finished(self, outcome):
        self.events.append(("case", outcome["name"], outcome["reused"]))

    def warning(self, case, message):
        self.events.append(("warning", case, message))

    def note(self, message):
        self.events.append(("note", message))


def test_run_writes_everything(tmp_path, four_study):
    path = four_study(output=PANEL_ROWS)
    rec = Recorder()
    res = run_study(load_study(path), str(tmp_path / "out"), reporter=rec, command="fpsolve run x")
    out = tmp_path / "out"
    s = json.loads((out / "summary.json").read_text())
    assert s == res.summary
    assert [c["name"] for c in s["cases"]] == ["a", "b", "c", "d"]
    for c in s["cases"]:
        for key in ("name", "parameters", "dofs", "escape_rate", "mean", "cov", "mode",
                    "marginal_mode_x", "cycles", "residual", "negative_mass", "runtime_s",
                    "warnings", "config_hash"):
            assert key in c, key
        assert len(c["mode"]) == 2 and len(c["cov"]) == 2
        assert c["escape_rate"] > 0 and c["runtime_s"] > 0
        if HAVE_FLUX:     # cycles themselves are checked on the OU study
            assert isinstance(c["cycles"], list) and "cycles" in c["flux"]
    # the coarse mesh triggers the solver's negative-mass warning: it is recorded
    warned = [c for c in s["cases"] if c["warnings"]]
    assert any("negative mass" in w for c in warned for w in c["warnings"])
    assert {e[1] for e in rec.events if e[0] == "warning"} == {c["name"] for c in warned}
    assert [e for e in rec.events if e[0] == "case"] == [("case", n, False) for n in "abcd"] \
        or sorted(e[1] for e in rec.events if e[0] == "case") == list("abcd")
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["fpsolve"] == fp.__version__ and prov["command"] == "fpsolve run x"
    assert prov["config_hash"] == s["config_hash"]
    assert {"numpy", "scipy", "scikit-fem", "meshio"} <= set(prov["dependencies"])
    assert prov["dependencies"]["numpy"] == np.__version__
    assert re.match(r"\d{4}-\d\d-\d\dT", prov["date"])
    assert (out / "four.toml").read_bytes() == open(path, "rb").read()
    written = files(out)
    for n in "abcd":
        assert f"cases/{n}.json" in written and f"cases/{n}.npz" in written
        if HAVE_IO:
            assert f"vtk/{n}.vtu" in written
        if HAVE_PLOT:
            assert f"figures/{n}.png" in written
    if HAVE_PLOT:
        assert "panel.png" in written
    assert not [f for f in written if ".tmp-" in f]


@pytest.mark.skipif(not HAVE_PLOT, reason="matplotlib missing")
def test_panel_rebuilds_reused_p3_cases_from_their_coefficients(tmp_path, four_study):
    """A rerun that recomputes one case re-draws the panel with the stored P3 solution
    of the other (the rebuilt basis must be the solver's cubic one)."""
    output = {**FAST, "panel": ["a", "b"]}
    path = four_study(h=0.5, order=3, output=output)
    out = str(tmp_path / "out")
    assert run_study(load_study(path), out).computed == ["a", "b", "c", "d"]
    before = os.stat(os.path.join(out, "panel.png")).st_mtime_ns
    four_study(h=0.5, order=3, output=output, delta_s={"b": 0.0125})
    again = run_study(load_study(path), out)
    assert again.computed == ["b"] and "a" in again.reused
    assert os.stat(os.path.join(out, "panel.png")).st_mtime_ns != before
    a = json.loads(open(os.path.join(out, "summary.json")).read())["cases"][0]
    assert a["name"] == "a" and a["dofs"] == fp.Problem(
        fp.landscapes.paper(), fp.diffusion.sgd(fp.landscapes.paper(), 0.009),
        fp.disk_mesh(2.0, 0.5), order=3).dofs


def test_rerun_reuses_and_force_recomputes(tmp_path, four_study):
    path = four_study(output=FAST)
    out = str(tmp_path / "out")
    first = run_study(load_study(path), out)
    assert first.computed == ["a", "b", "c", "d"]
    mtimes = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in files(out)}
    again = run_study(load_study(path), out)
    assert again.computed == [] and again.reused == ["a", "b", "c", "d"]
    strip = lambda s: [{k: v for k, v in c.items() if k != "reused"} for c in s["cases"]]
    assert strip(again.summary) == strip(first.summary)
    for f, t in mtimes.items():      # case files and figures untouched
        if f.startswith(("cases/a", "vtk/", "figures/", "panel")):
            assert os.stat(os.path.join(out, f)).st_mtime_ns == t, f
    # change one case: only it is recomputed
    path2 = four_study(output=FAST, delta_s={"d": 0.013})
    third = run_study(load_study(path2), out)
    assert third.computed == ["d"] and third.reused == ["a", "b", "c"]
    # a missing output file invalidates its case
    if HAVE_IO:
        os.remove(os.path.join(out, "vtk", "b.vtu"))
        assert run_study(load_study(path2), out).computed == ["b"]
    forced = run_study(load_study(path2), out, force=True)
    assert forced.computed == ["a", "b", "c", "d"]


def test_solver_failure_is_reported_and_other_cases_kept(tmp_path, monkeypatch, four_study):
    import fpsolve.study.tasks as tasks

    class Failing(fp.Problem):
        def solve(self, strength=None):
            if strength == 0.012:
                raise fp.SolverError("absorbing solve: inverse iteration broke down")
            return super().solve(strength)

    monkeypatch.setattr(tasks, "Problem", Failing)
    path = four_study(output=FAST)
    with pytest.raises(StudyRunError, match=r'case "b" failed: SolverError: absorbing solve'):
        run_study(load_study(path), str(tmp_path / "out"))
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["failed"] == ["b", "d"]
    assert "error" in s["cases"][1] and "x2" in s["cases"][0]
    monkeypatch.undo()
    res = run_study(load_study(path), str(tmp_path / "out"))     # rerun: only the failures
    assert res.computed == ["b", "d"] and res.reused == ["a", "c"]


def test_out_must_be_a_directory(tmp_path):
    path = write(tmp_path, "[noise]\ndelta_s = 0.01\n[mesh]\nh = 0.3\n")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StudyError, match="not a directory"):
        run_study(load_study(path), str(tmp_path / "file"))


def test_default_output_directory(tmp_path, monkeypatch):
    path = write(tmp_path, "[study]\nname = 'tiny'\n[noise]\ndelta_s = 0.01\n[mesh]\nh = 0.3\n"
                 "[output]\nvtk = false\nfigures = false\npanel = false\n")
    monkeypatch.chdir(tmp_path)
    res = run_study(load_study(path))
    assert res.out == os.path.join("results", "tiny")
    assert (tmp_path / "results" / "tiny" / "summary.json").is_file()


# -- atomic files -------------------------------------------------------------------------------

def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "f.json"
    atomic_write(str(target), "old")
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as tmp:
            with open(tmp, "w") as fh:
                fh.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.json"]


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = tmp_path / ".summary.tmp-999999999-abcd1234.json"
    mine = tmp_path / f".summary.tmp-{os.getpid()}-abcd1234.json"
    dead.write_text("{")
    mine.write_text("{")
    assert remove_stale_temporaries(str(tmp_path)) == [dead.name]
    assert mine.exists() and not dead.exists()




def test_strip_times_keeps_the_parameters_named_like_seconds():
    """The comparisons of runs drop measured seconds, not Δ_S values (keys ``*delta_s``)."""
    from study_helpers import strip_times
    run = {"runtime_s": 1.2, "timings_s": {"solve": 0.3},
           "diagnostics": {"timings": {"solve_s": 0.2}},
           "parameters": {"noise": {"delta_s": 0.009}}, "theory": {"critical_delta_s": 0.01}}
    assert strip_times(run) == {"diagnostics": {"timings": {}},
                                "parameters": {"noise": {"delta_s": 0.009}},
                                "theory": {"critical_delta_s": 0.01}}
