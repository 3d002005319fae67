"""Text-in bundles in the runtime: route_text / route_texts, bad text, fingerprint, tampering.

Every attack on the embedder's files fails closed before any onnxruntime
session exists (one fixture per attack, checked like test_runtime_attacks).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tracec_runtime import Router
from tracec_runtime.canonical import canonical_file_bytes
from tracec_runtime.decision import BatchDecision
from tracec_runtime.embedder import TextEmbedder
from tracec_runtime.errors import (BundleIntegrityError, EmbedderFingerprintError, RouteInputError,
                                   TextRoutingUnavailableError, UnsupportedFormatError)

from .conftest import LABELS, make_bundle
from .test_runtime_attacks import Attack, assert_fails_closed, resign, statement_of  # noqa: F401
from .text_fixtures import MODEL, TOKENIZER, make_text_bundle, text_record


@pytest.fixture(scope="module")
def text_bundle_template(tmp_path_factory, keys):
    return make_text_bundle(tmp_path_factory.mktemp("tb") / "bundle", keys[0])


@pytest.fixture
def text_bundle(text_bundle_template, tmp_path):
    """A fresh copy of the signed text-in toy bundle (attacks modify it)."""
    return shutil.copytree(text_bundle_template, tmp_path / "bundle")


@pytest.fixture(scope="module")
def router(text_bundle_template, keys):
    return Router.load(text_bundle_template, keys[1])


# ------------------------------------------------------------------- routing
TEXTS = ["I lost my card yesterday", "how do I top up?", "refund please", "my card was declined",
         "Überweisung nach Zürich", "why was I charged twice for one coffee"]


def test_route_text_matches_route_texts_and_route(router):
    assert router.text_in
    batch = router.route_texts(TEXTS)
    assert isinstance(batch, BatchDecision) and len(batch) == len(TEXTS)
    X, flags = router.embed_texts(TEXTS)
    assert flags == [None] * len(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    for i, text in enumerate(TEXTS):
        one = router.route_text(text)
        assert (one.handled, one.surrogate_label, one.score) == (
            bool(batch.handled[i]), LABELS[batch.label_index[i]], float(batch.score[i]))
        emb = router.route(X[i])
        assert (emb.handled, emb.score, emb.surrogate_label) == (one.handled, one.score,
                                                                 one.surrogate_label)
    assert 0 < batch.handled.sum() < len(TEXTS) or batch.handled.any()


def test_fallback_called_only_when_deferred(router):
    calls = []
    d = router.route_text("   ", fallback=lambda: calls.append(1) or "llm")
    assert (d.label, d.handled, d.flag, calls) == ("llm", False, "empty", [1])


@pytest.mark.parametrize("text, flag, words", [
    ("", "empty", "deferred: empty"),
    (" \n\t\u00a0 ", "empty", "deferred: empty"),
    ("card \ud800 lost", "invalid_text", "deferred: invalid_text"),
    ("card\udc00", "invalid_text", "unpaired surrogates"),
])
def test_bad_text_defers_with_a_reason(router, text, flag, words):
    d = router.route_text(text)
    assert d.flag == flag and not d.handled and d.label is None and words in d.reason


def test_long_text_is_truncated_and_says_so(router):
    long = "my card was stolen and " * 500
    d = router.route_text(long)
    assert d.flag == "truncated" and "truncated at the embedder's maximum" in d.reason
    same = router.route_text(long + " and more words at the end that are cut anyway")
    assert same.score == d.score  # only the first max_tokens tokens count
    huge = router.route_text("x" * 1_000_000)  # bounded work: cut before tokenizing
    assert huge.flag == "truncated"


def test_batch_with_bad_rows_defers_those_rows_only(router):
    texts = ["I lost my card yesterday", "", "refund\ud800", "word " * 400]
    batch = router.route_texts(texts)
    assert batch.flags == (None, "empty", "invalid_text", "truncated")
    assert not batch.handled[1] and not batch.handled[2]
    assert batch.labels[1] is None and batch.labels[2] is None
    assert [d.flag for d in batch] == list(batch.flags)
    assert batch[1].reason.startswith("deferred: empty")


@pytest.mark.parametrize("texts, words", [
    (["fine", 5], "element 1 is a int"),
    (["fine", None, "x"], "element 1 is a NoneType"),
    ([b"bytes"], "element 0 is a bytes"),
    ("one string", "expected a list of str"),
    (np.array(["a"]), "expected a list of str"),
])
def test_non_strings_are_a_typed_error_naming_the_element(router, texts, words):
    with pytest.raises(RouteInputError, match=words) as info:
        router.route_texts(texts)
    assert info.value.exit_code == 3


@pytest.mark.parametrize("value", [7, None, b"text", ["a"]])
def test_route_text_needs_a_str(router, value):
    with pytest.raises(RouteInputError, match="route_text expects a str"):
        router.route_text(value)


def test_embedding_in_bundle_has_no_text_routing(tmp_path, keys):
    r = Router.load(make_bundle(tmp_path / "b", keys[0]), keys[1])
    assert not r.text_in
    with pytest.raises(TextRoutingUnavailableError, match="embedding-in bundle"):
        r.route_text("hello")


def test_format_version_1_bundle_still_reads(tmp_path, keys, monkeypatch):
    import tracec_runtime.envelope as envelope

    monkeypatch.setattr(envelope, "FORMAT_VERSION", "1")
    root = make_bundle(tmp_path / "v1", keys[0])
    assert statement_of(root)["predicate"]["format_version"] == "1"
    r = Router.load(root, keys[1])
    assert not r.text_in and r.route([0.5, -1.0, 2.0, 0.25]).surrogate_label in LABELS


def test_closed_text_bundle_defers_everything(tmp_path, keys):
    r = Router.load(make_text_bundle(tmp_path / "closed", keys[0], gate="closed"), keys[1])
    assert not r.route_texts(TEXTS).handled.any() and not r.route_text(TEXTS[0]).handled


# --------------------------------------------------------------- fingerprint
def _perturbed(monkeypatch, eps: float):
    real = TextEmbedder._run

    def run(self, rows):
        return real(self, rows) + np.float32(eps)
    monkeypatch.setattr(TextEmbedder, "_run", run)


def test_fingerprint_mismatch_refuses_to_load(text_bundle_template, keys, monkeypatch):
    _perturbed(monkeypatch, 1e-3)  # as a different onnxruntime build might
    with pytest.raises(EmbedderFingerprintError, match="different numbers") as info:
        Router.load(text_bundle_template, keys[1])
    assert info.value.exit_code == 1 and "tolerance max_abs_diff 0.0001" in str(info.value)


def test_fingerprint_within_tolerance_loads(text_bundle_template, keys, monkeypatch):
    _perturbed(monkeypatch, 2e-5)
    assert Router.load(text_bundle_template, keys[1]).text_in


# -------------------------------------------------------------- the attacks
def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture(params=[MODEL, TOKENIZER])
def flipped_embedder_byte(request, text_bundle):
    _flip(text_bundle / request.param)
    return Attack(text_bundle, BundleIntegrityError, [f"changed: {request.param} (sha256 "])


@pytest.fixture(params=[MODEL, TOKENIZER])
def missing_embedder_file(request, text_bundle):
    (text_bundle / request.param).unlink()
    return Attack(text_bundle, BundleIntegrityError, [f"missing: {request.param}"])


@pytest.fixture
def replaced_tokenizer(text_bundle):
    """A valid tokenizer.json with another truncation length: bytes the signer never saw."""
    doc = json.loads((text_bundle / TOKENIZER).read_bytes())
    doc["truncation"]["max_length"] = 16
    (text_bundle / TOKENIZER).write_bytes(json.dumps(doc).encode())
    return Attack(text_bundle, BundleIntegrityError, [f"changed: {TOKENIZER}", "size"])


@pytest.fixture
def swapped_graphs(text_bundle):
    """The policy graph where the embedder should be, and the embedder as the policy."""
    a, b = text_bundle / MODEL, text_bundle / "model.onnx"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    return Attack(text_bundle, BundleIntegrityError, [f"changed: {MODEL}", "changed: model.onnx"])


@pytest.fixture
def embedder_points_outside_statement(text_bundle, keys):
    """A manifest (signed by the real key) naming an embedder file the statement lacks."""
    doc = json.loads((text_bundle / "manifest.json").read_bytes())
    doc["embedder"]["text"]["model"] = "embedder/other.onnx"
    (text_bundle / "manifest.json").write_bytes(canonical_file_bytes(doc))
    from tracec_runtime.envelope import seal
    seal(text_bundle, keys[0])
    return Attack(text_bundle, UnsupportedFormatError, ["embedder.text.model", "other.onnx"])


def test_flipped_embedder_byte(flipped_embedder_byte, keys, sessions):  # noqa: F811
    assert_fails_closed(flipped_embedder_byte, keys[1], sessions)


def test_missing_embedder_file(missing_embedder_file, keys, sessions):  # noqa: F811
    assert_fails_closed(missing_embedder_file, keys[1], sessions)


def test_replaced_tokenizer(replaced_tokenizer, keys, sessions):  # noqa: F811
    assert_fails_closed(replaced_tokenizer, keys[1], sessions)


def test_swapped_graphs(swapped_graphs, keys, sessions):  # noqa: F811
    assert_fails_closed(swapped_graphs, keys[1], sessions)


def test_embedder_outside_statement(embedder_points_outside_statement, keys,
                                    sessions):  # noqa: F811
    with pytest.raises(UnsupportedFormatError, match="embedder.text.model") as info:
        Router.load(embedder_points_outside_statement.bundle, keys[1])
    assert "other.onnx" in str(info.value)
    assert sessions == [], "a session was built for a bundle whose embedder record is invalid"


@pytest.mark.parametrize("field, value, words", [
    ("procedure", "tracec-embed/99", "procedure"),
    ("max_tokens", 0, "max_tokens"),
    ("fingerprint", None, "fingerprint"),
])
def test_malformed_text_record_refused(tmp_path, keys, field, value, words):
    text = text_record()
    text[field] = value
    root = make_text_bundle(tmp_path / "b", keys[0], text=text)
    with pytest.raises(UnsupportedFormatError, match=words):
        Router.load(root, keys[1])


def test_batch_dependent_numbers_fall_back_to_one_row_per_run(monkeypatch):
    """If this onnxruntime build's numbers depended on the batch, rows run one by one."""
    from .text_fixtures import embedder_files

    real = TextEmbedder._run

    def batch_dependent(self, rows):
        out = real(self, rows)
        return out + np.float32(1e-6) if len(rows) > 1 else out
    monkeypatch.setattr(TextEmbedder, "_run", batch_dependent)
    model, tok = embedder_files()
    emb = TextEmbedder(model, tok, max_tokens=256, dimension=384, where="x")
    assert not emb.batch_invariant and emb.max_group == 1
    texts = ["my card was declined", "my card got stolen", "I lost my card", "refund"]
    batch, _ = emb.embed_many(texts)
    assert np.array_equal(batch, np.stack([emb.embed_many([t])[0][0] for t in texts]))
