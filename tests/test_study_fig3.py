"""The shipped Fig. 3 study against its golden values: summary.json must not change.

``tests/data/fig3_summary_golden.json`` holds every result of a ``studies/fig3.toml``
run (tests/data/make_fig3_golden.py says how it was made; regenerate it only when a change
of the numbers is intended).  The comparison and its tolerances are in
``tests/fig3_golden.py``; the tests below also show that the comparison fails when a
value moves.
"""
import copy
import json
import os

import pytest

from fig3_golden import (GOLDEN, RTOL, RULES, compare, golden_values, matches, pattern_of,
                         tolerance)
from fpsolve.study import load_study, run_study
from study_helpers import STUDIES

NAMES = ["withD12-0.009", "withD12-0.012", "noD12-0.009", "noD12-0.012"]


@pytest.fixture(scope="module")
def golden():
    with open(GOLDEN, encoding="utf-8") as fh:
        return json.load(fh)["values"]


def _paths(tree, path=""):
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in _paths(v, f"{path}.{k}")]
    if isinstance(tree, list):
        return [p for i, v in enumerate(tree) for p in _paths(v, f"{path}[{i}]")]
    return [path]


def test_fig3_summary_matches_the_golden_values(tmp_path, golden):
    """One run of studies/fig3.toml as the CLI runs it (background renderer, forked
    error estimates), every value of its summary.json against the golden file."""
    out = tmp_path / "fig3"
    res = run_study(load_study(os.path.join(STUDIES, "fig3.toml")), str(out))
    assert res.computed == NAMES
    # on two or more cores this is the run of issue #18: figures in the renderer process,
    # error estimates in forked children (tests/test_study_render.py: the same numbers)
    prov = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    assert ("render" in prov["execution"]) is (cores >= 2)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    bad = compare(golden_values(summary), golden)
    assert not bad, (f"{len(bad)} value(s) of summary.json differ from "
                     f"tests/data/{os.path.basename(GOLDEN)} (if intended, regenerate it "
                     "with tests/data/make_fig3_golden.py --write and say why):\n"
                     + "\n".join(bad))


def test_the_golden_file_holds_every_result(golden):
    """The reference is a whole Fig. 3 summary, not an emptied or partial one."""
    assert [c["name"] for c in golden["cases"]] == NAMES and golden["failed"] == []
    floats = [p for p in _paths(golden) if ".parameters." not in p]
    assert len(floats) > 500
    for c in golden["cases"]:
        assert c["dofs"] == 81865 and c["parameters"]["solver"]["order"] == 3
        for key in ("x2", "y2", "escape_rate", "escape_rate_eig", "negative_mass", "min_P",
                    "residual", "mean", "cov", "mode", "marginal_mode_x"):
            assert key in c, key
        assert set(c["error_estimate"]) == {"x2", "y2", "escape_rate", "L1"}
        assert len(c["cycles"]) == 4 and c["flux"]["cycles"][0]["circulation"] != 0
        assert c["escape_rate"] > 0 and c["x2"] > 0
    for p in _paths(golden):                 # no timings, provenance or warning text
        last = p.rsplit(".", 1)[-1]
        assert "timings" not in p and last not in ("runtime_s", "config_hash", "reused"), p
    assert golden["cases"][0]["parameters"]["noise"]["delta_s"] == 0.009


def test_every_tolerance_rule_applies_and_says_why(golden):
    paths = {pattern_of(p) for p in _paths(golden)}
    for pattern, rtol, atol, why in RULES:
        assert any(matches(pattern, p) for p in paths), f"rule {pattern!r} matches nothing"
        assert why and (rtol > 0 or atol > 0) and rtol < 0.01
    assert tolerance(".cases[0].x2") == (RTOL, 0.0) and RTOL == 1e-9
    assert tolerance(".cases[2].flux.cycles[3].center[1]") == (1e-7, 0.0)


def test_golden_values_drop_only_timings_provenance_and_warning_texts():
    summary = {"fpsolve": "0.1.0", "config_hash": "abc", "cases": [{
        "name": "a", "config_hash": "def", "runtime_s": 1.5, "timings_s": {"solve": 1.0},
        "parameters": {"noise": {"delta_s": 0.009}}, "x2": 0.1, "reused": False,
        "warnings": ["negative mass 1e-3", "escape rate 2e-4 has ..."],
        "diagnostics": {"timings": {"total_s": 2.0}, "iterations": 4,
                        "solver": {"stop": {"sweeps": 4}}},
        "flux": {"diagnostics": {"warnings": []}}}]}
    assert golden_values(summary) == {"cases": [{
        "name": "a", "parameters": {"noise": {"delta_s": 0.009}}, "x2": 0.1, "warnings": 2,
        "diagnostics": {"iterations": 4, "solver": {"stop": {"sweeps": 4}}},
        "flux": {"diagnostics": {"warnings": 0}}}]}


def test_a_perturbed_value_fails_the_comparison_naming_its_path(golden):
    assert compare(copy.deepcopy(golden), golden) == []
    bad = copy.deepcopy(golden)
    bad["cases"][1]["x2"] *= 1 + 1e-8                        # beyond RTOL
    bad["cases"][0]["dofs"] += 1                             # integers: exact
    bad["cases"][2]["cycles"][0]["sense"] = "cw" if golden["cases"][2]["cycles"][0][
        "sense"] == "ccw" else "ccw"                         # strings: exact
    bad["cases"][3]["flux"]["diagnostics"]["mirror_symmetric"]["x"] = False
    bad["cases"][0]["error_estimate"]["escape_rate"] *= 1 + 1e-4      # beyond its 1e-5
    bad["cases"][1]["mean"][0] += 1e-10                      # beyond atol 1e-11
    del bad["cases"][3]["error_estimate"]["L1"]
    bad["cases"][2]["new_key"] = 1.0
    bad["cases"][1]["flux"]["cycles"].pop()
    bad["cases"][0]["warnings"] = 1                          # one more warning
    lines = {line.split(":")[0]: line for line in compare(bad, golden)}
    assert sorted(lines) == [
        ".cases[0].dofs", ".cases[0].error_estimate.escape_rate", ".cases[0].warnings",
        ".cases[1].flux.cycles", ".cases[1].mean[0]", ".cases[1].x2",
        ".cases[2].cycles[0].sense", ".cases[2].new_key",
        ".cases[3].error_estimate.L1", ".cases[3].flux.diagnostics.mirror_symmetric.x"]
    assert "relative 1e-08" in lines[".cases[1].x2"]
    assert "(rtol 1e-09, atol 0)" in lines[".cases[1].x2"]
    assert "missing" in lines[".cases[3].error_estimate.L1"]
    assert "not in the golden values" in lines[".cases[2].new_key"]
    assert "entries" in lines[".cases[1].flux.cycles"]


def test_round_off_within_the_tolerances_passes(golden):
    """What another BLAS or LU ordering legitimately changes (tests/fig3_golden.py)."""
    ok = copy.deepcopy(golden)
    ok["cases"][1]["x2"] *= 1 + 5e-10
    ok["cases"][1]["mode"][1] *= -1                          # a flat maximum's side
    ok["cases"][2]["mean"][1] += 5e-12                       # zero by symmetry
    ok["cases"][0]["error_estimate"]["escape_rate"] *= 1 + 5e-6
    ok["cases"][0]["escape_rate_eig"] *= 1 + 5e-4            # below its round-off floor
    ok["cases"][3]["flux"]["cycles"][2]["center"][0] *= 1 + 5e-8
    assert compare(ok, golden) == []
    ok["cases"][0]["escape_rate"] *= 1 + 5e-9                # the outflow's mu is not
    assert [line.split(":")[0] for line in compare(ok, golden)] == [".cases[0].escape_rate"]
