"""The negative control: sentence embeddings cannot learn NLI, so the gate must refuse."""

from __future__ import annotations

import json
import re

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


def test_refusal_on_few_traces_projects_both_ends(tmp_path):
    """1,000 Banking77 traces (real LLM teacher) refuse alpha 0.9, and the refusal says how many
    more traces would open it at this rate and if the model stopped learning (docs/scan.md)."""
    from conftest import write_subset
    traces = data_path("banking77", "traces_qwen3-30b", "train.jsonl")
    n = len(traces.read_text(encoding="utf-8").splitlines())
    rows = np.sort(np.random.default_rng(0).permutation(n)[:1000])
    t, e = write_subset(tmp_path, traces, data_path("banking77", "train.minilm-l6-v2.f16.npy"),
                        rows, "b77_1k")
    out = tmp_path / "bundle"
    proc = run_tracec("compile", t, "--embeddings", e, "--embedder-id", "minilm", "--alpha", "0.9",
                      "--unsigned", "--out", out, "--json", check_code=1)
    refusal = read_json(out / "manifest.json")["refusal"]
    projection = [r for r in refusal["reasons"] if r.startswith("projection")]
    assert len(projection) == 1 and projection[0] in proc.stderr
    line = projection[0]
    assert "at this rate about" in line and "more traces would open the gate at alpha 0.9" in line
    assert "if the model stopped learning" in line and "coverage at 2,000 traces:" in line
    at_rate, flat = (float(x) for x in re.findall(
        r"coverage at 2,000 traces: ([0-9.]+) at this rate, ([0-9.]+) if the model", line)[0])
    assert 0.0 <= flat <= at_rate <= 1.0  # the curve is learning here: the power law is above
