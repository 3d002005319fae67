"""`tracec scan`: coverage now (the compile's own procedure), the learning-curve projection,
determinism, the document's schema, and bad input (docs/scan.md)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from conftest import data_path, run_tracec, write_subset
from tracec.config import parse_alphas
import tracec
from tracec.errors import EmbeddingError, ParameterError
from tracec.learning_curve import measure_curve
from tracec.outputs import ErrorOutput, ScanOutput
from tracec.projection import certifiable, project, split_rows_at
from tracec.scan import scan, scan_config
from tracec.splits import auto_fractions, split_rows

ALPHAS = "0.8,0.9"


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    """700 Banking77 traces (real LLM teacher) of its 10 most common teacher labels."""
    traces = data_path("banking77", "traces_qwen3-30b", "train.jsonl")
    teacher = [json.loads(line)["teacher"] for line in traces.read_text("utf-8").splitlines()]
    top = {label for label, _ in Counter(teacher).most_common(10)}
    rows = np.flatnonzero([t in top for t in teacher])
    rows = np.sort(np.random.default_rng(7).permutation(rows)[:700])
    return write_subset(tmp_path_factory.mktemp("scan"), traces,
                        data_path("banking77", "train.minilm-l6-v2.f16.npy"), rows, "b77")


@pytest.fixture(scope="module")
def scanned(subset):
    t, e = subset
    proc = run_tracec("scan", t, "--embeddings", e, "--embedder-id", "minilm", "--alphas", ALPHAS,
                      "--json", check_code=0)
    return json.loads(proc.stdout)


def test_scan_document_validates_and_is_deterministic(subset, scanned):
    doc = ScanOutput.model_validate(scanned).model_dump(mode="json")
    assert doc == scanned  # nothing dropped or coerced by the schema's model
    assert [a["alpha"] for a in doc["alphas"]] == [0.8, 0.9]
    assert doc["traces"]["rows"] == 700 and len(doc["learning_curve"]) == 7
    t, e = subset  # the same scan in process (the Python API): the same document
    again = scan(scan_config(t, (0.8, 0.9), 0.05, 0, embeddings=e, embedder_id="minilm"))
    assert json.loads(json.dumps(again)) == scanned
    for a in doc["alphas"]:  # a projection, or an explicit refusal to make one
        assert a["status"] in ("projected", "cannot_project") and a["note"]
        if a["status"] == "projected":
            assert [p["traces"] for p in a["at"]] == [1400, 3500, 7000]
            assert all(p["low"] <= p["median"] for p in a["at"])


def test_scan_coverage_now_is_what_compile_certifies(tmp_path, subset, scanned):
    """Tolerance: exact up to the document's 4 decimals (same split, pool and certification)."""
    t, e = subset
    frontier = tracec.compile(t, out=tmp_path / "b", alpha=ALPHAS, embeddings=e,
                              embedder_id="minilm").frontier
    for scanned_alpha, fa in zip(scanned["alphas"], frontier["alphas"]):
        chosen = next((f for f in fa["families"] if f["family"] == fa["chosen"]), None)
        certified = float(chosen["coverage"]) if chosen else 0.0
        assert abs(scanned_alpha["coverage_now"] - certified) <= 1e-4, (scanned_alpha, fa)
        assert scanned_alpha["family"] == fa["chosen"]
    assert any(a["coverage_now"] > 0 for a in scanned["alphas"])  # the check is not vacuous


def test_flat_learning_curve_cannot_project(subset):
    """Simulation: teacher labels shuffled (no relation to the input) give a flat curve, and
    the projection says so instead of inventing a number."""
    X = np.load(subset[1]).astype(np.float32)[:500]
    y = np.random.default_rng(3).integers(0, 3, size=len(X))
    splits = split_rows(len(y), 0, auto_fractions(len(y)))
    curve = measure_curve({k: X[v] for k, v in splits.__dict__.items()},
                          {k: y[v] for k, v in splits.__dict__.items()}, seed=0)
    doc = project(curve, len(y), 0.8, 0.05, certified_now=0.0)
    assert doc["status"] == "cannot_project" and "flat" in doc["note"]
    assert doc["traces_to_open"] is None and doc["at"] == []


def test_projection_brackets_with_the_no_learning_end(scanned):
    """Each projected size carries both ends: the power law (optimistic) and the model as it is
    today certified on that size's calibration split (pessimistic).  More calibration rows at
    the same agreement never certify less (up to the 0.02 coverage grid), and the sentence a
    user reads names both ends."""
    projected = [a for a in scanned["alphas"] if a["status"] == "projected"]
    assert projected  # the check is not vacuous
    for a in projected:
        ends = [a["model_coverage_now"]] + [p["no_learning"] for p in a["at"]]
        assert all(later >= earlier - 0.02 for earlier, later in zip(ends, ends[1:])), a
        assert "if the model stopped learning" in a["note"]
        flat = a["traces_to_open_no_learning"]
        if a["more_traces_to_open"] == 0:
            assert flat == scanned["traces"]["rows"]
        elif flat is not None:  # opens within 10x without learning: the end is at least now
            assert flat >= scanned["traces"]["rows"]


def test_no_learning_end_on_known_agreement():
    """The pessimistic end is the compile's binomial test on today's curve at a larger
    calibration split: perfect agreement certifies everything, agreement exactly at alpha
    certifies nothing, and one just above alpha opens only once the split is large enough."""
    ones = np.ones(50)
    assert certifiable(ones, split_rows_at(2000)[1], 0.9, 0.05) == 1.0
    assert certifiable(np.full(50, 0.9), split_rows_at(100_000)[1], 0.9, 0.05) == 0.0
    near = np.full(50, 0.92)  # needs about 600 handled calibration rows to pass at 0.9
    small, large = (certifiable(near, split_rows_at(n)[1], 0.9, 0.05) for n in (1000, 20_000))
    assert small < large and large == 1.0


def test_bad_input_names_the_file_and_field(tmp_path, subset):
    t, e = subset
    proc = run_tracec("scan", t, "--embeddings", e, "--embedder-id", "minilm",
                      "--teacher-field", "nope", "--json", check_code=3)
    err = ErrorOutput.model_validate(json.loads(proc.stdout)).error
    assert err.exit_code == 3 and err.path == str(t) and "nope" in (err.field or err.message)
    short = tmp_path / "short.npy"
    np.save(short, np.load(e)[:10])
    with pytest.raises(EmbeddingError) as bad:  # in process: the same typed error (exit 3)
        scan(scan_config(t, (0.8,), 0.05, 0, embeddings=short, embedder_id="minilm"))
    assert bad.value.exit_code == 3 and str(short) in str(bad.value)
    with pytest.raises(ParameterError) as bad:  # what --alphas 1.5 raises (exit 3)
        scan_config(t, parse_alphas("0.8,1.5"), 0.05, 0, embeddings=e, embedder_id="minilm")
    assert bad.value.exit_code == 3 and "alpha" in str(bad.value)
