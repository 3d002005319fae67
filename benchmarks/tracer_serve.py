"""Measure TRACER's Router from its own virtual environment (``benchmarks/.venv-tracer``).

    python tracer_serve.py latency ARTIFACT_DIR X_TEST.npy OUT.json CALLS THREADS
    python tracer_serve.py cold ARTIFACT_DIR X_ONE.npy

Imports numpy, TRACER and the standard library only.  Mirrors ``rt_tracec.py``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _load_router(artifact_dir: str):
    """TRACER's Router, loaded by TRACER from its artifact directory (the OOD gate is used
    when the directory holds ``ood.json``)."""
    from tracer.runtime.router import Router

    return Router.load(artifact_dir)


def run_latency(artifact_dir: str, x_path: str, calls: int, batch_seconds: float) -> dict:
    import numpy as np

    router = _load_router(artifact_dir)
    X = np.load(x_path).astype(np.float32)
    for i in range(min(50, len(X))):  # warm-up
        router.predict(X[i])
    times = np.empty(calls)
    for i in range(calls):
        x = X[i % len(X)]
        t0 = time.perf_counter_ns()
        router.predict(x)
        times[i] = time.perf_counter_ns() - t0
    router.predict_batch(X)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < batch_seconds:
        router.predict_batch(X)
        n += len(X)
    elapsed = time.perf_counter() - t0
    return {"single_ns": times.tolist(), "batch_decisions": n, "batch_seconds": elapsed,
            "batch_size": len(X), "ood_gate": bool(router._ood_gate is not None)}


def peak_rss_kib() -> int:
    """This process's own peak RSS (``VmHWM``).  Not ``ru_maxrss``: Linux carries the forking
    parent's high-water mark over exec into it."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def run_cold(artifact_dir: str, x_path: str) -> None:
    """Import, load and one decision, then print the RSS peak (the parent times us)."""
    import numpy as np

    router = _load_router(artifact_dir)
    decision = router.predict(np.load(x_path).astype(np.float32)[0])
    print(json.dumps({"decision": decision["decision"], "peak_rss_kib": peak_rss_kib()}))


def main(argv: list[str]) -> int:
    if argv[:1] == ["latency"] and len(argv) == 6:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = argv[5]
        Path(argv[3]).write_text(json.dumps(run_latency(argv[1], argv[2], int(argv[4]), 3.0)))
        return 0
    if argv[:1] == ["cold"] and len(argv) == 3:
        run_cold(argv[1], argv[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
