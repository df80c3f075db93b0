"""The fpsolve command line: exit codes, messages, bad-study battery, interrupted
runs, parallel and Dask execution giving the same numbers as a serial run."""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import fpsolve as fp
from fpsolve.cli import main
from study_helpers import ROOT, strip_times, write

BAD = sorted(glob.glob(os.path.join(ROOT, "tests", "bad_studies", "*.toml")))


def run_cli(*args, cwd=None, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "fpsolve", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _numbers(summary):
    """The per-case results without timings (the part that must be reproducible)."""
    return strip_times(summary["cases"])


# -- help, version, entry points --------------------------------------------------------------

def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip().startswith(f"fpsolve {fp.__version__}")
    for argv in (["--help"], ["run", "--help"], ["validate", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert "examples:" in text and "fpsolve " in text
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for word in ("--out", "--force", "--quiet", "--workers", "summary.json", "provenance.json"):
        assert word in text


def test_python_dash_m_and_usage_errors(capsys):
    r = run_cli("run")                                   # missing STUDY
    assert r.returncode == 2 and "usage:" in r.stderr
    for argv in (["run", "x.toml", "--workers", "0"], ["frobnicate"], []):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "--workers: expected a positive integer, got '0'" in capsys.readouterr().err


# -- the battery of bad studies -----------------------------------------------------------

def test_battery_is_large_and_distinct():
    assert len(BAD) >= 15
    mistakes = [open(p).read().splitlines()[1] for p in BAD]
    assert all(m.startswith("# mistake:") for m in mistakes)
    assert len(set(mistakes)) == len(mistakes)


@pytest.mark.parametrize("path", BAD, ids=[os.path.basename(p)[:-5] for p in BAD])
def test_bad_study_exit_2_one_line_naming_the_key(path, tmp_path, capsys, monkeypatch):
    expect = open(path).readline().split("expect:")[1].strip()
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert main(["validate", path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"{path}: ") and expect in err, err
    assert main(["run", path, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == err and captured.out == ""
    assert not out.exists()
    assert main(["run", path]) == 2                     # default output directory
    capsys.readouterr()
    assert os.listdir(tmp_path) == []                   # nothing written anywhere
    assert not os.path.exists(os.path.join(ROOT, "HACKED"))


def test_validate_ok_and_mixed(capsys):
    good = os.path.join(ROOT, "studies", "fig3.toml")
    assert main(["validate", good]) == 0
    assert capsys.readouterr().out.startswith(f"{good}: ok (4 cases, 2 assemblies")
    assert main(["validate", good, BAD[0]]) == 2
    cap = capsys.readouterr()
    assert "ok" in cap.out and BAD[0] in cap.err


# -- running --------------------------------------------------------------------------------

TWO = """
    [study]
    name = "two"
    [noise]
    delta_s = 0.01
    [mesh]
    h = 0.3
    [[case]]
    name = "low"
    noise.delta_s = 0.009
    [[case]]
    name = "high"
    noise.delta_s = 0.012
    [output]
    flux = false
    figures = false
    panel = false
"""


def test_run_prints_one_line_per_case_and_warnings(tmp_path, capsys):
    path = write(tmp_path, TWO)
    assert main(["run", path, "--out", str(tmp_path / "o")]) == 0
    cap = capsys.readouterr()
    lines = [l for l in cap.out.splitlines() if re.match(r"\[\d/2\]", l)]
    assert [l.split(":")[0] for l in lines] == ["[1/2] low", "[2/2] high"]
    assert all("dofs" in l and "<x²>" in l for l in lines)
    assert 'warning: case "low": negative mass' in cap.err      # coarse mesh
    assert "wrote" in cap.out.splitlines()[-1]
    # second run: everything up to date
    assert main(["run", path, "--out", str(tmp_path / "o")]) == 0
    assert "up to date, reused" in capsys.readouterr().out
    # --quiet: nothing at all, but the warning is still in the summary
    assert main(["run", path, "--out", str(tmp_path / "q"), "--quiet"]) == 0
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == ""
    s = json.loads((tmp_path / "q" / "summary.json").read_text())
    assert any("negative mass" in w for w in s["cases"][0]["warnings"])


def test_runtime_failure_exit_1_one_line(tmp_path, capsys, monkeypatch):
    import fpsolve.study.tasks as tasks

    class Broken(fp.Problem):
        def solve(self, strength=None):
            raise fp.SolverError("reflecting solve: pinned system is singular (singular matrix)")

    monkeypatch.setattr(tasks, "Problem", Broken)
    path = write(tmp_path, TWO)
    assert main(["run", path, "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith('error: case "low" failed: SolverError: reflecting solve')
    assert "(and 1 more; see" in err


KILL = """
    [study]
    name = "killme"
    [noise]
    delta_s = 0.01
    [mesh]
    h = 0.2
    [sweep]
    parameter = "noise.delta_s"
    range = { start = 0.008, stop = 0.0115, num = 8 }
    [output]
    flux = false
    figures = false
    panel = false
"""


def _check_complete(path):
    """Every visible file is complete (parses in its format)."""
    name = os.path.basename(path)
    with open(path, "rb") as fh:
        data = fh.read()
    if name.endswith(".json"):
        json.loads(data)
    elif name.endswith(".npz"):
        with zipfile.ZipFile(path) as z:
            assert z.testzip() is None
    elif name.endswith(".png"):
        assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")
    elif name.endswith((".vtu", ".pvd")):
        text = data.rstrip()
        assert text.endswith(b"</VTKFile>"), name


def test_sigkill_mid_run_leaves_no_partial_file_and_rerun_completes(tmp_path):
    path = write(tmp_path, KILL)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "fpsolve", "run", path, "--out", str(out),
                             "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = glob.glob(str(out / "cases" / "delta_s=*.json"))
        if len(done) >= 2 or proc.poll() is not None:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "summary.json").exists()
    visible = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if not f.startswith(".")]
    for f in visible:
        _check_complete(f)
    finished = {os.path.basename(f)[:-5] for f in glob.glob(str(out / "cases" / "delta_s=*.json"))}
    assert 2 <= len(finished) < 8

    r = run_cli("run", path, "--out", str(out))
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert len(s["cases"]) == 8 and s["failed"] == []
    prov = json.loads((out / "provenance.json").read_text())
    assert set(prov["reused"]) == finished
    assert len(prov["computed"]) == 8 - len(finished)
    leftovers = [f for d, _, fs in os.walk(out) for f in fs if ".tmp-" in f]
    assert leftovers == []
    for d, _, fs in os.walk(out):
        for f in fs:
            _check_complete(os.path.join(d, f))


PARALLEL = """
    [study]
    name = "par"
    [noise]
    delta_s = 0.01
    [mesh]
    h = 0.25
    [sweep]
    parameter = "noise.delta_s"
    values = [0.009, 0.010, 0.011, 0.012]
    [output]
    vtk = false
    figures = false
    flux = false
    panel = false
"""


def test_workers_2_gives_the_same_numbers_as_serial(tmp_path):
    path = write(tmp_path, PARALLEL)
    assert main(["run", path, "--out", str(tmp_path / "serial"), "--quiet"]) == 0
    assert main(["run", path, "--out", str(tmp_path / "par"), "--workers", "2", "--quiet"]) == 0
    s1 = json.loads((tmp_path / "serial" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "par" / "summary.json").read_text())
    p2 = json.loads((tmp_path / "par" / "provenance.json").read_text())
    assert {k: p2["execution"][k] for k in ("workers", "scheduler", "tasks")} == \
        {"workers": 2, "scheduler": "local", "tasks": 2}
    assert _numbers(s1) == _numbers(s2)                 # bit-identical numbers


def test_dask_local_cluster_gives_the_same_numbers(tmp_path):
    distributed = pytest.importorskip("distributed")
    path = write(tmp_path, PARALLEL, "serial.toml")
    assert main(["run", path, "--out", str(tmp_path / "serial"), "--quiet"]) == 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        text = PARALLEL + f'\n[execution]\nscheduler = "{cluster.scheduler_address}"\n'
        dpath = write(tmp_path, text, "dask.toml")
        assert main(["run", dpath, "--out", str(tmp_path / "dask"), "--quiet"]) == 0
    s1 = json.loads((tmp_path / "serial" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "dask" / "summary.json").read_text())
    prov = json.loads((tmp_path / "dask" / "provenance.json").read_text())
    assert prov["execution"]["scheduler"].startswith("tcp://")
    assert prov["execution"]["tasks"] == 2
    assert _numbers(s1) == _numbers(s2)


def test_unreachable_scheduler_is_a_runtime_failure(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    import fpsolve.study.runner as runner
    monkeypatch.setattr(runner, "CONNECT_TIMEOUT", "1s")
    text = TWO + '\n[execution]\nscheduler = "tcp://127.0.0.1:9"\n'
    path = write(tmp_path, text)
    assert main(["run", path, "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert capsys.readouterr().err.startswith("error: execution.scheduler: cannot connect")
