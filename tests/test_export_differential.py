"""The exported policy graph against its scikit-learn (float64) reference, on real data.

Banking77 with the real Qwen3-30B teacher: 3,000 training rows, 1,000 rows to fit the
acceptors, 1,000 evaluation rows.  For every candidate of the default pool and every
mode the graph (onnxruntime, CPU) must give the same labels and handled decisions as
``policy_numpy``, with scores and probabilities within 1e-5.  tau is a realistic value
(near the median score) that lies in a gap of the scores wider than the tolerance: a
score within float32 error of tau may legitimately fall on either side.
"""

from __future__ import annotations


import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import compose, helper
from sklearn.ensemble import (ExtraTreesClassifier, HistGradientBoostingClassifier,
                              RandomForestClassifier)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from conftest import banking77_teacher
from tracec.acceptor import fit_acceptor
from tracec.candidates import candidate_specs
from tracec.errors import ExportError, ParameterError
from tracec.export import (StageGraphSpec, TARGET_OPSETS, build_policy_graph, policy_numpy,
                           stage_numpy, surrogate_to_onnx)
from tracec.export.shims import dedupe_opsets, float32_floor, hist_gb_export, pin_opsets
from tracec.features import acceptor_features

TOL = 1e-5
DEFAULT_NAMES = [s.name for s in candidate_specs()]
TREE_NAMES = [s.name for s in candidate_specs(include_trees=True) if s.kind == "tree"]
# (mode, position of the candidate): position 0 = only / first stage, 1 = second stage.
LAYOUTS = [("global", 0), ("l2d", 0), ("closed", 0), ("cascade", 0), ("cascade", 1),
           ("closed", 1)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """BLAS/OpenMP on one thread: on a shared 2-core machine this is many times faster."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def b77():
    X, y = banking77_teacher(7)
    tr, acc, ev = slice(0, 3000), slice(3000, 4000), slice(4000, 5000)
    return {"X": X[tr], "y": y[tr], "X_acc": X[acc], "y_acc": y[acc], "X_ev": X[ev],
            "n_labels": int(y.max()) + 1}


def _stage(est, d) -> StageGraphSpec:
    probs = est.predict_proba(d["X_acc"].astype(np.float64))
    pred = np.asarray(est.classes_)[probs.argmax(axis=1)]
    acc = fit_acceptor(probs, pred == d["y_acc"], seed=0)
    return StageGraphSpec(est, np.asarray(est.classes_, dtype=np.int64), acc.coef, acc.intercept)


def _fit(est, X, y):
    return est.fit(X, y)


@pytest.fixture(scope="module")
def residual(b77):
    """A stage trained on a subset of the classes (every third label), like a cascade's stage 2."""
    keep = np.isin(b77["y"], np.arange(0, b77["n_labels"], 3))
    est = _fit(make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=300)),
               b77["X"][keep], b77["y"][keep])
    assert len(est.classes_) < b77["n_labels"]
    return _stage(est, b77)


@pytest.fixture(scope="module")
def default_stages(b77):
    return {s.name: _stage(_fit(s.make(0), b77["X"], b77["y"]), b77)
            for s in candidate_specs()}


def realistic_tau(*scores: np.ndarray) -> float:
    """A float32 tau near the median score, in a gap of the scores wider than 2 * TOL."""
    s = np.unique(np.concatenate([np.asarray(x, dtype=np.float64) for x in scores]))
    wide = np.nonzero(np.diff(s) > 10 * TOL)[0]
    i = wide[np.argmin(np.abs(wide - len(s) // 2))]
    return float(np.float32((s[i] + s[i + 1]) / 2))


def run_graph(data: bytes, X: np.ndarray):
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(["label", "score", "handled"], {"embedding": X.astype(np.float32)})


def check_layout(stage: StageGraphSpec, other: StageGraphSpec, mode: str, pos: int, X):
    stages = [stage] if (mode in ("global", "l2d") or (mode == "closed" and pos == 0)) else (
        [stage, other] if pos == 0 else [other, stage])
    tau = realistic_tau(*[stage_numpy(st, X)[2] for st in stages])
    data = build_policy_graph(stages, n_features=X.shape[1], tau=tau, mode=mode)
    label, score, handled = run_graph(data, X)
    ref_label, ref_score, ref_handled = policy_numpy(stages, X, tau, mode)
    assert label.dtype == np.int64 and score.dtype == np.float32 and handled.dtype == bool
    assert np.abs(score.astype(np.float64) - ref_score).max() <= TOL
    assert np.array_equal(label, ref_label), f"{int((label != ref_label).sum())} labels differ"
    assert np.array_equal(handled, ref_handled)
    if mode in ("l2d", "cascade"):
        assert 0 < handled.sum() < len(X), "tau is not a realistic threshold"
    else:
        assert handled.all() if mode == "global" else not handled.any()


@pytest.mark.parametrize("name", DEFAULT_NAMES)
def test_stage_probabilities_match(name, default_stages, b77):
    st = default_stages[name]
    model = surrogate_to_onnx(st.estimator, 384, b77["n_labels"], "s_")
    probs, label = ort.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"]).run(
        ["s_probs", "s_label"], {"embedding": b77["X_ev"]})
    ref_probs, ref_label, _ = stage_numpy(st, b77["X_ev"])
    assert probs.shape == ref_probs.shape
    assert np.abs(probs - ref_probs).max() <= TOL
    assert np.array_equal(label, ref_label)


@pytest.mark.parametrize("mode,pos", LAYOUTS)
@pytest.mark.parametrize("name", DEFAULT_NAMES)
def test_policy_graph_matches_numpy(name, mode, pos, default_stages, residual, b77):
    check_layout(default_stages[name], residual, mode, pos, b77["X_ev"])


@pytest.fixture(scope="module")
def small_trees(b77):
    """Small versions of each tree kind (the full-size ones are in the slow test)."""
    makers = {"decision_tree": DecisionTreeClassifier(max_leaf_nodes=64, random_state=0),
              "random_forest": RandomForestClassifier(10, max_leaf_nodes=32, random_state=0),
              "extra_trees": ExtraTreesClassifier(10, max_leaf_nodes=32, random_state=0),
              "hist_gb": HistGradientBoostingClassifier(max_iter=4, max_leaf_nodes=7,
                                                        l2_regularization=1.0,
                                                        early_stopping=False, random_state=0)}
    return {k: _stage(_fit(m, b77["X"], b77["y"]), b77) for k, m in makers.items()}


@pytest.mark.parametrize("mode,pos", [("l2d", 0), ("cascade", 0), ("cascade", 1)])
@pytest.mark.parametrize("name", TREE_NAMES)
def test_small_trees_match_numpy(name, mode, pos, small_trees, residual, b77):
    check_layout(small_trees[name], residual, mode, pos, b77["X_ev"])


@pytest.mark.slow
@pytest.mark.parametrize("name", TREE_NAMES)
def test_pool_trees_match_numpy(name, residual, b77):
    spec = next(s for s in candidate_specs(include_trees=True) if s.name == name)
    stage = _stage(_fit(spec.make(0), b77["X"], b77["y"]), b77)
    for mode, pos in LAYOUTS:
        check_layout(stage, residual, mode, pos, b77["X_ev"])


def test_graph_interface_and_determinism(default_stages, residual, b77):
    stages = [default_stages["mlp_256"], residual]
    first = build_policy_graph(stages, n_features=384, tau=0.5, mode="cascade")
    again = build_policy_graph(stages, n_features=384, tau=0.5, mode="cascade")
    assert first == again
    model = onnx.load_from_string(first)
    assert [i.name for i in model.graph.input] == ["embedding"]
    assert [o.name for o in model.graph.output] == ["label", "score", "handled"]
    assert {(o.domain, o.version) for o in model.opset_import} == set(TARGET_OPSETS.items())
    assert model.producer_name == "tracec"
    # a refit from the same seed exports to the same bytes
    spec = next(s for s in candidate_specs() if s.name == "mlp_256")
    refit = _stage(_fit(spec.make(0), b77["X"], b77["y"]), b77)
    assert build_policy_graph([refit, residual], n_features=384, tau=0.5, mode="cascade") == first
    other_tau = build_policy_graph(stages, n_features=384, tau=0.25, mode="cascade")
    assert other_tau != first


def test_size_budget_enforced(default_stages):
    st = default_stages["mlp_256"]
    size = len(build_policy_graph([st], n_features=384, tau=0.5, mode="l2d"))
    assert len(build_policy_graph([st], n_features=384, tau=0.5, mode="l2d",
                                  max_bytes=size)) == size
    with pytest.raises(ExportError, match=f"{size} bytes; the size budget is {size - 1}"):
        build_policy_graph([st], n_features=384, tau=0.5, mode="l2d", max_bytes=size - 1)


def test_invalid_policy_parameters(default_stages, residual):
    st = default_stages["logreg_c0.5"]
    with pytest.raises(ParameterError, match="'mode' parameter of build_policy_graph"):
        build_policy_graph([st], n_features=384, tau=0.5, mode="ensemble")
    with pytest.raises(ParameterError, match="2 stage"):
        build_policy_graph([st], n_features=384, tau=0.5, mode="cascade")
    with pytest.raises(ParameterError, match="tau"):
        build_policy_graph([st], n_features=384, tau=0.1, mode="l2d")   # 0.1 is not a float32
    with pytest.raises(ParameterError, match="tau"):
        policy_numpy([st, residual], np.zeros((2, 384)), float("nan"), "cascade")
    bad = StageGraphSpec(st.estimator, st.classes[::-1], st.acceptor_coef, st.acceptor_intercept)
    with pytest.raises(ParameterError, match="classes"):
        build_policy_graph([bad], n_features=384, tau=0.5, mode="l2d")


def test_closed_graph_accepts_infinite_tau(default_stages, residual, b77):
    stages = [default_stages["logreg_c0.5"], residual]
    label, _, handled = run_graph(build_policy_graph(stages, n_features=384, tau=float("inf"),
                                                     mode="closed"), b77["X_ev"][:50])
    assert not handled.any()
    assert np.array_equal(label, policy_numpy(stages, b77["X_ev"][:50], float("inf"), "closed")[0])


def _hgb_threshold_trap():
    """Two float32 values whose float64 midpoint rounds *up* to the larger one."""
    a = np.float32(1 + 2.0 ** -23)
    b = np.nextafter(a, np.float32(2))
    mid = (float(a) + float(b)) / 2
    assert float(np.float32(mid)) == float(b) > mid   # nearest rounding lands on b
    X = np.repeat(np.array([[a], [b]], dtype=np.float32), 30, axis=0)
    y = np.repeat([0, 1], 30)
    return X, y, a, mid


def test_hist_gb_shim_exports_exactly():
    X, y, a, mid = _hgb_threshold_trap()
    est = HistGradientBoostingClassifier(max_iter=3, min_samples_leaf=5, early_stopping=False,
                                         random_state=0).fit(X, y)
    assert np.array_equal(est.predict(X), y)
    model = surrogate_to_onnx(est, 1, 2, "h_")
    ints = [a for n in model.graph.node for a in n.attribute
            if a.name == "nodes_missing_value_tracks_true"]
    assert ints and all(a.type == onnx.AttributeProto.INTS for a in ints)
    probs, label = ort.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"]).run(
        None, {"embedding": X})
    assert np.array_equal(label, y)                 # b goes right, as in scikit-learn
    assert np.abs(probs - est.predict_proba(X)).max() <= TOL
    assert float32_floor(mid) == a and float32_floor(float(a)) == a
    with hist_gb_export():
        pass
    from skl2onnx.common import tree_ensemble
    assert tree_ensemble.add_node.__name__ == "add_node"   # the patch is undone on exit


def test_duplicate_opsets_deduplicated_before_merge():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    est = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, (X[:, 0] > 0).astype(int))
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    raw = to_onnx(est, initial_types=[("x", FloatTensorType([None, 4]))],
                  target_opset=dict(TARGET_OPSETS), options={"zipmap": False})
    domains = [o.domain for o in raw.opset_import]
    assert len(domains) > len(set(domains)), "skl2onnx no longer duplicates opset entries"
    post = helper.make_model(helper.make_graph(
        [helper.make_node("ArgMax", ["p"], ["k"], axis=1, keepdims=0)], "post",
        [helper.make_tensor_value_info("p", onnx.TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("k", onnx.TensorProto.INT64, [None])]),
        opset_imports=[helper.make_opsetid(d, v) for d, v in TARGET_OPSETS.items()],
        ir_version=raw.ir_version)
    with pytest.raises(ValueError, match="different operator set ids"):
        compose.merge_models(raw, post, io_map=[("probabilities", "p")])
    merged_raw = compose.merge_models(raw, compose.add_prefix(raw, "b_"),
                                      io_map=[("probabilities", "b_x")])
    assert len(merged_raw.opset_import) > 2 * len(set(domains))   # duplicates multiply
    fixed = pin_opsets(dedupe_opsets(onnx.ModelProto.FromString(raw.SerializeToString())),
                       TARGET_OPSETS)
    merged = dedupe_opsets(compose.merge_models(fixed, post, io_map=[("probabilities", "p")]))
    assert {(o.domain, o.version) for o in merged.opset_import} == set(TARGET_OPSETS.items())
    assert len(merged.opset_import) == len(TARGET_OPSETS)
    onnx.checker.check_model(merged, full_check=True)
    k, = ort.InferenceSession(merged.SerializeToString(),
                              providers=["CPUExecutionProvider"]).run(["k"], {"x": X})
    assert np.array_equal(k, est.predict(X))


def test_acceptor_features_reference():
    p = np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0]])
    f = acceptor_features(p)
    assert np.allclose(f[:, 0], [0.7, 1 / 3, 1.0]) and np.allclose(f[:, 1], [0.2, 1 / 3, 0.0])
    assert np.allclose(f[:, 2], f[:, 0] - f[:, 1])
    assert np.isclose(f[1, 3], 1.0) and f[2, 3] == 0.0
    expected = -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)) / np.log(3)
    assert np.isclose(f[0, 3], expected)
    single = acceptor_features(np.array([[1.0], [0.5]]))
    assert np.array_equal(single, [[1.0, 0, 1.0, 0], [0.5, 0, 0.5, 0]])


@pytest.mark.parametrize("n_classes", [2, 3])
def test_sgd_probabilities_do_not_underflow(n_classes):
    """Every one-vs-rest score far below -88: float32 exp overflows in skl2onnx's formula."""
    from sklearn.linear_model import SGDClassifier

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    y = np.argmax(X[:, :n_classes], axis=1)
    est = SGDClassifier(loss="log_loss", random_state=0).fit(X, y)
    est.intercept_ = est.intercept_ - 200.0          # push every score to about -200
    if n_classes > 2:
        assert est.decision_function(X).max() < -100
    ref = est.predict_proba(X.astype(np.float64))
    assert ref.max(axis=1).min() > 0.5               # far from uniform in float64
    model = surrogate_to_onnx(est, 5, n_classes, "g_")
    probs, label = ort.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"]).run(
        None, {"embedding": X})
    assert np.abs(probs - ref).max() <= TOL
    assert np.array_equal(label, ref.argmax(axis=1))


def test_zero_leaf_weights_dropped_exactly(b77, monkeypatch):
    import tracec.export.convert as convert

    est = RandomForestClassifier(5, max_leaf_nodes=32, random_state=0).fit(b77["X"], b77["y"])
    slim = surrogate_to_onnx(est, 384, b77["n_labels"], "r_")
    monkeypatch.setattr(convert, "drop_zero_leaf_weights", lambda model: model)
    full = surrogate_to_onnx(est, 384, b77["n_labels"], "r_")
    assert len(slim.SerializeToString()) * 3 < len(full.SerializeToString())
    outs = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"embedding": b77["X_ev"]}) for m in (slim, full)]
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])
