"""Study files: the schema, its documentation, validation and its errors, the shipped
studies, planning.  The valid studies of VALID use every documented key between them
and are run here on coarse meshes.
"""
import json
import os
import re

import numpy as np
import pytest

import fpsolve as fp
from fpsolve.study import (KEYS, StudyError, load_study, parse_study, plan_tasks,
                           reference_markdown, run_study)
from study_helpers import HAVE_PLOT, MESH, ROOT, STUDIES, write

# Valid studies that between them use every documented key (checked below).
VALID = {
    "paper_cases": """
        [study]
        name = "paper-cases"
        description = "two cases of the paper's landscape"
        [landscape]
        kind = "paper"
        eps = 0.05
        lam0 = 4.0
        lam1 = -2.0
        lam2 = 1.0
        [noise]
        kind = "sgd"
        delta_s = 0.02
        cross_diffusion = false
        [mesh]
        radius = 1.5
        h = 0.25
        center = [0.0, 0.0]
        band = 0.5
        band_levels = 1
        [solver]
        order = 2
        boundary = "absorbing"
        stabilisation = "none"
        [[case]]
        name = "low"
        title = "low noise"
        noise.delta_s = 0.02
        [[case]]
        name = "high"
        noise.delta_s = 0.04
        solver.order = 1
        solver.stabilisation = "supg"
        [output]
        vtk = true
        figures = false
        panel = ["high"]
        sweep_plot = true
        flux = true
        [execution]
        workers = 1
        scheduler = "local"
    """,
    "quadratic_file": f"""
        [landscape]
        kind = "quadratic"
        A = [[1.0, 0.3], [0.3, 2.0]]
        center = [0.1, -0.05]
        [noise]
        kind = "constant"
        matrix = [[0.10, 0.04], [0.04, 0.05]]
        [mesh]
        file = {json.dumps(os.path.relpath(MESH, '/tmp'))}
        [solver]
        boundary = "reflecting"
        [time]
        t_end = 0.5
        n_out = 3
        spacing = "log"
        tol = 1e-4
        initial_mean = [0.3, 0.0]
        initial_cov = [[0.05, 0.0], [0.0, 0.05]]
        spectrum = 3
        vtk = true
    """,
    "expression_sweep": """
        [landscape]
        kind = "expression"
        expr = "0.5*(x**2 + 3*y**2) + a*x*y"
        params = { a = 0.2 }
        [noise]
        kind = "expression"
        D11 = "d*(1 + 0.2*x**2)"
        D12 = "0.01*x*y"
        D22 = "d"
        params = { d = 0.1 }
        [mesh]
        radius = 2.0
        h = 0.3
        [solver]
        boundary = "reflecting"
        [sweep]
        parameter = "landscape.params.a"
        values = [0.0, 0.3]
        [output]
        vtk = false
        figures = false
        panel = false
        flux = false
    """,
    "adaptive_tol": """
        [landscape]
        kind = "quadratic"
        A = [[1.0, 0.0], [0.0, 2.0]]
        [noise]
        kind = "isotropic"
        delta = 0.2
        [mesh]
        radius = 1.5
        h = 0.5
        [solver]
        order = 2
        tol = 1e-3
        goals = ["x2", "escape_rate"]
        weighting = "gibbs"
        [output]
        vtk = false
        figures = false
        panel = false
        flux = false
    """,
    "isotropic_range": """
        [landscape]
        kind = "paper"
        [noise]
        kind = "isotropic"
        delta = 0.2
        [mesh]
        h = 0.3
        [solver]
        max_dofs = 100000
        [sweep]
        parameter = "noise.delta"
        range = { start = 0.2, stop = 0.4, num = 3 }
        [time]
        times = [0.0, 0.2]
        spectrum = 0
        [output]
        sweep_plot = true
        flux = false
        figures = false
        panel = false
    """,
}


def _used_keys(raw: dict) -> set:
    used = set()
    for sec, body in raw.items():
        if sec == "case":
            for case in body:
                for k, v in case.items():
                    if k in ("name", "title"):
                        used.add(f"case.{k}")
                    else:
                        used.update(f"{k}.{kk}" for kk in v)
            continue
        for k in body:
            used.add(f"{sec}.{k}")
    return used


def _valid_path(tmp_path, key):
    text = VALID[key]
    if key == "quadratic_file":   # mesh path relative to the study file
        text = text.replace(json.dumps(os.path.relpath(MESH, "/tmp")),
                            json.dumps(os.path.relpath(MESH, str(tmp_path))))
    return write(tmp_path, text, f"{key}.toml")


# -- documentation and schema -----------------------------------------------------------

def test_docs_key_reference_is_generated_from_the_schema():
    with open(os.path.join(ROOT, "docs", "studies.md"), encoding="utf-8") as fh:
        doc = fh.read()
    block = re.search(r"<!-- keys:begin -->\n(.*?)<!-- keys:end -->", doc, re.S)
    assert block, "docs/studies.md lacks the generated key reference"
    assert block.group(1).strip() == reference_markdown().strip()
    for key in KEYS:
        assert f"`{key}`" in doc


def test_every_documented_key_is_used_by_a_valid_test_study(tmp_path):
    used = set()
    for key in VALID:
        study = load_study(_valid_path(tmp_path, key))
        used |= _used_keys(study.raw)
    assert set(KEYS) - used == set()


def _check_paper_cases(s, out):
    low, high = s["cases"]
    assert low["title"] == "low noise" and high["title"] == "high"
    assert high["parameters"]["solver"] == {"order": 1, "boundary": "absorbing",
                                            "stabilisation": "supg"}
    assert s["study"]["description"] == "two cases of the paper's landscape"
    # band refinement: more vertices than the same disk without it
    assert low["diagnostics"]["nvertices"] > fp.disk_mesh(1.5, 0.25).nvertices
    assert low["x2"] < high["x2"]          # more noise, wider density
    if HAVE_PLOT:
        assert s["panel"] == "panel.png"


def _check_quadratic_file(s, out):
    (c,) = s["cases"]
    assert np.allclose(c["mean"], [0.1, -0.05], atol=1e-4)
    assert c["parameters"]["mesh"]["sha256"]
    assert c["escape_rate"] == 0.0        # reflecting


def _check_expression_sweep(s, out):
    assert [c["name"] for c in s["cases"]] == ["a=0", "a=0.3"]
    assert s["cases"][0]["cov"][0][1] != s["cases"][1]["cov"][0][1]
    assert not os.path.exists(out / "vtk")
    assert not os.path.exists(out / "figures")
    assert s["panel"] is None


def _check_adaptive_tol(s, out):
    (c,) = s["cases"]
    assert c["parameters"]["solver"]["tol"] == 1e-3
    assert c["diagnostics"]["adapt_goals"] == ["x2", "escape_rate"]
    levels = c["diagnostics"]["adapt"]
    assert len(levels) > 1 and c["dofs"] == levels[-1]["dofs"] > levels[0]["dofs"]


def _check_isotropic_range(s, out):
    assert [c["value"] for c in s["cases"]] == [0.2, 0.3, 0.4]
    assert all(c["cycles"] == [] and "flux" not in c for c in s["cases"])
    assert os.path.isfile(out / "sweep.png")


#: what each valid study must show beyond the checks every study gets
STUDY_CHECKS = {"paper_cases": _check_paper_cases, "quadratic_file": _check_quadratic_file,
                "expression_sweep": _check_expression_sweep,
                "adaptive_tol": _check_adaptive_tol,
                "isotropic_range": _check_isotropic_range}


@pytest.mark.parametrize("key", sorted(VALID))
def test_valid_studies_run(tmp_path, key):
    study = load_study(_valid_path(tmp_path, key))
    res = run_study(study, str(tmp_path / "out"))
    s = res.summary
    assert [c["name"] for c in s["cases"]] == [c.name for c in study.cases]
    for c in s["cases"]:
        assert c["dofs"] > 0 and abs(sum(np.diag(c["cov"]))) > 0
        assert np.isfinite(c["x2"]) and c["negative_mass"] >= 0
    STUDY_CHECKS[key](s, tmp_path / "out")


# -- validation ---------------------------------------------------------------------------

def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "[noise]\nkind = 'sgd'\ndelta_s = \n")
    with pytest.raises(StudyError) as exc:
        load_study(path)
    assert str(exc.value).startswith(f"{path}: line 3: TOML syntax error")
    assert "\n" not in str(exc.value)


def test_missing_study_file(tmp_path):
    with pytest.raises(StudyError, match="study file not found"):
        load_study(str(tmp_path / "nope.toml"))


def test_did_you_mean_suggestions(tmp_path):
    with pytest.raises(StudyError, match=r"mesh\.hh: unknown key \(did you mean 'h'\?\)"):
        parse_study("[noise]\ndelta_s = 0.01\n[mesh]\nhh = 0.2\n", str(tmp_path / "s.toml"))
    with pytest.raises(StudyError, match=r"did you mean 'reflecting'"):
        parse_study("[noise]\ndelta_s = 0.01\n[mesh]\nh = 0.2\n[solver]\nboundary = 'reflect'\n",
                    str(tmp_path / "s.toml"))


def test_budget_is_checked_per_case_before_any_meshing(tmp_path, monkeypatch):
    from fpsolve.fe import mesh as fe_mesh
    monkeypatch.setattr(fe_mesh, "Delaunay", None)       # validation must never mesh a disk
    base = "[noise]\ndelta_s = 0.01\n[mesh]\nh = 0.2\n[solver]\norder = 3\nmax_dofs = 5000\n"
    study = parse_study(base, str(tmp_path / "s.toml"))
    assert study.cases[0].config["solver"]["max_dofs"] == 5000
    # a sweep over h: the finest value is beyond the budget, and named with its case
    with pytest.raises(StudyError, match=r'sweep.values\[1\]|h=0.05": mesh\.h: .* exceed max_dofs '
                                         r"= 5,000"):
        parse_study(base + '[sweep]\nparameter = "mesh.h"\nvalues = [0.2, 0.05]\n',
                    str(tmp_path / "s.toml"))
    with pytest.raises(StudyError, match=r"solver\.max_dofs: expected an integer >= 100"):
        parse_study(base.replace("5000", "2500.5"), str(tmp_path / "s.toml"))
    assert parse_study(base.replace("5000", "1e4"), str(tmp_path / "s.toml")).cases[0] \
        .config["solver"]["max_dofs"] == 10000
    # without max_dofs the resolved solver section (and so every case hash) is unchanged
    plain = parse_study(base.replace("max_dofs = 5000\n", ""), str(tmp_path / "s.toml"))
    assert "max_dofs" not in plain.cases[0].config["solver"]


def test_budget_of_a_mesh_file_counts_its_dofs(tmp_path):
    text = f'[noise]\ndelta_s = 0.01\n[mesh]\nfile = "{MESH}"\n[solver]\nmax_dofs = 100\n'
    with pytest.raises(StudyError, match=r"mesh\.file: mesh file .* P2 dofs exceed max_dofs"):
        parse_study(text, str(tmp_path / "s.toml"))


def test_case_overrides_and_kind_restart(tmp_path):
    study = parse_study("""
[noise]
delta_s = 0.01
[mesh]
h = 0.3
[[case]]
name = "sgd"
[[case]]
name = "iso"
noise.kind = "isotropic"
noise.delta = 0.05
[[case]]
name = "file"
mesh.file = "MESH"
""".replace("MESH", MESH), str(tmp_path / "s.toml"))
    sgd, iso, fil = study.cases
    assert sgd.config["noise"] == {"kind": "sgd", "delta_s": 0.01, "cross_diffusion": True}
    assert iso.config["noise"] == {"kind": "isotropic", "delta": 0.05}   # delta_s not inherited
    assert set(fil.config["mesh"]) == {"file", "path", "sha256"}
    assert sgd.config["mesh"]["h"] == 0.3


def test_numbers_are_canonical_for_hashing(tmp_path):
    a = parse_study("[noise]\ndelta_s = 1\n[mesh]\nh = 0.3\n", str(tmp_path / "a.toml"))
    b = parse_study("[noise]\ndelta_s = 1.0\n[mesh]\nh = 0.30\n", str(tmp_path / "b.toml"))
    c = parse_study("[noise]\ndelta_s = 1.0001\n[mesh]\nh = 0.3\n", str(tmp_path / "c.toml"))
    assert a.cases[0].hash == b.cases[0].hash != c.cases[0].hash


def test_hash_changes_with_the_fpsolve_version(tmp_path, monkeypatch):
    path = write(tmp_path, "[noise]\ndelta_s = 0.01\n[mesh]\nh = 0.3\n")
    h1 = load_study(path).cases[0].hash
    monkeypatch.setattr(fp, "__version__", "99.0")
    assert load_study(path).cases[0].hash != h1


def test_shipped_studies():
    fig3 = load_study(os.path.join(STUDIES, "fig3.toml"))
    assert [c.name for c in fig3.cases] == ["withD12-0.009", "withD12-0.012", "noD12-0.009",
                                           "noD12-0.012"]
    assert {c.config["mesh"]["h"] for c in fig3.cases} == {0.04}
    assert {(c.config["noise"]["delta_s"], c.config["noise"]["cross_diffusion"])
            for c in fig3.cases} == {(0.009, True), (0.012, True), (0.009, False), (0.012, False)}
    assert fig3.cases[0].config["landscape"] == {"kind": "paper", "eps": 0.02, "lam0": 8.0,
                                                 "lam1": -2.0, "lam2": 1.0}
    assert fig3.cases[0].config["solver"] == {"order": 3, "boundary": "absorbing",
                                              "stabilisation": "none"}
    assert len(fig3.groups()) == 2                     # one assembly per noise model
    sweep = load_study(os.path.join(STUDIES, "sweep.toml"))
    values = [c.value for c in sweep.cases]
    assert values[0] == 0.008 and values[-1] == 0.014 and len(values) == 13
    assert len(sweep.groups()) == 1
    ou = load_study(os.path.join(STUDIES, "ou.toml"))
    assert ou.cases[0].config["mesh"]["file"] == "../meshes/disk_r2.msh"
    small = load_study(os.path.join(STUDIES, "small_noise.toml"))
    assert [c.config["noise"]["delta_s"] for c in small.cases] == [0.004, 0.002]
    for c in small.cases:
        assert c.config["landscape"] == fig3.cases[0].config["landscape"]
        assert c.config["solver"] == {"order": 3, "boundary": "absorbing", "stabilisation": "none",
                                      "tol": 1e-3, "goals": ["x2", "escape_rate"],
                                      "max_dofs": 300000}
    assert all(small.output[k] for k in ("vtk", "figures", "panel", "flux"))
    assert len(small.groups()) == 1

# -- planning -----------------------------------------------------------------------------

def _cases(tmp_path, values, cross=(True,)):
    cases = "".join(f"""
[[case]]
name = "c{i}-{j}"
noise.delta_s = {v}
noise.cross_diffusion = {str(x).lower()}
""" for i, v in enumerate(values) for j, x in enumerate(cross))
    return parse_study("[noise]\ndelta_s = 0.01\n[mesh]\nh = 0.3\n" + cases,
                       str(tmp_path / "p.toml"))


def test_plan_groups_by_strength_and_splits_for_workers(tmp_path):
    study = _cases(tmp_path, [0.009, 0.01, 0.011, 0.012], cross=(True, False))
    one = plan_tasks(study.cases, 1)
    assert [[c.name for c in t] for t in one] == [
        ["c0-0", "c1-0", "c2-0", "c3-0"], ["c0-1", "c1-1", "c2-1", "c3-1"]]
    assert len(plan_tasks(study.cases, 2)) == 2
    four = plan_tasks(study.cases, 4)
    assert sorted(len(t) for t in four) == [2, 2, 2, 2]
    assert sorted(c.name for t in four for c in t) == sorted(c.name for c in study.cases)
    assert len(plan_tasks(study.cases, 100)) == 8        # never more tasks than cases

