"""compile --rules: bad rules files (typed errors, exit 3), and a real Banking77 bundle whose
never_handle label is never handled at runtime, identically on both engines."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import data_path, read_json, run_tracec, write_subset
from tracec.rules import RulesError, check_labels, read_rules
from tracec_runtime.decision import RULE_REASON
from tracec_runtime.router import Router
from tracec_runtime.rules import RULE_NEVER

LABELS = ("card_arrival", "lost_or_stolen_card", "top_up_failed")


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("name,text,field", [
    ("r.json", '{"never_handle": ["card_arrival"], "max_share": 0.5}', "max_share"),
    ("r.yaml", "min_alpha:\n  card_arrival: 1.5\n", "min_alpha.card_arrival"),
    ("r.yaml", "min_alpha:\n  card_arrival: 0\n", "min_alpha.card_arrival"),
    ("r.yaml", "min_alpha:\n  card_arrival: high\n", "min_alpha.card_arrival"),
    ("r.yml", "max_handled_share: 1.2\n", "max_handled_share"),
    ("r.json", '{"never_handle": "card_arrival"}', "never_handle"),
    ("r.json", '{"never_handle": ["card_arrival"], "min_alpha": {"card_arrival": 0.9}}',
     "min_alpha.card_arrival"),
])
def test_bad_rules_name_the_file_and_field(tmp_path, name, text, field):
    path = _write(tmp_path, name, text)
    with pytest.raises(RulesError) as info:
        read_rules(path)
    err = info.value
    assert err.exit_code == 3 and err.path == str(path) and err.field == field
    assert str(path) in str(err) and repr(field) in str(err)


@pytest.mark.parametrize("name,text,needle", [
    ("r.json", "{not json", "not valid JSON"),
    ("r.yaml", "never_handle: [a\n", "not valid YAML"),
    ("r.yaml", "- card_arrival\n", "mapping at the top level"),
    ("r.toml", "never_handle = []\n", ".json, .yaml or .yml"),
])
def test_unreadable_rules_files(tmp_path, name, text, needle):
    with pytest.raises(RulesError, match=needle):
        read_rules(_write(tmp_path, name, text))


def test_unknown_label_is_refused_with_its_field(tmp_path):
    rules = read_rules(_write(tmp_path, "r.yaml", "never_handle: [card_arrival, Fraud]\n"))
    with pytest.raises(RulesError) as info:
        check_labels(rules, LABELS)
    assert info.value.field == "never_handle[1]" and "'Fraud'" in str(info.value)
    rules = read_rules(_write(tmp_path, "r.json", '{"min_alpha": {"top_up": 0.9}}'))
    with pytest.raises(RulesError, match=r"field 'min_alpha.top_up': unknown label 'top_up'"):
        check_labels(rules, LABELS)
    assert check_labels(read_rules(_write(tmp_path, "ok.yaml", "")), LABELS) is None  # no rules


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rules")
    rows = np.random.default_rng(7).choice(10003, 3000, replace=False)
    t, e = write_subset(tmp, data_path("banking77", "traces_qwen3-30b", "train.jsonl"),
                        data_path("banking77", "train.minilm-l6-v2.f16.npy"), rows, "train")
    return tmp, t, e


def _compile(tmp, t, e, rules: Path, out: str, code: int):
    return run_tracec("compile", t, "--embeddings", e, "--embedder-id", "minilm", "--alpha",
                      "0.85", "--unsigned", "--rules", rules, "--out", tmp / out, "--json",
                      check_code=code)


def test_cli_refuses_bad_rules_with_exit_3_and_writes_nothing(subset):
    tmp, t, e = subset
    for name, text, field in [("bad.yaml", "never_handle: [Fraud]\n", "never_handle[0]"),
                              ("bad.json", '{"min_alpha": {"card_arrival": 2}}',
                               "min_alpha.card_arrival")]:
        proc = _compile(tmp, t, e, _write(tmp, name, text), "refused", 3)
        doc = json.loads(proc.stdout)
        assert doc["ok"] is False and doc["error"]["type"] == "RulesError"
        assert doc["error"]["exit_code"] == 3 and f"field {field!r}" in doc["error"]["message"]
        assert str(tmp / name) in doc["error"]["message"]
        assert not (tmp / "refused").exists()


@pytest.mark.slow  # one real compile, about 45 s on the shared machine
def test_never_handle_label_is_never_handled_on_either_engine(subset):
    tmp, t, e = subset
    teachers = Counter(json.loads(x)["teacher"] for x in t.read_text("utf-8").splitlines())
    never = teachers.most_common(1)[0][0]  # the commonest label: many rows would be handled
    rules = _write(tmp, "rules.yaml", f"never_handle: [{never}]\nmax_handled_share: 0.6\n")
    _compile(tmp, t, e, rules, "bundle", 0)
    bundle = tmp / "bundle"
    manifest = read_json(bundle / "manifest.json")
    assert manifest["rules"] == {"never_handle": [never], "min_alpha": {},
                                 "max_handled_share": "0.6"}
    assert manifest["config"]["rules"]
    assert float(manifest["calibration"]["coverage"]) <= 0.6  # the cap, on calibration
    run_tracec("verify", bundle, "--allow-unsigned", check_code=0)
    run_tracec("report", bundle, "--allow-unsigned", "--out", tmp / "report.html", check_code=0)
    html = (tmp / "report.html").read_text("utf-8")
    assert f"rule:never_handle): {never}" in html and "handled share capped at 0.6" in html

    X = np.load(data_path("banking77", "test.minilm-l6-v2.f16.npy")).astype(np.float32)
    labels = manifest["labels"]
    k_never = labels.index(never)
    batches = {}
    for engine in ("onnxruntime", "numpy"):
        router = Router.load(bundle, allow_unsigned=True, engine=engine)
        assert router.engine == engine
        b = batches[engine] = router.route_batch(X)
        predicted = b.label_index == k_never
        assert predicted.sum() > 30 and not b.handled[predicted].any()
        assert b.handled.any()  # other labels are still answered
        ruled = [i for i, f in enumerate(b.flags) if f == RULE_NEVER]
        assert ruled and all(b.label_index[i] == k_never for i in ruled)
        assert b[ruled[0]].reason == RULE_REASON
        one = router.route(X[ruled[0]])  # the single-row path agrees
        assert not one.handled and one.flag == RULE_NEVER and one.reason == RULE_REASON
    a, b = batches["onnxruntime"], batches["numpy"]
    assert np.array_equal(a.label_index, b.label_index)
    # The engines agree up to float32 rounding (docs/fastpath.md): a test row (not checked at
    # compile) may flip only when both engines score it within that rounding of tau.
    flip = a.handled != b.handled
    tau = np.float32(manifest["policy"]["tau"])
    assert flip.sum() <= 3, np.flatnonzero(flip)
    assert np.all(np.abs(a.score[flip] - tau) <= 1e-5) and np.all(np.abs(b.score[flip] - tau) <= 1e-5)
    assert a.flags == b.flags

    # the route CLI reports the rule per decision
    np.save(tmp / "test.npy", X[:400])
    doc = json.loads(run_tracec("route", bundle, "--embeddings", tmp / "test.npy",
                                "--allow-unsigned", "--json", check_code=0).stdout)
    for d in doc["decisions"]:
        assert not (d["handled"] and d["surrogate_label"] == never)
        assert (d["flag"] == RULE_NEVER) == (not d["handled"] and d["surrogate_label"] == never
                                             and d["flag"] is not None)

    # codegen fails closed: the generated code does not apply routing rules, so it refuses
    out = tmp / "gen"
    proc = run_tracec("codegen", bundle, "--lang", "c", "--out", out, "--allow-unsigned",
                      check_code=1)
    assert "rules.never_handle" in proc.stderr and not out.exists()
