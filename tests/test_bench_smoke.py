"""Fast checks of the benchmark harness's pure parts: metrics, the targets table and the
Markdown rendering.  Neither tracec compiles nor TRACER runs here."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import metrics, report, targets  # noqa: E402
from benchmarks.data import daily_batches, pooled_resplit, TaskData  # noqa: E402
from benchmarks.workfiles import decode, encode, label_space  # noqa: E402


def brute_hindsight(conf, correct, alpha):
    """Independent reference: try every candidate threshold, keep the largest accepted set."""
    best = (math.inf, 0.0)
    for t in sorted(set(conf)):
        acc = [c >= t for c in conf]
        n = sum(acc)
        k = sum(ok for ok, a in zip(correct, acc) if a)
        if n and k / n >= alpha and n / len(conf) > best[1]:
            best = (t, n / len(conf))
    return best


def test_coverage_ta_e2e_on_a_hand_computed_example():
    handled = [True, True, False, True, False]
    pred = ["a", "b", "c", "a", "x"]
    teacher = ["a", "a", "c", "a", "b"]
    gold = ["a", "b", "c", "b", "b"]
    assert metrics.coverage(handled) == pytest.approx(3 / 5)
    assert metrics.teacher_agreement(handled, pred, teacher) == pytest.approx(2 / 3)
    # final answers: a, b, c (teacher), a, b (teacher) -> correct vs gold: 1,1,1,0,1
    assert metrics.e2e_accuracy(handled, pred, teacher, gold) == pytest.approx(4 / 5)


def test_teacher_agreement_is_nan_when_nothing_is_handled_and_lengths_must_match():
    assert math.isnan(metrics.teacher_agreement([False, False], ["a", "b"], ["a", "b"]))
    with pytest.raises(ValueError, match="lengths"):
        metrics.e2e_accuracy([True], ["a", "b"], ["a"], ["a"])


def test_oracle_limit():
    assert metrics.oracle_limit(0.72, 0.9) == pytest.approx(0.8)
    assert metrics.oracle_limit(0.97, 0.9) == 1.0
    with pytest.raises(ValueError):
        metrics.oracle_limit(0.5, 0.0)


@pytest.mark.parametrize("seed", range(25))
def test_hindsight_threshold_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    conf = np.round(rng.random(n), 1)  # rounding creates ties
    correct = rng.random(n) < conf + 0.2
    alpha = float(rng.choice([0.5, 0.8, 0.9]))
    got = metrics.hindsight_threshold(conf, correct, alpha)
    want_t, want_cov = brute_hindsight(conf.tolist(), correct.tolist(), alpha)
    assert got.coverage == pytest.approx(want_cov)
    assert got.threshold == want_t
    if want_cov:
        acc = conf >= got.threshold
        assert got.agreement == pytest.approx(correct[acc].mean())
        assert got.agreement >= alpha


def test_hindsight_handles_ties_and_impossible_targets():
    h = metrics.hindsight_threshold([0.9, 0.9, 0.5], [True, False, True], 0.9)
    assert h.coverage == 0.0 and h.threshold == math.inf  # the tie cannot be split
    h = metrics.hindsight_threshold([0.9, 0.8, 0.1], [True, True, False], 0.9)
    assert (h.threshold, h.coverage) == (0.8, pytest.approx(2 / 3))


def test_violation_share_counts_only_runs_below_alpha():
    assert metrics.violation_share([0.91, 0.89, math.nan, 0.95], 0.9) == pytest.approx(1 / 4)
    assert math.isnan(metrics.violation_share([], 0.9))


def test_percentiles_in_microseconds():
    p = metrics.percentiles_us(np.arange(1, 101) * 1e-6, (50, 99))
    assert p["p50"] == pytest.approx(50.5) and p["p99"] == pytest.approx(99.01)


def test_label_encoding_round_trips_and_marks_unknown_labels():
    labels = label_space(["b", "a", "b", "c"])
    assert labels == ("a", "b", "c")
    idx = encode(["c", "a", "zzz"], labels)
    assert idx.tolist() == [2, 0, -1]
    assert decode(idx, labels).tolist() == ["c", "a", None]


def _task(n_train=30, n_test=10):
    rng = np.random.default_rng(0)
    lab = np.array([f"l{i % 3}" for i in range(n_train + n_test)], dtype=object)
    X = rng.random((n_train + n_test, 4)).astype(np.float16)
    texts = [f"t{i}" for i in range(n_train + n_test)]
    return TaskData("toy", X[:n_train], lab[:n_train], lab[:n_train], X[n_train:], lab[n_train:],
                    lab[n_train:], texts[:n_train], texts[n_train:])


def test_resplit_keeps_rows_aligned_and_sizes():
    data = _task()
    r = pooled_resplit(data, 30, seed=3)
    assert len(r.X_train) == 30 and len(r.X_test) == 10
    pooled = {t: i for i, t in enumerate(data.texts_train + data.texts_test)}
    X = np.concatenate([data.X_train, data.X_test])
    for text, row in zip(r.texts_train + r.texts_test, np.concatenate([r.X_train, r.X_test])):
        assert np.array_equal(X[pooled[text]], row)
    assert sorted(r.texts_train + r.texts_test) == sorted(pooled)
    assert pooled_resplit(data, 30, seed=3).texts_test == r.texts_test


def test_daily_batches_partition_the_rows():
    batches = daily_batches(103, 5, seed=1)
    sizes = [len(b) for b in batches]
    assert max(sizes) - min(sizes) <= 1
    assert sorted(itertools.chain.from_iterable(batches)) == list(range(103))


def small_results(tracec_cov=0.8, tracer_cov=0.7, tracec_ta=0.93):
    def sysres(cov, ta):
        return {"coverage": cov, "teacher_agreement": ta, "e2e_accuracy": 0.9, "family": "l2d",
                "gate": "open", "oracle_limit": 0.85}

    return {
        "meta": {"command": "python -m benchmarks.run", "started": "2026-01-01", "duration_s": 60,
                 "versions": {"tracec": "0.1.0"}, "tracer_versions": {"tracer": "0.3.3"},
                 "notes": ["a note"]},
        "quality": {"alphas": [0.9], "delta": 0.05, "timed_task": "t1", "tasks": {"t1": {
            "title": "Toy task", "kind": "main", "n_train": 10, "n_test": 5, "n_teacher_labels": 3,
            "teacher_gold_accuracy_test": 0.6,
            "tracec": {"alphas": {"0.9": sysres(tracec_cov, tracec_ta)}, "compile_wall_s": 12.0,
                       "headline": True},
            "tracer": {"alphas": {"0.9": sysres(tracer_cov, 0.91)}, "fit_seconds": 100.0,
                       "memo": False, "headline": True, "process_cpu_s": 150.0},
            "baseline": {"alphas": {"0.9": {"coverage": 0.75}}}}}},
        "validity": {"n_train": 10, "n_test": 5, "alphas": [0.9], "delta": 0.05,
                     "seeds_planned": {"tracec": 2, "tracer": 2},
                     "tracec": {"0.9": {"runs": 2, "violations": 0, "violation_share": 0.0,
                                        "violation_upper_95": 0.78, "mean_coverage": 0.8,
                                        "min_ta": 0.92, "per_run": []}},
                     "tracer": {"0.9": {"runs": 1, "violations": 1, "violation_share": 1.0,
                                        "violation_upper_95": 1.0, "mean_coverage": 0.8,
                                        "min_ta": 0.88, "per_run": []}}},
        "runtime": {"tracec": {"calls": 10000, "p50": 20.0, "p99": 40.0,
                               "batch_decisions_per_s": 300000.0,
                               "cold": {"median_s": 0.2, "peak_rss_mib": 50.0}},
                    "tracer_no_ood": {"calls": 10000, "p50": 400.0, "p99": 900.0,
                                      "batch_decisions_per_s": 20000.0,
                                      "cold": {"median_s": 1.5, "peak_rss_mib": 150.0}}},
    }


def test_targets_verdicts_follow_the_numbers():
    good = targets.all_rows(small_results())  # 0.8 >= 0.7, TA 0.93 >= 0.9, 0.8 >= 0.9 * 0.85
    assert good[0].target.startswith("t1:") and good[0].met is True
    below_oracle = targets.all_rows(small_results(tracec_cov=0.75, tracer_cov=0.5))
    assert below_oracle[0].met is False and "0.9 x oracle 0.850" in below_oracle[0].measured
    worse = targets.all_rows(small_results(tracec_cov=0.6))
    assert worse[0].met is False and "TRACER" in worse[0].measured
    low_ta = targets.all_rows(small_results(tracec_ta=0.85))
    assert low_ta[0].met is False and "TA 0.850 < 0.9" in low_ta[0].measured
    by_name = {r.target: r for r in good}
    compile_row = next(r for n, r in by_name.items() if n.startswith("compile time"))
    assert compile_row.met is True and "ratio 0.120" in compile_row.measured
    speed = next(r for n, r in by_name.items() if n.startswith("single decision"))
    assert speed.met is True and "20.0x" in speed.measured


def test_a_negative_control_is_met_only_by_refusing():
    def with_gate(gate):
        res = small_results()
        task = res["quality"]["tasks"]["t1"]
        task["kind"] = "negative control"
        task["tracec"]["alphas"]["0.9"]["gate"] = gate
        return targets.quality_rows(res["quality"])[0]
    refused, opened = with_gate("closed"), with_gate("open")
    assert refused.met is True and "refused at 1/1" in refused.measured
    assert "TRACER at 0.9: coverage 0.700, TA 0.910" in refused.measured
    assert opened.met is False and "refused at 0/1" in opened.measured


def test_tracer_coverage_below_alpha_is_flagged():
    res = small_results(tracec_cov=0.6)
    res["quality"]["tasks"]["t1"]["tracer"]["alphas"]["0.9"]["teacher_agreement"] = 0.85
    row = targets.quality_rows(res["quality"])[0]
    assert row.met is False and "(whose TA 0.850 < 0.9)" in row.measured


def test_alpha_check_is_vacuous_on_ta_when_nothing_is_handled():
    ok, why = targets.alpha_check({"coverage": 0.0, "teacher_agreement": None, "oracle_limit": 1.0},
                                  {"coverage": 0.0}, 0.9)
    assert ok is True and why == ""


def test_report_renders_every_section_from_a_small_results_dict():
    text = report.render(small_results(), ["img/bench_coverage.png"])
    assert text.startswith("# Benchmarks: tracec vs TRACER")
    assert "GENERATED FILE" in text
    for heading in ("## Targets", "## Coverage and teacher agreement on test", "### Toy task",
                    "## Guarantee validity", "## Runtime", "![img/bench_coverage.png]"):
        assert heading in text
    assert "| 0.9 | 80.0% | 93.0% | 90.0% | l2d (open) | 70.0% |" in text
    assert "a note" in text
    assert "Not run." in text  # the flywheel section is absent from the results


def test_clopper_pearson_upper_bound_closed_forms():
    from benchmarks.validity import upper_bound

    for n in (1, 10, 50):  # k = 0: (1 - u)^n = 0.05
        assert upper_bound(0, n) == pytest.approx(1 - 0.05 ** (1 / n))
    assert upper_bound(5, 5) == 1.0
    # any k: by definition the upper bound u solves P(X <= k | n, u) = 0.05
    from scipy.stats import binom
    u = upper_bound(3, 50)
    assert binom.cdf(3, 50, u) == pytest.approx(0.05, abs=1e-9)


def test_scheduler_skips_optional_jobs_that_cannot_finish_and_runs_required_ones():
    import time as _time

    from benchmarks.scheduler import Job, Scheduler

    ran = []
    sched = Scheduler(deadline=_time.monotonic() + 5, log=lambda _m: None)
    jobs = [Job("req", lambda: ran.append("req") or 1, "g"),
            Job("opt-long", lambda: ran.append("opt-long"), "h", optional=True, estimate_s=3600),
            Job("opt-short", lambda: ran.append("opt-short") or 2, "k", optional=True, estimate_s=0.1),
            Job("boom", lambda: 1 / 0, "g")]
    out = sched.run(jobs)
    assert sorted(ran) == ["opt-short", "req"]
    assert out["opt-long"].status == "skipped"
    assert out["req"].value == 1 and out["opt-short"].value == 2
    assert out["boom"].status == "failed" and "ZeroDivisionError" in out["boom"].error


def test_child_process_is_stopped_at_its_time_limit():
    from benchmarks import procs
    from benchmarks.errors import BudgetExceeded

    done = procs.run([sys.executable, "-c", "print('hi')"])
    assert done.returncode == 0 and done.stdout.strip() == "hi" and done.wall_s > 0
    with pytest.raises(BudgetExceeded, match="stopped after"):
        procs.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5)


def test_interleave_keeps_every_item_once_in_the_promised_order():
    from benchmarks.run import interleave

    assert interleave([1, 2, 3, 4, 5], ["a", "b"], 2) == [1, 2, "a", 3, 4, "b", 5]
    assert interleave([1], ["a", "b", "c"], 2) == [1, "a", "b", "c"]
    assert interleave([], [], 2) == []


def test_quality_row_is_not_met_without_tracer_and_fails_on_other_criteria():
    res = small_results()
    res["quality"]["tasks"]["t1"]["tracer"] = {"status": "not run"}
    row = targets.quality_rows(res["quality"])[0]
    assert row.met is None and "TRACER not measured" in row.measured
    res["quality"]["tasks"]["t1"]["tracec"]["alphas"]["0.9"]["teacher_agreement"] = 0.5
    assert targets.quality_rows(res["quality"])[0].met is False


def test_oracle_gaps_put_the_hindsight_baseline_beside_each_miss():
    res = small_results(tracec_cov=0.75, tracer_cov=0.5)  # 0.75 < 0.9 x 0.85; baseline 0.75
    gaps = targets.oracle_gaps(res["quality"])
    assert gaps == ["t1 at alpha 0.9: tracec 75.0% vs 0.9 x oracle 76.5%; hindsight baseline "
                    "75.0% (also below)"]
    assert targets.oracle_gaps(small_results()["quality"]) == []
    assert "hindsight baseline 75.0% (also below)" in report.render(res, [])


def test_clear_violations_separate_test_noise_from_real_misses():
    from benchmarks.validity import clear_violations
    runs = [{"coverage": 0.8, "teacher_agreement": 0.895},   # 2,464 rows, 0.5 pt below: noise
            {"coverage": 0.8, "teacher_agreement": 0.85},    # 5 pt below: clear
            {"coverage": 0.8, "teacher_agreement": 0.93},    # not a violation
            {"coverage": 0.0, "teacher_agreement": None}]    # handles nothing
    assert clear_violations(runs, 0.9, 3080) == 1
    assert clear_violations(runs[:1], 0.9, 30) == 0        # 24 rows: nothing is clear


def test_pool_experiment_features_and_aurc_match_brute_force():
    """The acceptor-feature experiment (benchmarks.pool_experiment, not shipped): the centroid
    cosine and the k-nearest-neighbour label share, and the risk-coverage area, recomputed
    row by row."""
    from benchmarks import pool_experiment as pe

    rng = np.random.default_rng(3)
    X_ref = rng.normal(size=(60, 6)).astype(np.float32)
    X_ref /= np.linalg.norm(X_ref, axis=1, keepdims=True)
    y_ref = rng.integers(0, 4, 60)
    X = rng.normal(size=(9, 6)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    label = rng.integers(0, 4, 9)
    probs = rng.dirichlet(np.ones(4), 9)
    got = pe._Feats("all", X_ref, y_ref)(probs, label, X)
    assert got.shape == (9, 6)
    for i in range(9):
        c = X_ref[y_ref == label[i]].mean(axis=0)
        assert got[i, 4] == pytest.approx(float(X[i] @ c) / np.linalg.norm(c), abs=1e-6)
        near = np.argsort(-(X_ref @ X[i]))[:pe.K_NEAREST]
        assert got[i, 5] == pytest.approx(np.mean(y_ref[near] == label[i]))

    class Fixed:  # 4 rows: top-1 probabilities 0.9, 0.8, 0.7, 0.6; rows 2 and 4 wrong
        classes_ = np.array([0, 1])

        def predict_proba(self, _X):
            return np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])

    y = np.array([0, 0, 0, 0])   # predictions 0, 1, 0, 1: wrong at 0.8 and 0.6
    assert pe.aurc(Fixed(), np.zeros((4, 1)), y) == pytest.approx((0 + 1 / 2 + 1 / 3 + 2 / 4) / 4)


def test_a_global_shortfall_names_the_ood_gate():
    """A global policy handles every row its OOD gate passes, so its shortfall against TRACER
    (whose numbers exclude TRACER's own OOD gate) is the gate's share; the row says so, and
    the verdict does not change."""
    res = small_results(tracec_cov=0.994, tracer_cov=1.0)
    res["quality"]["tasks"]["t1"]["tracec"]["alphas"]["0.9"].update(family="global", oracle_limit=1.0)
    row = targets.quality_rows(res["quality"])[0]
    assert row.met is False and "OOD gate defers the other 0.6%" in row.measured
    l2d = targets.quality_rows(small_results(tracec_cov=0.6)["quality"])[0]
    assert "OOD gate" not in l2d.measured
