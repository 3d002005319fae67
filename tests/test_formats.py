"""Trace formats: every log shape gives the same rows, skips other kinds with counts, reads
.gz and stdin, maps fields (into JSON completions too), and names file:line on bad rows."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from tracec.errors import ParameterError, TraceFileError
from tracec.formats import CHOICES, FORMATS, sniff
from tracec.traces import load_traces

FIXTURES = REPO / "tests" / "fixtures" / "traces"
_spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)

BATCH_OUT = FIXTURES / "openai_batch_output.jsonl"
#: fixture -> (the format auto must pick, extra load_traces options)
CASES = {
    "jsonl.jsonl": ("jsonl", {}),
    "custom.jsonl": ("jsonl", {"input_field": "request.text", "teacher_field": "completion.label"}),
    "openai_chat.jsonl": ("openai-chat", {}),
    "openai_chat_messages.jsonl": ("openai-chat", {"teacher_field": "teacher.label"}),
    "openai_batch_input.jsonl": ("openai-batch", {"batch_output": BATCH_OUT}),
    "otel_genai.jsonl": ("otel-genai", {}),
    "langfuse.jsonl": ("langfuse", {}),
    "langsmith.jsonl": ("langsmith", {}),
    "decision_log.jsonl": ("decision-log", {}),
}


def test_fixtures_are_reproducible(tmp_path):
    fixtures.write(tmp_path)
    for name in fixtures.files():
        assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes(), \
            f"{name} is stale: run `python tests/fixtures/traces/make_fixtures.py`"
    assert set(CASES) == set(fixtures.EXPECTED_SKIPS)
    assert {fmt for fmt, _ in CASES.values()} == set(FORMATS) == set(CHOICES) - {"auto"}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("fmt", ["auto", "explicit"])
def test_every_format_reads_the_same_rows_and_counts_skips(name, fmt):
    expected_format, options = CASES[name]
    t = load_traces(FIXTURES / name, format=expected_format if fmt == "explicit" else "auto",
                    **options)
    assert t.format == expected_format
    assert list(zip(t.inputs, t.teachers)) == fixtures.ROWS
    assert t.skipped == fixtures.EXPECTED_SKIPS[name]
    summary = t.summary()
    sampling = summary.pop("sampling")
    if expected_format == "decision-log":  # and which rows may certify (tests/test_decision_log.py)
        assert sampling["certifiable"] == 3 and t.certifiable == (True,) * 3 + (False,) * 3
    else:
        assert sampling is None
    assert summary == {"format": expected_format, "rows": len(fixtures.ROWS),
                       "skipped": fixtures.EXPECTED_SKIPS[name]}
    # same rows => same content digest, whatever the container (the manifest's traces_sha256)
    assert t.rows_sha256 == load_traces(FIXTURES / "jsonl.jsonl").rows_sha256


def test_ids_and_timestamps_come_from_each_format():
    assert load_traces(FIXTURES / "openai_batch_input.jsonl", batch_output=BATCH_OUT).ids[:2] == \
        ("req-0", "req-1")
    otel = load_traces(FIXTURES / "otel_genai.jsonl")
    assert otel.ids[0] == "0000000000000a01" and otel.timestamps[0] == str((fixtures.T0 + 60) * 10**9)
    assert load_traces(FIXTURES / "langfuse.jsonl").ids[0] == "gen-000"
    assert load_traces(FIXTURES / "openai_chat.jsonl").timestamps[0] == "2025-12-02T08:00:00.000Z"


@pytest.mark.parametrize("name", ["jsonl.jsonl", "otel_genai.jsonl", "openai_batch_input.jsonl"])
def test_gzip_reads_the_same(tmp_path, name):
    _, options = CASES[name]
    gz = tmp_path / (name + ".gz")
    gz.write_bytes(gzip.compress((FIXTURES / name).read_bytes()))
    if "batch_output" in options:
        out_gz = tmp_path / "out.jsonl.gz"
        out_gz.write_bytes(gzip.compress(BATCH_OUT.read_bytes()))
        options = {"batch_output": out_gz}
    plain, packed = load_traces(FIXTURES / name, **CASES[name][1]), load_traces(gz, **options)
    assert (packed.inputs, packed.teachers, packed.skipped) == (plain.inputs, plain.teachers, plain.skipped)


def test_corrupt_gzip_is_an_error(tmp_path):
    gz = tmp_path / "t.jsonl.gz"
    gz.write_bytes(gzip.compress((FIXTURES / "jsonl.jsonl").read_bytes())[:-12])
    with pytest.raises(TraceFileError, match="corrupt or truncated gzip"):
        load_traces(gz)


def test_stdin_is_read_with_dash():
    code = ("import sys, tracec; t = tracec.load_traces('-'); "
            "print(t.path, t.format, t.n, sum(t.skipped.values()))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True,
                          input=gzip.compress((FIXTURES / "otel_genai.jsonl").read_bytes()))
    assert proc.stdout.decode().split() == ["<stdin>", "otel-genai", "6", "3"]


def test_in_memory_records_and_sniffing():
    records = [json.loads(line) for line in (FIXTURES / "langsmith.jsonl").read_text().splitlines()]
    assert sniff(records[0]) == "langsmith"
    t = load_traces(iter(records))
    assert (t.path, t.format, t.sha256) == ("<records>", "langsmith", None)
    assert list(zip(t.inputs, t.teachers)) == fixtures.ROWS
    with pytest.raises(TraceFileError, match=r"^<records>:2: expected a mapping .*found list"):
        load_traces([{"input": "a", "teacher": "b"}, ["x"]])


def test_require_teacher_false_reads_unlabelled_rows(tmp_path):
    path = tmp_path / "traffic.jsonl"
    path.write_text('{"input": "where is my card"}\n{"input": "fee?", "teacher": "fee"}\n')
    t = load_traces(path, require_teacher=False)
    assert t.inputs == ("where is my card", "fee?") and t.teachers == (None, "fee")
    with pytest.raises(TraceFileError, match=r"traffic.jsonl:1: field 'teacher': missing"):
        load_traces(path)


def _write(tmp_path: Path, lines: list, name: str = "t.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


GOOD = {"input": "where is my card", "teacher": "card_arrival"}
CHAT_OK = {"request": {"messages": [{"role": "user", "content": "hi"}]},
           "response": {"choices": [{"message": {"role": "assistant", "content": "greet"}}]}}
SPAN = {"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "1", "attributes": [
    {"key": "gen_ai.prompt", "value": {"stringValue": "hello"}},
    {"key": "gen_ai.completion", "value": {"stringValue": "greet"}}]}]}]}]}

# (format, lines, options, line, field, words)
ERRORS = {
    "chat_messages_not_list": ("openai-chat", [CHAT_OK, {"request": {"messages": "hi"}, "response": {}}],
                               {}, 2, "request.messages", ["expected a list, found a string"]),
    "chat_no_user": ("openai-chat", [CHAT_OK, {"request": {"messages": [{"role": "system", "content": "s"}]},
                                               "response": CHAT_OK["response"]}],
                     {}, 2, "request.messages", ["expected a user message with text", "['system']"]),
    "chat_teacher_not_text": ("openai-chat", [CHAT_OK, {"messages": [{"role": "user", "content": "a"},
                                                                     {"role": "assistant", "content": 7}]}],
                              {}, 2, "messages.1.content", ["expected the message content to be a string"]),
    "otel_attributes": ("otel-genai", [SPAN, {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"attributes": {"gen_ai.prompt": "x"}}]}]}]}], {}, 2,
        "resourceSpans.0.scopeSpans.0.spans.0.attributes", ["expected a list of {key, value}"]),
    "otel_bad_messages_json": ("otel-genai", [SPAN, {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"attributes": [{"key": "gen_ai.input.messages", "value": {"stringValue": "[{\"role\": "}}]}]}]}]}],
        {}, 2, "resourceSpans.0.scopeSpans.0.spans.0.gen_ai.input.messages", ["malformed JSON"]),
    "langfuse_input": ("langfuse", [{"traceId": "t", "type": "GENERATION", "input": 42, "output": "x"}],
                       {}, 1, "input", ["expected text, a list of messages", "found a number"]),
    "langsmith_inputs": ("langsmith", [{"run_type": "llm", "inputs": {"question": "q"},
                                        "outputs": {"output": "x"}}], {}, 1, "inputs",
                         ["expected 'messages', 'prompts', 'prompt' or 'input'", "['question']"]),
    "field_path_missing": ("jsonl", [{"q": {"text": "a"}, "completion": '{"label": "x"}'},
                                     {"q": {"txt": "b"}, "completion": '{"label": "y"}'}],
                           {"input_field": "q.text", "teacher_field": "completion.label"}, 2, "q.text",
                           ["missing: expected a value at 'q.text'", "no 'text' in q", "only the keys 'txt'"]),
    "field_path_not_string": ("jsonl", [{"q": "a", "completion": '{"label": "x"}'},
                                        {"q": "b", "completion": '{"label": 3}'}],
                              {"input_field": "q", "teacher_field": "completion.label"}, 2, "teacher",
                              ["expected a non-empty string, found 3 (int)", "(read from 'completion.label')"]),
    "malformed_line_any_format": ("auto", [SPAN, SPAN, '{"resourceSpans": [}'], {}, 3, None,
                                  ["expected a JSON object, found malformed JSON"]),
    "batch_duplicate_custom_id": ("openai-batch", [
        {"custom_id": "a", "body": {"messages": [{"role": "user", "content": "x"}]}},
        {"custom_id": "a", "body": {"messages": [{"role": "user", "content": "y"}]}}],
        {"batch_output": BATCH_OUT}, 2, "custom_id", ["expected each custom_id once in the input file"]),
    "batch_output_as_traces": ("auto", [json.loads(BATCH_OUT.read_text().splitlines()[0])],
                               {"batch_output": BATCH_OUT}, 1, None,
                               ["found a result line: pass the input file as TRACES", "--batch-output"]),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_bad_rows_name_file_line_field(tmp_path, case):
    fmt, lines, options, line, field, words = ERRORS[case]
    path = _write(tmp_path, lines)
    with pytest.raises(TraceFileError) as info:
        load_traces(path, format=fmt, **options)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line, field), str(err)
    assert str(err).startswith(f"{path}:{line}: "), str(err)
    for word in words:
        assert word in str(err), (word, str(err))


def test_batch_errors_in_the_output_file_name_that_file(tmp_path):
    inp = FIXTURES / "openai_batch_input.jsonl"
    dup = _write(tmp_path, BATCH_OUT.read_text().splitlines()[:2] + BATCH_OUT.read_text().splitlines()[:1],
                 "out.jsonl")
    with pytest.raises(TraceFileError) as info:
        load_traces(inp, batch_output=dup)
    assert (info.value.path, info.value.line, info.value.field) == (str(dup), 3, "custom_id")
    assert "found 'req-3' again (first at" in str(info.value)
    with pytest.raises(TraceFileError, match="needs its results: pass the output file with --batch-output"):
        load_traces(inp)
    with pytest.raises(ParameterError, match="'batch_output' parameter"):
        load_traces(FIXTURES / "jsonl.jsonl", batch_output=BATCH_OUT)


def test_a_file_with_only_other_kinds_says_what_was_skipped(tmp_path):
    path = _write(tmp_path, [{"traceId": "t", "type": "SPAN", "input": "a", "output": "b"}] * 3)
    with pytest.raises(TraceFileError) as info:
        load_traces(path)
    assert info.value.line is None
    assert "found none (skipped: 3 observation that is not a GENERATION)" in str(info.value)


def test_a_record_of_another_format_read_as_jsonl_names_the_format(tmp_path):
    path = _write(tmp_path, [GOOD, SPAN])
    with pytest.raises(TraceFileError) as info:
        load_traces(path)
    assert info.value.line == 2 and info.value.field == "input"
    assert str(info.value).endswith("(this record looks like otel-genai, but --format auto sniffed "
                                    "jsonl from the first record: pass --format otel-genai)")
    with pytest.raises(TraceFileError, match="but --format jsonl: pass --format otel-genai"):
        load_traces(FIXTURES / "otel_genai.jsonl", format="jsonl")


def test_otel_logs_and_metrics_lines_are_skipped(tmp_path):
    path = _write(tmp_path, [SPAN, {"resourceLogs": []}, {"resourceMetrics": []}, SPAN])
    t = load_traces(path, min_classes=1)
    assert t.n == 2 and t.skipped == {"OTLP logs or metrics line (not spans)": 2}


def test_unknown_format_is_a_parameter_error():
    with pytest.raises(ParameterError, match="The 'format' parameter of load_traces must be one of auto, jsonl"):
        load_traces(FIXTURES / "jsonl.jsonl", format="csv")


def test_embed_command_reads_any_format_and_reports_skips(tmp_path, monkeypatch):
    """`tracec embed` through the shared trace options (the model replaced by a stand-in)."""
    import numpy as np
    from click.testing import CliRunner

    from tracec import embeddings as emb
    from tracec.cli import cli

    texts = []
    monkeypatch.setattr(emb, "_encode", lambda batch, backend: (texts.extend(batch), np.eye(
        len(batch), emb.DIMENSION, dtype=np.float32))[1])
    monkeypatch.setenv("TRACEC_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "X.npy"
    result = CliRunner().invoke(cli, ["embed", str(FIXTURES / "openai_batch_input.jsonl"), "--batch-output",
                                      str(BATCH_OUT), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["rows"] == 6 and doc["format"] == "openai-batch"
    assert doc["skipped"] == fixtures.EXPECTED_SKIPS["openai_batch_input.jsonl"]
    assert texts == [text for text, _ in fixtures.ROWS] and np.load(out).shape == (6, emb.DIMENSION)
    assert "skipped 3: 1 batch request without a result" in result.stderr


def test_the_examples_in_docs_traces_md_read_as_documented(tmp_path):
    """Each format's example record in docs/traces.md gives the documented row."""
    import re

    text = (REPO / "docs" / "traces.md").read_text("utf-8")
    blocks = {}
    for section in re.split(r"^### ", text, flags=re.M)[1:]:
        name = section.split("`")[1]
        blocks[name] = re.findall(r"```json\n(.*?)\n```", section, flags=re.S)
    assert set(blocks) == set(FORMATS) - {"jsonl"}
    for name, examples in blocks.items():
        if name == "openai-batch":
            inp, out = _write(tmp_path, [examples[0]], "in.jsonl"), _write(tmp_path, [examples[1]], "out.jsonl")
            found = [load_traces(inp, min_classes=1, batch_output=out)]
        else:
            found = [load_traces(_write(tmp_path, [e], f"{name}.jsonl"), min_classes=1) for e in examples]
        for t in found:
            assert t.format == name
            assert list(zip(t.inputs, t.teachers)) == [("I lost my card on the train yesterday", "card_lost")]


@pytest.mark.parametrize("args, words", [
    (["--format", "otel-genai"], ["bad.jsonl:2: field 'resourceSpans.0.scopeSpans.0.spans.0.attributes'",
                                  "expected a list of {key, value} attributes"]),
    (["--batch-output", str(BATCH_OUT)], ["The 'batch_output' parameter of load_traces must be given "
                                          "only with the openai-batch format"]),
])
def test_cli_bad_trace_input_exits_3_and_writes_nothing(tmp_path, args, words):
    from conftest import run_tracec

    bad = _write(tmp_path, [SPAN, {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"attributes": {"gen_ai.prompt": "x"}}]}]}]}], "bad.jsonl")
    out = tmp_path / "never"
    proc = run_tracec("compile", "--unsigned", bad, *args, "--out", out, check_code=3)
    for word in words:
        assert word in proc.stderr, proc.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]
