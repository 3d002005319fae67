"""Codegen differential tests on ALL test rows of Banking77 (3,080) and CLINC150 (5,500).

Bundles are compiled by `tracec compile` from 4,000-row training subsets: Banking77 with the
real Qwen3-30B teacher (families l2d and global), CLINC150 with its gold intent as the
teacher (151 labels incl. out-of-scope; families l2d and cascade).  Every language must give
the runtime's labels and handled flags on every row, scores within 1e-5.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import data_path, read_json, run_tracec, write_subset
from test_codegen_harness import LANGS, assert_matches_runtime

pytestmark = pytest.mark.slow


def _clinc_subset(tmp, n):
    lines = data_path("clinc150", "train.jsonl").read_text("utf-8").splitlines()
    rows = np.random.default_rng(1).permutation(len(lines))[:n]
    t, e = tmp / "clinc.jsonl", tmp / "clinc.npy"
    docs = [json.loads(lines[i]) for i in rows]
    t.write_text("".join(json.dumps({"input": d["input"], "teacher": d["label"]}) + "\n"
                         for d in docs), encoding="utf-8")
    np.save(e, np.load(data_path("clinc150", "train.minilm-l6-v2.f16.npy"))[rows])
    return t, e


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cg_slow")
    b77_rows = np.random.default_rng(2).permutation(10003)[:4000]
    b77 = write_subset(tmp, data_path("banking77", "traces_qwen3-30b", "train.jsonl"),
                       data_path("banking77", "train.minilm-l6-v2.f16.npy"), b77_rows, "b77")
    return {"banking77": b77, "clinc150": _clinc_subset(tmp, 4000)}


CASES = {  # name: (dataset, compile options, expected manifest family)
    "banking77-l2d": ("banking77", ["--families", "l2d", "--alpha", "0.9"], "l2d"),
    "banking77-global": ("banking77", ["--families", "global", "--alpha", "0.75"], "global"),
    "clinc150-l2d": ("clinc150", ["--families", "l2d", "--alpha", "0.95"], "l2d"),
    "clinc150-cascade": ("clinc150", ["--families", "cascade", "--alpha", "0.95"], "cascade"),
}
_BUNDLES: dict = {}


def _bundle(name, sets, tmp_path_factory):
    if name not in _BUNDLES:
        dataset, options, family = CASES[name]
        t, e = sets[dataset]
        out = tmp_path_factory.mktemp("cg_slow_b") / name
        run_tracec("compile", t, "--embeddings", e, "--embedder-id", "minilm", "--out", out,
                   *options, check_code=0)
        assert read_json(out / "manifest.json")["policy"]["family"] == family
        _BUNDLES[name] = out
    return _BUNDLES[name]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("cg_slow_pkgs")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_all_test_rows_match_runtime(name, lang, sets, root, tmp_path_factory):
    bundle = _bundle(name, sets, tmp_path_factory)
    dataset = CASES[name][0]
    X = np.load(data_path(dataset, "test.minilm-l6-v2.f16.npy")).astype(np.float32)
    info = assert_matches_runtime(bundle, lang, X, root)
    assert info["rows"] == {"banking77": 3080, "clinc150": 5500}[dataset]
