"""Compile time and peak RSS against trace count, on synthetic embedding traces.

    python -m benchmarks.compile_scale [--rows 10000,100000,1000000] [--timeout-s 1200]

For each row count a deterministic synthetic task is written to a temporary directory
(``synthetic_traces``): a mixture of 50 unit-vector clusters in 384-d, cluster sizes skewed,
with a noisy teacher (2-8 % of rows, more in the wider clusters' rows, labelled as a random
other class), stored as float16 ``.npy`` plus a JSONL of ``input`` / ``teacher``.  Then one
``tracec compile --embeddings ... --unsigned --json`` runs as a child process (one at a time,
math libraries on one thread); its ``--json`` gives the per-stage wall times and ``os.wait4``
its peak RSS.  A run that passes ``--timeout-s`` is killed and reported with the last stage
it had started (from its progress lines).  Writes ``benchmarks/results/compile_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import procs
from benchmarks.errors import BudgetExceeded
from benchmarks.procs import one_thread_env

REPO = Path(__file__).resolve().parents[1]
DIM, LABELS, CHUNK = 384, 50, 100_000
STAGES = ("load", "embed", "train", "ood", "score", "certify", "fastpath")  # pipeline order


def synthetic_traces(n: int, folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write ``n`` synthetic traces (JSONL + float16 embeddings) under ``folder``; the same
    ``n`` and ``seed`` always give the same bytes.  Rows are generated in chunks of
    ``CHUNK`` so memory stays at one chunk plus the float16 matrix."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((LABELS, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, LABELS + 1) ** 0.5  # skewed cluster sizes
    weights /= weights.sum()
    X = np.lib.format.open_memmap(folder / "X.f16.npy", mode="w+", dtype=np.float16,
                                  shape=(n, DIM))
    traces = folder / "traces.jsonl"
    with traces.open("w", encoding="utf-8") as fh:
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            z = rng.choice(LABELS, size=m, p=weights)
            spread = rng.uniform(0.03, 0.07, size=(m, 1))  # per-row noise: easy and hard rows
            x = centres[z] + spread * rng.standard_normal((m, DIM))
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            flip = rng.random(m) < 0.02 + 1.5 * (spread[:, 0] - 0.03)  # 2 % to 8 %
            other = (z + rng.integers(1, LABELS, size=m)) % LABELS
            teacher = np.where(flip, other, z)
            X[start:start + m] = x.astype(np.float16)
            fh.writelines(f'{{"input": "synthetic request {start + i}", '
                          f'"teacher": "label_{t:02d}"}}\n' for i, t in enumerate(teacher))
    X.flush()
    del X
    return traces, folder / "X.f16.npy"


def compile_once(traces: Path, X: Path, out: Path, alphas: str, timeout_s: float,
                 log: Path) -> dict:
    """One ``tracec compile`` child; wall, CPU, peak RSS, per-stage timings (or the stage it
    was in when killed)."""
    cmd = [sys.executable, "-m", "tracec.cli", "compile", str(traces), "--embeddings", str(X),
           "--embedder-id", "synthetic gaussian mixture (benchmarks.compile_scale)",
           "--out", str(out), "--alpha", alphas, "--unsigned", "--json", "--force"]
    env = one_thread_env()
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "compiler"), str(REPO / "runtime"),
                                         env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    try:
        done = procs.run(cmd, env=env, timeout_s=timeout_s, stderr_path=str(log))
    except BudgetExceeded:  # the stages it finished, from its progress lines
        stages = re.findall(r"\[(\w+)\] \.\.\.", log.read_text())
        done = re.findall(r"\[(\w+)\] done in ([0-9.]+) s", log.read_text())
        return {"wall_s": timeout_s, "cpu_s": None, "peak_rss_mib": None, "exit_code": None,
                "killed_after_s": timeout_s, "last_stage": stages[-1] if stages else None,
                "finished_stages": {k: float(v) for k, v in done},
                "stderr_tail": log.read_text()[-600:]}
    wall, code, text = done.wall_s, done.returncode, done.stdout
    row = {"wall_s": round(wall, 1), "cpu_s": round(done.cpu_s, 1),
           "peak_rss_mib": round(done.maxrss_kib / 1024, 1), "exit_code": code,
           "killed_after_s": None}
    if code in (0, 1):
        doc = json.loads(text)
        row["timings"] = doc.get("timings_s", {})
        row["gate"] = doc.get("gate")
        row["other_s"] = round(wall - sum(row["timings"].values()), 1)  # start-up, gate, writing
        row["pool_sample"] = (doc.get("manifest") or {}).get("pool_sample")
    else:
        stages = re.findall(r"\[(\w+)\] \.\.\.", log.read_text())
        row["last_stage"] = stages[-1] if stages else None
        row["stderr_tail"] = log.read_text()[-600:]
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compile_scale",
                                description=__doc__.split("\n")[0])
    p.add_argument("--rows", default="10000,100000,1000000", help="comma list of trace counts")
    p.add_argument("--alpha", default="0.9,0.95")
    p.add_argument("--timeout-s", type=float, default=1200.0, help="per compile")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "compile_scale.json")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tracec-scale-"))
    runs = []
    try:
        for n in (int(r) for r in args.rows.split(",")):
            folder = work / str(n)
            folder.mkdir()
            t0 = time.perf_counter()
            traces, X = synthetic_traces(n, folder, args.seed)
            gen_s = time.perf_counter() - t0
            row = {"rows": n, "generate_s": round(gen_s, 1)}
            row.update(compile_once(traces, X, folder / "bundle", args.alpha, args.timeout_s,
                                    folder / "compile.log"))
            runs.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            shutil.rmtree(folder, ignore_errors=True)  # one task on disk at a time
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = {"command": "python -m benchmarks.compile_scale " + " ".join(argv or sys.argv[1:]),
           "alpha": args.alpha, "dim": DIM, "labels": LABELS, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(table(doc))
    return 0


def table(doc: dict) -> str:
    """Markdown: rows, per-stage seconds, total, peak RSS, time per row vs the smallest run."""
    runs = doc["runs"]
    seen = {s for r in runs for s in (r.get("timings") or r.get("finished_stages", {}))}
    stages = [s for s in STAGES if s in seen] + sorted(seen - set(STAGES)) + ["other"]
    base = next((r for r in runs if "timings" in r), None)  # ratios: time per row vs this run
    head = ["rows"] + [f"{s} (s)" for s in stages] + ["total wall (s)", "CPU (s)",
                                                      "peak RSS (MiB)", "wall / linear",
                                                      "CPU / linear"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        if "timings" not in r:
            part = r.get("finished_stages", {})
            cells = [f"{r['rows']:,}"] + [f"{part[s]:.1f}" if s in part else "–" for s in stages] + [
                f"killed at {r['wall_s']:.0f} (in {r.get('last_stage')})"
                if r["killed_after_s"] else f"exit {r['exit_code']}",
                "–" if r["cpu_s"] is None else f"{r['cpu_s']:.0f}",
                "–" if r["peak_rss_mib"] is None else f"{r['peak_rss_mib']:.0f}", "–", "–"]
        else:
            scale = r["rows"] / base["rows"]
            ratio = r["wall_s"] / base["wall_s"] / scale
            cpu_ratio = r["cpu_s"] / base["cpu_s"] / scale
            cells = [f"{r['rows']:,}"] + [f"{dict(r['timings'], other=r.get('other_s', 0)).get(s, 0):.1f}" for s in stages] + [
                f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}", f"{r['peak_rss_mib']:.0f}",
                f"{ratio:.2f}", f"{cpu_ratio:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
