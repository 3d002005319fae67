"""CLI contract on a quick real-data compile: exit codes, nothing half-written, determinism."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from conftest import data_path, run_tracec, write_subset


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """3,000 Banking77 rows (real teacher): enough for every split, quick to compile."""
    tmp = tmp_path_factory.mktemp("small")
    rows = np.random.default_rng(7).choice(10003, 3000, replace=False)
    return write_subset(tmp, data_path("banking77", "traces_qwen3-30b", "train.jsonl"),
                        data_path("banking77", "train.minilm-l6-v2.f16.npy"), np.sort(rows), "b77s")


def _tree_digest(root):
    h = hashlib.sha256()
    for p in sorted(x for x in root.rglob("*") if x.is_file()):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def test_same_inputs_give_byte_identical_bundles(small, tmp_path):
    traces, emb = small
    key = tmp_path / "k"
    run_tracec("keygen", "--out", key, check_code=0)
    digests = []
    for name in ("a", "b"):
        proc = run_tracec("compile", traces, "--embeddings", emb, "--alpha", "0.8",
                          "--signing-key", f"{key}.key", "--out", tmp_path / name)
        assert proc.returncode in (0, 1), proc.stderr
        digests.append(_tree_digest(tmp_path / name))
    assert digests[0] == digests[1]


def test_bad_input_exits_3_and_writes_nothing(small, tmp_path):
    traces, emb = small
    bad = tmp_path / "bad.jsonl"
    lines = traces.read_text(encoding="utf-8").splitlines()
    lines[41] = '{"input": "hello", "teacher": 42}'
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "never"
    proc = run_tracec("compile", bad, "--embeddings", emb, "--unsigned", "--out", out, check_code=3)
    assert "bad.jsonl:42" in proc.stderr and "teacher" in proc.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")], "staging left behind"


def test_parameter_error_wording(small, tmp_path):
    traces, emb = small
    proc = run_tracec("compile", traces, "--embeddings", emb, "--alpha", "1.5", "--unsigned", "--out",
                      tmp_path / "x", check_code=3)
    assert "The 'alpha' parameter of compile must be a float in (0, 1). Got 1.5 instead." in proc.stderr


def test_existing_destination_needs_force(small, tmp_path):
    traces, emb = small
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    run_tracec("compile", traces, "--embeddings", emb, "--unsigned", "--out", out, check_code=3)
    assert (out / "keep.txt").read_text() == "mine"


def test_verify_reports_tampering_with_exit_1(small, tmp_path):
    traces, emb = small
    out = tmp_path / "b"
    proc = run_tracec("compile", traces, "--embeddings", emb, "--alpha", "0.8", "--unsigned", "--out", out)
    assert proc.returncode in (0, 1), proc.stderr
    run_tracec("verify", out, "--allow-unsigned", check_code=0)
    data = bytearray((out / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 1
    (out / "model.onnx").write_bytes(bytes(data))
    (out / "extra.txt").write_text("x")
    proc = run_tracec("verify", out, "--allow-unsigned", check_code=1)
    assert "model.onnx" in proc.stderr and "extra.txt" in proc.stderr


def test_route_json_is_one_document(small, tmp_path):
    traces, emb = small
    out = tmp_path / "b"
    proc = run_tracec("compile", traces, "--embeddings", emb, "--alpha", "0.8", "--unsigned", "--out", out)
    assert proc.returncode in (0, 1), proc.stderr
    proc = run_tracec("route", out, "--embeddings", emb, "--traces", traces, "--allow-unsigned",
                      "--json", check_code=0)
    doc = json.loads(proc.stdout)
    assert doc["summary"]["rows"] == 3000 and len(doc["decisions"]) == 3000
    handled = [d for d in doc["decisions"] if d["handled"]]
    assert all(d["label"] == d["surrogate_label"] for d in handled)
    assert all(d["label"] is None for d in doc["decisions"] if not d["handled"])


def test_a_cascade_with_no_residual_is_refused_with_the_reason(small, tmp_path):
    """--families cascade at an alpha stage 1 already meets everywhere: there is no second stage
    to build, so nothing can be tested; a closed bundle and exit 1, never a crash."""
    traces, emb = small
    out = tmp_path / "cascade-only"
    proc = run_tracec("compile", traces, "--embeddings", emb, "--alpha", "0.7", "--families",
                      "cascade", "--unsigned", "--out", out, "--json", check_code=1)
    doc = json.loads(proc.stdout)
    assert doc["gate"] == "closed" and doc["manifest"]["policy"]["family"] == "none"
    assert "cascade: no threshold certified TA >= 0.7: nothing to test (no second stage" in proc.stderr
    assert "points above alpha, yet nothing was certified" in proc.stderr
    assert (out / "manifest.json").is_file()
