"""tracec_runtime measurements, run as a child process of the harness (main venv).

    python -m benchmarks.rt_tracec latency BUNDLE PUBKEY X.npy OUT.json CALLS
    python -m benchmarks.rt_tracec cold BUNDLE PUBKEY X_ONE.npy

``cold`` is the whole point of a new process: import, verify, load, one decision; the
parent times it from outside and reads the child's peak RSS.  ``PUBKEY`` may be ``-`` for
an unsigned bundle.  Mirrors ``tracer_driver.py latency`` / ``cold``.
"""

from __future__ import annotations

import sys


def _router(bundle: str, pub: str):
    from tracec_runtime import Router

    return Router.load(bundle, allow_unsigned=True) if pub == "-" else Router.load(bundle, pub)


def latency(bundle: str, pub: str, x_path: str, out: str, calls: int, batch_seconds: float = 3.0):
    import json
    import time

    import numpy as np

    router = _router(bundle, pub)
    X = np.load(x_path).astype(np.float32)
    for i in range(min(200, len(X))):  # warm-up
        router.route(X[i])
    times = np.empty(calls)
    for i in range(calls):
        x = X[i % len(X)]
        t0 = time.perf_counter_ns()
        router.route(x)
        times[i] = time.perf_counter_ns() - t0
    router.route_batch(X)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < batch_seconds:
        router.route_batch(X)
        n += len(X)
    elapsed = time.perf_counter() - t0
    with open(out, "w") as fh:
        json.dump({"single_ns": times.tolist(), "batch_decisions": n, "batch_seconds": elapsed,
                   "batch_size": len(X)}, fh)


def peak_rss_kib() -> int:
    """This process's own peak RSS (``VmHWM``).  Not ``ru_maxrss``: Linux carries the forking
    parent's high-water mark over exec into it."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def cold(bundle: str, pub: str, x_path: str) -> None:
    import numpy as np

    router = _router(bundle, pub)
    decision = router.route(np.load(x_path)[0])
    print('{"handled": %s, "peak_rss_kib": %d}' % (str(decision.handled).lower(), peak_rss_kib()))


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["latency"] and len(args) == 6:
        latency(args[1], args[2], args[3], args[4], int(args[5]))
    elif args[:1] == ["cold"] and len(args) == 4:
        cold(args[1], args[2], args[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
