"""The pool's row cap (tracec.pool_sample): a seeded uniform sample above it, recorded in the
manifest; the draw is a function of the seed, so the bundle stays deterministic."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tracec
import tracec.pool_sample as pool_sample
from conftest import data_path
from tracec_runtime.router import Router


def test_capped_is_identity_under_the_cap_and_a_seeded_sorted_sample_above():
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    assert pool_sample.capped(X, y, seed=0, cap=10)[0] is X
    Xs, ys = pool_sample.capped(X, y, seed=3, cap=4)
    assert len(ys) == 4 and np.all(np.diff(ys) > 0)  # distinct rows, in their original order
    assert np.array_equal(Xs, X[ys])  # rows and labels stay aligned
    assert np.array_equal(pool_sample.capped(X, y, seed=3, cap=4)[1], ys)
    draws = {tuple(pool_sample.capped(X, y, seed=s, salt=t, cap=4)[1]) for s in range(4)
             for t in (0, 1)}
    assert len(draws) > 1  # the seed and the salt change the draw


def test_record_is_null_under_the_cap():
    assert pool_sample.record({"train": 600, "validation": 150}, cap=750) is None
    assert pool_sample.record({"train": 600, "validation": 150}, cap=700) == {
        "method": "uniform-seeded", "cap": 700, "pool_fit_rows": 600, "pool_rows": 600,
        "refit_rows_fit": 700, "refit_rows": 750}


@pytest.fixture(scope="module")
def b77_rows(tmp_path_factory):
    lines = data_path("banking77", "traces_qwen3-30b", "train.jsonl").read_text("utf-8").splitlines()
    rows = np.random.default_rng(5).permutation(len(lines))[:700]
    X = np.load(data_path("banking77", "train.minilm-l6-v2.f16.npy"))[rows]
    return [json.loads(lines[i]) for i in rows], X


def test_a_capped_compile_is_recorded_and_verifies(b77_rows, tmp_path, monkeypatch):
    """One compile with the cap below the split sizes (determinism of the draw: above)."""
    records, X = b77_rows
    monkeypatch.setattr(pool_sample, "POOL_CAP", 300)
    said: list[str] = []
    result = tracec.compile(iter(records), out=str(tmp_path / "b"), alpha=[0.8], embeddings=X,
                            embedder_id="minilm", seed=1, families="l2d", ood_quantile=None,
                            progress=said.append)
    m = result.manifest
    train, val = m["counts"]["train"], m["counts"]["validation"]
    assert train > 300
    assert m["pool_sample"] == {"method": "uniform-seeded", "cap": 300, "pool_fit_rows": 300,
                                "pool_rows": train, "refit_rows_fit": 300,
                                "refit_rows": train + val}
    assert f"pool: fitting on a seeded uniform sample of 300 of {train:,} rows (pool_sample)" in said
    assert f"refit: fitting on a seeded uniform sample of 300 of {train + val:,} rows " \
           "(pool_sample)" in said
    router = Router.load(tmp_path / "b", allow_unsigned=True)  # the manifest verifies
    decision = router.route_batch(np.asarray(X, dtype=np.float32))
    assert len(np.asarray(decision.handled)) == len(records)
