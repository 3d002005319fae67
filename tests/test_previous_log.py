"""``compile --previous OLD`` on a decision log (tracec.previous; docs/guarantee.md, "Production
logs"): the log's bundle digests are counted, its uniform-sample decisions are replayed through
the verified previous bundle, and that bundle's live figures are recorded beside the new one's.

Real data path: a text-in bundle compiled from the example traces serves them through the
routing service (``Service``, its own decision-log writer, no HTTP), the teacher labels are
fed back, and the log is compiled.  The embedder cache makes the second compile's embedding a
cache hit (same texts, same order), so the cost is the replay and the training.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tracec
from conftest import REPO, run_tracec
from tracec.errors import ProvenanceError
from tracec.previous import against_previous
from tracec.report import render_report
from tracec.traces import load_traces
from tracec_runtime.keys import write_keypair
from tracec_runtime.serve.bodies import FeedbackItem, RouteRequest
from tracec_runtime.serve.service import Service
from tracec_runtime.verify import verify_bundle

ROWS, RATE = 300, 0.4


def serve(bundle: Path, pub: Path, records: list[dict], reload_to: Path | None = None) -> list[dict]:
    """Route ``records``' texts through the service (reloading to ``reload_to`` half-way) and
    feed every teacher label back; return the decision-log lines it wrote."""
    lines: list[dict] = []
    svc = Service(str(bundle), str(pub), audit_rate=RATE, decision_log=lines.append)
    svc._boot = "test"  # deterministic request ids, hence sample_u
    svc.load()
    step = 30 if reload_to is not None else 50
    for start in range(0, len(records), step):
        if reload_to is not None and start == len(records) // 2:
            assert svc.reload(str(reload_to))[0]
        chunk = records[start:start + step]
        _, out = svc.route(RouteRequest(kind="text", single=False, texts=[r["input"] for r in chunk]))
        svc.feedback([FeedbackItem(d["request_id"], r["teacher"]) for d, r in zip(out, chunk)])
    return lines


def write_log(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("previous")
    records = [json.loads(line) for line in
               (REPO / "examples" / "traces.jsonl").read_text("utf-8").splitlines()[:ROWS]]
    traces = write_log(base / "traces.jsonl", records)
    key, pub = write_keypair(base / "ci")
    cache = base / "cache"
    old = tracec.compile(traces, out=base / "old", alpha=0.9, signing_key=key, cache_dir=cache)
    log = write_log(base / "log.jsonl", serve(base / "old", pub, records))
    new = tracec.compile(log, out=base / "new", alpha=0.9, signing_key=key, cache_dir=cache,
                         previous=base / "old", previous_public_key=pub)
    return {"base": base, "records": records, "pub": pub, "log": log, "old": old, "new": new}


def test_a_matching_log_compiles_and_records_the_previous_bundles_live_figures(world):
    old = verify_bundle(world["base"] / "old", world["pub"])
    lines = [json.loads(line) for line in world["log"].read_text("utf-8").splitlines()]
    uniform = [r for r in lines if r["kind"] == "decision" and r["sample_u"] < RATE]
    teacher = {r["request_id"]: r["teacher"] for r in lines if r["kind"] == "feedback"}
    handled = [r for r in uniform if r["handled"]]
    agree = sum(teacher[r["request_id"]] == r["surrogate_label"] for r in handled)
    result, manifest = world["new"], world["new"].manifest
    p = manifest["sampling"]["previous"]
    print(f"previous bundle on the log: {p}; new bundle: calibration {manifest['calibration']}")
    assert manifest["sampling"]["bundles"] == {old.digest: ROWS}
    assert p["bundle"] == old.digest and p["rows"] == ROWS and p["other_rows"] == 0
    assert p["uniform"] == len(uniform) and p["handled"] == len(handled) > 0
    assert p["audited"] == len(handled) and p["agree"] == agree and p["handled_without_label"] == 0
    assert float(p["coverage"]) == pytest.approx(len(handled) / len(uniform), abs=1e-6)
    assert float(p["ta"]) == pytest.approx(agree / len(handled), abs=1e-6)
    assert float(p["ta_lower"]) < float(p["ta"]) <= float(p["ta_upper"])
    assert result.traces["sampling"]["previous"] == p  # compile --json's traces
    html = world["base"] / "report.html"
    render_report(world["base"] / "new", html, public_key=world["pub"])
    text = html.read_text("utf-8")
    assert 'id="previous-live"' in text and 'id="measured-previous"' in text
    assert f"{p['uniform']:,} uniform decisions replayed" in text and f"TA {p['ta']} on" in text


def test_a_log_from_another_bundle_refuses_with_exit_3_naming_the_digests(world, tmp_path):
    """The matching log against the *new* bundle: none of its decisions come from it."""
    proc = run_tracec("compile", world["log"], "--out", tmp_path / "b", "--unsigned",
                      "--previous", world["base"] / "new", "--json", check_code=3)
    err = json.loads(proc.stdout)["error"]
    new, old = (verify_bundle(world["base"] / k, world["pub"]).digest for k in ("new", "old"))
    assert err["type"] == "ProvenanceError" and err["path"] == str(world["log"])
    assert f"expected bundle digest {new}" in err["message"]
    assert f"found {old} ({ROWS:,})" in err["message"] and not (tmp_path / "b").exists()


def test_a_tampered_handled_flag_refuses_naming_the_line(world, tmp_path):
    lines = world["log"].read_text("utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if (r := json.loads(line))["kind"] == "decision"
              and r["sample_u"] < RATE and r["handled"])
    row = json.loads(lines[at])
    lines[at] = json.dumps({**row, "handled": False, "label": None})
    log = tmp_path / "tampered.jsonl"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ProvenanceError) as e:
        against_previous(load_traces(log), verify_bundle(world["base"] / "old", world["pub"]),
                         0.05, lambda _m: None)
    assert e.value.exit_code == 3 and e.value.line == at + 1 and e.value.field == "handled"
    assert f"{log}:{at + 1}" in str(e.value) and "logged handled False" in str(e.value)
    assert "replays True" in str(e.value) and row["request_id"] in str(e.value)


def test_a_log_across_a_hot_reload_is_counted_per_digest(world, tmp_path):
    """The service reloads from the old bundle to the new one half-way: both digests are
    counted, every row stays usable, and the new bundle's own rows are replayed and measured."""
    log = write_log(tmp_path / "two.jsonl", serve(world["base"] / "old", world["pub"],
                                                  world["records"][:60],
                                                  reload_to=world["base"] / "new"))
    traces = load_traces(log)
    old, new = (verify_bundle(world["base"] / k, world["pub"]) for k in ("old", "new"))
    assert traces.sampling["bundles"] == {old.digest: 30, new.digest: 30}
    decisions = [json.loads(line) for line in log.read_text("utf-8").splitlines()
                 if json.loads(line)["kind"] == "decision"]
    assert traces.n == 60 and any(traces.certifiable)  # both bundles' rows, one uniform sample:
    assert traces.certifiable == tuple(r["sample_u"] < RATE for r in decisions)  # digest-blind
    p = against_previous(traces, new, 0.05, lambda _m: None).sampling["previous"]
    assert p["bundle"] == new.digest and (p["rows"], p["other_rows"]) == (30, 30)
    assert p["uniform"] == sum(1 for d in traces.decisions[30:] if d.uniform) > 0
