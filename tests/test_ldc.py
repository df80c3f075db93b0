"""Landscape-dependent constraints (LDC) and EWC against catastrophic forgetting
(fpsolve.variance_flatness.ldc / .forgetting): data, penalties, training, experiment.

Tiny networks and few iterations: these check the algorithm's pieces exactly (proximal
steps, weights, independence of the lockstep copies, seeding) and that forgetting and
its reduction show up at all; the shipped study (studies/ldc.toml) gives the numbers.
"""
import json

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn not installed (extra 'digits')")

from fpsolve.vf import forgetting, ldc  # noqa: E402
from fpsolve.vf.spectrum import PCAResult  # noqa: E402
from fpsolve.vf.trainers import load_digits_data  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_digits_data(seed=0)


@pytest.fixture(scope="module")
def tasks(digits):
    return ldc.make_task(digits, [0, 1]), ldc.make_task(digits, [2, 3])


@pytest.fixture(scope="module")
def anchor(tasks):
    return ldc.learn_task1(tasks[0], hidden=(8,), iterations=300, window=100,
                           snapshot_every=2, seed=1)


# -- data ------------------------------------------------------------------------------------

def test_make_task_relabels_by_position(digits):
    t = ldc.make_task(digits, [7, 3])
    assert t.digits == (7, 3)
    assert set(np.unique(t.y_train)) == {0, 1} and len(t.y_test) > 0
    np.testing.assert_array_equal(t.y_train == 0,
                                  digits.y_train[np.isin(digits.y_train, [7, 3])] == 7)
    for bad in ([1], [1, 1], [1, 12], "ab", None):
        with pytest.raises(ValueError, match="make_task: digits"):
            ldc.make_task(digits, bad)


def test_load_mnist_reads_a_local_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mnist.npz"
    x = rng.integers(0, 256, (20, 4, 4), dtype=np.uint8)
    y = np.arange(20) % 10
    np.savez(path, x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    d = ldc.load_mnist(str(path))
    assert d.X_train.shape == (20, 16) and d.X_test.shape == (10, 16)
    assert d.X_train.max() <= 1.0 and np.allclose(d.X_train[3], x[3].ravel() / 255)
    np.testing.assert_array_equal(d.y_train, y)


@pytest.mark.parametrize("arrays, message", [
    (None, "is not a file"),
    ({"x_train": np.zeros((2, 4))}, "missing array"),
    ({"x_train": np.full((2, 4), 300.0), "y_train": [0, 1], "x_test": np.zeros((2, 4)),
      "y_test": [0, 1]}, "0..255"),
    ({"x_train": np.zeros((2, 4)), "y_train": [0, 11], "x_test": np.zeros((2, 4)),
      "y_test": [0, 1]}, "labels 0..9"),
    ({"x_train": np.zeros((2, 4)), "y_train": [0, 1], "x_test": np.zeros((2, 5)),
      "y_test": [0, 1]}, "differ in size"),
])
def test_load_mnist_rejects_bad_files(tmp_path, arrays, message):
    path = tmp_path / "m.npz"
    if arrays is not None:
        np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    with pytest.raises(ValueError, match=message):
        ldc.load_mnist(str(path))


# -- penalties ---------------------------------------------------------------------------------

def test_ldc_weights_follow_the_inverse_relation():
    v = np.array([1e-2, 1e-4, 1e-6, 0.0])
    np.testing.assert_allclose(ldc.ldc_weights(v, 4.0, 2), [1e-1, 1e-2, 0, 0])
    np.testing.assert_allclose(ldc.ldc_weights(v, 2.0, 3), [1e-2, 1e-4, 1e-6, 0])
    with pytest.raises(ValueError, match="n_c"):
        ldc.ldc_weights(v, 4.0, 5)
    with pytest.raises(ValueError, match="psi"):
        ldc.ldc_weights(v, 0.0, 2)
    assert ldc.Constraint("ldc", lam=1e-3, psi=4.0, n_c=1).lam_tilde == pytest.approx(10.0)


def _fake_anchor(n=12, k=5, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, k)))
    var = np.sort(rng.uniform(1e-6, 1e-2, k))[::-1]
    w1 = rng.standard_normal(n)
    P = PCAResult(mean=w1, directions=Q.T.copy(), variances=var, total_variance=var.sum(),
                  n_snapshots=k + 1)
    return ldc.Anchor(net=None, theta=w1, pca=P, fisher=rng.uniform(0, 1, n), eps1=0.0,
                      train_loss=1.0), Q.T


def test_proximal_steps_are_exact():
    A, Th = _fake_anchor()
    lr = 0.1
    C = [ldc.Constraint("none"), ldc.Constraint("ldc", lam=30.0, psi=4.0, n_c=3),
         ldc.Constraint("ewc", lam=2.0), ldc.Constraint("ldc", lam=5.0, psi=3.0, n_c=5)]
    W = A.theta + np.random.default_rng(1).standard_normal((4, A.theta.size))
    W0 = W.copy()
    ldc._Proximal(A, C, lr).apply(W)
    np.testing.assert_array_equal(W[0], W0[0])
    for m in (1, 3):
        c = ldc.ldc_weights(A.pca.variances, C[m].psi, C[m].n_c)
        u0, u = Th @ (W0[m] - A.theta), Th @ (W[m] - A.theta)
        np.testing.assert_allclose(u, u0 / (1 + 2 * lr * C[m].lam * c), rtol=1e-12)
        perp0 = W0[m] - A.theta - Th.T @ u0          # the complement is untouched
        np.testing.assert_allclose(W[m] - A.theta - Th.T @ u, perp0, atol=1e-12)
    np.testing.assert_allclose(W[2] - A.theta,
                               (W0[2] - A.theta) / (1 + 2 * lr * 2.0 * A.fisher), rtol=1e-12)


def test_proximal_step_is_the_gradient_step_for_weak_constraints():
    A, Th = _fake_anchor(seed=2)
    lr, lam = 1e-3, 0.5
    C = [ldc.Constraint("ldc", lam=lam, psi=4.0, n_c=4), ldc.Constraint("ewc", lam=lam)]
    W = A.theta + np.random.default_rng(3).standard_normal((2, A.theta.size))
    d = W - A.theta
    c = ldc.ldc_weights(A.pca.variances, 4.0, 4)
    grad = np.stack([2 * lam * Th.T @ (c * (Th @ d[0])), 2 * lam * A.fisher * d[1]])
    expl = W - lr * grad
    ldc._Proximal(A, C, lr).apply(W)
    step = np.linalg.norm(lr * grad, axis=1)
    assert np.all(np.linalg.norm(W - expl, axis=1) < 1e-2 * step)


def test_constraint_checks():
    for c, msg in ((ldc.Constraint("lcd", 1.0), "kind"), (ldc.Constraint("ewc", 0.0), "lam"),
                   (ldc.Constraint("ldc", 1.0, psi=-1.0, n_c=2), "psi"),
                   (ldc.Constraint("ldc", 1.0, n_c=0), "n_c"),
                   (ldc.Constraint("ldc", 1.0, n_c=99), "n_c must be in 1..10")):
        with pytest.raises(ValueError, match=msg):
            c.check(10)


# -- training ----------------------------------------------------------------------------------

def test_task1_anchor(anchor, tasks):
    assert anchor.net.sizes == (64, 8, 2) and anchor.pca.variances.size == 49
    assert anchor.pca.directions.shape == (49, anchor.net.n_params)
    assert anchor.eps1 < 0.05 and np.all(anchor.fisher >= 0)
    np.testing.assert_allclose(anchor.theta, anchor.pca.mean)
    with pytest.raises(ValueError, match="at least|>= 3 snapshots"):
        ldc.learn_task1(tasks[0], iterations=100, window=4, snapshot_every=2)


def test_lockstep_copies_are_independent_and_forgetting_shows(anchor, tasks):
    t1, t2 = tasks
    kw = dict(tasks_test=(t1, t2), iterations=150, seed=4)
    alone = ldc.learn_task2(anchor, t2, [ldc.Constraint("none")], **kw)
    C = [ldc.Constraint("none"), ldc.Constraint("ewc", lam=1e9),
         ldc.Constraint("ldc", lam=1e3, psi=4.0, n_c=49)]
    E = ldc.learn_task2(anchor, t2, C, **kw)
    np.testing.assert_array_equal(E[0], alone[0])
    assert E[0, 0] > anchor.eps1 + 0.05           # no constraint: task 1 is forgotten
    assert E[1, 0] < E[0, 0] and E[2, 0] < E[0, 0]
    with pytest.raises(ValueError, match="task 2 must have 2 digits"):
        ldc.learn_task2(anchor, ldc.make_task(load_digits_data(), [4, 5, 6]), C)


# -- experiment ---------------------------------------------------------------------------------

TINY = dict(seeds=(0, 1), hidden=(8,), iterations_1=200, window=40, iterations_2=40,
            lambda_ewc=(1e3,), lambda_tilde=(1e6, 1e8), psis=(3.0, 4.0), n_c_scan=(3, 10),
            lambda_tilde_scan=(1e7,))


def _strip(r):
    r = json.loads(json.dumps(r))
    r.pop("seconds")
    for c in r["cases"].values():
        for run in c["runs"]:
            run.pop("seconds")
    return r


def test_experiment_is_seeded_and_independent_of_workers(digits):
    a = _strip(forgetting.experiment_ldc(**TINY))
    b = _strip(forgetting.experiment_ldc(**TINY, workers=2))
    assert a == b
    s = a["cases"]["split"]["summary"]
    assert set(s) >= {"no_constraint", "ewc", "ldc", "after_task1", "paired"}
    assert s["ldc"]["n_c"] == 19 and set(s["ldc"]["by_psi"]) == {"3", "4"}
    assert s["ldc"]["Nc_star"] in (3, 10) and s["ewc"]["best_lambda"] == 1e3
    assert s["no_constraint"]["eps1"]["n"] == 2
    c = _strip(forgetting.experiment_ldc(**dict(TINY, seeds=(0, 2))))
    assert c["cases"]["split"]["runs"][0] == a["cases"]["split"]["runs"][0]
    assert c["cases"]["split"]["runs"][1] != a["cases"]["split"]["runs"][1]


def test_verdicts_follow_the_documented_rules():
    from fpsolve.study.analyses.ldc import table, verdicts
    one = forgetting.experiment_ldc(**dict(TINY, seeds=(0,)))
    v = verdicts(one)
    assert v["split"]["ldc_better_than_ewc"].startswith("not decided")
    assert v["split"]["insensitive_to_psi"].startswith("not decided")
    assert "| verdict |" in table(one, v)
    res = forgetting.experiment_ldc(**TINY)
    s = res["cases"]["split"]["summary"]
    d = s["paired"]["ldc_minus_ewc"]
    for mean, std, word in ((-0.05, 0.01, "supported"), (0.05, 0.01, "not supported"),
                            (-0.01, 0.05, "not resolved")):
        d.update(mean=mean, std=std, n=5)
        assert verdicts(res)["split"]["ldc_better_than_ewc"].startswith(word + ":")
    s["no_constraint"]["eps1"].update(mean=s["after_task1"]["eps1"]["mean"] + 0.01)
    assert verdicts(res)["split"]["forgetting"] == "not shown"
    s["ldc"]["Nc_star"], s["ldc"]["Nc_star_is_largest"] = 10, True
    res["cases"]["pair"]["summary"]["ldc"]["Nc_star"] = 3
    assert verdicts(res)["nc_star_grows_with_difficulty"].startswith("supported: N_c* ≥ 10")


@pytest.mark.parametrize("kw, message", [
    (dict(seeds=(1, 1)), "seeds must be distinct"),
    (dict(cases={"x": ((0, 1), (1, 2))}), "share none"),
    (dict(cases={"x": ((0, 1), (2, 3, 4))}), "as many"),
    (dict(n_c_scan=(0,)), "n_c_scan"),
    (dict(workers=0), "workers"),
])
def test_experiment_rejects_bad_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        forgetting.experiment_ldc(**dict(TINY, **kw))

