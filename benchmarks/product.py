"""The product benchmarks beside the TRACER comparison (``make bench`` runs both).

    python -m benchmarks.product [--data ../shared/data] [--work DIR] [--quick] [--only STEP]
        [--soak-s 300]   (make soak: the serve step alone with a 5-minute soak)

Each step is its own script (run alone for details) and writes benchmarks/results/*.json:

    embedder      int8 ONNX vs sentence-transformers fp32: latency, fidelity, cold start, RSS
    ood           the OOD gate: coverage cost per task and alpha, OOD shares, latency
    loader        time and peak RSS to refuse 2 GiB oversized bundle files
    codegen       source sizes, load time, latency and throughput per generated language
    serve         the HTTP service under wrk on 127.0.0.1: embedding and text requests at 1/16/64
                  connections, 16 with and without a stalled client (--soak-s: RSS soak)
    scale         rows/s routing 1M embeddings on Dask (2 local workers) vs one process

Loopback only, every step bounded in time; a step that fails is reported and the rest run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BIN = Path(sys.executable).parent


def _run(name: str, args: list, timeout: float) -> dict:
    start = time.time()
    print(f"== {name}: {' '.join(map(str, args))}", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run([sys.executable, "-m", *map(str, args)], cwd=REPO, timeout=timeout)
        ok = proc.returncode == 0
    except subprocess.TimeoutExpired:
        ok = False
    return {"step": name, "ok": ok, "seconds": round(time.time() - start, 1)}


def _bundle(work: Path, data: Path, rows: int) -> tuple[Path, Path, Path]:
    """A signed Banking77 (real teacher) embedding-in bundle and its test embeddings."""
    out, key = work / "b77", work / "ci"
    if not out.exists():
        subprocess.run([BIN / "tracec", "keygen", "--out", key], check=True, capture_output=True)
        traces = data / "banking77" / "traces_qwen3-30b" / "train.jsonl"
        lines = traces.read_text("utf-8").splitlines()[:rows]
        (work / "train.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
        np.save(work / "train.npy", np.load(data / "banking77" / "train.minilm-l6-v2.f16.npy")[:rows])
        subprocess.run([BIN / "tracec", "compile", work / "train.jsonl", "--embeddings",
                        work / "train.npy", "--embedder-id", "all-MiniLM-L6-v2", "--alpha", "0.9",
                        "--signing-key", f"{key}.key", "--out", out], check=True)
    return out, Path(f"{key}.pub"), data / "banking77" / "test.minilm-l6-v2.f16.npy"


def _text_bundle(work: Path) -> Path:
    """A signed text-in bundle of the example traces (as ``make demo`` builds it)."""
    out = work / "text"
    if not out.exists():
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        subprocess.run([BIN / "tracec", "compile", REPO / "examples" / "traces.jsonl", "--alpha", "0.9",
                        "--signing-key", work / "ci.key", "--out", out], check=True, env=env)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("TRACEC_SHARED_DATA",
                                                                    REPO.parent / "shared" / "data")))
    p.add_argument("--work", type=Path)
    p.add_argument("--quick", action="store_true", help="shorter runs (minutes, not tens of)")
    p.add_argument("--only", help="run one step, e.g. serve")
    p.add_argument("--soak-s", type=float, default=0.0, help="serve: soak this long (make soak: 300)")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="tracec-product-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    q = args.quick
    bundle, pub, test_emb = _bundle(work, args.data, 10003)
    text = ["--text-bundle", _text_bundle(work), "--texts", REPO / "examples" / "holdout.jsonl"]
    steps = [
        ("embedder", ["benchmarks.embedder_bench", "--n", 200 if q else 500], 1800),
        ("ood", ["benchmarks.ood_eval", "--work", work / "ood", "--alphas", "0.9" if q else
                 "0.8,0.85,0.9,0.95", "--json", RESULTS / "ood.json"], 3600),
        ("loader", ["benchmarks.loader_limits", "--size-gb", 2], 600),
        ("codegen", ["benchmarks.codegen_bench", "--data", args.data, "--repeat", 1 if q else 3], 1800),
        ("serve", ["benchmarks.serve_bench", bundle, pub, test_emb, *text, "--seconds", 3 if q else 10,
                   "--soak-s", args.soak_s, "--out", RESULTS / "serve.json"], 900 + 2 * args.soak_s),
        ("scale", ["benchmarks.scale_bench", bundle, pub, test_emb, "--rows",
                   200_000 if q else 1_000_000, "--out", RESULTS / "scale.json"], 900),
    ]
    summary = [_run(name, cmd, timeout) for name, cmd, timeout in steps if args.only in (None, name)]
    if args.only is None:  # one step alone leaves the full run's summary in place
        (RESULTS / "product.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0 if all(s["ok"] for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
