"""Engine choice (numpy fast path or onnxruntime graph), their agreement, fail-closed loading."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime
import pytest

from tracec_runtime import Router, verify_bundle
from tracec_runtime.errors import (BundleIntegrityError, EngineError, EngineUnavailableError,
                                   ModelContractError, RouteInputError, TracecError,
                                   UnsupportedFormatError)
from tracec_runtime.fastpath import FastPath
from tracec_runtime.fastpath_format import FastPathFormatError

from .fastpath_fixtures import IDENTICAL, fastpath_files, make_fastpath_bundle, random_stage

D, K, TAU = 32, 6, "0.75"
STAGES = [random_stage(D, K, seed=3)]


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return (np.random.default_rng(5).normal(size=(400, D)) / 4).astype(np.float32)


@pytest.fixture
def fast_bundle(tmp_path, keys):
    """A signed bundle whose manifest marks its fast path identical to the graph."""
    return make_fastpath_bundle(tmp_path / "fast", keys[0], stages=STAGES, tau=TAU)


@pytest.fixture
def built(monkeypatch):
    """Record every onnxruntime session and every FastPath built."""
    calls = {"sessions": 0, "fastpaths": 0}
    real_session, real_from_bytes = onnxruntime.InferenceSession, FastPath.from_bytes.__func__

    def session(*args, **kwargs):
        calls["sessions"] += 1
        return real_session(*args, **kwargs)

    def from_bytes(cls, *args):
        calls["fastpaths"] += 1
        return real_from_bytes(cls, *args)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    monkeypatch.setattr(FastPath, "from_bytes", classmethod(from_bytes))
    return calls


# ------------------------------------------------------------------ engine choice
def test_auto_picks_numpy_when_the_fast_path_is_marked_identical(fast_bundle, keys, built):
    router = Router.load(fast_bundle, keys[1])
    assert router.engine == "numpy" and router.input_name is None
    assert built == {"sessions": 0, "fastpaths": 1}
    assert "engine=numpy" in repr(router)


NOT_IDENTICAL = {
    "no_files_no_record": dict(with_files=False, fastpath=None),
    "files_without_record": dict(fastpath=None),
    "record_present_false": dict(fastpath={"present": False}),
    "record_with_mismatches": dict(fastpath={**IDENTICAL, "decision_mismatches": 3}),
    "record_checked_no_rows": dict(fastpath={**IDENTICAL, "rows_checked": 0}),
}


@pytest.mark.parametrize("case", sorted(NOT_IDENTICAL))
def test_auto_falls_back_to_onnxruntime_and_numpy_is_refused(case, tmp_path, keys, built):
    path = make_fastpath_bundle(tmp_path / "b", keys[0], stages=STAGES, tau=TAU,
                                **NOT_IDENTICAL[case])
    router = Router.load(path, keys[1])
    assert router.engine == "onnxruntime" and router.input_name == "embedding"
    assert built == {"sessions": 1, "fastpaths": 0}
    with pytest.raises(EngineUnavailableError, match="engine='numpy' needs a fast path") as info:
        Router.load(path, keys[1], engine="numpy")
    assert "manifest.json" in str(info.value)
    assert isinstance(info.value, TracecError) and info.value.exit_code == 3
    assert built["fastpaths"] == 0


def test_explicit_engine_overrides_auto(fast_bundle, keys, built):
    assert Router.load(fast_bundle, keys[1], engine="onnxruntime").engine == "onnxruntime"
    assert built == {"sessions": 1, "fastpaths": 0}
    assert Router.load(fast_bundle, keys[1], engine="numpy").engine == "numpy"
    assert built == {"sessions": 1, "fastpaths": 1}


@pytest.mark.parametrize("engine", ["ort", "NUMPY", "", None, 1])
def test_unknown_engine_is_a_typed_error(fast_bundle, keys, engine):
    with pytest.raises(EngineError, match="'engine' parameter of Router.load must be one of"):
        Router.load(fast_bundle, keys[1], engine=engine)


@pytest.mark.parametrize("record, field", [
    ({"present": "yes"}, "'fastpath'"), ([1], "'fastpath'"),
    ({**IDENTICAL, "rows_checked": "500"}, "'fastpath.rows_checked'"),
    ({**IDENTICAL, "decision_mismatches": -1}, "'fastpath.decision_mismatches'"),
])
def test_malformed_fastpath_record_fails_closed(tmp_path, keys, record, field):
    path = make_fastpath_bundle(tmp_path / "b", keys[0], stages=STAGES, tau=TAU, fastpath=record)
    for engine in ("auto", "onnxruntime", "numpy"):
        with pytest.raises(UnsupportedFormatError, match=f"field {field}"):
            Router.load(path, keys[1], engine=engine)


def test_record_present_without_files_fails_closed(tmp_path, keys):
    path = make_fastpath_bundle(tmp_path / "b", keys[0], stages=STAGES, tau=TAU, with_files=False)
    with pytest.raises(UnsupportedFormatError,
                       match="does not list fastpath.json and fastpath.bin"):
        Router.load(path, keys[1])


# ------------------------------------------------------------------ fail closed
@pytest.fixture(params=["flipped_byte", "truncated", "swapped_from_another_bundle"])
def tampered_fastpath_bin(request, fast_bundle, tmp_path, keys):
    target = fast_bundle / "fastpath.bin"
    data = bytearray(target.read_bytes())
    if request.param == "flipped_byte":
        data[len(data) // 3] ^= 0x01
    elif request.param == "truncated":
        del data[-64:]
    else:
        other = make_fastpath_bundle(tmp_path / "other", keys[0], stages=[random_stage(D, K, 9)],
                                     tau=TAU)
        data = bytearray((other / "fastpath.bin").read_bytes())
    target.write_bytes(bytes(data))
    return fast_bundle


def test_tampered_fastpath_bin_is_rejected_before_anything_is_built(tampered_fastpath_bin, keys,
                                                                    built):
    for engine in ("auto", "numpy", "onnxruntime"):
        with pytest.raises(BundleIntegrityError) as info:
            Router.load(tampered_fastpath_bin, keys[1], engine=engine)
        assert [p.split(" (")[0] for p in info.value.problems] == ["changed: fastpath.bin"]
    assert built == {"sessions": 0, "fastpaths": 0}


def test_missing_fastpath_json_is_rejected(fast_bundle, keys, built):
    (fast_bundle / "fastpath.json").unlink()
    with pytest.raises(BundleIntegrityError, match="missing: fastpath.json"):
        Router.load(fast_bundle, keys[1])
    assert built == {"sessions": 0, "fastpaths": 0}


def test_signed_but_malformed_fast_path_fails_closed(tmp_path, keys):
    files = fastpath_files(STAGES, TAU, "l2d")
    files["fastpath.json"] = files["fastpath.json"].replace(b"tracec-fastpath/1", b"tracec-fp/9")
    path = make_fastpath_bundle(tmp_path / "b", keys[0], stages=STAGES, tau=TAU, fast_files=files)
    with pytest.raises(FastPathFormatError, match=r"\$.format"):
        Router.load(path, keys[1])
    # The graph engine never parses the fast-path files (they were still verified).
    assert Router.load(path, keys[1], engine="onnxruntime").engine == "onnxruntime"


@pytest.mark.parametrize("fast_stage, labels, words", [
    (random_stage(D + 1, K, 3), None, f"n_features must be {D} (manifest.embedder.dimension)"),
    (random_stage(D, K, 3), ["a", "b", "c"], "classes must index manifest.labels (0..2)"),
])
def test_fast_path_must_fit_the_manifest(tmp_path, keys, fast_stage, labels, words):
    files = fastpath_files([fast_stage], TAU, "l2d")
    path = make_fastpath_bundle(tmp_path / "b", keys[0], stages=STAGES, tau=TAU,
                                fast_files=files, labels=labels)
    verify_bundle(path, keys[1])  # intact: the problem is the contract, not the bytes
    with pytest.raises(ModelContractError) as info:
        Router.load(path, keys[1], engine="numpy")
    assert words in str(info.value) and "fastpath.json" in str(info.value)


# ------------------------------------------------------------------ same decisions
@pytest.mark.parametrize("mode, n_stages, gate, never", [
    ("l2d", 1, "open", ()), ("global", 1, "open", ()), ("cascade", 2, "open", ()),
    ("closed", 1, "closed", ()),
    # manifest.rules.never_handle (compile --rules): deferred by the router on both engines
    ("l2d", 1, "open", ("label_1",)), ("cascade", 2, "open", ("label_1", "label_4")),
    ("global", 1, "open", ("label_0",)), ("closed", 1, "closed", ("label_1",))])
def test_numpy_engine_decides_like_onnxruntime(tmp_path, keys, X, mode, n_stages, gate, never):
    stages = [random_stage(D, K, seed=3 + i) for i in range(n_stages)]
    rules = {"never_handle": list(never), "min_alpha": {}, "max_handled_share": None}
    path = make_fastpath_bundle(tmp_path / "b", keys[0], stages=stages, tau=TAU, mode=mode,
                                gate=gate, rules=rules if never else None)
    fast, graph = (Router.load(path, keys[1], engine=e) for e in ("numpy", "onnxruntime"))
    assert (fast.engine, graph.engine) == ("numpy", "onnxruntime")
    a, b = fast.route_batch(X), graph.route_batch(X)
    if mode in ("l2d", "cascade"):
        assert 10 <= b.handled.sum() <= len(X) - 10, "the data must exercise both outcomes"
    assert len(set(b.label_index.tolist())) > 2
    np.testing.assert_array_equal(a.label_index, b.label_index)
    np.testing.assert_array_equal(a.handled, b.handled)
    np.testing.assert_allclose(a.score, b.score, rtol=0, atol=1e-6)
    assert a.labels == b.labels
    assert a.flags == b.flags
    names = fast.labels
    never_rows = np.isin([names[k] for k in b.label_index], never)
    assert not b.handled[never_rows].any()
    if never and gate == "open":
        assert never_rows.sum() >= 10 and b.handled.any()
        if mode == "global":  # every row handled but for the rule: exactly those are flagged
            assert [f == "rule:never_handle" for f in b.flags] == never_rows.tolist()
        assert any(f == "rule:never_handle" for f in b.flags)
        assert all(names[b.label_index[i]] in never for i, f in enumerate(b.flags) if f)
    for x in X[:60]:
        d1, d2 = fast.route(x, fallback=lambda: "llm"), graph.route(x, fallback=lambda: "llm")
        assert (d1.label, d1.handled, d1.surrogate_label) == (d2.label, d2.handled,
                                                              d2.surrogate_label)
        assert abs(d1.score - d2.score) <= 1e-6
        assert d1 == dataclasses.replace(d2, score=d1.score)
        assert d1.flag == d2.flag and d1.reason.split(":")[0] == d2.reason.split(":")[0]
        if d1.surrogate_label in never:
            assert not d1.handled and d1.label == "llm"


def test_never_handle_naming_an_unknown_label_fails_closed(tmp_path, keys):
    path = make_fastpath_bundle(tmp_path / "b", keys[0], stages=STAGES, tau=TAU,
                                rules={"never_handle": ["fraud"], "min_alpha": {},
                                       "max_handled_share": None})
    with pytest.raises(UnsupportedFormatError, match=r"rules.never_handle.*'fraud'"):
        Router.load(path, keys[1])


def test_graph_engine_public_run_gives_the_same_answers(fast_bundle, keys, X):
    router = Router.load(fast_bundle, keys[1], engine="onnxruntime")
    fast = [router.route(x) for x in X[:30]]
    router._engine._call = router._engine.session.run  # the public API instead of the core
    assert [router.route(x) for x in X[:30]] == fast


# ------------------------------------------------------------------ inputs, both engines
@pytest.fixture(params=["numpy", "onnxruntime"])
def router(request, fast_bundle, keys):
    router = Router.load(fast_bundle, keys[1], engine=request.param)
    assert router.engine == request.param
    return router


def test_every_input_form_routes_like_float32(router, X):
    for x in X[:20]:
        expected = router.route(x)
        for variant in (x.astype(np.float64), x.tolist(), np.repeat(x, 2)[::2], x[None, :],
                        x.astype(">f4")):
            assert router.route(variant) == expected
    batch = router.route_batch(X[:50])
    for variant in (np.asfortranarray(X[:50]), X[:50].astype(np.float64), X[:50].tolist()):
        got = router.route_batch(variant)
        np.testing.assert_array_equal(got.label_index, batch.label_index)
        np.testing.assert_array_equal(got.score, batch.score)
    for empty in (np.zeros((0, D), np.float32), np.zeros((0, D))):
        assert len(router.route_batch(empty)) == 0 and router.route_batch(empty).labels == []


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_float32_rows_are_refused(router, X, value):
    x = X[0].copy()
    x[5] = value
    with pytest.raises(RouteInputError, match="embedding column 5 is "):
        router.route(x)
    batch = X[:4].copy()
    batch[2, 7] = value
    with pytest.raises(RouteInputError, match="row 2, column 7 is "):
        router.route_batch(batch)
    with pytest.raises(RouteInputError, match=f"dimension {D}"):
        router.route(X[0][:-1])


def test_decision_reason_is_built_on_read_and_decisions_are_frozen(router, X):
    d = router.route(X[0])
    assert d.reason.startswith("handled: score " if d.handled else "deferred: score ")
    assert d.reason.endswith(f" tau {float(np.float32(TAU)):.3f}")
    assert d.tau == float(np.float32(TAU)) and d.gate_open is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.label = "other"
