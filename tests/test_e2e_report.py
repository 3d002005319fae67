"""Artifacts and the HTML report on real compiles through the CLI.

Banking77 with its real LLM teacher (a 4,000-row subset: the gate opens), the
MNLI negative control (the gate refuses), and a ``--previous`` recompile whose
deltas must agree with the two signed manifests.
"""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from conftest import data_path, read_json, run_tracec, write_subset

from tracec.artifacts import ARTIFACT_MODELS
from tracec.splits import split_rows

pytestmark = pytest.mark.slow

EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
N_SUBSET = 4000
SECTIONS = ("verdict", "cost", "frontier", "labels", "blocking", "disagreements", "slices",
            "boundary", "representatives", "deltas", "details")
FILES = {"manifest.json", "model.onnx", "frontier.json", *ARTIFACT_MODELS}


class _Text(HTMLParser):
    """The text a reader sees (entities decoded), and the SVG <text> elements of one chart."""

    def __init__(self, chart_id: str = "label-chart"):
        super().__init__(convert_charrefs=True)
        self.chunks, self.chart_texts = [], []
        self._chart, self._depth, self._in_text, self._id = False, 0, False, chart_id

    def handle_starttag(self, tag, attrs):
        if tag == "svg" and dict(attrs).get("id") == self._id:
            self._chart = True
        if self._chart and tag == "text":
            self._in_text = True
            self.chart_texts.append("")
        if self._chart and tag == "title":
            self._in_text = False

    def handle_endtag(self, tag):
        if tag == "svg":
            self._chart = False
        if tag == "text":
            self._in_text = False

    def handle_data(self, data):
        self.chunks.append(data)
        if self._in_text:
            self.chart_texts[-1] += data


def _page(html: str) -> _Text:
    p = _Text()
    p.feed(html)
    return p


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("keys") / "report"
    run_tracec("keygen", "--out", base, check_code=0)
    return base.with_suffix(".key"), base.with_suffix(".pub")


def _b77_subset(tmp, seed: int, name: str):
    traces = data_path("banking77", "traces_qwen3-30b", "train.jsonl")
    emb = data_path("banking77", "train.minilm-l6-v2.f16.npy")
    n = len(traces.read_text(encoding="utf-8").splitlines())
    rows = np.sort(np.random.default_rng(seed).choice(n, N_SUBSET, replace=False))
    return write_subset(tmp, traces, emb, rows, name)


def _compile(traces, emb, out, key, *extra, code: int):
    return run_tracec("compile", traces, "--embeddings", emb, "--embedder-id", EMBEDDER,
                      "--signing-key", key, "--out", out, *extra, check_code=code)


def _report(bundle, pub, tmp):
    out = tmp / f"{bundle.name}.html"
    run_tracec("report", bundle, "--public-key", pub, "--out", out, check_code=0)
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def b77(tmp_path_factory, keys):
    tmp = tmp_path_factory.mktemp("b77")
    traces, emb = _b77_subset(tmp, 0, "b77a")
    out = tmp / "b77a"
    _compile(traces, emb, out, keys[0], "--alpha", "0.9,0.85", "--teacher-cost-per-1k", "2.5",
             "--daily-volume", "50000", code=0)
    return out, _report(out, keys[1], tmp)


@pytest.fixture(scope="module")
def mnli(tmp_path_factory, keys):
    tmp = tmp_path_factory.mktemp("mnli")
    src = data_path("mnli_sample", "dev_matched.jsonl")
    records = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()]
    traces = tmp / "mnli.jsonl"
    traces.write_text("".join(json.dumps({"input": r["input"], "teacher": r["label"]}) + "\n"
                              for r in records), encoding="utf-8")
    out = tmp / "mnli"
    _compile(traces, data_path("mnli_sample", "dev_matched.minilm-l6-v2.f16.npy"), out, keys[0],
             "--alpha", "0.9", code=1)
    return out, _report(out, keys[1], tmp), records


def _statement_subjects(bundle) -> dict[str, dict]:
    envelope = read_json(bundle / "bundle.dsse.json")
    assert envelope["signatures"], "the bundle was compiled with --signing-key"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    return {s["name"]: s for s in statement["subject"]}


@pytest.mark.parametrize("which", ["b77", "mnli"])
def test_every_artifact_is_present_digested_and_signed(which, request):
    bundle = request.getfixturevalue(which)[0]
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert FILES | {"bundle.dsse.json"} <= on_disk  # other files (e.g. a fast path) may be added
    manifest = read_json(bundle / "manifest.json")
    subjects = _statement_subjects(bundle)
    assert set(subjects) == on_disk - {"bundle.dsse.json"}
    assert set(manifest["files"]) == set(subjects) - {"manifest.json"}
    for name in manifest["files"]:
        assert subjects[name]["digest"]["sha256"] == manifest["files"][name]["sha256"], name
    for name, (model, _schema) in ARTIFACT_MODELS.items():
        doc = read_json(bundle / name)
        assert model.model_validate(doc).model_dump(mode="json") == doc, name


def test_open_report_shows_the_verdict_and_every_section(b77):
    bundle, html = b77
    m = read_json(bundle / "manifest.json")
    assert m["policy"]["gate"] == "open"
    assert "GATE OPEN" in html and "GATE CLOSED" not in html and "signature verified" in html
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    shadow = m["shadow"]
    assert f"answers {float(shadow['coverage']) * 100:.1f}% of traffic locally" in html
    # every teacher label of the per-label chart is shown whole, with its row count
    page = _page(html)
    shown = set(page.chart_texts)
    for entry in m["per_label"]:
        assert f"{entry['label']} ({entry['n']})" in shown, entry["label"]
    cost = read_json(bundle / "artifacts" / "cost.json")
    assert cost["with_bundle"]["coverage"] == shadow["coverage"]
    assert f"{float(cost['with_bundle']['savings_per_year']):,.2f}" in html


def test_refused_report_explains_the_refusal(mnli):
    bundle, html, records = mnli
    m = read_json(bundle / "manifest.json")
    assert m["policy"]["gate"] == "closed"
    assert "GATE CLOSED" in html and "GATE OPEN" not in html
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    text = " ".join(_page(html).chunks)
    for reason in m["refusal"]["reasons"]:
        assert reason in text, reason
    # the refusal artifact compares the surrogate with the no-skill baseline, measured here directly
    refusal = read_json(bundle / "artifacts" / "refusal.json")
    splits = split_rows(len(records), m["seed"],
                        tuple(float(f) for f in m["config"]["fractions"].split(",")),
                        inputs=[r["input"] for r in records])
    held = np.concatenate([splits.calibration, splits.shadow])
    labels, counts = np.unique([records[i]["label"] for i in held], return_counts=True)
    assert refusal["majority_label"] == labels[np.argmax(counts)]
    assert float(refusal["majority_share"]) == pytest.approx(counts.max() / len(held), abs=1e-6)
    best = float(m["refusal"]["best_ta_full_coverage"])
    assert refusal["near_chance"] is bool(best <= counts.max() / len(held) + 0.05)
    assert refusal["near_chance"] is True  # sentence embeddings cannot do NLI
    assert refusal["summary"] in text
    assert f"agrees with the teacher on {best:.1%} of rows" in refusal["summary"]
    assert "unlikely to help" in refusal["summary"] and "raise coverage most" not in refusal["summary"]
    # the disagreement cards say the same in their own terms, and nothing was served
    dis = read_json(bundle / "artifacts" / "disagreements.json")
    assert dis["n_disagree_handled"] == 0 and dis["cards"]
    baseline = [s for s in dis["summary"] if "most common label" in s]
    assert len(baseline) == 1 and "why no threshold could be certified" in baseline[0]
    assert baseline[0] in text
    assert sum(c["n_disagree"] for c in dis["cards"]) == dis["n_disagree"]


def test_previous_round_trip_deltas_match_both_manifests(b77, keys, tmp_path):
    old, _ = b77
    traces, emb = _b77_subset(tmp_path, 1, "b77b")
    new = tmp_path / "b77b"
    _compile(traces, emb, new, keys[0], "--alpha", "0.9", "--seed", "3", "--previous", old,
             "--previous-public-key", keys[1], code=0)
    now, prev = read_json(new / "manifest.json"), read_json(old / "manifest.json")
    deltas = read_json(new / "artifacts" / "deltas.json")
    assert deltas["previous"]["traces_sha256"] == prev["inputs"]["traces_sha256"]
    assert deltas["now"]["traces_sha256"] == now["inputs"]["traces_sha256"] != prev["inputs"]["traces_sha256"]
    assert deltas["warnings"] == []  # same embedder, alpha, delta, gate and label set
    for o in deltas["overall"]:
        a, b = float(now[o["split"]]["coverage"]), float(prev[o["split"]]["coverage"])
        assert float(o["coverage_now"]) == pytest.approx(a, abs=1e-6)
        assert float(o["coverage_previous"]) == pytest.approx(b, abs=1e-6)
        assert float(o["coverage_change"]) == pytest.approx(a - b, abs=2e-6)
    pl_now = {e["label"]: e for e in now["per_label"]}
    pl_prev = {e["label"]: e for e in prev["per_label"]}
    rows = {r["label"]: r for r in deltas["per_label"]}
    assert set(rows) == set(pl_now) | set(pl_prev)
    both = set(pl_now) & set(pl_prev)
    assert len(both) >= 50
    for label in both:
        r, a, b = rows[label], pl_now[label], pl_prev[label]
        assert r["change"] is not None, label
        assert (r["n_now"], r["n_previous"]) == (a["n"], b["n"])
        assert float(r["change"]) == pytest.approx(
            float(a["handled_rate"]) - float(b["handled_rate"]), abs=2e-6)
    changes = [abs(float(r["change"])) for r in deltas["per_label"] if r["change"] is not None]
    assert changes == sorted(changes, reverse=True) and max(changes) > 0
    html = _report(new, keys[1], tmp_path)
    assert 'id="deltas-overall"' in html and 'id="deltas-labels"' in html
    assert "compiled from different traces" in html
