"""Trace loading: aliases, strictness, and precise errors naming file, line and field."""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import data_path
from tracec.errors import InputError, TraceFileError
from tracec.traces import ALIASES, TraceRecord, label_index, load_traces

REPO = Path(__file__).resolve().parents[1]
GOOD = '{"input": "where is my card", "teacher": "card_arrival"}\n'
GOOD2 = '{"input": "I lost my card", "teacher": "lost_card"}\n'


def write(tmp_path: Path, content: str | bytes, name: str = "traces.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def fails(path: Path) -> TraceFileError:
    with pytest.raises(TraceFileError) as info:
        load_traces(path)
    return info.value


# (file content, 1-based line of the error, field named, words the message must contain)
MALFORMED = '{"input": "x", teacher: "y"}'
BAD = {
    "malformed_json": (GOOD + MALFORMED + "\n", 2, None,
                       ["expected a JSON object", "malformed JSON",
                        f"column {MALFORMED.index('teacher:') + 1})"]),  # 1-based column
    "list": (GOOD + GOOD2 + '["a", "b"]\n', 3, None, ["expected a JSON object", '["a", "b"] (list)']),
    "string": (GOOD + '"hello"\n', 2, None, ["expected a JSON object", '"hello" (str)']),
    "number": ('42\n' + GOOD, 1, None, ["expected a JSON object", "42 (int)"]),
    "missing_input": (GOOD + '{"teacher": "x", "question": "hi"}\n', 2, "input",
                      ["missing", "one of the keys 'input', 'text', 'prompt'",
                       "found only the keys 'question', 'teacher'"]),
    "missing_teacher": (GOOD + '{"input": "hi"}\n', 2, "teacher",
                        ["missing", "'teacher', 'llm_label', 'output', 'prediction'",
                         "found only the keys 'input'"]),
    "teacher_int": (GOOD * 16 + '{"input": "hi", "teacher": 42}\n', 17, "teacher",
                    ["expected a non-empty string, found 42 (int)"]),
    "input_empty": ('{"input": "", "teacher": "x"}\n' + GOOD, 1, "input",
                    ["expected a non-empty string, found an empty string"]),
    "input_null": ('{"text": null, "teacher": "x"}\n' + GOOD, 1, "input",
                   ["expected a non-empty string, found null"]),
    "label_list": (GOOD + '{"input": "a", "teacher": "b", "label": ["b"]}\n', 2, "label",
                   ["expected a non-empty string or null", '["b"] (list)']),
    "id_float": (GOOD + '{"id": 1.5, "input": "a", "teacher": "b"}\n', 2, "id",
                 ["expected a string, an integer or null", "1.5 (float)"]),
    "empty_object": (GOOD + "{}\n", 2, "input", ["missing", "found an empty object"]),
    "id_bool": (GOOD + '{"id": true, "input": "a", "teacher": "b"}\n', 2, "id", ["true (bool)"]),
    "metadata_str": (GOOD + '{"input": "a", "teacher": "b", "metadata": "x"}\n', 2, "metadata",
                     ["expected an object or null", '"x" (str)']),
    "alias_conflict": (GOOD + '{"input": "a", "text": "b", "teacher": "t"}\n', 2, "input",
                       ["expected one value", "'input', 'text'", "different values"]),
    "teacher_alias_conflict": (GOOD + '{"input": "a", "output": "x", "prediction": "y"}\n', 2,
                               "teacher", ["'output'=\"x\" (str)", "'prediction'=\"y\" (str)"]),
    "duplicate_key": (GOOD + '{"input": "a", "teacher": "b", "teacher": "c"}\n', 2, "teacher",
                      ["expected each key once", "found 'teacher' twice"]),
    "blank_middle": (GOOD + "\n" + GOOD2, 2, None, ["expected a JSON object, found a blank line"]),
    "blank_first": ("  \n" + GOOD + GOOD2, 1, None, ["found a blank line"]),
    "invalid_utf8": (GOOD.encode() + b'{"input": "caf\xe9", "teacher": "x"}\n', 2, None,
                     ["expected UTF-8 text", "byte 0xe9", "byte 15 of the line"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_line_names_file_line_field_expected_found(tmp_path, case):
    content, line, field, words = BAD[case]
    path = write(tmp_path, content)
    err = fails(path)
    assert isinstance(err, InputError) and err.exit_code == 3
    assert (err.path, err.line, err.field) == (str(path), line, field)
    prefix = f"{path}:{line}: " + (f"field {field!r}: " if field else "")
    assert str(err).startswith(prefix), str(err)
    for word in words:
        assert word in str(err), (word, str(err))


def test_brief_example_message(tmp_path):
    path = write(tmp_path, BAD["teacher_int"][0])
    assert str(fails(path)) == (f"{path}:17: field 'teacher': expected a non-empty string, "
                                f"found 42 (int)")


@pytest.mark.parametrize("content, found", [(b"", "found an empty file"),
                                            (b"\n  \n\r\n", "found only blank lines")])
def test_empty_file(tmp_path, content, found):
    path = write(tmp_path, content)
    err = fails(path)
    assert err.line is None
    assert str(err).startswith(f"{path}: no trace records") and found in str(err)


def test_single_teacher_class(tmp_path):
    path = write(tmp_path, GOOD * 3)
    err = fails(path)
    assert "a single teacher class 'card_arrival': nothing to learn" in str(err)
    assert str(path) in str(err) and "found 1 in 3 records" in str(err)
    assert load_traces(path, min_classes=1).teachers == ("card_arrival",) * 3


def test_missing_file(tmp_path):
    err = fails(tmp_path / "nope.jsonl")
    assert "nope.jsonl" in str(err) and "expected a readable trace file" in str(err)


@pytest.mark.parametrize("input_key", ("input",) + ALIASES["input"])
@pytest.mark.parametrize("teacher_key", ("teacher",) + ALIASES["teacher"])
def test_aliases_accepted(tmp_path, input_key, teacher_key):
    rows = [{input_key: "hello there", teacher_key: "greet"}, {input_key: "bye", teacher_key: "leave"}]
    path = write(tmp_path, "".join(json.dumps(r) + "\n" for r in rows))
    traces = load_traces(path)
    assert traces.inputs == ("hello there", "bye") and traces.teachers == ("greet", "leave")


def test_same_value_under_two_aliases_is_fine(tmp_path):
    path = write(tmp_path, '{"input": "a", "text": "a", "teacher": "x", "llm_label": "x"}\n' + GOOD)
    assert load_traces(path).inputs == ("a", "where is my card")
    record = TraceRecord.model_validate({"prompt": "p", "prediction": "q"})
    assert (record.input, record.teacher) == ("p", "q")


def test_columns_hash_extras_and_line_endings(tmp_path):
    rows = [
        {"id": 7, "input": "a", "teacher": "x", "label": "x", "timestamp": "2025-01-01T00:00:00Z",
         "metadata": {"model": "m"}, "latency_ms": 812, "tokens": [1, 2]},
        {"id": "b-2", "input": "b ✓", "teacher": "y", "label": None},
        {"input": "c", "teacher": "x"},
    ]
    body = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n\r\n\n"
    data = b"\xef\xbb\xbf" + body.encode("utf-8")
    path = write(tmp_path, data)
    t = load_traces(path)
    assert t.n == len(t) == 3 and t.path == str(path)
    assert t.inputs == ("a", "b ✓", "c") and t.teachers == ("x", "y", "x")
    assert t.labels == ("x", None, None) and t.ids == (7, "b-2", None)
    assert t.timestamps == ("2025-01-01T00:00:00Z", None, None)
    assert t.sha256 == hashlib.sha256(data).hexdigest()


def test_label_index_sorted_and_round_trips():
    teachers = ["b", "a", "c", "a", "b", "b"]
    labels, y = label_index(teachers)
    assert labels == sorted(set(teachers)) and y.dtype == np.int64
    assert [labels[i] for i in y] == teachers
    labels2, y2 = label_index(list(reversed(teachers)))
    assert labels2 == labels and list(y2) == list(reversed(y))


def _load_example_module():
    spec = importlib.util.spec_from_file_location("make_examples", REPO / "examples" / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_examples_are_reproducible_and_loadable(tmp_path):
    module = _load_example_module()
    stats = module.write(tmp_path)
    for name in ("traces.jsonl", "holdout.jsonl"):
        committed = REPO / "examples" / name
        assert committed.read_bytes() == (tmp_path / name).read_bytes(), \
            f"{name} is stale: run `python examples/make_examples.py`"
        t = load_traces(committed)
        agree = sum(a == b for a, b in zip(t.teachers, t.labels)) / t.n
        assert agree == stats[name] and 0.88 <= agree <= 0.97
        assert set(t.labels) == set(module.INTENTS) and len(set(t.inputs)) == t.n
    traces, holdout = load_traces(REPO / "examples" / "traces.jsonl"), load_traces(tmp_path / "holdout.jsonl")
    assert not set(traces.inputs) & set(holdout.inputs)
    assert sum(p.stat().st_size for p in (REPO / "examples").iterdir() if p.is_file()) < 400_000


def test_real_trace_file_matches_plain_json_reading():
    path = data_path("banking77", "traces_qwen3-30b", "train.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    t = load_traces(path)
    assert t.n == len(rows)
    assert t.inputs == tuple(r["input"] for r in rows)
    assert t.teachers == tuple(r["teacher"] for r in rows)
    assert t.labels == tuple(r["label"] for r in rows)
    labels, y = label_index(t.teachers)
    counts = collections.Counter(r["teacher"] for r in rows)
    assert np.bincount(y).tolist() == [counts[label] for label in labels]
