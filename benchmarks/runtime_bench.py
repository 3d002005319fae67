"""Serving cost of tracec_runtime.Router vs TRACER's Router, each in its own child process
with every math library on one thread: single-decision latency, batch throughput, cold
start (median wall time of fresh processes) and the cold process's peak RSS (its own
``VmHWM``, read by the child: ``ru_maxrss`` from ``wait4`` would include the harness's own
footprint, which Linux carries over the fork/exec)."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import procs, tracer_adapter
from benchmarks.errors import SubprocessFailed
from benchmarks.metrics import percentiles_us

RT_TRACEC = Path(__file__).resolve().with_name("rt_tracec.py")


def _summarise(raw: dict) -> dict:
    single = np.asarray(raw["single_ns"], dtype=float) / 1e9
    return {"calls": int(len(single)), **percentiles_us(single, (50, 90, 99)),
            "mean_us": float(single.mean() * 1e6),
            "batch_decisions_per_s": raw["batch_decisions"] / raw["batch_seconds"],
            "batch_size": raw["batch_size"]}


def _cold(cmd: list[str], repeats: int) -> dict:
    walls, rss = [], []
    env = procs.one_thread_env()
    for _ in range(repeats):
        done = procs.run(cmd, env=env)
        if done.returncode != 0:
            raise SubprocessFailed("cold start " + " ".join(cmd[:3]), done.returncode, done.stderr)
        walls.append(done.wall_s)
        rss.append(json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_kib"] / 1024)
    return {"repeats": repeats, "median_s": statistics.median(walls), "min_s": min(walls),
            "max_s": max(walls), "peak_rss_mib": statistics.median(rss), "all_s": walls}


def tracec_runtime(bundle: Path, public_key: Path | None, X: np.ndarray, calls: int,
                   repeats: int) -> dict:
    pub = str(public_key) if public_key else "-"
    with tempfile.TemporaryDirectory(prefix="rt-tracec-") as tmp:
        x_path, one, out = Path(tmp) / "x.npy", Path(tmp) / "one.npy", Path(tmp) / "lat.json"
        np.save(x_path, X.astype(np.float32))
        np.save(one, X[:1].astype(np.float32))
        done = procs.run([sys.executable, str(RT_TRACEC), "latency", str(bundle), pub, str(x_path),
                          str(out), str(calls)], env=procs.one_thread_env())
        if done.returncode != 0:
            raise SubprocessFailed("tracec latency run", done.returncode, done.stderr)
        result = _summarise(json.loads(out.read_text()))
        result["cold"] = _cold([sys.executable, str(RT_TRACEC), "cold", str(bundle), pub, str(one)],
                               repeats)
    result.update(bundle=str(bundle), signed=public_key is not None)
    return result


def tracer_runtime(py: Path, artifact: Path, X: np.ndarray, calls: int, repeats: int,
                   ood: bool) -> dict:
    """TRACER's Router on its artifact as written (``ood=True``: with the kNN OOD gate) or on
    a copy without ``ood.json`` and the index (``ood=False``)."""
    with tempfile.TemporaryDirectory(prefix="rt-tracer-") as tmp:
        x_path, one = Path(tmp) / "x.npy", Path(tmp) / "one.npy"
        np.save(x_path, X.astype(np.float32))
        np.save(one, X[:1].astype(np.float32))
        art = artifact if ood else tracer_adapter.without_ood(artifact, Path(tmp) / "no-ood.tracer")
        raw = tracer_adapter.latency(py, art, x_path, calls)
        result = _summarise(raw)
        result["ood_gate"] = raw["ood_gate"]
        result["cold"] = _cold(tracer_adapter.cold_command(py, art, one), repeats)
    result.update(artifact=str(artifact))
    return result
