"""CLI contract on a quick real-data compile: exit codes, nothing half-written, determinism."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from conftest import data_path, read_json, run_tracec, write_subset


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
        proc = run_tracec("compile", traces, "--embeddings", emb, "--embedder-id", "all-MiniLM-L6-v2", "--alpha", "0.8",
                          "--signing-key", f"{key}.key", "--out", tmp_path / name)
        assert proc.returncode in (0, 1), proc.stderr
        digests.append(_tree_digest(tmp_path / name))
    assert digests[0] == digests[1]


def _with_bad_line(traces, tmp_path, index: int):
    """A copy of ``traces`` whose line ``index + 1`` has a non-string teacher."""
    bad = tmp_path / "bad.jsonl"
    lines = traces.read_text(encoding="utf-8").splitlines()
    lines[index] = '{"input": "hello", "teacher": 42}'
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return bad


def test_bad_input_exits_3_and_writes_nothing(small, tmp_path):
    traces, emb = small
    bad = _with_bad_line(traces, tmp_path, 41)
    out = tmp_path / "never"
    proc = run_tracec("compile", bad, "--embeddings", emb, "--embedder-id", "all-MiniLM-L6-v2", "--unsigned", "--out", out, check_code=3)
    assert "bad.jsonl:42" in proc.stderr and "teacher" in proc.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")], "staging left behind"


def test_parameter_error_wording(small, tmp_path):
    traces, emb = small
    proc = run_tracec("compile", traces, "--embeddings", emb, "--embedder-id", "all-MiniLM-L6-v2", "--alpha", "1.5", "--unsigned", "--out",
                      tmp_path / "x", check_code=3)
    assert "The 'alpha' parameter of compile must be a float in (0, 1). Got 1.5 instead." in proc.stderr


def test_existing_destination_needs_force(small, tmp_path):
    traces, emb = small
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    run_tracec("compile", traces, "--embeddings", emb, "--embedder-id", "all-MiniLM-L6-v2", "--unsigned", "--out", out, check_code=3)
    assert (out / "keep.txt").read_text() == "mine"


def test_verify_reports_tampering_with_exit_1(small, tmp_path):
    traces, emb = small
    out = tmp_path / "b"
    proc = run_tracec("compile", traces, "--embeddings", emb, "--embedder-id", "all-MiniLM-L6-v2", "--alpha", "0.8", "--unsigned", "--out", out)
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
    proc = run_tracec("compile", traces, "--embeddings", emb, "--embedder-id", "all-MiniLM-L6-v2", "--alpha", "0.8", "--unsigned", "--out", out)
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
    proc = run_tracec("compile", traces, "--embeddings", emb, "--embedder-id", "all-MiniLM-L6-v2", "--alpha", "0.7", "--families",
                      "cascade", "--unsigned", "--out", out, "--json", check_code=1)
    doc = json.loads(proc.stdout)
    assert doc["gate"] == "closed" and doc["manifest"]["policy"]["family"] == "none"
    assert "cascade: no threshold certified TA >= 0.7: nothing to test (no second stage" in proc.stderr
    assert "points above alpha, yet nothing was certified" in proc.stderr
    assert (out / "manifest.json").is_file()


# ---------------------------------------------------------------- exit codes and --json on failure

import os
import signal
import subprocess
import sys
from pathlib import Path

from tracec.outputs import ErrorInfo, ErrorOutput
from tracec_runtime.cli import ERROR_FIELDS

PYTHON = sys.executable


def _error_doc(proc, code: int) -> dict:
    """Exactly one JSON document on stdout, valid against schemas/cli-error.schema.json."""
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    doc = json.loads(proc.stdout)
    ErrorOutput.model_validate(doc)
    assert doc["ok"] is False and doc["error"]["exit_code"] == code
    return doc["error"]


@pytest.fixture(scope="module")
def signed(small, tmp_path_factory):
    """One signed bundle of the small subset (gate open or closed), its key pair."""
    traces, emb = small
    tmp = tmp_path_factory.mktemp("signed")
    run_tracec("keygen", "--out", tmp / "k", check_code=0)
    proc = run_tracec("compile", traces, "--embeddings", emb, "--alpha", "0.8",
                      "--signing-key", tmp / "k.key", "--out", tmp / "b", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is (proc.returncode == 0)
    assert (doc.get("error") or {}).get("type", "GateRefused") == "GateRefused"
    return tmp / "b", tmp / "k.pub"


def test_error_document_fields_match_the_schema():
    assert set(ErrorInfo.model_fields) == {"type", "exit_code", "message", *ERROR_FIELDS}


def test_compile_without_a_key_needs_unsigned(small, tmp_path):
    traces, emb = small
    out = tmp_path / "b"
    proc = run_tracec("compile", traces, "--embeddings", emb, "--out", out, "--json")
    error = _error_doc(proc, 2)
    assert error["type"] == "UsageError"
    assert "--signing-key" in error["message"] and "--unsigned" in error["message"]
    assert "--unsigned" in proc.stderr and not out.exists()
    proc = run_tracec("compile", traces, "--out", out, "--unsigned", "--signing-key", "x.key")
    assert proc.returncode == 2 and "contradict" in proc.stderr


def test_bad_input_json_document_names_file_line_and_field(small, tmp_path):
    traces, emb = small
    bad = _with_bad_line(traces, tmp_path, 9)
    proc = run_tracec("compile", bad, "--embeddings", emb, "--unsigned", "--out", tmp_path / "x",
                      "--json")
    error = _error_doc(proc, 3)
    assert (error["type"], error["path"], error["line"], error["field"]) == \
        ("TraceFileError", str(bad), 10, "teacher")
    assert f"{bad}:10" in error["message"] and f"{bad}:10" in proc.stderr


def test_usage_error_with_json_gives_the_document():
    error = _error_doc(run_tracec("verify", "--no-such-option", "--json"), 2)
    assert error["type"] == "UsageError" and "--no-such-option" in error["message"]
    error = _error_doc(run_tracec("route", "somewhere", "--json"), 2)  # --embeddings missing
    assert "--embeddings" in error["message"]


def test_verify_json_on_an_invalid_bundle(signed, tmp_path):
    bundle, pub = signed
    ok = json.loads(run_tracec("verify", bundle, "--public-key", pub, "--json", check_code=0).stdout)
    assert ok["ok"] is True and ok["signed"] is True
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    (copy / "extra.txt").write_text("x")
    error = _error_doc(run_tracec("verify", copy, "--public-key", pub, "--json"), 1)
    assert error["type"] == "BundleIntegrityError" and error["bundle"] == str(copy)
    assert any("extra.txt" in p for p in error["problems"])
    error = _error_doc(run_tracec("verify", bundle, "--json", "--public-key", tmp_path / "none.pub"), 3)
    assert error["type"] == "KeyFileError"


def test_unsigned_bundle_message_names_the_cli_flag(small, tmp_path):
    traces, emb = small
    out = tmp_path / "u"
    proc = run_tracec("compile", traces, "--embeddings", emb, "--alpha", "0.8", "--unsigned",
                      "--out", out)
    assert proc.returncode in (0, 1), proc.stderr
    run_tracec("keygen", "--out", tmp_path / "k", check_code=0)
    proc = run_tracec("verify", out, "--public-key", tmp_path / "k.pub", check_code=1)
    assert "--allow-unsigned" in proc.stderr


def test_every_command_speaks_json(signed, small, tmp_path):
    bundle, pub = signed
    traces, emb = small
    keys = json.loads(run_tracec("keygen", "--out", tmp_path / "k2", "--json", check_code=0).stdout)
    assert keys == {"ok": True, "private_key": f"{tmp_path / 'k2'}.key",
                    "public_key": f"{tmp_path / 'k2'}.pub"}
    report = json.loads(run_tracec("report", bundle, "--public-key", pub, "--out",
                                   tmp_path / "r.html", "--json", check_code=0).stdout)
    assert report["ok"] is True and Path(report["report"]).is_file()
    verified = json.loads(run_tracec("verify", bundle, "--public-key", pub, "--json",
                                     check_code=0).stdout)
    html = Path(report["report"]).read_text(encoding="utf-8")
    assert f"{len(verified['files'])} verified against the signed statement" in html  # same count
    route = json.loads(run_tracec("route", bundle, "--embeddings", emb, "--public-key", pub,
                                  "--json", check_code=0).stdout)
    assert route["ok"] is True and route["summary"]["rows"] == 3000


def _run_patched(patch: str, *args, debug: bool = False, tmp: Path) -> subprocess.CompletedProcess:
    """Run ``tracec.cli.main(args)`` in a fresh interpreter after executing ``patch``
    (``TMPDIR`` = ``tmp``, where an internal error's traceback file goes)."""
    script = f"import sys\n{patch}\nfrom tracec.cli import main\nmain(sys.argv[1:])\n"
    argv = [*(["--debug"] if debug else []), *map(str, args)]
    return subprocess.run([PYTHON, "-c", script, *argv], capture_output=True, text=True,
                          env={**os.environ, "TMPDIR": str(tmp)})


BUG = "import tracec.routing\ndef boom(*a, **k): raise RuntimeError('a bug')\ntracec.routing.route_file = boom"


def test_internal_error_exits_4_with_one_line_and_a_traceback_file(signed, small, tmp_path):
    bundle, pub = signed
    args = ("route", bundle, "--embeddings", small[1], "--public-key", pub, "--json")
    proc = _run_patched(BUG, *args, tmp=tmp_path)
    error = _error_doc(proc, 4)
    assert error["type"] == "RuntimeError" and "a bug" in error["message"]
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "traceback written to" in lines[0] and "--debug" in lines[0]
    where = Path(lines[0].split("traceback written to ")[1].split(";")[0])
    assert where.is_file() and "RuntimeError: a bug" in where.read_text()
    proc = _run_patched(BUG, *args, debug=True, tmp=tmp_path)
    assert proc.returncode == 4 and "Traceback (most recent call last)" in proc.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_exit_130_and_143_leaving_nothing_half_written(small, tmp_path, sig, code):
    """The signal arrives while the bundle is being written into its staging directory."""
    traces, emb = small
    patch = ("import os, signal, time, tracec.emit\n"
             f"def late(*a, **k): os.kill(os.getpid(), {int(sig)}); time.sleep(30)\n"
             "tracec.emit.write_bundle = late")
    out = tmp_path / "b"
    (tmp_path / "tmp").mkdir()
    proc = _run_patched(patch, "compile", traces, "--embeddings", emb, "--alpha", "0.8",
                        "--unsigned", "--out", out, "--json", tmp=tmp_path / "tmp")
    error = _error_doc(proc, code)
    assert error["type"] == ("Terminated" if code == 143 else "Interrupted")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tmp"], "staging left behind"


def _relabel(traces: Path, dest: Path, teacher) -> Path:
    rows = [json.loads(line) for line in traces.read_text(encoding="utf-8").splitlines()]
    dest.write_text("".join(json.dumps({**r, "teacher": teacher(i, r)}) + "\n"
                            for i, r in enumerate(rows)), encoding="utf-8")
    return dest


def test_route_traces_reports_ta_interval_unseen_labels_and_warns(signed, small, tmp_path):
    """Live traffic whose teacher labels are mostly new: TA collapses, route says so."""
    bundle, pub = signed
    traces, emb = small
    manifest = read_json(bundle / "manifest.json")
    drifted = _relabel(traces, tmp_path / "drift.jsonl",
                       lambda i, r: "brand_new_intent" if i % 3 else r["teacher"])
    proc = run_tracec("route", bundle, "--embeddings", emb, "--traces", drifted,
                      "--public-key", pub, "--json", check_code=0)
    s = json.loads(proc.stdout)["summary"]
    assert s["alpha"] == manifest["policy"]["alpha"] and s["ood_share"] == "0"
    assert s["unseen_teacher_rows"] == 2000 and s["unseen_teacher_labels"] == ["brand_new_intent"]
    if s["handled"]:
        low, high = map(float, s["ta_interval"])
        assert low <= float(s["ta_handled"]) <= high < float(s["alpha"])
        assert s["ta_below_alpha"] is True
        assert any("credibly below" in w for w in s["warnings"])
        assert "warning: live TA on handled rows" in proc.stderr
    assert any("never seen" in w for w in s["warnings"]) and "brand_new_intent" in proc.stderr


def test_route_traces_accepts_a_single_teacher_label(signed, small, tmp_path):
    bundle, pub = signed
    traces, emb = small
    known = read_json(bundle / "manifest.json")["labels"][0]
    one = _relabel(traces, tmp_path / "one.jsonl", lambda i, r: known)
    s = json.loads(run_tracec("route", bundle, "--embeddings", emb, "--traces", one,
                              "--public-key", pub, "--json", check_code=0).stdout)["summary"]
    assert s["unseen_teacher_rows"] == 0 and s["rows"] == 3000
    full = json.loads(run_tracec("route", bundle, "--embeddings", emb, "--traces", traces,
                                 "--public-key", pub, "--json", check_code=0).stdout)["summary"]
    if full["handled"]:
        assert full["ta_below_alpha"] is False and full["warnings"] == []


def test_runtime_cli_verify_and_route(signed, small, tmp_path):
    bundle, pub = signed
    runtime = [PYTHON, "-m", "tracec_runtime"]
    ok = subprocess.run([*runtime, "verify", str(bundle), "--public-key", str(pub), "--json"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["valid"] is True
    routed = subprocess.run([*runtime, "route", str(bundle), "--embeddings", str(small[1]),
                             "--public-key", str(pub), "--json"], capture_output=True, text=True)
    doc = json.loads(routed.stdout)
    compiler = json.loads(run_tracec("route", bundle, "--embeddings", small[1], "--public-key",
                                     pub, "--json", check_code=0).stdout)
    assert doc["decisions"] == compiler["decisions"]
    probe = ("import sys\nfrom tracec_runtime.cli import main\ncode = main(sys.argv[1:])\n"
             "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
             "('tracec', 'sklearn', 'scipy', 'pydantic', 'torch', 'click'))\n"
             "assert code == 0 and not bad, (code, bad)\n")
    subprocess.run([PYTHON, "-c", probe, "route", str(bundle), "--embeddings", str(small[1]),
                    "--public-key", str(pub)], check=True, capture_output=True)
    usage = subprocess.run([*runtime, "verify", str(bundle), "--json"], capture_output=True, text=True)
    error = _error_doc(usage, 2)
    assert "--public-key" in error["message"] and "--allow-unsigned" in error["message"]
    copy = tmp_path / "c"
    shutil.copytree(bundle, copy)
    (copy / "model.onnx").write_bytes(b"tampered")
    error = _error_doc(subprocess.run([*runtime, "verify", str(copy), "--public-key", str(pub),
                                       "--json"], capture_output=True, text=True), 1)
    assert any("model.onnx" in p for p in error["problems"])


def test_route_below_alpha_warning_false_alarm_rate_by_simulation():
    """At a true TA equal to alpha the warning fires at most delta/2 of the time (one side of
    a two-sided 1 - delta Clopper-Pearson interval); ten points below alpha it nearly always does."""
    from tracec.routing import _live_ta

    rng = np.random.default_rng(11)
    manifest = {"policy": {"alpha": "0.9", "delta": "0.05"}}
    n = 400
    handled = np.ones(n, dtype=bool)

    def fires(true_ta: float, runs: int = 2000) -> float:
        ks = rng.binomial(n, true_ta, size=runs)
        return float(np.mean([_live_ta({"_agree_handled": int(k)}, manifest, handled)["ta_below_alpha"]
                              for k in ks]))

    assert fires(0.9) <= 0.025 + 0.01
    assert fires(0.8) >= 0.99
