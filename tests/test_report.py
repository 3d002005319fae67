"""The HTML report: rendered from a real sealed bundle; escaping, offline-ness, verification."""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from tracec.artifacts import CostInputs, EvalRows, build_artifacts
from tracec.calibration import cp_lower, cp_upper
from tracec.manifest import (Certificate, EmbedderInfo, Inputs, LabelStat, Manifest, Measured,
                             Policy, Refusal, ShadowVerdict, SplitCounts, dec)
from tracec.report import render_report
from tracec_runtime.canonical import canonical_file_bytes
from tracec_runtime.envelope import seal
from tracec_runtime.errors import BundleIntegrityError, UnsignedBundleError
from tracec_runtime.keys import generate_keypair

LABELS = ["balance", "card_lost", "refund", "transfer", "<b>bold</b>", "fees & charges"]
PHRASES = ["what is my balance", "I lost my card", "I want my money back", "send money to my sister",
           "make it bold", "why was I charged"]
PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "{{ 7*7 }}",
            "Tom &amp; Jerry"]
DELTA = 0.05


def make_rows(seed: int = 0, n: int = 600, collapse: bool = False) -> EvalRows:
    """Synthetic held-out rows; every text carries one of the injection payloads."""
    rng = np.random.default_rng(seed)
    k = len(LABELS)
    centers = rng.normal(size=(k, 16))
    teacher = rng.integers(0, k, n)
    teacher[:12] = -1  # a label the surrogate never saw
    emb = centers[np.maximum(teacher, 0)] + 0.7 * rng.normal(size=(n, 16))
    pred = np.where(rng.random(n) < 0.85, np.maximum(teacher, 0), rng.integers(0, k, n))
    if collapse:
        pred = np.where(rng.random(n) < 0.95, 2, pred)
    score = np.clip(0.45 + 0.3 * (pred == teacher) + 0.15 * rng.normal(size=n), 0, 1)
    tau = 0.6
    texts = [f"{PHRASES[max(t, 0)]} #{i} {PAYLOADS[i % 4]}" for i, t in enumerate(teacher)]
    return EvalRows(texts, teacher.astype(np.int64), pred.astype(np.int64),
                    (score >= tau) & (not collapse), score.astype(np.float32),
                    emb.astype(np.float32), LABELS)


def _measured(rows: EvalRows, idx: np.ndarray) -> dict:
    h = rows.handled[idx]
    agree = (rows.pred[idx] == rows.teacher[idx]) & h
    nh, na = int(h.sum()), int(agree.sum())
    return dict(n_total=len(idx), n_handled=nh, n_agree=na, coverage=dec(nh / len(idx)),
                ta=dec(na / nh if nh else 0), ta_lower=dec(cp_lower(na, nh, DELTA)),
                ta_upper=dec(cp_upper(na, nh, DELTA)))


def make_manifest(rows: EvalRows, gate: str) -> Manifest:
    n = len(rows.texts)
    cal, sh = np.arange(n // 2), np.arange(n // 2, n)
    per_label = []
    for k, name in enumerate(LABELS):
        m = rows.teacher == k
        h = m & rows.handled
        per_label.append(LabelStat(label=name, n=int(m.sum()), handled_rate=dec(h.sum() / m.sum()),
                                   ta=dec(np.mean(rows.pred[h] == k)) if h.any() else None))
    refusal = None if gate == "open" else Refusal(
        reasons=["l2d: no threshold certified TA >= 0.9: at the strictest step TA was 0.41",
                 "shadow coverage 0 < min_coverage 0.05"],
        best_ta_full_coverage="0.41", highest_passing_alpha="0.35", blocking_labels=["refund"])
    return Manifest(
        policy=Policy(gate=gate, family="l2d" if gate == "open" else "none", alpha="0.9",
                      delta=dec(DELTA), tau="0.600000024", model_name="logreg", stages=[]),
        labels=LABELS, embedder=EmbedderInfo(id="test-embedder", dimension=16, normalization="l2",
                                             source="provided"),
        counts=SplitCounts(total=3 * n, train=n, validation=n // 2, calibration=n // 2, shadow=n // 2),
        certificate=Certificate(procedure="ltt-fixed-sequence-clopper-pearson", delta_per_family="0.025",
                                families_tested=2, steps_tested=14, p_value="0.01"),
        calibration=Measured(**_measured(rows, cal)),
        shadow=ShadowVerdict(**_measured(rows, sh), passed=gate == "open",
                             reasons=[] if gate == "open" else ["TA below alpha"]),
        per_label=per_label, refusal=refusal,
        inputs=Inputs(traces_sha256="a" * 64, traces_rows=3 * n, embeddings_sha256="b" * 64),
        seed=0, config={"alphas": "0.8,0.85,0.9,0.95"}, config_fingerprint="c" * 64,
        tool_versions={"tracec": "0.1.0"}, files={})


def make_frontier() -> dict:
    alphas = []
    for a, cov in (("0.8", "0.82"), ("0.85", "0.74"), ("0.9", "0.61"), ("0.95", None)):
        fams = [{"family": f, "passed": cov is not None, "coverage": cov or "0",
                 "ta": a if cov else None, "ta_lower": a if cov else None,
                 "tau": "0.6" if cov else None} for f in ("global", "l2d", "cascade")]
        fams[0]["passed"] = a == "0.8"
        alphas.append({"alpha": a, "families": fams, "chosen": "l2d" if cov else None,
                       "oracle_limit": dec(min(1.0, 0.86 / float(a)))})
    alphas[-1].pop("oracle_limit")  # render robustly when a field is missing
    return {"artifact": "frontier", "version": "1", "alphas": alphas}


def make_bundle(root: Path, *, gate: str = "open", collapse: bool = False, signing_key=None,
                previous: dict | None = None, no_examples: bool = False) -> dict:
    """Write and seal a complete bundle; return its manifest as a JSON dict."""
    rows = make_rows(collapse=collapse)
    manifest = make_manifest(rows, gate)
    docs = build_artifacts(rows, manifest=manifest.model_dump(mode="json", exclude={"files"}),
                           no_examples=no_examples, previous_manifest=previous,
                           cost=CostInputs(2.5, 200_000))
    root.mkdir(parents=True)
    (root / "model.onnx").write_bytes(b"not a real graph")
    (root / "frontier.json").write_bytes(canonical_file_bytes(make_frontier()))
    (root / "artifacts").mkdir()
    for name, doc in docs.items():
        (root / name).write_bytes(canonical_file_bytes(doc))
    files = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            files[p.relative_to(root).as_posix()] = {"sha256": hashlib.sha256(data).hexdigest(),
                                                     "size": len(data)}
    manifest = Manifest.model_validate({**manifest.model_dump(mode="json"), "files": files})
    (root / "manifest.json").write_bytes(manifest.to_bytes())
    seal(root, signing_key)
    return manifest.model_dump(mode="json")


class _Audit(HTMLParser):
    """Collect tags, event-handler attributes and external resource references."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.handlers, self.external, self.text = set(), [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append((tag, name))
            if name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data") and value \
                    and re.match(r"^\s*(https?:)?//", value, re.I):
                self.external.append((tag, name, value))

    def handle_data(self, data):
        self.text.append(data)


def _audit(html: str) -> _Audit:
    a = _Audit()
    a.feed(html)
    return a


@pytest.fixture(scope="module")
def open_report(tmp_path_factory) -> tuple[str, dict]:
    root = tmp_path_factory.mktemp("open") / "bundle"
    previous = make_manifest(make_rows(seed=1), "open").model_dump(mode="json")
    manifest = make_bundle(root, previous=previous)
    out = render_report(root, root.parent / "report.html", allow_unsigned=True)
    return out.read_text(encoding="utf-8"), manifest


def test_trace_text_is_escaped_and_never_evaluated(open_report):
    html, _ = open_report
    audit = _audit(html)
    assert "<script" not in html.lower()
    assert not {"script", "img", "iframe", "object", "embed", "link"} & audit.tags
    assert audit.handlers == []
    text = "".join(audit.text)
    # each payload is shown to the reader exactly as it was written
    for payload in PAYLOADS:
        assert payload in text, payload
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Tom &amp;amp; Jerry" in html
    assert "{{ 7*7 }}" in html  # shown literally: data is never used as a template
    assert "&lt;b&gt;bold&lt;/b&gt;" in html  # label names are escaped too


def test_no_external_resources_and_strict_csp(open_report):
    html, _ = open_report
    audit = _audit(html)
    assert audit.external == []
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html, re.I)
    assert "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html


def test_report_shows_the_verified_numbers_and_every_section(open_report):
    html, manifest = open_report
    assert "GATE OPEN" in html and "GATE CLOSED" not in html
    shadow = manifest["shadow"]
    assert f"{float(shadow['coverage']) * 100:.1f}%" in html
    assert f"{float(shadow['ta_lower']) * 100:.1f}%" in html
    for section in ("verdict", "cost", "frontier", "labels", "blocking", "disagreements", "slices",
                    "boundary", "representatives", "deltas", "details"):
        assert f'<section id="{section}">' in html, section
    assert 'id="frontier-chart"' in html and 'id="label-chart"' in html
    assert "oracle limit" in html
    assert "signature NOT checked" in html
    assert 'id="deltas-overall"' in html  # a previous manifest was given
    for name, digest in manifest["files"].items():
        assert digest["sha256"] in html, name


def test_closed_collapsed_bundle_explains_the_refusal(tmp_path):
    root = tmp_path / "closed"
    make_bundle(root, gate="closed", collapse=True)
    html = render_report(root, tmp_path / "r.html", allow_unsigned=True).read_text(encoding="utf-8")
    assert "GATE CLOSED" in html and "GATE OPEN" not in html
    assert "no threshold certified TA &gt;= 0.9" in html
    assert 'id="collapse"' in html and "has collapsed" in html
    assert "highest alpha that would pass" in html and "35.0%" in html
    assert 'id="deltas-none"' in html


def test_signed_bundle_needs_its_key_and_shows_the_signer(tmp_path):
    private, public = generate_keypair()
    root = tmp_path / "signed"
    make_bundle(root, signing_key=private)
    html = render_report(root, tmp_path / "r.html", public_key=public).read_text(encoding="utf-8")
    assert "signature verified" in html and "NOT checked" not in html


def test_unverifiable_bundles_write_nothing(tmp_path):
    root = tmp_path / "b"
    make_bundle(root)
    with pytest.raises(UnsignedBundleError):
        render_report(root, tmp_path / "r1.html")
    doc = json.loads((root / "artifacts" / "slices.json").read_text())
    doc["n_total"] += 1
    (root / "artifacts" / "slices.json").write_bytes(canonical_file_bytes(doc))
    with pytest.raises(BundleIntegrityError) as exc:
        render_report(root, tmp_path / "r2.html", allow_unsigned=True)
    assert any("artifacts/slices.json" in p for p in exc.value.problems)
    assert not (tmp_path / "r1.html").exists() and not (tmp_path / "r2.html").exists()


def test_missing_and_malformed_documents_render_with_warnings(tmp_path):
    root = tmp_path / "b"
    make_bundle(root)
    (root / "frontier.json").unlink()
    (root / "artifacts" / "cost.json").write_bytes(canonical_file_bytes({"artifact": "cost"}))
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"].pop("frontier.json")
    data = (root / "artifacts" / "cost.json").read_bytes()
    manifest["files"]["artifacts/cost.json"] = {"sha256": hashlib.sha256(data).hexdigest(),
                                                "size": len(data)}
    (root / "manifest.json").write_bytes(canonical_file_bytes(manifest))
    seal(root, None)
    html = render_report(root, tmp_path / "r.html", allow_unsigned=True).read_text(encoding="utf-8")
    assert "frontier.json is not in the bundle" in html
    assert "artifacts/cost.json does not match its schema" in html
    assert "No frontier data to plot." in html
    assert "GATE OPEN" in html and 'id="slices-label"' in html


def test_no_examples_bundle_shows_no_trace_text(tmp_path):
    root = tmp_path / "b"
    make_bundle(root, no_examples=True)
    html = render_report(root, tmp_path / "r.html", allow_unsigned=True).read_text(encoding="utf-8")
    text = "".join(_audit(html).text)
    for phrase in PHRASES:
        assert phrase not in text, phrase
    assert "text withheld (--no-examples)" in text


def test_closed_report_shows_no_agreement_for_nothing_handled(tmp_path):
    root = tmp_path / "closed"
    manifest = make_bundle(root, gate="closed", collapse=True)
    assert manifest["shadow"]["n_handled"] == 0
    html = render_report(root, tmp_path / "r.html", allow_unsigned=True).read_text(encoding="utf-8")
    table = html[html.index('<table id="measured">'):]
    table = table[:table.index("</table>")]
    cells = re.findall(r'<td class="n">([^<]*)</td>', table)
    # per split: rows, handled, coverage, TA, lower, upper; TA of nothing is a dash, not 0%
    assert cells[1::6] == ["0", "0"] and cells[3::6] == ["—", "—"] and cells[5::6] == ["—", "—"]
    assert "nothing certified" in html  # alpha 0.95 of the frontier certified no family
    assert "Answering everything locally" in html and "41.0%" in html


def test_label_chart_shows_long_labels_whole_with_counts():
    from tracec.report_charts import label_bars
    long = "balance_not_updated_after_cheque_or_cash_deposit"
    chart = label_bars([{"label": long, "n": 58, "handled_rate": "0.948276", "ta": "0.98"},
                        {"label": "oos", "n": 451, "handled_rate": "0.829268", "ta": "0.877"}], 0.9)
    assert chart["max_chars"] >= len(f"{long} (58)")
    assert chart["label_w"] + chart["bar_w"] < chart["value_x"] < chart["width"]
    values = {r["label"]: r["value"] for r in chart["rows"]}
    assert values[long] == "95% handled (55/58) · TA 98%"
    assert values["oos"] == "83% handled (374/451) · TA 88% < alpha"


def test_delta_noise_flag_matches_sampling_noise_by_simulation():
    """Same true rate in both bundles: >= 90% flagged as noise; a real 25-point shift: rarely."""
    from tracec.report_view import _delta_rows

    rng = np.random.default_rng(0)

    def flagged(p_prev, p_now, n_prev, n_now, reps=2000):
        a, b = rng.binomial(n_now, p_now, reps) / n_now, rng.binomial(n_prev, p_prev, reps) / n_prev
        rows = [{"handled_rate_now": dec(x), "handled_rate_previous": dec(y), "n_now": n_now,
                 "n_previous": n_prev, "change": dec(x - y)} for x, y in zip(a, b)]
        return np.mean([r["noise"] for r in _delta_rows({"per_label": rows})])

    assert flagged(0.8, 0.8, 25, 30) >= 0.9
    assert flagged(0.7, 0.7, 200, 180) >= 0.9
    assert flagged(0.6, 0.85, 400, 400) <= 0.01


def test_control_characters_in_labels_are_escaped_in_the_page(tmp_path):
    """A NUL byte or a terminal escape in a label never reaches report.html raw (issue 9)."""
    from tracec.report_view import build_view, visible

    assert visible("a\x00b\x1b[31m\u2028c\td") == "a\\x00b\\x1b[31m\\u2028c\td"
    manifest = {"labels": ["ok", "bad\x00label"], "policy": {"gate": "open", "alpha": "0.9"},
                "per_label": [{"label": "bad\x00label", "n": 40, "handled_rate": "0.5", "ta": "0.95"},
                              {"label": "ok", "n": 60, "handled_rate": "0.9", "ta": "0.97"}]}
    from tracec.report import render_html
    html = render_html(build_view(manifest, None, {}, bundle_name="b\x07", signature="s",
                                  signed=False, warnings=[]))
    assert "\x00" not in html and "\x07" not in html
    assert "bad\\x00label" in html and "b\\x07" in html


def test_label_chart_is_ordered_by_traffic_and_frontier_draws_only_certified():
    from tracec.report_charts import frontier_chart, label_bars
    chart = label_bars([{"label": "small", "n": 5, "handled_rate": "1", "ta": "1"},
                        {"label": "big", "n": 500, "handled_rate": "0.1", "ta": "0.9"},
                        {"label": "mid", "n": 50, "handled_rate": "0.5", "ta": "0.9"}], 0.9)
    assert [r["label"] for r in chart["rows"]] == ["big", "mid", "small"]
    fam = lambda name, passed, cov: {"family": name, "passed": passed, "coverage": cov}  # noqa: E731
    frontier = {"alphas": [
        {"alpha": "0.8", "families": [fam("l2d", True, "0.9")], "chosen": "l2d"},
        {"alpha": "0.85", "families": [fam("l2d", True, "0.7")], "chosen": "l2d"},
        {"alpha": "0.9", "families": [fam("l2d", False, "0")], "chosen": None},
        {"alpha": "0.95", "families": [fam("l2d", True, "0.2")], "chosen": "l2d"}]}
    f = frontier_chart(frontier, 0.8)
    (series,) = f["series"]
    assert len(series["markers"]) == 3 and all(m["passed"] for m in series["markers"])
    assert len(series["paths"]) == 1 and len(series["paths"][0].split()) == 2  # 0.8 -> 0.85 only
    assert f["bottom_y"] not in {m["y"] for m in series["markers"]}  # never drawn at 0 %
    assert [u["text"] for u in f["uncertified"]] == ["nothing certified"]
