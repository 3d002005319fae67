"""Hostile trace lines and .npy files: typed errors only (regressions, then hypothesis fuzzing).

The fuzz targets mutate real bytes (Banking77 trace lines, a numpy-written
.npy) with flips, inserts, deletes, truncations and splices of the tokens that
broke the loaders before (deep brackets, huge integers, lone surrogates, huge
shapes, unbalanced header dicts).  Only ``TracecError`` subclasses may escape.
Example counts are bounded so the suite stays fast (see FUZZ_EXAMPLES).
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import data_path
from tracec import jsonline, npy
from tracec.embeddings import load_embeddings
from tracec.errors import EmbeddingError, TracecError, TraceFileError
from tracec.traces import load_traces

FUZZ_EXAMPLES = int(os.environ.get("TRACEC_FUZZ_EXAMPLES", "1000"))
_FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_GOOD = '{"input": "b", "teacher": "y"}\n'


def _load(tmp_path, line: str) -> TraceFileError:
    path = tmp_path / "t.jsonl"
    path.write_text(line + "\n" + _GOOD, encoding="utf-8")
    with pytest.raises(TraceFileError) as info:
        load_traces(path)
    assert str(info.value).startswith(f"{path}:1"), "the error names the file and line"
    return info.value


# -- regressions: one per attack class ------------------------------------------------------


def test_trace_deeply_nested_metadata_is_typed(tmp_path):
    deep = "[" * 1000 + "]" * 1000
    err = _load(tmp_path, '{"input": "a", "teacher": "x", "metadata": {"m": ' + deep + "}}")
    assert f"expected JSON nested at most {jsonline.MAX_DEPTH} levels deep" in str(err)


def test_trace_brackets_inside_strings_are_not_nesting(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"input": "' + "[{" * 500 + '\\"", "teacher": "x"}\n' + _GOOD, encoding="utf-8")
    assert load_traces(path).inputs[0] == "[{" * 500 + '"'


def test_trace_5000_digit_integer_id_is_typed(tmp_path):
    err = _load(tmp_path, '{"input": "a", "teacher": "x", "id": ' + "7" * 5000 + "}")
    assert "expected integers of at most 100 digits, found one with 5,000 digits" in str(err)


@pytest.mark.parametrize("field, line, column", [
    ("teacher", '{"input": "a", "teacher": "x\\ud800"}', 29),
    ("input", '{"input": "\\udc00 hello", "teacher": "x"}', 12),
    ("input", '{"input": "ok \\ud83d then \\ud83d\\ude00", "teacher": "x"}', 15),
])
def test_trace_lone_surrogate_names_the_character(tmp_path, field, line, column):
    err = _load(tmp_path, line)
    assert err.field == field
    assert str(err).endswith(f"invalid Unicode (lone surrogate {line[column - 1:column + 5]}) at "
                             f"character {column}")


def test_trace_surrogate_pairs_and_escaped_backslashes_are_fine(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"input": "\\ud83d\\ude00 \\\\ud800", "teacher": "x"}\n' + _GOOD, encoding="utf-8")
    assert load_traces(path).inputs[0] == "\U0001F600 \\ud800"


# -- fuzzing --------------------------------------------------------------------------------


@st.composite
def _mutated(draw, seed: bytes, tokens: list[bytes], focus: int):
    """``seed`` after 1-6 edits; most edit positions fall in the first ``focus`` bytes."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["set", "insert", "delete", "splice", "splice", "truncate"]))
        limit = min(len(data), focus) if draw(st.integers(0, 3)) else len(data)
        pos = draw(st.integers(0, limit))
        if kind == "set" and data:
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=6))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 12))]
        elif kind == "splice":
            data[pos:pos] = draw(st.sampled_from(tokens))
        elif kind == "truncate":
            del data[pos:]
    return bytes(data)


def _trace_seed() -> bytes:
    lines = data_path("banking77", "traces_qwen3-30b", "train.jsonl").read_bytes().split(b"\n")[:4]
    meta = b'{"id": 12, "input": "card \\u00e9 \\ud83d\\ude00", "teacher": "card_arrival", ' \
           b'"label": "card_arrival", "metadata": {"a": [1, 2.5, {"b": null}], "t": true}}'
    return b"\n".join(lines + [meta]) + b"\n"


_TRACE_TOKENS = [b"[" * 1000, b"{\"k\":" * 300, b"9" * 5000, b"-" + b"9" * 200, b"\\ud800",
                 b"\\udc00", b"\\ud83d\\ude00", b"\"", b"\\", b"\xff\xfe", b"\xed\xa0\x80",
                 b"\x00", b"NaN", b"1e999", b"\n", b"\n\n", b"{}", b"null", b"[]", b",", b":",
                 b"\"input\": 1,", b"\"teacher\": \"\",", b"\"text\": \"other\","]


def test_fuzz_trace_loader_only_typed_errors():
    seed = _trace_seed()
    load_traces_ok = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.jsonl"

        @_FUZZ
        @given(_mutated(seed, _TRACE_TOKENS, focus=len(seed)))
        def run(data):
            nonlocal load_traces_ok
            path.write_bytes(data)
            try:
                load_traces(path)
                load_traces_ok += 1
            except TracecError:
                pass

        run()
    assert load_traces_ok < FUZZ_EXAMPLES  # the mutations did reach the error paths


def _npy_seed() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.linspace(-1, 1, 24, dtype=np.float32).reshape(6, 4))
    return buf.getvalue()


_NPY_TOKENS = [b"(", b")", b"{", b"}", b"'", b",", b":", b" ", b"\n", b"1000000000000",
               b"9" * 40, b"-1", b"'|O'", b"'<f8'", b"'>f2'", b"'|S0'", b"'<U3'", b"True",
               b"'shape': (6, 4), ", b"'descr': '<f4', ", b"\xff\xff", b"\x00\x00\x00\x00",
               b"\x02\x00", b"\x03\x00", b"__import__('os')", b"[('a', '<f4')]", b"\xe9"]


def _check_npy(data: bytes, tmp: Path) -> None:
    try:
        header = npy.read_header("X.npy", data)
        npy.read_array("X.npy", data, header)
    except EmbeddingError:
        pass
    path = tmp / "X.npy"
    path.write_bytes(data)
    try:
        X, _ = load_embeddings(path, 6)
        assert X.shape == (6, 4) and X.dtype == np.float32
    except EmbeddingError:
        pass


def test_fuzz_npy_loader_mutated_bytes_only_typed_errors():
    seed = _npy_seed()
    with tempfile.TemporaryDirectory() as tmp:
        @_FUZZ
        @given(_mutated(seed, _NPY_TOKENS, focus=128))
        def run(data):
            _check_npy(data, Path(tmp))

        run()


def test_fuzz_npy_loader_mutated_header_with_consistent_length_only_typed_errors():
    """The header text is mutated and re-framed with a correct length, so the parser itself
    (not only the framing checks) sees the mutations."""
    seed = _npy_seed()
    hlen = struct.unpack("<H", seed[8:10])[0]
    text, payload = seed[10:10 + hlen], seed[10 + hlen:]
    with tempfile.TemporaryDirectory() as tmp:
        @_FUZZ
        @given(_mutated(text, _NPY_TOKENS, focus=len(text)),
               st.sampled_from([payload, payload[:-4], payload + b"x", b""]))
        def run(header, body):
            framed = b"\x93NUMPY\x01\x00" + struct.pack("<H", min(len(header), 65535)) + header
            _check_npy(framed + body, Path(tmp))

        run()


def test_fuzz_jsonline_matches_json_on_valid_documents():
    """Within the bounds, jsonline.loads is json.loads: generated JSON documents parse equal."""
    leaf = st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.text(max_size=8)
    doc = st.recursive(leaf, lambda kids: st.lists(kids, max_size=3)
                       | st.dictionaries(st.text(max_size=4), kids, max_size=3), max_leaves=12)

    @settings(max_examples=min(FUZZ_EXAMPLES, 300), deadline=None, database=None)
    @given(doc, st.booleans())
    def run(value, ascii_only):
        text = json.dumps(value, ensure_ascii=ascii_only)
        try:
            assert jsonline.loads(text) == json.loads(text)
        except jsonline.LineError as e:  # only lone surrogates that st.text produced
            assert "lone surrogate" in e.message

    run()
