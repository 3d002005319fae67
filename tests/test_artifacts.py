"""Interpretability artifacts on real data (Banking77, real Qwen3-30B teacher), recomputed directly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import data_path
from sklearn.linear_model import LogisticRegression

from tracec.artifacts import (ARTIFACT_MODELS, ArtifactInputError, CostInputs, EvalRows,
                              build_artifacts)
from tracec.errors import ParameterError
from tracec_runtime.canonical import canonical_bytes

N_TRAIN, N_EVAL, N_CAL = 3000, 1500, 750


@pytest.fixture(scope="module")
def real_rows() -> EvalRows:
    records = [json.loads(line) for line in
               data_path("banking77", "traces_qwen3-30b", "train.jsonl").read_text("utf-8").splitlines()]
    X = np.load(data_path("banking77", "train.minilm-l6-v2.f16.npy")).astype(np.float32)
    perm = np.random.default_rng(7).permutation(len(records))
    train, held = perm[:N_TRAIN], perm[N_TRAIN:N_TRAIN + N_EVAL]
    labels = sorted({records[i]["teacher"] for i in train})
    index = {name: k for k, name in enumerate(labels)}
    clf = LogisticRegression(C=1.0, max_iter=100).fit(X[train], [index[records[i]["teacher"]] for i in train])
    proba = clf.predict_proba(X[held])
    score = proba.max(axis=1).astype(np.float32)
    return EvalRows(texts=[records[i]["input"] for i in held],
                    teacher=np.array([index.get(records[i]["teacher"], -1) for i in held], np.int64),
                    pred=clf.classes_[proba.argmax(axis=1)].astype(np.int64),
                    handled=score >= np.median(score), score=score, embeddings=X[held], labels=labels)


def manifest_for(rows: EvalRows, gate: str = "open", refusal: dict | None = None,
                 handled: np.ndarray | None = None) -> dict:
    """The manifest fields the artifacts read, measured directly on the rows."""
    h = rows.handled if handled is None else handled
    agree = rows.pred == rows.teacher

    def split(idx):
        nh = int(h[idx].sum())
        na = int((h[idx] & agree[idx]).sum())
        return {"n_total": len(idx), "n_handled": nh, "n_agree": na, "coverage": str(nh / len(idx)),
                "ta": str(na / nh if nh else 0.0)}

    per_label = []
    for k, name in enumerate(rows.labels):
        m = rows.teacher == k
        if m.any():
            per_label.append({"label": name, "n": int(m.sum()), "handled_rate": str(h[m].mean()),
                              "ta": str(agree[m & h].mean()) if (m & h).any() else None})
    n = len(rows.texts)
    return {"policy": {"gate": gate, "family": "l2d", "alpha": "0.9", "delta": "0.05",
                       "tau": "0.5", "model_name": "logreg"},
            "labels": list(rows.labels), "embedder": {"id": "all-MiniLM-L6-v2"},
            "calibration": split(np.arange(N_CAL)), "shadow": split(np.arange(N_CAL, n)),
            "per_label": per_label, "refusal": refusal}


@pytest.fixture(scope="module")
def arts(real_rows) -> dict:
    return build_artifacts(real_rows, manifest=manifest_for(real_rows), no_examples=False,
                           previous_manifest=None, cost=CostInputs(2.5, 100_000))


def _unit(X):
    X = X.astype(np.float64)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _leaked_texts(docs: dict, texts) -> list[str]:
    """Input texts found in the artifacts: as a whole JSON string, or (4+ words) anywhere."""
    blob = json.dumps(docs, ensure_ascii=False)
    return [t for t in texts if json.dumps(t, ensure_ascii=False) in blob
            or (len(t.split()) >= 4 and t in blob)]


def test_every_artifact_validates_and_holds_no_floats(arts):
    assert set(arts) == set(ARTIFACT_MODELS)
    for name, doc in arts.items():
        model, _ = ARTIFACT_MODELS[name]
        assert model.model_validate(doc).model_dump(mode="json") == doc
        assert doc["version"] == "1" and name == f"artifacts/{doc['artifact']}.json"
        canonical_bytes(doc)  # the bundle's canonical JSON: raises TypeError on any float


def test_slices_match_direct_counts(real_rows, arts):
    s = arts["artifacts/slices.json"]
    teacher, handled = real_rows.teacher, real_rows.handled
    agree = real_rows.pred == teacher
    assert s["n_total"] == N_EVAL and s["n_handled"] == int(handled.sum())
    assert sum(x["n"] for x in s["by_label"]) == N_EVAL
    assert sum(x["n_handled"] for x in s["by_label"]) == int(handled.sum())
    assert [x["n"] for x in s["by_label"]] == sorted((x["n"] for x in s["by_label"]), reverse=True)
    for x in s["by_label"]:
        k = -1 if x["label"] is None else real_rows.labels.index(x["label"])
        m = teacher == k
        assert x["n"] == m.sum() and x["n_handled"] == (m & handled).sum()
        assert float(x["share"]) == pytest.approx(m.mean(), abs=1e-6)
        if x["n"]:
            assert float(x["handled_rate"]) == pytest.approx(handled[m].mean(), abs=1e-6)
        if x["n_handled"]:
            assert float(x["ta_handled"]) == pytest.approx(agree[m & handled].mean(), abs=1e-6)
        else:
            assert x["ta_handled"] is None
    words = np.array([len(t.split()) for t in real_rows.texts])
    assert sum(b["n"] for b in s["by_length"]) == N_EVAL
    for b in s["by_length"]:
        hi = np.inf if b["max_words"] is None else b["max_words"]
        m = (words >= b["min_words"]) & (words <= hi)
        assert b["n"] == m.sum() and b["n_handled"] == (m & handled).sum()
        if b["n_handled"]:
            assert float(b["ta_handled"]) == pytest.approx(agree[m & handled].mean(), abs=1e-6)


def test_representatives_are_nearest_to_their_subgroup_centroid(real_rows, arts):
    unit = _unit(real_rows.embeddings)
    entries = arts["artifacts/representatives.json"]["labels"]
    assert sum(e["n"] for e in entries) == N_EVAL
    checked = 0
    for e in entries:
        k = -1 if e["label"] is None else real_rows.labels.index(e["label"])
        for side, flag in (("handled", True), ("deferred", False)):
            idx = np.flatnonzero((real_rows.teacher == k) & (real_rows.handled == flag))
            assert e[f"n_{side}"] == len(idx)
            if not len(idx):
                assert e[side] is None
                continue
            centroid = unit[idx].mean(axis=0)
            sims = unit[idx] @ (centroid / np.linalg.norm(centroid))
            rep = e[side]
            row = rep["example"]["row"]
            assert row in idx  # the true nearest, up to float32 rounding of near-ties
            assert sims[np.searchsorted(idx, row)] >= sims.max() - 1e-6
            assert float(rep["similarity"]) == pytest.approx(sims.max(), abs=1e-5)
            assert rep["example"]["text"] == real_rows.texts[rep["example"]["row"]]
            assert rep["example"]["handled"] is flag
            checked += 1
    assert checked > 50


def test_boundary_pairs_are_the_closest_oppositely_routed_pair(real_rows, arts):
    unit = _unit(real_rows.embeddings)
    doc = arts["artifacts/boundary_pairs.json"]
    assert doc["pairs"], "a median split leaves most labels with both routings"
    for p in doc["pairs"]:
        h, d = p["handled"], p["deferred"]
        assert h["handled"] is True and d["handled"] is False
        assert real_rows.handled[h["row"]] and not real_rows.handled[d["row"]]
        k = real_rows.teacher[h["row"]]
        assert real_rows.teacher[d["row"]] == k
        assert (p["label"] is None) == (k == -1)
        H = np.flatnonzero((real_rows.teacher == k) & real_rows.handled)
        D = np.flatnonzero((real_rows.teacher == k) & ~real_rows.handled)
        best = (unit[H] @ unit[D].T).max()
        assert float(p["similarity"]) == pytest.approx(best, abs=1e-5)
        assert float(unit[h["row"]] @ unit[d["row"]]) == pytest.approx(best, abs=1e-6)
        assert p["exhaustive"] is True
    paired = {p["label"] for p in doc["pairs"]}
    for k in set(real_rows.teacher.tolist()):
        m = real_rows.teacher == k
        both = (m & real_rows.handled).any() and (m & ~real_rows.handled).any()
        name = None if k == -1 else real_rows.labels[k]
        assert (name in paired) == both and (name in doc["labels_without_pair"]) == (not both)


def test_disagreement_cards_add_up(real_rows, arts):
    doc = arts["artifacts/disagreements.json"]
    wrong = real_rows.pred != real_rows.teacher
    assert doc["n_disagree"] == wrong.sum() and doc["n_total"] == N_EVAL
    assert doc["n_disagree_handled"] == (wrong & real_rows.handled).sum()
    assert sum(c["n_disagree"] for c in doc["cards"]) == wrong.sum()
    for c in doc["cards"]:
        k = real_rows.labels.index(c["pred"])
        mine = wrong & (real_rows.pred == k)
        assert c["n_pred"] == (real_rows.pred == k).sum() and c["n_disagree"] == mine.sum()
        assert c["n_disagree_handled"] == (mine & real_rows.handled).sum()
        teachers, counts = np.unique(real_rows.teacher[mine], return_counts=True)
        expected = dict(zip([None if t == -1 else real_rows.labels[t] for t in teachers], counts))
        for conf in c["confused_with"]:
            assert expected[conf["teacher"]] == conf["count"]
        assert c["confused_with"][0]["count"] == counts.max()
        for ex in c["examples"]:
            assert ex["pred"] == c["pred"] and not ex["agrees"] and ex["teacher"] != ex["pred"]
            assert ex["text"] == real_rows.texts[ex["row"]]
        routed = [ex["handled"] for ex in c["examples"]]
        assert routed == sorted(routed, reverse=True)  # served errors first
    assert doc["collapse"]["detected"] is False  # a real logistic regression does not collapse


def test_collapsed_surrogate_is_explained(real_rows):
    top = int(np.bincount(real_rows.pred).argmax())
    collapsed = EvalRows(real_rows.texts, real_rows.teacher, np.full(N_EVAL, top, np.int64),
                         np.zeros(N_EVAL, bool), real_rows.score, real_rows.embeddings,
                         real_rows.labels)
    refusal = {"reasons": ["l2d: no threshold certified TA >= 0.9"], "best_ta_full_coverage": "0.1",
               "highest_passing_alpha": None, "blocking_labels": []}
    docs = build_artifacts(collapsed, manifest=manifest_for(collapsed, "closed", refusal),
                           no_examples=False, previous_manifest=None, cost=None)
    col = docs["artifacts/disagreements.json"]["collapse"]
    assert col["detected"] is True and col["top_pred_label"] == real_rows.labels[top]
    assert col["top_pred_share"] == "1" and col["n_distinct_pred"] == 1
    assert float(col["teacher_share_of_top"]) == pytest.approx(np.mean(real_rows.teacher == top), abs=1e-6)
    assert "collapsed" in col["explanation"]
    assert col["explanation"] in docs["artifacts/disagreements.json"]["summary"]
    ref = docs["artifacts/refusal.json"]
    assert ref["gate"] == "closed" and ref["reasons"] == refusal["reasons"]
    assert ref["best_ta_full_coverage"] == "0.1" and ref["highest_passing_alpha"] is None
    assert docs["artifacts/cost.json"]["with_bundle"]["calls_avoided_per_1k"] == "0"


def test_refusal_blocking_labels_are_ranked_by_deferred_wrong_traffic(real_rows, arts):
    doc = arts["artifacts/refusal.json"]
    wrong_deferred = ~real_rows.handled & (real_rows.pred != real_rows.teacher)
    assert doc["gate"] == "open" and doc["highest_passing_alpha"] is None
    assert float(doc["best_ta_full_coverage"]) == pytest.approx(
        np.mean(real_rows.pred == real_rows.teacher), abs=1e-6)
    keys, counts = np.unique(real_rows.teacher[wrong_deferred], return_counts=True)
    expected = sorted(counts, reverse=True)[:len(doc["blocking_labels"])]
    impacts = [float(b["impact"]) for b in doc["blocking_labels"]]
    assert impacts == pytest.approx([c / N_EVAL for c in expected], abs=1e-6)
    for b in doc["blocking_labels"]:
        k = -1 if b["label"] is None else real_rows.labels.index(b["label"])
        m = real_rows.teacher == k
        assert b["n_deferred"] == (m & ~real_rows.handled).sum()
        assert float(b["ta_full_coverage"]) == pytest.approx(
            np.mean(real_rows.pred[m] == real_rows.teacher[m]), abs=1e-6)


def test_refusal_compares_the_surrogate_with_the_majority_baseline(real_rows, arts):
    keys, counts = np.unique(real_rows.teacher, return_counts=True)
    top = int(keys[np.argmax(counts)])
    doc = arts["artifacts/refusal.json"]
    assert doc["majority_label"] == (real_rows.labels[top] if top >= 0 else None)
    assert float(doc["majority_share"]) == pytest.approx(counts.max() / N_EVAL, abs=1e-6)
    # a real logistic regression on Banking77 is far above the no-skill baseline: collect data
    assert doc["near_chance"] is False and "raise coverage most" in doc["summary"]
    # a surrogate whose answers are shuffled teacher labels is at chance: data is not the problem
    shuffled = np.random.default_rng(3).permutation(real_rows.teacher.clip(0))
    chance = EvalRows(real_rows.texts, real_rows.teacher, shuffled, np.zeros(N_EVAL, bool),
                      real_rows.score, real_rows.embeddings, real_rows.labels)
    best = float(np.mean(shuffled == real_rows.teacher))
    refusal = {"reasons": ["l2d: no threshold certified"], "best_ta_full_coverage": str(best),
               "highest_passing_alpha": None, "blocking_labels": []}
    docs = build_artifacts(chance, manifest=manifest_for(chance, "closed", refusal),
                           no_examples=False, previous_manifest=None, cost=None)
    ref = docs["artifacts/refusal.json"]
    assert ref["near_chance"] is True and best <= float(ref["majority_share"])
    assert "unlikely to help" in ref["summary"] and "raise coverage most" not in ref["summary"]
    assert f"{best:.1%} of rows" in ref["summary"] and "No alpha could be certified" in ref["summary"]
    lines = [x for x in docs["artifacts/disagreements.json"]["summary"] if "most common label" in x]
    assert len(lines) == 1 and "why no threshold could be certified" in lines[0]


def test_cost_projection_from_shadow_coverage(real_rows, arts):
    doc = arts["artifacts/cost.json"]
    cov = real_rows.handled[N_CAL:].mean()
    assert float(doc["with_bundle"]["coverage"]) == pytest.approx(cov, abs=1e-6)
    assert float(doc["with_bundle"]["savings_per_day"]) == pytest.approx(100_000 * cov * 2.5 / 1000, abs=1e-3)
    assert float(doc["with_bundle"]["savings_per_year"]) == pytest.approx(365 * 100_000 * cov * 2.5 / 1000, abs=0.5)
    assert doc["without_bundle"]["llm_calls_per_day"] == 100_000
    assert doc["without_bundle"]["savings_per_day"] == "0"
    assert 0 < float(doc["with_bundle_conservative"]["coverage"]) < cov
    nulls = build_artifacts(real_rows, manifest=manifest_for(real_rows), no_examples=True,
                            previous_manifest=None, cost=None)["artifacts/cost.json"]
    assert nulls["teacher_cost_per_1k"] is None and nulls["with_bundle"]["cost_per_day"] is None
    assert float(nulls["with_bundle"]["calls_avoided_per_1k"]) == pytest.approx(1000 * cov, abs=0.01)


def test_deltas_against_a_previous_manifest(real_rows, arts):
    assert arts["artifacts/deltas.json"]["previous"] is None
    before = real_rows.score >= np.quantile(real_rows.score, 0.7)  # the old bundle handled less
    previous = manifest_for(real_rows, handled=before)
    now = manifest_for(real_rows)
    doc = build_artifacts(real_rows, manifest=now, no_examples=False, previous_manifest=previous,
                          cost=None)["artifacts/deltas.json"]
    shadow = next(o for o in doc["overall"] if o["split"] == "shadow")
    gained = real_rows.handled[N_CAL:].mean() - before[N_CAL:].mean()
    assert gained > 0 and float(shadow["coverage_change"]) == pytest.approx(gained, abs=1e-5)
    changes = {d["label"]: d for d in doc["per_label"]}
    for entry in now["per_label"]:
        m = real_rows.teacher == real_rows.labels.index(entry["label"])
        want = real_rows.handled[m].mean() - before[m].mean()
        assert float(changes[entry["label"]]["change"]) == pytest.approx(want, abs=1e-5)
    mags = [abs(float(d["change"])) for d in doc["per_label"]]
    assert mags == sorted(mags, reverse=True)
    assert doc["warnings"] == [] and doc["labels_added"] == []


def test_no_examples_leaves_no_trace_text_anywhere(real_rows, arts):
    assert len(_leaked_texts(arts, real_rows.texts)) > 100  # the scan finds texts when present
    bare = build_artifacts(real_rows, manifest=manifest_for(real_rows), no_examples=True,
                           previous_manifest=None, cost=None)
    assert _leaked_texts(bare, real_rows.texts) == []
    reps = bare["artifacts/representatives.json"]["labels"]
    assert all(e["handled"]["example"]["text"] is None for e in reps if e["handled"])
    assert bare["artifacts/slices.json"] == arts["artifacts/slices.json"]  # counts unchanged


def test_build_is_deterministic(real_rows, arts):
    again = build_artifacts(real_rows, manifest=manifest_for(real_rows), no_examples=False,
                            previous_manifest=None, cost=CostInputs(2.5, 100_000))
    assert again == arts


def test_inconsistent_inputs_are_typed_errors(real_rows):
    short = EvalRows(real_rows.texts, real_rows.teacher[:-1], real_rows.pred, real_rows.handled,
                     real_rows.score, real_rows.embeddings, real_rows.labels)
    with pytest.raises(ArtifactInputError, match=r"EvalRows.teacher must be a 1-D array of 1500"):
        build_artifacts(short, manifest=manifest_for(real_rows), no_examples=False,
                        previous_manifest=None, cost=None)
    with pytest.raises(ParameterError, match=r"'teacher_cost_per_1k' .* Got -1.0 instead"):
        build_artifacts(real_rows, manifest=manifest_for(real_rows), no_examples=False,
                        previous_manifest=None, cost=CostInputs(-1.0, None))
