"""Rows/s of routing a large embedding log on Dask (2 local worker processes) vs one process.

    python -m benchmarks.scale_bench BUNDLE PUB EMB.npy [--rows 1000000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("pub")
    p.add_argument("embeddings")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--chunk", type=int, default=50_000)
    p.add_argument("--out", default="benchmarks/results/scale.json")
    args = p.parse_args(argv)
    import dask.array as da
    import distributed

    from tracec_runtime import Router
    from tracec_runtime.scale import route_block

    base = np.load(args.embeddings).astype(np.float32)
    X = np.resize(base, (args.rows, base.shape[1]))
    router = Router.load(args.bundle, args.pub)
    t0 = time.perf_counter()
    for i in range(0, len(X), args.chunk):
        router.route_batch(X[i:i + args.chunk])
    one = time.perf_counter() - t0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster, \
            distributed.Client(cluster):
        arr = da.from_array(X, chunks=(args.chunk, X.shape[1])).persist()
        arr.map_blocks(route_block, args.bundle, args.pub, dtype=np.int64, drop_axis=1)[:10].compute()
        t0 = time.perf_counter()
        arr.map_blocks(route_block, args.bundle, args.pub, dtype=np.int64, drop_axis=1).compute()
        two = time.perf_counter() - t0
    doc = {"rows": args.rows, "one_process_rows_per_s": round(args.rows / one),
           "dask_2_workers_rows_per_s": round(args.rows / two), "chunk": args.chunk}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
