"""Routing a large log on an existing engine: Dask with two local worker processes.

Each worker verifies the bundle once, and the decisions equal ``Router.route_batch``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import data_path, run_tracec, write_subset
from tracec_runtime import Router

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    base = tmp_path_factory.mktemp("scale")
    run_tracec("keygen", "--out", base / "ci", check_code=0)
    traces = data_path("banking77", "traces_qwen3-30b", "train.jsonl")
    emb = data_path("banking77", "train.minilm-l6-v2.f16.npy")
    t, e = write_subset(base, traces, emb, np.arange(3000), "train")
    run_tracec("compile", t, "--embeddings", e, "--embedder-id", "minilm", "--alpha", "0.85",
               "--signing-key", base / "ci.key", "--out", base / "bundle", check_code=0)
    return base / "bundle", base / "ci.pub"


def test_dask_workers_verify_once_and_match_the_runtime(bundle):
    from tracec_runtime.scale import route_block, verifications

    path, pub = (str(p) for p in bundle)
    X = np.load(data_path("banking77", "test.minilm-l6-v2.f16.npy")).astype(np.float32)
    X = np.concatenate([X] * 4)  # 12,320 rows in 16 blocks over 2 workers
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster, \
            distributed.Client(cluster) as client:
        arr = da.from_array(X, chunks=(770, X.shape[1]))
        got = arr.map_blocks(route_block, path, pub, dtype=np.int64, drop_axis=1).compute()
        counts = client.run(verifications)
    local = Router.load(path, pub).route_batch(X)
    expected = np.where(local.handled, local.label_index, -1)
    np.testing.assert_array_equal(got, expected)
    assert sorted(counts.values()) == [1, 1], counts  # one verification per worker process


def test_route_rows_columns(bundle):
    from tracec_runtime.scale import route_rows

    X = np.load(data_path("banking77", "test.minilm-l6-v2.f16.npy"))[:50]
    cols = route_rows(X, str(bundle[0]), str(bundle[1]))
    assert len(cols["label"]) == 50 and all((lab is None) != h for lab, h in zip(cols["label"], cols["handled"]))
    json.dumps(cols)
