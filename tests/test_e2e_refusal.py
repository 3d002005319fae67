"""The negative control: sentence embeddings cannot learn NLI, so the gate must refuse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import data_path, read_json, run_tracec
from tracec_runtime import Router

pytestmark = pytest.mark.slow


def _nli_traces(tmp_path):
    """mnli_sample with the gold label as teacher (the paper's NLI protocol)."""
    src = data_path("mnli_sample", "dev_matched.jsonl")
    out = tmp_path / "mnli.jsonl"
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()]
    out.write_text("".join(json.dumps({"input": r["input"], "teacher": r["label"]}) + "\n"
                           for r in rows), encoding="utf-8")
    return out, data_path("mnli_sample", "dev_matched.minilm-l6-v2.f16.npy")


def test_mnli_is_refused_with_an_explanation(tmp_path):
    traces, emb = _nli_traces(tmp_path)
    out = tmp_path / "bundle"
    proc = run_tracec("compile", traces, "--embeddings", emb, "--embedder-id", "all-MiniLM-L6-v2", "--alpha", "0.9", "--unsigned", "--out", out,
                      "--json", check_code=1)
    doc = json.loads(proc.stdout)
    assert doc["gate"] == "closed"
    assert "Gate CLOSED" in proc.stderr and "best TA at full coverage" in proc.stderr
    m = read_json(out / "manifest.json")
    assert m["policy"]["gate"] == "closed"
    refusal = m["refusal"]
    assert refusal["reasons"], "a refusal must say why"
    # the learning-curve projection (docs/scan.md): NLI pairs embedded as one sentence carry
    # nothing the teacher decides on, so the curve is flat and it refuses to invent a number
    projection = [r for r in refusal["reasons"] if r.startswith("projection")]
    assert len(projection) == 1 and "cannot project: the learning curve is flat" in projection[0]
    assert projection[0] in proc.stderr
    assert float(refusal["best_ta_full_coverage"]) < 0.9
    hpa = refusal["highest_passing_alpha"]
    assert hpa is None or float(hpa) < 0.9
    # The closed bundle still verifies, and the runtime defers everything.
    router = Router.load(out, allow_unsigned=True)
    X = np.load(data_path("mnli_sample", "dev_mismatched.minilm-l6-v2.f16.npy"))
    batch = router.route_batch(X)
    assert not np.any(batch.handled)
    d = router.route(X[0], fallback=lambda: "entailment")
    assert d.handled is False and d.label == "entailment" and "gate closed" in d.reason
    print("mnli refusal:", doc["explanation"])
