"""Compiling from the service's decision log without the deferral bias (docs/guarantee.md,
"Production logs").

A simulation shows why certification must use only the uniform traffic sample: the deployed
bundle defers a hard region, every deferred row has a teacher label, handled rows only when
audited.  Certifying on all teacher-labelled rows (naive) over-weights the deferred region;
where the new surrogate agrees more there than on the handled traffic, the naive threshold's
TA on the FULL traffic is below alpha far more often than delta.  Certifying on the sampled
rows (``sample_u < rate``, handled or deferred) keeps the violation rate <= delta.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import data_path, read_json, run_tracec
from tracec.calibration import certify_threshold, threshold_grid
from tracec.errors import TraceFileError
from tracec.formats import decision_log, sniff
from tracec.splits import split_rows
from tracec.traces import load_traces
from tracec_runtime import Router
from tracec_runtime.serve.service import sample_u

ALPHA, DELTA, RATE, HARD = 0.90, 0.10, 0.05, 0.25


def full_traffic_ta(tau: float) -> float:
    """TA of ``score >= tau`` on the full traffic of ``simulate`` (scores uniform on [0, 1])."""
    m = (1.0 + min(max(float(tau), 0.0), 1.0)) / 2.0          # E[score | score >= tau]
    return (1 - HARD) * (0.80 + 0.15 * m) + HARD * (0.90 + 0.09 * m)


def simulate(rng, n: int):
    hard = rng.random(n) < HARD                 # the deployed bundle defers these
    score = rng.random(n)                       # the new surrogate's confidence
    agree = rng.random(n) < np.where(hard, 0.90 + 0.09 * score, 0.80 + 0.15 * score)
    sampled = rng.random(n) < RATE              # sample_u < rate, for every decision
    labelled = hard | sampled                   # deferred: always fed back; handled: if audited
    return score, agree, sampled, labelled


def certify(rng, score, agree, rows):
    """Calibration on ``rows`` (a random 60 %: the rest would be shadow), grid from other scores."""
    cal = rows[rng.random(len(rows)) < 0.6]
    grid = threshold_grid(score[~np.isin(np.arange(len(score)), rows)][:3000], len(cal), 100)
    return certify_threshold(score[cal], agree[cal], grid, ALPHA, DELTA)


def test_sampled_rows_hold_the_guarantee_on_full_traffic_and_all_labelled_rows_do_not():
    rng = np.random.default_rng(11)
    reps, outcomes = 300, {"sampled": [], "naive": []}
    for _ in range(reps):
        score, agree, sampled, labelled = simulate(rng, 20_000)
        for name, rows in (("sampled", np.flatnonzero(sampled & labelled)),
                           ("naive", np.flatnonzero(labelled))):
            c = certify(rng, score, agree, rows)
            outcomes[name].append((c.passed, c.passed and full_traffic_ta(c.tau) < ALPHA))
    sampled, naive = (np.array(outcomes[k]) for k in ("sampled", "naive"))
    print(f"violation rate on full traffic: sampled {sampled[:, 1].mean():.3f} (certified "
          f"{sampled[:, 0].mean():.3f}), naive {naive[:, 1].mean():.3f} (certified "
          f"{naive[:, 0].mean():.3f}); delta {DELTA}")
    slack = 2.33 * np.sqrt(DELTA * (1 - DELTA) / reps)          # one-sided 99 % simulation error
    assert sampled[:, 1].mean() <= DELTA + slack, sampled[:, 1].mean()
    assert sampled[:, 0].mean() >= 0.5               # not vacuous: it certifies a threshold
    assert naive[:, 1].mean() >= 0.5, naive[:, 1].mean()   # biased: violates most of the time
    assert full_traffic_ta(-np.inf) < ALPHA < full_traffic_ta(0.5)


def log_rows(n: int, rate, seed: int = 0, rng=None, volunteer: float = 0.0):
    """Decision + feedback rows as the service writes them (``--audit-rate rate``)."""
    rng = rng or np.random.default_rng(seed)
    rows, truth = [], []
    for i in range(n):
        rid = f"r-{i:x}"
        r = rate(i) if callable(rate) else rate
        u = sample_u(seed, rid)
        handled = bool(rng.random() >= HARD)
        rows.append({"kind": "decision", "request_id": rid, "input": f"text {i}", "handled": handled,
                     "provenance": "surrogate" if handled else "deferred", "audit_rate": r,
                     "sample_u": u, "sampled": u < r, "audit": handled and u < r})
        fed = not handled or u < r or rng.random() < volunteer
        if fed:
            rows.append({"kind": "feedback", "request_id": rid, "teacher": f"t{i % 3}",
                         "provenance": "teacher", "audited": handled and u < r})
        truth.append((fed, u, handled))
    return rows, truth


def test_loader_drops_surrogate_only_rows_and_marks_the_uniform_sample():
    rows, truth = log_rows(2000, 0.2, volunteer=0.1)
    assert sniff(rows[0]) == "decision-log"
    traces = load_traces(rows)
    fed = [(u, h) for f, u, h in truth if f]
    assert traces.format == "decision-log" and traces.n == len(fed)
    assert traces.certifiable == tuple(u < 0.2 for u, _ in fed)
    s = traces.sampling
    n_surrogate_only = sum(1 for f, _, h in truth if not f and h)
    assert traces.skipped == {decision_log.SURROGATE_ONLY: n_surrogate_only}
    assert s["dropped_surrogate_only"] == n_surrogate_only and s["decisions"] == 2000
    assert s["certifiable"] == sum(u < 0.2 for u, _ in fed) and s["sampled_without_label"] == 0
    assert s["certifiable"] + s["training_only"] == traces.n
    splits = split_rows(traces.n, 0, (0.55, 0.15, 0.15, 0.15), traces.certifiable)
    mask = np.array(traces.certifiable)
    held = np.concatenate([splits.calibration, splits.shadow])
    assert mask[held].all() and not mask[np.concatenate([splits.train, splits.validation])].any()
    assert len(held) == mask.sum() and sum(splits.counts().values()) == traces.n


def test_a_lower_audit_rate_later_thins_every_period_to_it():
    rows, truth = log_rows(3000, lambda i: 0.3 if i < 1500 else 0.05)
    traces = load_traces(rows)
    assert traces.sampling["sample_rate"] == 0.05
    assert traces.certifiable == tuple(u < 0.05 for f, u, _ in truth if f)


def test_bad_rows_are_located_errors_and_orphans_are_counted(tmp_path):
    rows, _ = log_rows(50, 0.5)
    line = next(i for i, r in enumerate(rows, 1) if i > 3 and r["kind"] == "decision")
    rows[line - 1] = {**rows[line - 1], "audit_rate": "high"}
    bad = tmp_path / "log.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(TraceFileError) as e:
        load_traces(bad)
    assert e.value.line == line and e.value.field == "audit_rate" and "[0, 1]" in str(e.value)
    rows, _ = log_rows(50, 0.5)
    traces = load_traces([{"kind": "feedback", "request_id": "x", "teacher": "t0",
                           "provenance": "teacher"}] + rows)
    assert traces.skipped.get(decision_log.ORPHAN) == 1


@pytest.mark.slow
def test_compile_from_a_banking77_decision_log(tmp_path):
    """A real compile from a log simulated on Banking77 (real texts, embeddings, LLM teacher):
    the deployed bundle defers the rows closest to two class centroids, the audit rate is 0.3."""
    lines = data_path("banking77", "traces_qwen3-30b", "train.jsonl").read_text("utf-8").splitlines()
    X = np.load(data_path("banking77", "train.minilm-l6-v2.f16.npy")).astype(np.float32)
    recs = [json.loads(line) for line in lines]
    names = sorted({r["teacher"] for r in recs})
    y = np.array([names.index(r["teacher"]) for r in recs])
    centroids = np.stack([X[y == k].mean(0) for k in range(len(names))])
    top2 = np.sort(X @ centroids.T, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    hard = margin < np.quantile(margin, 0.3)
    rng, rows, kept = np.random.default_rng(5), [], []
    for i, r in enumerate(recs):
        rid, u = f"b-{i:x}", sample_u(0, f"b-{i:x}")
        rows.append({"kind": "decision", "request_id": rid, "input": r["input"],
                     "handled": not hard[i], "audit_rate": 0.3, "sample_u": u,
                     "provenance": "deferred" if hard[i] else "surrogate"})
        if hard[i] or u < 0.3 or rng.random() < 0.2:
            rows.append({"kind": "feedback", "request_id": rid, "teacher": r["teacher"],
                         "provenance": "teacher"})
            kept.append(i)
    log, emb, out = tmp_path / "decisions.jsonl", tmp_path / "x.npy", tmp_path / "bundle"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    np.save(emb, X[kept])
    proc = run_tracec("compile", log, "--embeddings", emb, "--embedder-id",
                      "sentence-transformers/all-MiniLM-L6-v2", "--alpha", "0.9,0.8", "--unsigned",
                      "--out", out, "--json", check_code=0)
    doc, m = json.loads(proc.stdout), read_json(out / "manifest.json")
    s, c = m["sampling"], m["counts"]
    assert doc["traces"]["format"] == "decision-log"
    assert doc["traces"]["sampling"]["certifiable"] == s["certifiable"]
    assert s["decisions"] == len(recs) and s["sample_rate"] == "0.3"
    assert s["dropped_surrogate_only"] == len(recs) - len(kept) and s["sampled_without_label"] == 0
    assert s["certifiable"] == sum(sample_u(0, f"b-{i:x}") < 0.3 for i in kept)
    assert c["total"] == len(kept) == s["certifiable"] + s["training_only"]
    assert c["calibration"] + c["shadow"] == s["certifiable"]
    # the shadow split the compile measured is the certifiable one: the runtime reproduces it
    traces = load_traces(log)
    splits = split_rows(traces.n, m["seed"], tuple(map(float, m["config"]["fractions"].split(","))),
                        traces.certifiable, inputs=traces.inputs)
    assert np.array(traces.certifiable)[splits.shadow].all()
    router = Router.load(out, allow_unsigned=True)
    assert int(np.sum(router.route_batch(X[kept][splits.shadow]).handled)) == m["shadow"]["n_handled"]
    html = tmp_path / "r.html"
    run_tracec("report", out, "--allow-unsigned", "--out", html, check_code=0)
    assert f"{s['certifiable']:,} certifiable" in html.read_text("utf-8")
    print(f"banking77 decision log: {s}; counts {c}; gate {m['policy']['gate']} alpha "
          f"{m['policy']['alpha']}, shadow coverage {m['shadow']['coverage']} TA {m['shadow']['ta']}")
    if m["policy"]["gate"] == "open":  # the untouched test split: TA not credibly below alpha
        proc = run_tracec("route", out, "--embeddings", data_path("banking77", "test.minilm-l6-v2.f16.npy"),
                          "--traces", data_path("banking77", "traces_qwen3-30b", "test.jsonl"),
                          "--allow-unsigned", "--json", check_code=0)
        summary = json.loads(proc.stdout)["summary"]
        print(f"banking77 test: coverage {summary['coverage']} TA {summary['ta_handled']}")
        assert summary["ta_below_alpha"] is False


def test_a_log_without_sampling_fields_certifies_nothing_and_the_split_refuses():
    """A log written before audit_rate/sample_u were logged: every row is training-only, and
    the split refuses (fail closed) rather than certify on the deferral-biased rows."""
    from tracec.errors import InputError

    rows, _ = log_rows(600, 0.5)
    old = [{k: v for k, v in r.items() if k not in ("audit_rate", "sample_u", "sampled")} for r in rows]
    traces = load_traces(old)
    assert traces.sampling["certifiable"] == 0 and not any(traces.certifiable)
    with pytest.raises(InputError, match="certifiable"):
        split_rows(traces.n, 0, (0.55, 0.15, 0.15, 0.15), traces.certifiable)
