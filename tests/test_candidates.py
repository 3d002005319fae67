"""The candidate pool on a small real Banking77 subset (real Qwen3-30B teacher labels)."""

from __future__ import annotations


import numpy as np
import onnxruntime as ort
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

import tracec.candidates as candidates
from conftest import banking77_teacher
from tracec.candidates import CandidateSpec, PoolError, candidate_specs, train_pool
from tracec.errors import ParameterError
from tracec.export import surrogate_to_onnx


@pytest.fixture(scope="module")
def b77():
    X, y = banking77_teacher(3, 1500)
    return X[:1000], y[:1000], X[1000:], y[1000:]


@pytest.fixture(scope="module")
def pools(b77):
    messages: list[str] = []
    first = train_pool(*b77, seed=11, progress=messages.append)
    second = train_pool(*b77, seed=11)
    return first, second, messages


def test_pool_is_deterministic_given_seed(pools, b77):
    first, second, _ = pools
    assert [c.name for c in first] == [c.name for c in second]
    X_val = b77[2].astype(np.float64)
    for a, b in zip(first, second):
        assert np.array_equal(a.estimator.predict_proba(X_val), b.estimator.predict_proba(X_val))
        assert a.val_macro_f1 == b.val_macro_f1 and a.onnx_bytes == b.onnx_bytes
        assert (surrogate_to_onnx(a.estimator, 384, 59, "s_").SerializeToString()
                == surrogate_to_onnx(b.estimator, 384, 59, "s_").SerializeToString())


def test_pool_is_sorted_by_validation_macro_f1(pools, b77):
    first, _, messages = pools
    assert {c.name for c in first} == {s.name for s in candidate_specs()}
    _, _, X_val, y_val = b77
    for cand in first:
        pred = cand.estimator.classes_[cand.estimator.predict_proba(X_val).argmax(axis=1)]
        assert cand.val_macro_f1 == pytest.approx(
            f1_score(y_val, pred, labels=np.unique(y_val), average="macro", zero_division=0))
        assert cand.val_agreement == pytest.approx(np.mean(pred == y_val))
        assert cand.fit_seconds > 0 and cand.onnx_bytes > 0
        assert any(m.startswith(f"candidate {cand.name}: fit") for m in messages)
    scores = [c.val_macro_f1 for c in first]
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) > 1


def test_validation_log_loss_is_the_teacher_labels_log_loss(pools, b77):
    """val_log_loss: mean -log p(teacher label) over validation, floored at 1e-12; a row whose
    teacher label the candidate never saw in training costs -log(1e-12)."""
    first, _, messages = pools
    _, _, X_val, y_val = b77
    for cand in first:
        classes = cand.estimator.classes_
        seen = np.isin(y_val, classes)
        probs = cand.estimator.predict_proba(X_val.astype(np.float64))
        p_true = probs[np.nonzero(seen)[0], np.searchsorted(classes, y_val[seen])]
        want = (-np.log(np.maximum(p_true, 1e-12)).sum() + (~seen).sum() * -np.log(1e-12)) / len(y_val)
        assert cand.val_log_loss == pytest.approx(want, rel=1e-9)
        assert any(m.startswith(f"candidate {cand.name}: fit") and f"log-loss {want:.4f}" in m
                   for m in messages)


def _spec(name, make, kind="linear"):
    return CandidateSpec(name, kind, make)


def test_rankings_order_the_pool_by_their_validation_key(b77):
    """``rank`` orders the pool (pool[0] is the primary stage) by validation macro-F1 (the
    default), agreement or log-loss; ``specs`` replaces the pool (the benchmark's grid)."""
    specs = [_spec(f"lr_c{c:g}", candidates._logreg(c)) for c in (0.01, 0.05, 1.0)]
    pool = train_pool(*b77, seed=0, rank="log_loss", specs=specs)
    assert {c.name for c in pool} == {s.name for s in specs}
    losses = [c.val_log_loss for c in pool]
    assert losses == sorted(losses) and len(set(losses)) == 3
    by = {r: candidates.rank_pool(pool, r) for r in candidates.RANKINGS}
    assert [c.name for c in by["log_loss"]] == [c.name for c in pool]
    f1 = [c.val_macro_f1 for c in by["f1"]]
    agree = [c.val_agreement for c in by["agreement"]]
    assert f1 == sorted(f1, reverse=True) and agree == sorted(agree, reverse=True)
    with pytest.raises(ParameterError, match="'rank' parameter.*one of f1, agreement, log_loss"):
        train_pool(*b77, seed=0, rank="coverage", specs=specs)


def test_ties_are_broken_by_name(b77, monkeypatch):
    same = lambda seed: LogisticRegression(C=1.0, max_iter=300, random_state=seed)  # noqa: E731
    monkeypatch.setattr(candidates, "candidate_specs",
                        lambda include_trees=False: [_spec("zeta", same), _spec("alpha", same)])
    pool = train_pool(*b77, seed=0)
    assert [c.name for c in pool] == ["alpha", "zeta"]
    assert pool[0].val_macro_f1 == pool[1].val_macro_f1


def test_residual_subset_of_classes(b77):
    X_tr, y_tr, X_val, y_val = b77
    subset = np.array([2, 5, 11, 40, 58])
    keep_tr, keep_val = np.isin(y_tr, subset), np.isin(y_val, subset)
    assert keep_tr.sum() > 50
    # validation keeps rows of other labels too: the stage is judged on the whole residual
    val_rows = np.nonzero(keep_val | (np.arange(len(y_val)) < 40))[0]
    pool = train_pool(X_tr[keep_tr], y_tr[keep_tr], X_val[val_rows], y_val[val_rows], seed=0)
    assert pool
    for cand in pool:
        assert np.array_equal(cand.estimator.classes_, subset)
        model = surrogate_to_onnx(cand.estimator, 384, 59, "r_")
        probs, label = ort.InferenceSession(model.SerializeToString(),
                                            providers=["CPUExecutionProvider"]).run(
            ["r_probs", "r_label"], {"embedding": X_val})
        assert probs.shape == (len(X_val), len(subset))
        assert set(np.unique(label)) <= set(subset.tolist())
        assert np.array_equal(label, subset[probs.argmax(axis=1)])


def test_size_budget_drops_candidates(b77, monkeypatch):
    real = {s.name: s for s in candidate_specs()}
    subset = [real["logreg_c0.5"], real["mlp_256"]]
    monkeypatch.setattr(candidates, "candidate_specs", lambda include_trees=False: subset)
    messages: list[str] = []
    pool = train_pool(*b77, seed=0, size_budget_bytes=200_000, progress=messages.append)
    assert [c.name for c in pool] == ["logreg_c0.5"] and pool[0].onnx_bytes <= 200_000
    assert any(m.startswith("candidate mlp_256: dropped, ONNX graph is") and "budget 200000" in m
               for m in messages)
    monkeypatch.setattr(candidates, "candidate_specs", lambda include_trees=False: subset[:1])
    with pytest.raises(PoolError, match="within 1000 bytes"):
        train_pool(*b77, seed=0, size_budget_bytes=1000)


def test_fit_warnings_and_early_stopping_fallback(b77, monkeypatch):
    from sklearn.neural_network import MLPClassifier

    X_tr, _, X_val, _ = b77
    y_bin = np.zeros(len(X_tr), dtype=np.int64)
    y_bin[0] = 1                      # one positive row: no stratified validation split exists
    y_val = np.zeros(len(X_val), dtype=np.int64)
    specs = [_spec("lr_short", lambda seed: LogisticRegression(max_iter=1, random_state=seed)),
             _spec("mlp", lambda seed: MLPClassifier((16,), early_stopping=True, max_iter=30,
                                                     random_state=seed), "neural")]
    monkeypatch.setattr(candidates, "candidate_specs", lambda include_trees=False: specs)
    messages: list[str] = []
    pool = train_pool(X_tr, y_bin, X_val, y_val, seed=0, progress=messages.append)
    assert {c.name for c in pool} == {"lr_short", "mlp"}
    assert any("lr_short: warning while fitting: ConvergenceWarning" in m for m in messages)
    assert any("mlp: early-stopping split failed" in m for m in messages)
    assert next(c for c in pool if c.name == "mlp").estimator.early_stopping is False


@pytest.mark.parametrize("args,match", [
    (lambda X, y, Xv, yv: (X, np.zeros_like(y), Xv, yv), "at least 2 classes"),
    (lambda X, y, Xv, yv: (X, y[:-1], Xv, yv), "'y_train' parameter"),
    (lambda X, y, Xv, yv: (X, y, Xv[:, :10], yv), "'X_val' parameter"),
    (lambda X, y, Xv, yv: (X, y.astype(float), Xv, yv), "integer labels"),
])
def test_bad_inputs_are_parameter_errors(b77, args, match):
    with pytest.raises(ParameterError, match=match):
        train_pool(*args(*b77), seed=0)


def test_refit_learns_from_the_validation_rows_and_keeps_the_recipe(pools, b77):
    """The shipped surrogate is the selected one refit on train + validation: same parameters
    and seed, deterministic, and it knows labels seen only in validation."""
    X_tr, y_tr, X_val, y_val = b77
    only_val = np.setdiff1d(np.unique(y_val), np.unique(y_tr))
    cand = next(c for c in pools[0] if c.name == "logreg_c0.05")
    X, y = np.concatenate([X_tr, X_val]), np.concatenate([y_tr, y_val])
    messages: list[str] = []
    a = candidates.refit_candidate(cand, X, y, X_val, 59, 5_000_000, messages.append)
    b = candidates.refit_candidate(cand, X, y, X_val, 59, 5_000_000)
    assert a.estimator is not cand.estimator and a.name == cand.name
    assert a.estimator.get_params(deep=False).keys() == cand.estimator.get_params(deep=False).keys()
    assert repr(a.estimator) == repr(cand.estimator)
    assert np.array_equal(a.estimator.classes_, np.unique(y))
    assert len(only_val) == 0 or set(only_val) <= set(a.estimator.classes_.tolist())
    assert np.array_equal(a.estimator.predict_proba(X_val), b.estimator.predict_proba(X_val))
    assert not np.array_equal(a.estimator.predict_proba(X_val), cand.estimator.predict_proba(X_val))
    assert any(f"refit on {len(y):,} rows" in m for m in messages)
    # a refit that cannot export keeps the train-split model, and says so
    tiny = candidates.refit_candidate(cand, X, y, X_val, 59, 10, messages.append)
    assert tiny is cand and "kept the train-split model" in messages[-1]
