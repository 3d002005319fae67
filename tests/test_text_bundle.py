"""Compile from text -> signed text-in bundle -> Router.load -> route_text / route_texts.

The compiler embeds the traces with the runtime's own TextEmbedder over the
packaged int8 graph, so the runtime recomputes exactly the compile-time
numbers; the bundle carries the embedder and its fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, data_path, read_json, run_tracec
from tracec import minilm
from tracec.embeddings import embed_texts
from tracec_runtime import Router
from tracec_runtime.embedder import PROCEDURE

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("keys") / "k"
    run_tracec("keygen", "--out", base, check_code=0)
    return f"{base}.key", f"{base}.pub"


@pytest.fixture(scope="module")
def text_bundle(tmp_path_factory, keys):
    """The example traces (1,600 rows) compiled from text, signed; the gate opens."""
    tmp = tmp_path_factory.mktemp("text")
    traces = EXAMPLES / "traces.jsonl"
    out = tmp / "bundle"
    proc = run_tracec("compile", traces, "--out", out, "--alpha", "0.9", "--signing-key", keys[0],
                      "--json", env=_env(tmp), check_code=0)
    return out, traces, json.loads(proc.stdout)


def _env(tmp):
    import os
    return {**os.environ, "TRACEC_CACHE_DIR": str(tmp / "cache")}


def test_compiled_bundle_carries_the_embedder(text_bundle):
    out, _, doc = text_bundle
    m = read_json(out / "manifest.json")
    assert m["format_version"] == "2" and doc["manifest"] == m
    e = m["embedder"]
    assert (e["input"], e["backend"], e["source"], e["dimension"]) == ("text", "minilm-int8",
                                                                     "computed", 384)
    assert e["digest"] == minilm.MODEL_SHA256 and e["max_tokens"] == 256
    t = e["text"]
    assert (t["procedure"], t["model"], t["tokenizer"]) == (PROCEDURE, "embedder/model.onnx",
                                                             "embedder/tokenizer.json")
    # the pinned file as tracec.minilm_graph rewrites it (tests/test_minilm_graph.py)
    model = (out / t["model"]).read_bytes()
    assert model == minilm.packaged_files().model
    assert m["files"][t["model"]]["sha256"] == hashlib.sha256(model).hexdigest()
    assert m["files"][t["tokenizer"]]["sha256"] == minilm.TOKENIZER_SHA256
    assert len(t["fingerprint"]["canaries"]) == len(t["fingerprint"]["vectors_f32le_hex"]) >= 4


COLD_START = """
import sys
from tracec_runtime import Router
Router.load(sys.argv[1], sys.argv[2]).route_text("I still have not received my new card")
print([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_cold_start_peak_rss_stays_below_the_folded_graph(text_bundle, keys):
    """Fresh process: import, verify, embedder, fingerprint, one decision (docs/embedder.md).

    The pinned graph as packaged peaks at 305 MiB, the rewritten one at 194-212 MiB while
    glibc adapts its mmap threshold, 178-182 MiB with the threshold fixed
    (tracec_runtime/embedder/memory.py): the issue's 200 MiB target."""
    out = text_bundle[0]
    proc = subprocess.run([sys.executable, "-c", COLD_START, str(out), keys[1]], check=True,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(
                              REPO / "runtime")})
    peak_mib = int(proc.stdout.split()[-1]) / 1024
    assert peak_mib <= 200, f"cold-start peak RSS {peak_mib:.1f} MiB > 200 MiB"


def test_router_routes_text_exactly_as_compiled(text_bundle, keys):
    out, traces, _ = text_bundle
    router = Router.load(out, keys[1])
    assert router.text_in
    holdout = [json.loads(line) for line in (EXAMPLES / "holdout.jsonl").read_text("utf-8").splitlines()]
    texts = [r["input"] for r in holdout[:200]]
    X, flags = router.embed_texts(texts)
    np.testing.assert_array_equal(X, embed_texts(texts, cache_dir=out.parent / "c2"))
    assert flags == [None] * len(texts)
    batch = router.route_texts(texts)
    ones = [router.route_text(t) for t in texts]
    # identical embeddings; the policy engine's one-row and batch paths agree on every
    # decision here and on scores to float32 rounding (as route / route_batch do)
    assert [d.handled for d in ones] == batch.handled.tolist()
    assert [d.surrogate_label for d in ones] == [router.labels[k] for k in batch.label_index]
    np.testing.assert_allclose([d.score for d in ones], batch.score, rtol=0, atol=1e-6)
    agree = [d.label == r["teacher"] for d, r in zip(ones, holdout) if d.handled]
    assert batch.coverage > 0.3 and np.mean(agree) > 0.8


def test_cli_routes_text_with_no_embeddings_file(text_bundle, keys, tmp_path):
    out, _, _ = text_bundle
    proc = run_tracec("route", out, "--traces", EXAMPLES / "holdout.jsonl", "--public-key", keys[1],
                      "--json", check_code=0)
    s = json.loads(proc.stdout)["summary"]
    assert s["rows"] == 500 and float(s["coverage"]) > 0.3 and s["ta_handled"] is not None
    proc = run_tracec("route", out, "--text", "   ", "--public-key", keys[1], check_code=0)
    assert proc.stdout.startswith("DEFER: deferred: empty")
    no_teacher = tmp_path / "texts.jsonl"
    no_teacher.write_text('{"text": "I lost my card"}\n{"input": "refund please"}\n', "utf-8")
    doc = json.loads(run_tracec("route", out, "--traces", no_teacher, "--public-key", keys[1],
                                "--json", check_code=0).stdout)
    assert doc["summary"]["rows"] == 2 and doc["summary"]["ta_handled"] is None
    proc = run_tracec("embed", no_teacher, "--out", tmp_path / "x.npy", check_code=0,
                      env=_env(tmp_path))
    assert np.load(tmp_path / "x.npy").shape == (2, 384)


def test_embed_names_the_bad_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "fine"}\n{"teacher": "x"}\n', "utf-8")
    proc = run_tracec("embed", bad, "--out", tmp_path / "x.npy", check_code=3)
    assert "bad.jsonl:2" in proc.stderr and "input" in proc.stderr


@pytest.mark.parametrize("text, words", [("card \ud800 lost", "lone surrogate"), ("   ", "empty")])
def test_texts_the_embedder_cannot_read_are_refused_with_their_line(tmp_path, text, words):
    lines = (EXAMPLES / "traces.jsonl").read_text("utf-8").splitlines()[:50]
    bad = json.loads(lines[6])
    bad["input"] = text
    lines[6] = json.dumps(bad)  # ASCII: a lone surrogate is written as the escape \ud800
    traces = tmp_path / "bad.jsonl"
    traces.write_text("\n".join(lines) + "\n", "utf-8")
    out = tmp_path / "never"
    proc = run_tracec("compile", "--unsigned", traces, "--out", out, check_code=3, env=_env(tmp_path))
    assert "bad.jsonl:7: field 'input'" in proc.stderr  # the trace loader or the embedder's check
    assert not out.exists()
    proc = run_tracec("embed", traces, "--out", tmp_path / "x.npy", check_code=3, env=_env(tmp_path))
    assert "bad.jsonl:7: field 'input'" in proc.stderr and words in proc.stderr
    assert not (tmp_path / "x.npy").exists()


def test_precomputed_embeddings_need_an_embedder_id(tmp_path):
    rows = np.arange(400)
    from conftest import write_subset
    traces, emb = write_subset(tmp_path, data_path("banking77", "traces_qwen3-30b", "train.jsonl"),
                               data_path("banking77", "train.minilm-l6-v2.f16.npy"), rows, "s")
    proc = run_tracec("compile", "--unsigned", traces, "--embeddings", emb, "--out", tmp_path / "b", check_code=3)
    assert "'embedder_id' parameter of compile" in proc.stderr
    proc = run_tracec("compile", "--unsigned", traces, "--embeddings", emb, "--embedder-id", "my-minilm-f16",
                      "--alpha", "0.5", "--out", tmp_path / "b", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    e = read_json(tmp_path / "b" / "manifest.json")["embedder"]
    assert (e["id"], e["input"], e["backend"], e["source"]) == ("my-minilm-f16", "embedding",
                                                                "provided", "provided")
    assert not (tmp_path / "b" / "embedder").exists()
    proc = run_tracec("route", tmp_path / "b", "--text", "hello", "--allow-unsigned", check_code=3)
    assert "embedding-in bundle" in proc.stderr


def test_single_and_batched_embedding_are_identical_on_shared_texts():
    """300 Banking77 test texts: one by one == one batch, bit for bit; cosine to fp32."""
    path = data_path("banking77", "test.jsonl")
    texts = [json.loads(line)["input"] for line in path.read_text("utf-8").splitlines()[:300]]
    ref = np.load(data_path("banking77", "test.minilm-l6-v2.f16.npy"))[:300].astype(np.float32)
    emb = minilm.embedder()
    batch, _ = emb.embed_many(texts)
    single = np.stack([emb.embed_many([t])[0][0] for t in texts])
    assert np.array_equal(batch, single), np.abs(batch - single).max()
    shuffled = np.random.default_rng(0).permutation(len(texts))
    again, _ = emb.embed_many([texts[i] for i in shuffled])
    assert np.array_equal(again, batch[shuffled])  # a row never depends on its neighbours
    cos = (batch * ref).sum(axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.998 and np.median(cos) > 0.9994
    assert hashlib.sha256(batch.tobytes()).hexdigest() == hashlib.sha256(single.tobytes()).hexdigest()


def test_route_needs_one_kind_of_input(tmp_path):
    proc = run_tracec("route", tmp_path / "b", "--allow-unsigned", check_code=2)
    assert "--embeddings FILE.npy, --traces FILE.jsonl or --text TEXT" in proc.stderr
    proc = run_tracec("route", tmp_path / "b", "--text", "hi", "--traces", tmp_path / "t.jsonl",
                      "--allow-unsigned", check_code=2)
    assert "cannot be combined" in proc.stderr
