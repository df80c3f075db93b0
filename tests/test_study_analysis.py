"""Studies with an [analysis] section: schema, validation through the CLI (exit 2, one
line naming the key, nothing written), tiny end-to-end runs of every analysis kind,
reruns and seeded reproducibility.

The analyses run with tiny parameters (a few hundred walkers, coarse meshes): these are
correctness checks of the plumbing, not of the numbers, which the library tests and the
shipped studies cover.
"""
import json
import os
import re
import textwrap

import pytest

from fpsolve.cli import main
from fpsolve.study import load_study
from fpsolve.study.schema import ANALYSIS_KEYS, ANALYSIS_KINDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDIES = os.path.join(ROOT, "studies")

TINY = {
    "figS5": """
        [landscape]
        eps = 0.02
        [analysis]
        kind = "figS5"
        n_walkers = 256
        t_burn = 2.0
        t_sample = 2.0
        bins = 12
        h = 0.2
        seed = 3
        """,
    "transition": """
        [analysis]
        kind = "transition"
        h = [0.3, 0.25]
        xss_delta_s = [0.009, 0.012]
        xss_h = 0.3
        lsgd_delta_s = [0.012]
        mc_delta_s = [0.009, 0.012]
        mc_n_walkers = 128
        mc_t_burn = 1.0
        mc_t_sample = 1.0
        xtol = 1e-4
        seed = 1
        """,
    "phase_diagram": """
        [landscape]
        eps = 0.001
        [analysis]
        kind = "phase_diagram"
        eta = [0.02, 0.1]
        n_eta = 2
        sigma = [0.001, 10.0]
        n_sigma = 4
        T = 50.0
        n_walkers = 4
        cut_T = 100.0
        cut_n_walkers = 4
        cut_n_sigma = 5
        cut_n_dense = 2
        trajectory_steps = 500
        n_boot = 10
        seed = 2
        """,
    "variance_flatness": """
        [analysis]
        kind = "variance_flatness"
        landscapes_2d = 2
        walkers_2d = 1
        steps_2d = 1200
        window_2d = 1000
        digits = false
        fdn = false
        seed = 4
        """,
    "ldc": """
        [analysis]
        kind = "ldc"
        n_seeds = 2
        hidden = [8]
        iterations_1 = 200
        window = 40
        iterations_2 = 40
        lambda_ewc = [1e3]
        lambda_tilde = [1e6, 1e8]
        psis = [3, 4]
        n_c_scan = [3, 10]
        lambda_tilde_scan = [1e7]
        seed = 1
        """,
}

#: result fields every tiny run must produce, per kind
FIELDS = {
    "figS5": ("cases", "effect_of_cross_diffusion", "eta"),
    "transition": ("theory", "fe", "x_ss", "l_sgd", "mc"),
    "phase_diagram": ("grid", "cut", "theory_cut", "exponents", "paper"),
    "variance_flatness": ("2d", "seed", "skipped"),
    "ldc": ("no_constraint", "ewc", "ldc", "cases", "verdicts"),
}
FIGURES = {
    "figS5": ["figS5.png"],
    "transition": ["transition_xss.png", "transition_lsgd.png"],
    "phase_diagram": ["fig2.png"],
    "variance_flatness": ["vf_2d.png"],
    "ldc": ["ldc_S13.png", "ldc_S14.png"],
}


def write(tmp_path, text, name="study.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def run_cli(args, capsys):
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# -- schema and documentation -----------------------------------------------------------

def test_every_analysis_key_is_documented():
    with open(os.path.join(ROOT, "docs", "studies.md"), encoding="utf-8") as fh:
        doc = fh.read()
    for (kind, key) in ANALYSIS_KEYS:
        assert f"`analysis.{key}`" in doc
    for kind in ANALYSIS_KINDS:
        assert f'[analysis] kind = "{kind}"' in doc


def test_shipped_analysis_studies_validate(capsys):
    for name, kind in (("figS5", "figS5"), ("transition", "transition"),
                       ("fig2", "phase_diagram"), ("variance_flatness", "variance_flatness"),
                       ("ldc", "ldc")):
        path = os.path.join(STUDIES, f"{name}.toml")
        study = load_study(path)
        assert study.analysis["kind"] == kind and study.cases == []
        code, out, _ = run_cli(["validate", path], capsys)
        assert code == 0 and f"analysis '{kind}'" in out
    fig2 = load_study(os.path.join(STUDIES, "fig2.toml")).analysis
    assert fig2["landscape"]["eps"] == 0.001 and fig2["paper_grid"] is False
    s5 = load_study(os.path.join(STUDIES, "figS5.toml")).analysis
    assert s5["eta"] == 0.01 and s5["sigma"] == [0.9, 1.2]


def test_paper_grid_option_sets_the_paper_sized_grid(tmp_path):
    st = load_study(write(tmp_path, '[analysis]\nkind = "phase_diagram"\npaper_grid = true\n'))
    a = st.analysis
    assert (a["n_eta"], a["n_sigma"], a["T"], a["eta"]) == (40, 61, 10000.0, [0.003, 0.3])


# -- validation: one bad value per key, through the CLI ---------------------------------------

def _bad_cases():
    for (kind, key) in ANALYSIS_KEYS:
        if kind is None:
            yield pytest.param("figS5", key, "analysis.kind", id="kind")
        else:
            yield pytest.param(kind, key, f"analysis.{key}", id=f"{kind}.{key}")


@pytest.mark.parametrize("kind,key,label", list(_bad_cases()))
def test_bad_value_exit_2_names_the_key(tmp_path, capsys, kind, key, label):
    # a string is invalid for every analysis key (numbers, counts, lists, booleans, seeds)
    lines = ["[analysis]", f'kind = "{kind}"' if key != "kind" else 'kind = "fig-s5"']
    if key != "kind":
        lines.append(f'{key} = "bad"')
    path = write(tmp_path, "\n".join(lines) + "\n")
    out = tmp_path / "out"
    code, stdout, err = run_cli(["run", path, "--out", str(out)], capsys)
    assert code == 2
    assert err.startswith(f"{path}: {label}: ") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("text,label,message", [
    ('[analysis]\nkind = "figS5"\nn_walker = 10\n', "analysis.n_walker",
     "did you mean 'n_walkers'"),
    ('[analysis]\nkind = "figS5"\nmc_eta = 0.01\n', "analysis.mc_eta",
     "belongs to kind 'transition'"),
    ('[analysis]\nkind = "figs5"\n', "analysis.kind", "did you mean 'figS5'"),
    ('[analysis]\neta = 0.01\n', "analysis.kind", "required"),
    ('[analysis]\nkind = "figS5"\n[noise]\ndelta_s = 0.01\n', "noise", "not allowed"),
    ('[analysis]\nkind = "figS5"\n[[case]]\nname = "a"\n', "case", "not allowed"),
    ('[analysis]\nkind = "figS5"\n[sweep]\nparameter = "noise.delta_s"\n', "sweep",
     "not allowed"),
    ('[analysis]\nkind = "figS5"\nh = 1.5\n', "analysis.h", "radius/2"),
    ('[analysis]\nkind = "figS5"\nextent = 3.0\n', "analysis.extent", "radius"),
    ('[analysis]\nkind = "figS5"\nsigma = [0.9, -1.2]\n', "analysis.sigma", "positive"),
    ('[analysis]\nkind = "figS5"\ncross_diffusion = [true, true]\n', "analysis.cross_diffusion",
     "distinct"),
    ('[analysis]\nkind = "transition"\nh = [0.02, 0.05]\n', "analysis.h", "coarse to fine"),
    ('[analysis]\nkind = "transition"\nh = [0.05]\n', "analysis.h", "list of 2 to 6"),
    ('[analysis]\nkind = "transition"\nbracket = [0.013, 0.009]\n', "analysis.bracket",
     "low < high"),
    ('[analysis]\nkind = "transition"\nmc_delta_s = [0.012, 0.01]\n', "analysis.mc_delta_s",
     "increasing"),
    ('[analysis]\nkind = "transition"\n[landscape]\nkind = "quadratic"\nA = [[1, 0], [0, 1]]\n',
     "landscape.kind", "paper landscape"),
    ('[analysis]\nkind = "transition"\n[landscape]\nepss = 0.02\n', "landscape.epss",
     "did you mean 'eps'"),
    ('[analysis]\nkind = "phase_diagram"\npaper_grid = true\nT = 100.0\n', "analysis.T",
     "paper_grid"),
    ('[analysis]\nkind = "phase_diagram"\nn_eta = 0\n', "analysis.n_eta", "integer from 1"),
    ('[analysis]\nkind = "phase_diagram"\nseed = -1\n', "analysis.seed", "non-negative"),
    ('[analysis]\nkind = "variance_flatness"\n[landscape]\neps = 0.02\n', "landscape",
     "not used"),
    ('[analysis]\nkind = "variance_flatness"\nwindow = 20000\n', "analysis.window",
     "< iterations"),
    ('[analysis]\nkind = "variance_flatness"\n[execution]\nscheduler = "h:1"\n',
     "execution.scheduler", "tcp://host:port"),
    ('[analysis]\nkind = "ldc"\n[execution]\nscheduler = "tcp://h:1"\n',
     "execution.scheduler", "runs locally"),
    ('[analysis]\nkind = "ldc"\nwindow = 5000\n', "analysis.window", "<= iterations_1"),
    ('[analysis]\nkind = "ldc"\nwindow = 10\nsnapshot_every = 4\n', "analysis.snapshot_every",
     "at least 3 snapshots"),
    ('[analysis]\nkind = "ldc"\npsi = 6\n', "analysis.psi", "one of psis"),
    ('[analysis]\nkind = "ldc"\nsplit = [[0, 1, 2], [2, 3, 4]]\n', "analysis.split",
     "none in both"),
    ('[analysis]\nkind = "ldc"\npair = [[0, 1], [2, 3, 4]]\n', "analysis.pair",
     "equally many"),
    ('[analysis]\nkind = "ldc"\ncases = ["split", "quad"]\n', "analysis.cases", '"split"'),
    ('[analysis]\nkind = "ldc"\ndata = "no/such/mnist.npz"\n', "analysis.data", "not a file"),
    ('[analysis]\nkind = "ldc"\nhidden = [30, 0]\n', "analysis.hidden", "integers from 1"),
    ('[analysis]\nkind = "ldc"\nn_c_scan = [3, 3]\n', "analysis.n_c_scan", "distinct"),
    ('[analysis]\nkind = "ldc"\nlambda_ewc = [-1.0]\n', "analysis.lambda_ewc", "positive"),
    ('[analysis]\nkind = "ldc"\nn_seed = 5\n', "analysis.n_seed", "did you mean"),
    ('[analysis]\nkind = "ldc"\n[landscape]\neps = 0.02\n', "landscape", "not used"),
])
def test_invalid_analysis_studies(tmp_path, capsys, text, label, message):
    path = write(tmp_path, text)
    out = tmp_path / "out"
    for cmd in (["validate", path], ["run", path, "--out", str(out)]):
        code, _, err = run_cli(cmd, capsys)
        assert code == 2, err
        assert err.startswith(f"{path}: {label}: ") and message in err and err.count("\n") == 1
    assert not out.exists()


# -- tiny end-to-end runs ----------------------------------------------------------------------

def _run(tmp_path, capsys, kind, out_name="out", extra=(), text=None):
    path = write(tmp_path, text or TINY[kind], f"{kind}.toml")
    out = tmp_path / out_name
    code, stdout, err = run_cli(["run", path, "--out", str(out), *extra], capsys)
    assert code == 0, err
    with open(out / "summary.json", encoding="utf-8") as fh:
        return out, json.load(fh), stdout


@pytest.mark.parametrize("kind", ANALYSIS_KINDS)
def test_tiny_analysis_runs_end_to_end(tmp_path, capsys, kind):
    out, s, stdout = _run(tmp_path, capsys, kind)
    assert s["analysis"]["kind"] == kind and s["study"]["file"] == f"{kind}.toml"
    assert set(FIELDS[kind]) <= set(s["results"])
    assert s["table"] == "table.md" and set(FIGURES[kind]) <= set(s["figures"])
    for f in s["files"] + ["provenance.json", f"{kind}.toml", "summary.json"]:
        assert (out / f).is_file(), f
    assert (out / "table.md").read_text(encoding="utf-8").count("|") > 10
    prov = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    assert prov["config_hash"] == s["config_hash"] and prov["computed"] == [kind]
    assert "numpy" in prov["dependencies"]
    assert f"wrote {out}/" in stdout
    assert not [f for f in os.listdir(out) if ".tmp-" in f]       # no temporaries left
    if kind == "figS5":
        rows = s["results"]["cases"]
        assert [(r["sigma"], r["cross_diffusion"]) for r in rows] == \
            [(0.9, True), (0.9, False), (1.2, True), (1.2, False)]
        assert [r["seed"] for r in rows] == [3, 4, 5, 6]
        assert all(r["fe"]["x2"] > 0 and r["mc"]["x2"] > 0 for r in rows)
    if kind == "transition":
        r = s["results"]
        assert abs(r["theory"]["paper_S30"] - 0.01) < 1e-9
        assert len(r["fe"]["cross"]["levels"]) == 2 and 0.009 < r["fe"]["cross"]["value"] < 0.013
        assert len(r["mc"]["cross"]["runs"]) == 2
    if kind == "phase_diagram":
        from fpsolve.stochastic.phase import PhaseGrid
        g = PhaseGrid.load(str(out / "grid.npz"))
        assert g.eta.size == 2 and g.sigma.size == 4
        assert set(s["results"]["exponents"]) >= {"alpha", "beta1", "beta2"}


def test_rerun_is_skipped_and_force_recomputes(tmp_path, capsys):
    out, s1, _ = _run(tmp_path, capsys, "figS5")
    mtime = os.path.getmtime(out / "figS5.png")
    _, s2, stdout = _run(tmp_path, capsys, "figS5")
    assert "reused (up to date)" in stdout and s2 == s1
    assert os.path.getmtime(out / "figS5.png") == mtime
    os.remove(out / "figS5.png")                       # a missing file: recompute
    _, s3, stdout = _run(tmp_path, capsys, "figS5")
    assert "computed" in stdout and (out / "figS5.png").is_file()
    _, s4, stdout = _run(tmp_path, capsys, "figS5", extra=("--force", "--quiet"))
    assert stdout == "" and s4["results"] == s1["results"]


def test_changed_configuration_is_recomputed(tmp_path, capsys):
    _, s1, _ = _run(tmp_path, capsys, "figS5")
    _, s2, stdout = _run(tmp_path, capsys, "figS5", text=TINY["figS5"].replace("seed = 3",
                                                                                 "seed = 9"))
    assert "computed" in stdout and s2["config_hash"] != s1["config_hash"]
    assert [r["seed"] for r in s2["results"]["cases"]] == [9, 10, 11, 12]
    assert s2["results"]["cases"][0]["mc"]["x2"] != s1["results"]["cases"][0]["mc"]["x2"]


@pytest.mark.parametrize("kind", ANALYSIS_KINDS)
def test_same_seed_gives_identical_results(tmp_path, capsys, kind, request):
    _, a, _ = _run(tmp_path, capsys, kind, "a")
    _, b, _ = _run(tmp_path, capsys, kind, "b", extra=("--workers", "2"))
    assert a["results"] == b["results"]
    if kind in DASK_KINDS:          # and on a Dask cluster: Monte Carlo blocks as tasks
        cluster = request.getfixturevalue("dask_cluster")
        text = TINY[kind] + f'\n[execution]\nscheduler = "{cluster.scheduler_address}"\n'
        out, c, _ = _run(tmp_path, capsys, kind, "dask", text=text)
        assert c["results"] == a["results"]
        prov = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
        assert prov["execution"]["scheduler"] == cluster.scheduler_address


DASK_KINDS = ("figS5", "transition", "phase_diagram", "variance_flatness")


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp://", dashboard_address=None) as cluster:
        yield cluster


def test_runtime_failure_exits_1(tmp_path, capsys, monkeypatch):
    from fpsolve.study.analyses import figs5

    def broken(p, ctx):
        raise FloatingPointError("overflow in the kernel")
    monkeypatch.setattr(figs5, "run", broken)
    path = write(tmp_path, TINY["figS5"])
    out = tmp_path / "out"
    code, _, err = run_cli(["run", path, "--out", str(out)], capsys)
    assert code == 1 and err.startswith("error: analysis 'figS5' failed: FloatingPointError")
    assert not (out / "summary.json").exists()


def test_quiet_prints_nothing(tmp_path, capsys):
    path = write(tmp_path, TINY["variance_flatness"])
    code, stdout, err = run_cli(["run", path, "--out", str(tmp_path / "o"), "--quiet"], capsys)
    assert code == 0 and stdout == "" and err == ""


def test_ldc_reads_a_local_mnist_file_relative_to_the_study(tmp_path, capsys):
    import numpy as np
    rng = np.random.default_rng(0)
    y = np.arange(300) % 10
    x = (rng.uniform(0, 80, (300, 6, 6)) + 150 * (y[:, None, None] == np.arange(6)[None, :, None])
         ).astype(np.uint8)                     # digit k lights up row k: learnable
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "mnist.npz", x_train=x, y_train=y, x_test=x[:100],
             y_test=y[:100])
    text = TINY["ldc"] + 'cases = ["pair"]\ndata = "data/mnist.npz"\n'
    out, s, _ = _run(tmp_path, capsys, "ldc", text=text)
    r = s["results"]
    assert r["params"]["data"] == str(tmp_path / "data" / "mnist.npz")
    assert list(r["cases"]) == ["pair"] and r["cases"]["pair"]["runs"][0]["n_directions"] == 19
    assert s["analysis"]["parameters"]["data"] == str(tmp_path / "data" / "mnist.npz")


@pytest.mark.slow
def test_variance_flatness_digits_parts(tmp_path, capsys):
    pytest.importorskip("sklearn")
    text = TINY["variance_flatness"].replace("digits = false", "digits = true").replace(
        "fdn = false", "fdn = true\nfdn_seeds = 1\nfdn_iterations = 100\nfdn_strong = false\n"
        "iterations = 1500\nwindow = 400\nn_directions = 8\nn_boot = 50")
    out, s, _ = _run(tmp_path, capsys, "variance_flatness", text=text)
    assert {"digits", "fdn"} <= set(s["results"])
    assert {"vf_variance_flatness.png", "vf_fdn.png", "vf_spectrum.png"} <= set(s["figures"])
    assert re.search(r"\| ψ, σ_i² ∝ F_i\^\(−ψ\)", (out / "table.md").read_text(encoding="utf-8"))


def test_ldc_data_file_contents_enter_the_hash(tmp_path):
    # a rerun must not reuse results computed from other data under the same file name
    data = tmp_path / "mnist.npz"
    data.write_bytes(b"first")
    path = tmp_path / "ldc.toml"
    path.write_text('[analysis]\nkind = "ldc"\ndata = "mnist.npz"\n')
    first = load_study(str(path)).hash
    assert load_study(str(path)).hash == first
    data.write_bytes(b"second")
    assert load_study(str(path)).hash != first
