"""The numpy fast path decides as the ONNX policy graph does, on real Banking77 traces.

(Format validation and the import check: tests/test_fastpath_format.py.)

Surrogates are trained on a few thousand real rows (Qwen3-30B teacher labels,
MiniLM embeddings); every comparison runs on all training and held-out rows.
Thresholds come from ``threshold_grid`` (midpoints between distinct scores),
as in a real compile.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from conftest import banking77_teacher
from tracec.acceptor import fit_acceptor
from tracec.calibration import threshold_grid
from tracec.export import StageGraphSpec, build_policy_graph, policy_numpy
from tracec.export.fastpath import check_identical, fastpath_files, verified_fastpath
from tracec.scoring import GraphScorer
from tracec_runtime.canonical import canonical_bytes
from tracec_runtime.fastpath import FASTPATH_BIN, FASTPATH_JSON, FastPath

SCORE_TOL = 1e-5
KINDS = {
    "lr": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
    "sgd": lambda: SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=30, random_state=0),
    "mlp256": lambda: make_pipeline(StandardScaler(),
                                    MLPClassifier((256,), max_iter=30, random_state=0)),
    "mlp256_128": lambda: make_pipeline(StandardScaler(),
                                        MLPClassifier((256, 128), max_iter=30, random_state=0)),
}


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """Oversubscribed BLAS threads make training many times slower on a shared machine."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def banking():
    X, y = banking77_teacher(7, 3500)
    return X, y, slice(0, 2000), slice(2000, 3500)


def _stage(estimator, banking) -> StageGraphSpec:
    X, y, train, held = banking
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning: identity needs no convergence
        estimator.fit(X[train], y[train])
    probs = estimator.predict_proba(X[held])
    agree = estimator.classes_[probs.argmax(axis=1)] == y[held]
    acc = fit_acceptor(probs, agree, seed=0)
    return StageGraphSpec(estimator, np.asarray(estimator.classes_, dtype=np.int64),
                          acc.coef, acc.intercept)


@pytest.fixture(scope="module")
def stages(banking):
    return {name: _stage(make(), banking) for name, make in KINDS.items()}


@pytest.fixture(scope="module")
def taus(stages, banking):
    """Per kind, a grid threshold from the held-out graph scores, as the compiler picks it."""
    X, _, _, held = banking
    out = {}
    for name, stage in stages.items():
        graph = build_policy_graph([stage], n_features=X.shape[1], tau=0.5, mode="l2d")
        scores = GraphScorer(graph).run(X[held])[1]
        grid = threshold_grid(scores, n_calibration=len(scores))
        out[name] = float(grid[len(grid) // 2])
    return out


def _kinds(kinds) -> tuple:
    return (kinds,) if isinstance(kinds, str) else tuple(kinds)


def _fast(stage_list, mode, tau) -> FastPath:
    files = fastpath_files(stage_list, mode=mode, tau=tau)
    assert files is not None
    return FastPath.from_bytes(files[FASTPATH_JSON], files[FASTPATH_BIN])


CASES = [(k, m) for k in KINDS for m in ("l2d", "global", "closed")] + [
    (("lr", "mlp256"), "cascade"), (("sgd", "mlp256_128"), "cascade"),
    (("mlp256", "lr"), "closed")]


def _id(v) -> str:
    return "+".join(v) if isinstance(v, tuple) else v


@pytest.mark.parametrize("kinds,mode", CASES, ids=_id)
def test_fast_path_matches_onnx_graph(banking, stages, taus, kinds, mode):
    X = banking[0]
    stage_list = [stages[k] for k in _kinds(kinds)]
    tau = taus[_kinds(kinds)[0]]
    graph = build_policy_graph(stage_list, n_features=X.shape[1], tau=tau, mode=mode)
    fast = _fast(stage_list, mode, tau)
    g_label, g_score, g_handled = GraphScorer(graph).run(X)
    label, score, handled = fast.run(X)
    assert label.dtype == np.int64 and score.dtype == np.float32 and handled.dtype == bool
    np.testing.assert_array_equal(label, g_label)
    np.testing.assert_array_equal(handled, g_handled)
    assert np.abs(score.astype(np.float64) - g_score).max() <= SCORE_TOL
    if mode in ("l2d", "cascade"):   # the threshold really splits the rows
        assert 0 < handled.sum() < len(handled)
    report = check_identical(fast, graph, X)
    assert report.identical and report.rows == len(X)
    assert report.max_score_diff <= SCORE_TOL
    # and the float64 scikit-learn reference of the same policy
    r_label, r_score, r_handled = policy_numpy(stage_list, X, tau, mode)
    assert np.abs(score - r_score).max() <= SCORE_TOL
    np.testing.assert_array_equal(label, r_label)
    clear = np.abs(r_score - tau) > SCORE_TOL
    np.testing.assert_array_equal(handled[clear], r_handled[clear])


@pytest.mark.parametrize("kinds,mode", [("lr", "l2d"), ("mlp256_128", "l2d"),
                                        (("sgd", "mlp256"), "cascade"), ("mlp256", "global")],
                         ids=_id)
def test_run_one_equals_run_row_by_row(banking, stages, taus, kinds, mode):
    X = banking[0]
    stage_list = [stages[k] for k in _kinds(kinds)]
    fast = _fast(stage_list, mode, taus[_kinds(kinds)[0]])
    label, score, handled = fast.run(X)
    for i, x in enumerate(X):
        y1, s1, h1 = fast.run_one(x)
        assert type(y1) is int and type(s1) is float and type(h1) is bool
        assert (y1, h1) == (int(label[i]), bool(handled[i])), i
        assert abs(s1 - float(score[i])) <= SCORE_TOL and s1 == float(np.float32(s1))


def test_cascade_runs_stage_two_only_for_what_stage_one_defers(banking, stages, taus,
                                                                monkeypatch):
    """The cascade's score is stage 1's wherever stage 1 clears tau (graph and fast path), so
    ``run_one`` never evaluates stage 2 for those rows; elsewhere it is max(s1, s2)."""
    import tracec_runtime.fastpath as fp
    X = banking[0][:400]
    pair, tau = [stages["lr"], stages["mlp256"]], taus["lr"]
    graph = build_policy_graph(pair, n_features=X.shape[1], tau=tau, mode="cascade")
    _, g_score, _ = GraphScorer(graph).run(X)
    _, s1, _ = GraphScorer(build_policy_graph(pair[:1], n_features=X.shape[1], tau=tau,
                                              mode="l2d")).run(X)
    _, s2, _ = GraphScorer(build_policy_graph(pair[1:], n_features=X.shape[1], tau=tau,
                                              mode="l2d")).run(X)
    first = s1 >= np.float32(tau)
    assert 0 < first.sum() < len(X)
    np.testing.assert_array_equal(g_score[first], s1[first])
    np.testing.assert_array_equal(g_score[~first], np.maximum(s1, s2)[~first])
    fast = _fast(pair, "cascade", tau)
    calls = []
    real = fp._stage_one
    monkeypatch.setattr(fp, "_stage_one", lambda st, x: calls.append(st) or real(st, x))
    for x, f in zip(X, first):
        calls.clear()
        fast.run_one(x)
        assert len(calls) == (1 if f else 2)


OTHER_HEADS = {   # binary heads (one logistic output, or SGD's (-s, s) columns) and activations
    "binary lr": (lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)), 2),
    "binary sgd": (lambda: SGDClassifier(loss="log_loss", max_iter=30, random_state=0), 2),
    "binary mlp": (lambda: make_pipeline(StandardScaler(), MLPClassifier(
        (32,), max_iter=30, random_state=0)), 2),
    "tanh mlp": (lambda: MLPClassifier((32,), activation="tanh", max_iter=30, random_state=0), 0),
    "logistic mlp": (lambda: MLPClassifier((32, 16), activation="logistic", max_iter=30,
                                           random_state=0), 0),
    "identity mlp": (lambda: MLPClassifier((32,), activation="identity", max_iter=30,
                                           random_state=0), 0),
    "uncentred lr": (lambda: make_pipeline(StandardScaler(with_mean=False),
                                           LogisticRegression(max_iter=300)), 0),
    "unscaled mlp": (lambda: make_pipeline(StandardScaler(with_std=False),
                                           MLPClassifier((32,), max_iter=30, random_state=0)), 0),
}


@pytest.mark.parametrize("name", sorted(OTHER_HEADS))
def test_binary_heads_and_activations_match_onnx_graph(banking, name):
    X, y, train, held = banking
    make, n_classes = OTHER_HEADS[name]
    if n_classes == 2:   # the most frequent teacher label vs the rest, as labels 3 and 4
        y = np.where(y == np.bincount(y).argmax(), 4, 3)
    stage = _stage(make(), (X, y, train, held))
    tau = float(np.float32(0.6))
    graph = build_policy_graph([stage], n_features=X.shape[1], tau=tau, mode="l2d")
    fast = _fast([stage], "l2d", tau)
    report = check_identical(fast, graph, X)
    assert report.identical and report.max_score_diff <= SCORE_TOL
    label = fast.run(X)[0]
    assert set(np.unique(label)) <= set(stage.classes.tolist())
    if n_classes == 2:
        assert json.loads(fastpath_files([stage], mode="l2d", tau=tau)[FASTPATH_JSON])[
            "stages"][0]["output"] == ("ovr" if "sgd" in name else "logistic")


def test_check_identical_reports_differences(banking, stages):
    """A fast path built for another tau differs from the graph, and is refused."""
    X = banking[0]
    st = [stages["lr"]]
    scores = GraphScorer(build_policy_graph(st, n_features=X.shape[1], tau=0.5,
                                            mode="l2d")).run(X)[1]
    lo, hi = (float(np.float32(q)) for q in np.quantile(scores, [0.4, 0.6]))
    graph = build_policy_graph(st, n_features=X.shape[1], tau=lo, mode="l2d")
    files, report = verified_fastpath(st, mode="l2d", tau=hi, graph_bytes=graph, X=X)
    assert files is None and not report.identical and report.label_mismatches == 0
    fast = _fast(st, "l2d", hi)
    g_handled = GraphScorer(graph).run(X)[2]
    bad = (fast.run(X)[2] != g_handled) | (np.array([fast.run_one(x)[2] for x in X]) != g_handled)
    assert report.handled_mismatches == int(bad.sum())
    assert abs(report.handled_mismatches - int(np.sum((scores >= lo) & (scores < hi)))) <= 2
    assert report.handled_mismatches > 0.15 * len(X)
    assert report.decision_mismatches == report.handled_mismatches
    record = report.manifest_record()
    assert canonical_bytes(record) and record["present"] is False
    assert record["rows_checked"] == len(X) and record["decision_mismatches"] > 0
    files, report = verified_fastpath(st, mode="l2d", tau=lo, graph_bytes=graph, X=X)
    assert files is not None and report.identical and report.manifest_record()["present"]


def test_files_are_deterministic_and_aligned(stages):
    st = [stages["mlp256"], stages["lr"]]
    a = fastpath_files(st, mode="cascade", tau=0.75)
    b = fastpath_files(st, mode="cascade", tau=0.75)
    assert a == b
    doc = json.loads(a[FASTPATH_JSON])
    assert a[FASTPATH_JSON] == canonical_bytes(doc) + b"\n"
    assert all(t["offset"] % 64 == 0 for t in doc["tensors"].values())
    assert doc["stages"][0]["head"] == "mlp" and doc["stages"][1]["head"] == "linear"
    assert doc["tau"] == "0.75" and doc["n_features"] == 384


def test_unsupported_estimators_have_no_fast_path(banking):
    from sklearn.decomposition import PCA
    from sklearn.tree import DecisionTreeClassifier

    X, y, train, held = banking
    for est in (DecisionTreeClassifier(max_depth=3, random_state=0),
                make_pipeline(PCA(8, random_state=0), LogisticRegression(max_iter=50)),
                SGDClassifier(loss="hinge", max_iter=5, random_state=0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X[train], y[train])
        spec = StageGraphSpec(est, np.asarray(est.classes_, dtype=np.int64),
                              np.array([1.0, 0.0, 0.0, 0.0]), 0.0)
        assert fastpath_files([spec], mode="l2d", tau=0.5) is None


def test_run_one_is_thread_safe(banking, stages, taus):
    from concurrent.futures import ThreadPoolExecutor

    X = banking[0][:600]
    fast = _fast([stages["mlp256"]], "l2d", taus["mlp256"])
    expected = [fast.run_one(x) for x in X]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(fast.run_one, X))
    assert got == expected


def test_single_row_check_is_capped_to_an_even_sample_and_still_catches_a_row(banking, stages,
                                                                              monkeypatch):
    """Above SINGLE_ROW_CAP rows run_one is compared on evenly spaced rows (a million rows
    would spend minutes in the per-row loop); a run_one that differs on a sampled row is
    still caught, and the record says how many rows were compared one by one."""
    import tracec.export.fastpath as fp
    assert fp.single_row_sample(10, cap=20).tolist() == list(range(10))
    idx = fp.single_row_sample(1000, cap=100)
    assert len(idx) == 100 and idx[0] == 0 and idx[-1] == 999 and np.all(np.diff(idx) >= 9)
    X = banking[0]
    st = [stages["lr"]]
    tau = float(np.float32(0.6))
    graph = build_policy_graph(st, n_features=X.shape[1], tau=tau, mode="l2d")
    fast = _fast(st, "l2d", tau)
    monkeypatch.setattr(fp, "SINGLE_ROW_CAP", 50)
    report = check_identical(fast, graph, X)
    assert report.identical and report.manifest_record()["single_rows_checked"] == 50
    bad_row = X[fp.single_row_sample(len(X))[7]]

    class OffByOne:  # the batch path is right, run_one is wrong on one row
        def __getattr__(self, name):
            return getattr(fast, name)

        def run_one(self, x):
            label, score, handled = fast.run_one(x)
            return (label + 1 if np.array_equal(x, bad_row) else label), score, handled
    report = check_identical(OffByOne(), graph, X)
    assert not report.identical and report.label_mismatches >= 1
