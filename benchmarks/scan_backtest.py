"""Backtest of `tracec scan`'s projection: scan the first N traces of a task (one seeded
shuffle, as ``certify_sweep --train-rows``), then certify at larger sizes of the same shuffle
and compare projected with certified coverage (the power-law and the no-learning ends, and whether
the certified coverage fell between them).  The numbers are in docs/scan.md.

    python -m benchmarks.scan_backtest --task banking77_llm --scan-rows 1000 --at 2000,5000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from benchmarks import certify_sweep
from benchmarks.data import load_task
from tracec.scan import scan, scan_config


def run(task: str, scan_rows: int, at, alphas, seed: int = 0, root: Path = Path(os.environ.get(
        "TRACEC_SHARED_DATA", "/work/shared/data"))) -> dict:
    data = load_task(root, task)
    rows = np.sort(np.random.default_rng(seed).permutation(len(data.X_train))[:scan_rows])
    records = [{"input": data.texts_train[i], "teacher": str(data.teacher_train[i])} for i in rows]
    doc = scan(scan_config(records, tuple(alphas), 0.05, seed,
                           embeddings=np.asarray(data.X_train[rows], dtype=np.float32),
                           embedder_id="minilm-l6-v2"))
    actual = {n: certify_sweep.run(task, alphas, train_rows=n, seed=seed, root=root) for n in at}
    table = []
    for a in doc["alphas"]:
        row = {"alpha": a["alpha"], "scan_now": a["coverage_now"],
               "model_now": a["model_coverage_now"], "traces_to_open": a["traces_to_open"]}
        for n in at:
            proj = next((p for p in a["at"] if p["traces"] == n), None)
            got = next(r for r in actual[n]["rows"] if abs(r["alpha"] - a["alpha"]) < 1e-9)
            row[f"projected_{n}"] = proj and [proj["low"], proj["median"], proj["high"]]
            row[f"no_learning_{n}"] = proj and proj["no_learning"]
            row[f"certified_{n}"] = got["cal_coverage"]
            row[f"test_{n}"] = got["test_coverage"]
            row[f"in_range_{n}"] = proj and within(got["cal_coverage"], proj)
        table.append(row)
    return {"task": task, "scan_rows": scan_rows, "rows": table}


def within(certified: float, proj: dict, slack: float = 0.02) -> bool:
    """Certified coverage between the no-learning and the power-law ends (either order; the
    projection grid's 0.02 step as slack)."""
    ends = (proj["no_learning"], proj["median"])
    return min(ends) - slack <= certified <= max(ends) + slack


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="banking77_llm")
    ap.add_argument("--scan-rows", type=int, default=1000)
    ap.add_argument("--at", default="2000,5000")
    ap.add_argument("--alphas", default="0.8,0.85,0.9,0.95")
    args = ap.parse_args()
    out = run(args.task, args.scan_rows, [int(x) for x in args.at.split(",")],
              [float(a) for a in args.alphas.split(",")])
    print(json.dumps(out, indent=1))
    for r in out["rows"]:
        print(r, file=sys.stderr)


if __name__ == "__main__":
    main()
