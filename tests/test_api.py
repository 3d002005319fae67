"""The Python API: tracec.compile / tracec.load_traces, and the CLI as a thin layer over it.

The real-data part compiles a 1,500-row Banking77 subset (the ten most frequent teacher
intents, real LLM teacher, precomputed embeddings) three ways — API on in-memory records and
array, CLI on the file, CLI on an OpenAI-chat .jsonl.gz piped to stdin — and checks the three
bundles are byte-identical, then loads one with the runtime and routes.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

import tracec
from conftest import TRACEC, data_path, run_tracec, write_subset
from tracec.errors import EmbeddingError, ParameterError, TraceFileError
from tracec_runtime.router import Router


def test_import_tracec_is_cheap():
    code = ("import sys, tracec; heavy = [m for m in ('numpy', 'pydantic', 'sklearn', 'click', "
            "'onnx', 'tracec.pipeline') if m in sys.modules]; print(heavy); "
            "print(tracec.compile.__module__, tracec.CompileResult.__name__, "
            "tracec.TraceFileError.exit_code, tracec.errors.ParameterError.exit_code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "tracec.api CompileResult 3 3"]


def test_unknown_option_is_a_parameter_error_naming_it(tmp_path):
    with pytest.raises(ParameterError) as info:
        tracec.compile([], out=tmp_path / "b", alpah=0.9)
    assert info.value.name == "alpah" and info.value.exit_code == 3
    assert str(info.value).startswith("The 'alpah' parameter of compile must be one of the options seed,")


@pytest.mark.parametrize("alpha, got", [(1.5, "1.5"), ("0.9,x", "'0.9,x'"), ([0.9, 1.2], "1.2"),
                                        (True, "True"), ([], "[]")])
def test_bad_alpha_wording_matches_the_cli(tmp_path, alpha, got):
    with pytest.raises(ParameterError) as info:
        tracec.compile("unused.jsonl", out=tmp_path / "b", alpha=alpha)
    assert str(info.value).startswith("The 'alpha' parameter of compile must be")
    assert str(info.value).endswith(f"Got {got} instead.")
    assert not (tmp_path / "b").exists()


def test_bad_types_are_typed_errors(tmp_path):
    with pytest.raises(ParameterError, match="'embeddings' parameter of compile must be a .npy path"):
        tracec.compile("t.jsonl", out=tmp_path / "b", embeddings=[[0.0, 1.0]])
    with pytest.raises(ParameterError, match="'out' parameter of compile must be a path"):
        tracec.compile("t.jsonl", out=3)
    with pytest.raises(ParameterError, match="'families' parameter of compile must be a non-empty subset"):
        tracec.compile("t.jsonl", out=tmp_path / "b", families=["global", "trees"])
    with pytest.raises(ParameterError, match="'families' parameter of compile must be a comma-separated"):
        tracec.compile("t.jsonl", out=tmp_path / "b", families=None)
    with pytest.raises(ParameterError, match="'split' parameter of compile"):
        tracec.compile("t.jsonl", out=tmp_path / "b", fractions=(0.5, 0.5))
    with pytest.raises(TraceFileError, match=r"^<records>:2: field 'teacher': expected a non-empty "
                                             r"string, found 42 \(int\)"):
        tracec.compile([{"input": "a", "teacher": "x"}, {"input": "b", "teacher": 42}],
                       out=tmp_path / "b")
    rows = [{"input": f"text {i}", "teacher": "ab"[i % 2]} for i in range(10)]
    with pytest.raises(EmbeddingError, match="row-count mismatch: <embeddings array> has 9 rows"):
        tracec.compile(rows, out=tmp_path / "b", embeddings=np.zeros((9, 4), dtype=np.float32),
                       embedder_id="toy")
    assert not (tmp_path / "b").exists()


def test_load_traces_accepts_str_path_and_records(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"input": "a", "teacher": "x"}\n{"input": "b", "teacher": "y"}\n')
    by_str, by_records = tracec.load_traces(str(path)), tracec.load_traces(
        [{"input": "a", "teacher": "x"}, {"input": "b", "teacher": "y"}])
    assert by_str.inputs == by_records.inputs and by_str.rows_sha256 == by_records.rows_sha256


# ---------------------------------------------------------------- real data: compile -> route


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    traces = data_path("banking77", "traces_qwen3-30b", "train.jsonl")
    emb = data_path("banking77", "train.minilm-l6-v2.f16.npy")
    teachers = [json.loads(line)["teacher"] for line in traces.read_text("utf-8").splitlines()]
    top = {t for t, _ in collections.Counter(teachers).most_common(10)}
    rows = np.array([i for i, t in enumerate(teachers) if t in top][:1500])
    path, npy = write_subset(tmp, traces, emb, rows, "b77-top10")
    key = tmp / "signer"
    run_tracec("keygen", "--out", key, check_code=0)
    return tmp, path, npy, key


def _tree(root):
    h = hashlib.sha256()
    for p in sorted(x for x in root.rglob("*") if x.is_file()):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _as_openai_chat(record: dict, i: int) -> dict:
    return {"id": f"log-{i}", "request": {"model": "m", "messages": [
                {"role": "system", "content": "Classify the banking request."},
                {"role": "user", "content": record["input"]}]},
            "response": {"id": f"c{i}", "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": record["teacher"] + "\n"}}]}}


def test_api_on_records_equals_cli_on_file_and_on_stdin_then_routes(subset):
    tmp, path, npy, key = subset
    records = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    X = np.load(npy)

    result = tracec.compile(iter(records), out=str(tmp / "api"), alpha=[0.9, 0.85],
                            embeddings=X, embedder_id="minilm", signing_key=str(key) + ".key", seed=0)
    assert isinstance(result, tracec.CompileResult)
    assert result.traces == {"format": "jsonl", "rows": 1500, "skipped": {}, "sampling": None}
    assert result.gate_open, result.explanation

    proc = run_tracec("compile", path, "--embeddings", npy, "--embedder-id", "minilm",
                      "--alpha", "0.9,0.85", "--signing-key",
                      f"{key}.key", "--out", tmp / "cli", "--json", check_code=0)
    doc = json.loads(proc.stdout)
    assert doc["traces"] == result.traces and doc["manifest"] == result.manifest

    chat = gzip.compress("".join(json.dumps(_as_openai_chat(r, i)) + "\n"
                                 for i, r in enumerate(records)).encode())
    chat_path = tmp / "chat.jsonl.gz"
    chat_path.write_bytes(chat)
    proc = subprocess.run([str(TRACEC), "compile", "-", "--format", "openai-chat", "--embeddings",
                           str(npy), "--embedder-id", "minilm", "--alpha", "0.9,0.85",
                           "--signing-key", f"{key}.key", "--out",
                           str(tmp / "stdin")], input=chat, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    assert b"traces <stdin> (format openai-chat): 1,500 rows" in proc.stderr

    for name in ("model.onnx", "manifest.json"):
        assert (tmp / "api" / name).read_bytes() == (tmp / "cli" / name).read_bytes() \
            == (tmp / "stdin" / name).read_bytes(), name
    assert _tree(tmp / "api") == _tree(tmp / "cli") == _tree(tmp / "stdin")

    router = Router.load(tmp / "api", public_key=f"{key}.pub")
    batch = router.route_batch(np.ascontiguousarray(X, dtype=np.float32))
    handled = np.asarray(batch.handled, dtype=bool)
    pred = np.array([router.labels[int(k)] for k in batch.label_index])
    teacher = np.array([r["teacher"] for r in records])
    assert 0.3 < handled.mean() <= 1.0
    assert (pred[handled] == teacher[handled]).mean() >= 0.9  # handled traffic agrees with the LLM

    proc = run_tracec("route", tmp / "api", "--embeddings", npy, "--traces", chat_path,
                      "--format", "openai-chat", "--public-key", f"{key}.pub", "--json", check_code=0)
    summary = json.loads(proc.stdout)["summary"]
    assert summary["rows"] == 1500 and summary["handled"] == int(handled.sum())
    assert "(format openai-chat): 1,500 rows" in proc.stderr
