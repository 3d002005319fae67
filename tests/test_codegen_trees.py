"""Codegen of stage shapes the candidate pool rarely ships, on real Banking77 rows.

Tree-ensemble stages (no fast path: the reference is onnxruntime on the graph), and dense
heads and activations (one-vs-rest SGD, binary logistic, tanh / logistic MLPs) with the
fast path the compiler would ship (the reference is the numpy engine).

The candidate pool rarely selects these on sentence embeddings, so these bundles are
the compiler's own policy graph (``build_policy_graph``) for hand-picked stages
fitted on real Banking77 rows (real teacher), sealed like any bundle.  tau lies in a
gap of the scores (tree scores take few distinct values, and a score within float32
rounding of tau may legitimately fall either side).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from conftest import banking77_teacher, run_tracec
from test_codegen_harness import LANGS, assert_matches_runtime, write_policy_bundle

ROWS = 300


@pytest.fixture(scope="module")
def data():
    X, y = banking77_teacher(11, 3300)
    return {"X": X[:2000], "y": y[:2000], "X_acc": X[2000:3000], "y_acc": y[2000:3000],
            "X_ev": X[3000:3300], "labels": [f"label_{k}" for k in range(77)]}


def _stage(est, d):
    from tracec.acceptor import fit_acceptor
    from tracec.export import StageGraphSpec

    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # small, quick fits on purpose
        est.fit(d["X"], d["y"])
        probs = est.predict_proba(d["X_acc"].astype(np.float64))
    agree = np.asarray(est.classes_)[probs.argmax(axis=1)] == d["y_acc"]
    acc = fit_acceptor(probs, agree, 0)
    return StageGraphSpec(est, np.asarray(est.classes_), acc.coef, acc.intercept)


def _gap_tau(scores: np.ndarray) -> float:
    """A float32 tau between two distinct scores near the median, with a gap > 1e-4."""
    s = np.unique(scores.astype(np.float64))
    med = np.median(scores)
    gaps = [(abs((a + b) / 2 - med), (a + b) / 2) for a, b in zip(s[:-1], s[1:]) if b - a > 1e-4]
    return float(np.float32(min(gaps)[1]))


@pytest.fixture(scope="module")
def stages(data):
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    return {"tree": _stage(DecisionTreeClassifier(max_depth=14, random_state=0), data),
            "forest": _stage(RandomForestClassifier(n_estimators=12, max_depth=10,
                                                    random_state=0), data),
            "hgb": _stage(HistGradientBoostingClassifier(max_iter=8, max_depth=4,
                                                         random_state=0), data)}


def _bundle(tmp_path_factory, data, specs, mode, name, fast=False):
    from tracec.scoring import GraphScorer
    from tracec.export import build_policy_graph

    probe = build_policy_graph(specs, n_features=384, tau=0.5, mode="l2d" if len(specs) == 1
                               else "cascade")
    _, score, _ = GraphScorer(probe).run(data["X_ev"])
    tau = _gap_tau(score)
    out = tmp_path_factory.mktemp("cg_trees") / name
    return write_policy_bundle(out, specs, mode=mode, tau=tau, labels=data["labels"], dim=384,
                               check_rows=data["X_ev"] if fast else None)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, data, stages):
    return {
        "l2d-tree": _bundle(tmp_path_factory, data, [stages["tree"]], "l2d", "l2d-tree"),
        "l2d-hgb": _bundle(tmp_path_factory, data, [stages["hgb"]], "l2d", "l2d-hgb"),
        "cascade-forest-hgb": _bundle(tmp_path_factory, data, [stages["forest"], stages["hgb"]],
                                      "cascade", "cascade-forest-hgb"),
        "closed-forest": _bundle(tmp_path_factory, data, [stages["forest"]], "closed",
                                 "closed-forest"),
    }


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("cg_tree_pkgs")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", ["l2d-tree", "l2d-hgb", "cascade-forest-hgb", "closed-forest"])
def test_tree_policies_match_runtime(bundles, data, root, name, lang):
    info = assert_matches_runtime(bundles[name], lang, data["X_ev"][:ROWS], root)
    assert info["engine"] == "onnxruntime"
    if name.startswith("closed"):
        assert info["handled"] == 0.0
    else:
        assert 0.05 < info["handled"] < 0.95


def test_a_stage_without_fast_path_that_is_not_a_tree_is_refused(tmp_path, data, stages):
    """A cascade of a tree and a logistic regression has no fast path and a non-tree graph
    stage: codegen refuses (exit 1) rather than emit a policy that ignores a stage."""
    from sklearn.linear_model import LogisticRegression

    linear = _stage(LogisticRegression(C=0.5, max_iter=300), data)
    bundle = write_policy_bundle(tmp_path / "mixed", [stages["tree"], linear], mode="cascade",
                                 tau=0.5, labels=data["labels"], dim=384)
    proc = run_tracec("codegen", bundle, "--lang", "c", "--out", tmp_path / "out",
                      "--allow-unsigned", check_code=1)
    assert "s2_" in proc.stderr and "TreeEnsembleClassifier" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def dense_bundles(tmp_path_factory, data):
    """Dense heads and activations the pool rarely ships: one-vs-rest SGD, a binary logistic
    regression (1 output), MLPs with tanh and logistic hidden layers; with their fast path."""
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    two = np.isin(data["y"], [1, 11])
    binary = {**data, "X": data["X"][two], "y": data["y"][two]}
    specs = {
        "sgd-ovr": [_stage(make_pipeline(StandardScaler(), SGDClassifier(
            loss="log_loss", alpha=1e-2, max_iter=50, tol=1e-2, random_state=0)), data)],
        "binary-logistic": [_stage(LogisticRegression(C=1.0, max_iter=500), binary)],
        "mlp-tanh-logistic": [_stage(MLPClassifier(hidden_layer_sizes=(32,), activation="tanh",
                                                   max_iter=60, random_state=0), data),
                              _stage(MLPClassifier(hidden_layer_sizes=(16, 8),
                                                   activation="logistic", max_iter=60,
                                                   random_state=0), data)],
    }
    modes = {"sgd-ovr": "l2d", "binary-logistic": "l2d", "mlp-tanh-logistic": "cascade"}
    return {n: _bundle(tmp_path_factory, data, s, modes[n], n, fast=True)
            for n, s in specs.items()}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", ["sgd-ovr", "binary-logistic", "mlp-tanh-logistic"])
def test_dense_heads_and_activations_match_runtime(dense_bundles, data, root, name, lang):
    info = assert_matches_runtime(dense_bundles[name], lang, data["X_ev"][:ROWS], root)
    assert info["engine"] == "numpy"
