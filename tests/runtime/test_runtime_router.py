"""Router behaviour on a verified toy bundle: decisions, fallback, closed gate, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from tracec_runtime import Router
from tracec_runtime.errors import ModelContractError, RouteInputError, UnsupportedFormatError
from tracec_runtime.verify import verify_bundle

from .conftest import D, LABELS, TAU, W, make_bundle, reference, toy_model


@pytest.fixture
def router(bundle, keys) -> Router:
    return Router.load(bundle, keys[1])


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return np.random.default_rng(11).normal(size=(200, D)).astype(np.float32)


def test_properties(router, bundle):
    assert router.labels == LABELS
    assert router.dimension == D
    assert router.tau == np.float32(TAU) and isinstance(router.tau, np.float32)
    assert router.gate_open is True
    assert router.manifest["policy"]["tau"] == TAU
    assert router.path == bundle


def test_batch_matches_numpy_reference(router, X):
    batch = router.route_batch(X)
    label, score, handled = reference(X)
    assert 0.1 < batch.coverage < 0.9, "the toy data must exercise both outcomes"
    assert batch.label_index.dtype == np.int64 and batch.score.dtype == np.float32
    assert batch.handled.dtype == np.bool_ and len(batch) == len(X)
    np.testing.assert_array_equal(batch.label_index, label)
    np.testing.assert_allclose(batch.score, score, rtol=1e-5, atol=1e-6)
    # The graph's handled is exactly its own score >= tau, and agrees with the reference
    # except possibly within float rounding of tau.
    np.testing.assert_array_equal(batch.handled, batch.score >= np.float32(TAU))
    clear = np.abs(score - np.float32(TAU)) > 1e-5
    np.testing.assert_array_equal(batch.handled[clear], handled[clear])
    assert batch.coverage == pytest.approx(batch.handled.mean())
    assert batch.labels == [LABELS[k] if h else None for k, h in zip(label, batch.handled)]


def test_iterating_a_batch_gives_the_same_decisions_as_route(router, X):
    batch = router.route_batch(X[:20])
    decisions = list(batch)
    assert len(decisions) == 20
    for x, d in zip(X[:20], decisions):
        assert router.route(x) == d
        assert d.surrogate_label in LABELS
        assert d.label == (d.surrogate_label if d.handled else None)
        op = ">=" if d.handled else "<"
        assert d.reason.startswith(f"{'handled' if d.handled else 'deferred'}: score ")
        assert f" {op} tau 0.6" in d.reason


def test_reason_prints_enough_digits_to_tell_score_from_tau():
    from tracec_runtime.decision import reason
    tau = float(np.float32(TAU))
    below = float(np.nextafter(np.float32(tau), np.float32(0)))
    text = reason(False, below, tau, True)
    assert text.startswith("deferred: score ") and " < tau " in text
    s, t = text.removeprefix("deferred: score ").split(" < tau ")
    assert s != t and float(s) < float(t)
    assert reason(True, 0.9123, 0.734, True) == "handled: score 0.912 >= tau 0.734"


def test_fallback_is_called_once_only_when_deferred(router, X):
    batch = router.route_batch(X)
    handled_row, deferred_row = X[np.argmax(batch.handled)], X[np.argmin(batch.handled)]
    calls = []

    def llm():
        calls.append(1)
        return "from-the-llm"

    d = router.route(handled_row, fallback=llm)
    assert d.handled and d.label == d.surrogate_label and calls == []
    d = router.route(deferred_row, fallback=llm)
    assert not d.handled and d.label == "from-the-llm" and calls == [1]
    assert d.reason.startswith("deferred: score")
    assert router.route(deferred_row).label is None and calls == [1]
    with pytest.raises(TypeError, match="callable"):
        router.route(deferred_row, fallback="gpt")


def test_closed_gate_defers_everything(closed_bundle, keys, X):
    router = Router.load(closed_bundle, keys[1])
    assert router.gate_open is False
    # The graph itself (tau 0) would handle every row: the runtime must not.
    assert reference(X, tau="0")[2].all()
    batch = router.route_batch(X)
    assert not batch.handled.any() and batch.coverage == 0.0
    assert batch.labels == [None] * len(X)
    np.testing.assert_array_equal(batch.label_index, reference(X)[0])
    calls = []
    d = router.route(X[0], fallback=lambda: calls.append(1) or "llm")
    assert (d.handled, d.label, calls) == (False, "llm", [1])
    assert d.reason == "deferred: gate closed (bundle refused by the parity gate)"


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.longdouble, np.int32])
def test_any_real_dtype_and_layout_is_accepted(router, X, dtype):
    x = X[:10].astype(dtype)
    expected = router.route_batch(np.asarray(x, dtype=np.float32))
    for variant in (x, np.asfortranarray(x), np.repeat(x, 2, axis=1)[:, ::2], x.tolist()):
        got = router.route_batch(variant)
        np.testing.assert_array_equal(got.label_index, expected.label_index)
        np.testing.assert_array_equal(got.score, expected.score)


def test_single_row_shapes(router, X):
    assert router.route(X[0]) == router.route(X[:1])
    assert len(router.route_batch(X[0])) == 1
    assert len(router.route_batch(np.zeros((0, D)))) == 0
    with pytest.raises(RouteInputError, match="use route_batch"):
        router.route(X[:2])


@pytest.mark.parametrize("bad, words", [
    (np.zeros(D - 1), f"expected an embedding of dimension {D} (manifest.embedder.dimension); "
                      f"got shape ({D - 1},)"),
    (np.zeros((3, D + 1)), f"got shape (3, {D + 1})"),
    (np.zeros((2, 2, D)), "got shape (2, 2, 4)"),
    (np.float32(1.0), "got shape ()"),
    (["a", "b", "c", "d"], "dtype <U1"),
    (np.zeros(D, dtype=bool), "dtype bool"),
    (np.zeros(D, dtype=np.complex64), "dtype complex64"),
    ([[1.0, 2.0], [3.0]], "could not convert"),
    (None, "dtype object"),
])
def test_bad_inputs_are_refused(router, bad, words):
    with pytest.raises(RouteInputError) as info:
        router.route_batch(bad)
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value, shown", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf"),
                                          (1e39, "1e+39 (outside the float32 range)")])
def test_non_finite_values_name_row_and_column(router, X, value, shown):
    x = X[:5].astype(np.float64)
    x[3, 2] = value
    with pytest.raises(RouteInputError, match=r"row 3, column 2 is ") as info:
        router.route_batch(x)
    assert f"is {shown}" in str(info.value)
    with pytest.raises(RouteInputError, match=r"embedding column 2 is "):
        router.route(x[3])


def test_router_needs_a_verified_bundle(bundle):
    with pytest.raises(TypeError, match="VerifiedBundle"):
        Router(str(bundle))


@pytest.mark.parametrize("kw, words, scanned", [
    ({"model": toy_model(drop_output="handled")}, "expected output 'handled'", False),
    ({"model": toy_model(np.vstack([W, W[:1]]))}, "must be float32 [N, 4]", False),
    ({"model": b"not an onnx graph"}, "not a valid ONNX model", True),
])
def test_graph_contract_is_checked_at_load(tmp_path, keys, kw, words, scanned):
    path = make_bundle(tmp_path / "b", keys[0], **kw)
    if scanned:  # not protobuf at all: the verifier's graph scan refuses it already
        with pytest.raises(ModelContractError, match=words):
            verify_bundle(path, keys[1])
    else:
        verify_bundle(path, keys[1])  # the bundle itself is intact
    with pytest.raises(ModelContractError) as info:
        Router.load(path, keys[1])
    assert words in str(info.value) and "model.onnx" in str(info.value)


def test_label_out_of_range_is_refused_at_route(tmp_path, keys):
    wide = np.concatenate([W, np.full((D, 2), 5.0, np.float32)], axis=1)  # 5 logits, 3 labels
    router = Router.load(make_bundle(tmp_path / "b", keys[0], model=toy_model(wide)), keys[1])
    with pytest.raises(ModelContractError, match=r"'label' must index manifest.labels \(0..2\)"):
        router.route_batch(np.ones((2, D)))


@pytest.mark.parametrize("kw, field", [
    ({"tau": "abc"}, "policy.tau"), ({"tau": "nan"}, "policy.tau"),
    ({"gate": "ajar"}, "policy.gate"), ({"labels": [1, 2, 3]}, "labels"),
    ({"dimension": 0}, "embedder.dimension"),
])
def test_manifest_fields_are_validated(tmp_path, keys, kw, field):
    model = toy_model(tau="0.5")
    path = make_bundle(tmp_path / "b", keys[0], model=model, **kw)
    with pytest.raises(UnsupportedFormatError, match=f"field '{field}'") as info:
        Router.load(path, keys[1])
    assert "manifest.json" in str(info.value)
