"""The routing service, started and stopped by the tests, on 127.0.0.1 only.

A real Banking77 bundle (real teacher, precomputed embeddings) is compiled once;
each test starts ``python -m tracec_runtime.serve`` in a subprocess on a free
loopback port and talks HTTP to it with the standard library.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import data_path, run_tracec, signed_banking77_bundle, write_subset
from tracec_runtime import Router
from tracec_runtime.serve.batcher import MicroBatcher

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

ROWS = 3000


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    rows = np.random.default_rng(0).permutation(10003)
    out, _ = signed_banking77_bundle(base, rows[:ROWS])
    traces = data_path("banking77", "traces_qwen3-30b", "train.jsonl")
    emb = data_path("banking77", "train.minilm-l6-v2.f16.npy")
    test_t, test_e = write_subset(base, traces, emb, rows[ROWS:ROWS + 600], "test")
    teachers = [json.loads(line)["teacher"] for line in test_t.read_text().splitlines()]
    return {"bundle": out, "pub": base / "ci.pub", "X": np.load(test_e).astype(np.float32),
            "teacher": teachers, "base": base}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, bundle: Path, pub: Path, *extra: str):
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tracec_runtime.serve", str(bundle), "--public-key", str(pub),
             "--port", str(self.port), "--log-level", "warning", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("server did not start within 60 s")

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        ctype = resp.getheader("content-type", "")
        return resp.status, (json.loads(payload) if "json" in ctype else payload.decode())

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
        return self.proc.returncode


@pytest.fixture
def server(compiled):
    srv = Server(compiled["bundle"], compiled["pub"], "--audit-rate", "0.5")
    yield srv
    srv.stop()


def test_route_matches_the_runtime_and_marks_audits(server, compiled):
    X = compiled["X"][:200]
    status, doc = server.post("/v1/route", {"embeddings": X.tolist()})
    assert status == 200, doc
    local = Router.load(compiled["bundle"], compiled["pub"]).route_batch(X)
    ds = doc["decisions"]
    assert [d["handled"] for d in ds] == local.handled.tolist()
    assert [d["surrogate_label"] for d in ds] == [local.label_names[k] for k in local.label_index]
    assert all(d["label"] is None for d in ds if not d["handled"])
    assert {d["reason"] for d in ds} <= {"handled", "below_tau", "out_of_distribution"}
    audited = [d for d in ds if d["audit"]]
    assert audited and all(d["handled"] for d in audited)  # only handled rows are audited
    assert 0.3 < len(audited) / max(1, sum(local.handled)) < 0.7  # audit rate 0.5
    assert len({d["request_id"] for d in ds}) == len(ds)
    status, one = server.post("/v1/route", {"embedding": X[0].tolist()})
    assert status == 200 and one["decisions"][0]["handled"] == bool(local.handled[0])
    status, tr = server.post("/predict", {"embedding": X[0].tolist()})
    assert status == 200 and tr["decision"] in ("handled", "deferred") and "accept_score" in tr


def test_feedback_feeds_the_live_bound_and_metrics(server, compiled):
    X, teacher = compiled["X"][:300], compiled["teacher"][:300]
    _, doc = server.post("/v1/route", {"embeddings": X.tolist()})
    ds = doc["decisions"]
    items = [{"request_id": d["request_id"], "teacher": teacher[i]} for i, d in enumerate(ds)
             if d["audit"] or not d["handled"]]
    status, fb = server.post("/v1/feedback", {"feedback": items})
    assert status == 200, fb
    kinds = [r["kind"] for r in fb["results"]]
    n_audit = sum(d["audit"] for d in ds)
    assert kinds.count("audit") == n_audit and kinds.count("deferred") == sum(not d["handled"] for d in ds)
    agree = sum(d["surrogate_label"] == teacher[i] for i, d in enumerate(ds) if d["audit"])
    status, ready = server.get("/readyz")
    assert status == 200 and ready["live"]["audits"] == n_audit and ready["live"]["agree"] == agree
    assert 0.0 <= ready["live"]["ta_lower"] <= agree / n_audit <= ready["live"]["ta_upper"] <= 1.0
    status, again = server.post("/v1/feedback", {"request_id": items[0]["request_id"], "teacher": "x"})
    assert again["results"][0]["kind"] == "unknown_request"  # each request is fed back once
    status, text = server.get("/metrics")
    assert status == 200
    assert f'tracec_audit_outcomes_total{{outcome="agree"}} {agree}' in text
    assert 'tracec_gate_open{scope="live"} 1' in text
    for name in ("tracec_requests_total", "tracec_decisions_total", "tracec_request_duration_seconds_bucket",
                 "tracec_live_ta_lower", "tracec_bundle_info"):
        assert name in text


@pytest.mark.parametrize("body,status,code,field", [
    (b"{not json", 400, "malformed_json", None),
    (b"[1, 2]", 400, "malformed_json", None),
    (json.dumps({"embedding": [0.1] * 384, "extra": 1}).encode(), 422, "invalid_field", "extra"),
    (json.dumps({"embedding": [0.1] * 3}).encode(), 422, "invalid_field", "embedding"),
    (json.dumps({"embeddings": [[0.1] * 384, [0.1] * 383]}).encode(), 422, "invalid_field", "embeddings[1]"),
    (json.dumps({"embedding": [0.1] * 383 + ["x"]}).encode(), 422, "invalid_field", "embedding[383]"),
    (json.dumps({"embedding": [0.1] * 383 + [1e39]}).encode(), 422, "invalid_field", "embedding[383]"),
    (b'{"embedding": [NaN]}', 400, "malformed_json", None),
    (('{"embedding": [' + "0.1, " * 383 + "1" + "0" * 400 + "]}").encode(), 422, "invalid_field", "embedding[383]"),
    (json.dumps({}).encode(), 422, "invalid_field", "text"),
    (json.dumps({"text": "hi", "embedding": [0.0]}).encode(), 422, "invalid_field", "embedding"),
    (json.dumps({"text": "card lost"}).encode(), 422, "text_not_supported", "text"),
    (b"[" * 5000 + b"]" * 5000, 400, "malformed_json", None),
])
def test_bad_requests_get_one_error_shape(server, body, status, code, field):
    got, doc = server.post("/v1/route", raw=body)
    assert got == status, doc
    assert doc["error"]["code"] == code and doc["error"]["field"] == field
    assert set(doc["error"]) == {"status", "code", "message", "field"}
    assert server.get("/healthz")[0] == 200  # nothing a client sends crashes the process


def test_limits_body_size_batch_and_unknown_paths(compiled):
    srv = Server(compiled["bundle"], compiled["pub"], "--max-body-bytes", "20000", "--max-batch", "4")
    try:
        status, doc = srv.post("/v1/route", {"embeddings": compiled["X"][:10].tolist()})
        assert status == 413 and doc["error"]["code"] == "body_too_large"
        small = np.round(compiled["X"][:5].astype(np.float64), 3).tolist()
        status, doc = srv.post("/v1/route", {"embeddings": small})
        assert status == 422 and "at most 4" in doc["error"]["message"]
        status, doc = srv.get("/nowhere")
        assert status == 404 and doc["error"]["code"] == "not_found"
        status, doc = srv.get("/v1/route")
        assert status == 405 and doc["error"]["code"] == "method_not_allowed"
        assert srv.post("/v1/admin/reload")[0] == 404  # admin endpoints are off without a token
    finally:
        srv.stop()


def test_live_gate_closes_when_the_teacher_disagrees_and_reload_reopens(compiled):
    srv = Server(compiled["bundle"], compiled["pub"], "--audit-rate", "1.0")
    try:
        X, closed_at = compiled["X"], None
        for rnd in range(20):
            _, doc = srv.post("/v1/route", {"embeddings": X[rnd % 3 * 200:(rnd % 3 + 1) * 200].tolist()})
            items = [{"request_id": d["request_id"], "teacher": "__wrong__"}
                     for d in doc["decisions"] if d["audit"]]
            if items:
                srv.post("/v1/feedback", {"feedback": items})
            _, ready = srv.get("/readyz")
            if not ready["gate"]["live_open"]:
                closed_at = ready["live"]["audits"]
                break
        assert closed_at is not None and "below alpha" in ready["gate"]["reason"]
        _, doc = srv.post("/v1/route", {"embeddings": X[:100].tolist()})
        assert not any(d["handled"] for d in doc["decisions"])
        assert {d["reason"] for d in doc["decisions"]} == {"live_gate_closed"}
        assert 'tracec_gate_open{scope="live"} 0' in srv.get("/metrics")[1]
        srv.proc.send_signal(signal.SIGHUP)  # a reload of a verified bundle re-opens the gate
        for _ in range(100):
            if srv.get("/readyz")[1]["gate"]["live_open"]:
                break
            time.sleep(0.1)
        assert srv.get("/readyz")[1]["gate"]["live_open"]
    finally:
        srv.stop()


def _until(condition, timeout_s: float = 60.0) -> None:
    """Wait for a count the load threads raise (bounded: a dead server fails the test)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the load threads made no progress"
        time.sleep(0.02)


def test_a_failing_reload_is_refused_and_drops_no_request_under_load(compiled, tmp_path):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(compiled["bundle"], bundle)
    token = tmp_path / "token"
    token.write_text("s3cret-token-0123456789")
    srv = Server(bundle, compiled["pub"], "--admin-token-file", str(token))
    errors, done, stop = [], [0], threading.Event()
    body = {"embeddings": compiled["X"][:20].tolist()}

    def load():
        while not stop.is_set() and done[0] < 20000:  # bounded in count and time
            status, doc = srv.post("/v1/route", body)
            if status != 200:
                errors.append((status, doc))
            done[0] += 1

    workers = [threading.Thread(target=load) for _ in range(4)]
    try:
        _, before = srv.get("/readyz")
        for w in workers:
            w.start()
        _until(lambda: done[0] >= 20)  # requests in flight before the tampering
        model = bundle / "model.onnx"
        model.write_bytes(model.read_bytes()[:-1] + b"\0")  # tamper: the reload must refuse it
        status, doc = srv.post("/v1/admin/reload", headers={"Authorization": "Bearer s3cret-token-0123456789"})
        assert status == 409 and doc["error"]["code"] == "reload_refused"
        assert srv.post("/v1/admin/reload", headers={"Authorization": "Bearer wrong"})[0] == 401
        srv.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        shutil.rmtree(bundle)
        shutil.copytree(compiled["bundle"], bundle)  # a good bundle again: the reload goes through
        status, doc = srv.post("/v1/admin/reload", headers={"Authorization": "Bearer s3cret-token-0123456789"})
        assert status == 200 and doc["reloaded"]
        after = done[0]
        _until(lambda: done[0] >= after + 20)  # and served after the swap
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
        srv.stop()
    assert not errors, errors[:3]
    assert done[0] >= 40
    assert before["bundle"]["digest"] == doc["bundle"]


def test_a_stalled_client_does_not_block_others(server, compiled):
    stalled = socket.create_connection(("127.0.0.1", server.port))
    stalled.sendall(b"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n{\"embeddings\": [")  # and then nothing
    try:
        for _ in range(20):
            status, _ = server.post("/v1/route", {"embedding": compiled["X"][0].tolist()})
            assert status == 200
    finally:
        stalled.close()


def test_sigterm_finishes_and_exits_cleanly_and_flushes_the_log(compiled, tmp_path):
    log = tmp_path / "decisions.jsonl"
    srv = Server(compiled["bundle"], compiled["pub"], "--decision-log", str(log), "--audit-rate", "1")
    _, doc = srv.post("/v1/route", {"embeddings": compiled["X"][:50].tolist()})
    d = next(d for d in doc["decisions"] if d["audit"])
    srv.post("/v1/feedback", {"request_id": d["request_id"], "teacher": compiled["teacher"][0]})
    assert srv.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # uvicorn drains, then re-raises
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    decisions = [r for r in rows if r["kind"] == "decision"]
    assert len(decisions) == 50 and all(r["bundle"] == doc["bundle"] for r in rows)
    assert {r["provenance"] for r in decisions} <= {"surrogate", "deferred"}
    # audit rate 1: every decision, handled or deferred, is in the uniform sample
    assert all(r["audit_rate"] == 1 and r["sampled"] and 0 <= r["sample_u"] < 1 for r in decisions)
    fb = [r for r in rows if r["kind"] == "feedback"]
    assert len(fb) == 1 and fb[0]["provenance"] == "teacher" and fb[0]["audited"] is True


def test_watch_pools_two_replicas(compiled):
    from tracec_runtime.watch import confidence_interval, prior_for

    a = Server(compiled["bundle"], compiled["pub"], "--audit-rate", "1")
    b = Server(compiled["bundle"], compiled["pub"], "--audit-rate", "1", "--audit-seed", "1")
    try:
        counts = [0, 0]
        for srv, rows in ((a, slice(0, 150)), (b, slice(150, 400))):
            _, doc = srv.post("/v1/route", {"embeddings": compiled["X"][rows].tolist()})
            teacher = compiled["teacher"][rows]
            items = [{"request_id": d["request_id"], "teacher": teacher[i]}
                     for i, d in enumerate(doc["decisions"]) if d["audit"]]
            srv.post("/v1/feedback", {"feedback": items})
            for i, d in enumerate(doc["decisions"]):
                if d["audit"]:
                    counts[d["surrogate_label"] != teacher[i]] += 1
        proc = subprocess.run([sys.executable, "-m", "tracec_runtime.serve.watch_cmd", "--json",
                               f"http://127.0.0.1:{a.port}", f"http://127.0.0.1:{b.port}"],
                              capture_output=True, text=True, timeout=60)
        doc = json.loads(proc.stdout)
        assert (doc["agree"], doc["disagree"]) == tuple(counts)
        iv = confidence_interval(counts[0], counts[1], doc["delta"], prior_for(doc["alpha"]))
        assert doc["ta_lower"] == iv.lower and doc["ta_upper"] == iv.upper
        assert proc.returncode == (0 if iv.upper >= doc["alpha"] else 1)
    finally:
        a.stop()
        b.stop()


def test_default_bind_is_loopback():
    from tracec_runtime.serve.main import build_parser

    assert build_parser().parse_args(["b", "--public-key", "k"]).host == "127.0.0.1"


def test_plain_runtime_import_never_pulls_the_http_stack():
    code = ("import sys, tracec_runtime, tracec_runtime.router, tracec_runtime.watch\n"
            "bad = [m for m in ('starlette', 'uvicorn', 'anyio') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_openapi_document_is_served_and_checked_in_without_drift(server):
    from tracec_runtime.serve.openapi import OPENAPI, document_bytes

    repo = Path(__file__).resolve().parents[1]
    assert (repo / "schemas" / "serve.openapi.json").read_bytes() == document_bytes(), (
        "schemas/serve.openapi.json drifted: python -m tracec_runtime.serve.openapi "
        "> schemas/serve.openapi.json")
    status, doc = server.get("/openapi.json")
    assert status == 200 and doc == json.loads(json.dumps(OPENAPI))
    assert {"/v1/route", "/v1/feedback", "/healthz", "/readyz", "/metrics", "/predict"} <= set(doc["paths"])


# ------------------------------------------------------------------ text-in bundles
@pytest.fixture(scope="module")
def text_bundle(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve-text")
    run_tracec("keygen", "--out", base / "ci", check_code=0)
    repo = Path(__file__).resolve().parents[1]
    lines = (repo / "examples" / "traces.jsonl").read_text("utf-8").splitlines()[:800]
    traces = base / "traces.jsonl"
    traces.write_text("\n".join(lines) + "\n", "utf-8")
    env = {**os.environ, "TRACEC_CACHE_DIR": str(base / "cache")}
    run_tracec("compile", traces, "--alpha", "0.9", "--signing-key", base / "ci.key",
               "--out", base / "bundle", check_code=0, env=env)
    held = [json.loads(line) for line in
            (repo / "examples" / "holdout.jsonl").read_text("utf-8").splitlines()[:120]]
    return base / "bundle", base / "ci.pub", [h["input"] for h in held]


def test_text_requests_match_route_texts_and_are_micro_batched(text_bundle):
    bundle, pub, texts = text_bundle
    local = Router.load(bundle, pub).route_texts(texts)
    srv = Server(bundle, pub, "--batch-wait-ms", "20")
    try:
        status, doc = srv.post("/v1/route", {"texts": texts[:40]})
        assert status == 200, doc
        assert [d["handled"] for d in doc["decisions"]] == local.handled[:40].tolist()
        results: dict[int, dict] = {}

        def one(i):
            results[i] = srv.post("/v1/route", {"text": texts[i]})[1]["decisions"][0]

        workers = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        assert [results[i]["handled"] for i in range(len(texts))] == local.handled.tolist()
        assert [results[i]["surrogate_label"] for i in range(len(texts))] == \
            [local.label_names[k] for k in local.label_index]
        metrics = srv.get("/metrics")[1]
        calls = next(float(line.split()[-1]) for line in metrics.splitlines()
                     if line.startswith("tracec_embedder_calls_total"))
        assert calls < 1 + len(texts)  # concurrent requests shared embedder calls
        status, doc = srv.post("/v1/route", {"texts": ["   ", "card \ud800 lost"[:4]]})
        assert [d["reason"] for d in doc["decisions"]][0] == "empty"
        assert not doc["decisions"][0]["handled"]
        rng = np.random.default_rng(0)
        noise = rng.normal(size=(20, 384))
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        status, doc = srv.post("/v1/route", {"embeddings": noise.tolist()})
        assert status == 200 and {d["reason"] for d in doc["decisions"]} == {"out_of_distribution"}
    finally:
        srv.stop()


def test_batcher_runs_at_most_max_inflight_embedder_calls_at_once(text_bundle):
    """Two micro-batches embed at once in worker threads (two cores), never more, same answers."""
    bundle, pub, texts = text_bundle
    router = Router.load(bundle, pub)
    local = router.route_texts(texts)
    lock, state = threading.Lock(), {"now": 0, "most": 0}

    def counted(batch):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            return router.route_texts(batch)
        finally:
            with lock:
                state["now"] -= 1

    async def drive(batcher):
        views = await asyncio.gather(*(batcher.submit(counted, [t]) for t in texts))
        await batcher.close()
        return views

    for inflight in (1, 2):
        state.update(now=0, most=0)
        batcher = MicroBatcher(max_wait_s=0.05, max_rows=4, max_inflight=inflight)
        views = asyncio.run(drive(batcher))
        assert state["most"] == inflight and batcher.calls >= len(texts) // 4
        assert [bool(v.handled[0]) for v in views] == local.handled.tolist()
        assert [int(v.label_index[0]) for v in views] == local.label_index.tolist()
    with pytest.raises(ValueError, match="max_inflight must be at least 1, found 0"):
        MicroBatcher(max_inflight=0)
