"""Data-size sweep (issue 13): test coverage / TA against the number of training traces.

For each task and size n, the first n training traces of one seeded shuffle
(``data.size_subset``) are certified by tracec in process (``certify_sweep.run``: split ->
pool -> primary -> refit -> certify, the certified policy applied to the test split), the
hindsight confidence threshold (``baseline.py``, trained on the same n rows) is computed,
and TRACER (``tracer-llm``, ``fit_frontier`` on the same n rows, memoised, in
``benchmarks/.venv-tracer``) is fitted and routed on test.  One process at a time, math
libraries on one thread.

    python -m benchmarks.size_sweep [--tasks banking77_llm,clinc150_gold] [--sizes 1000,2000,5000,10000]
        [--no-tracer | --tracer-sizes 5000,10000] [--tracer-timeout-s 900]

Writes ``benchmarks/results/size_sweep.json`` and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.metrics import alpha_key

REPO = Path(__file__).resolve().parents[1]
ALPHAS = (0.80, 0.85, 0.90, 0.95)


def sweep(root: Path, tasks, sizes, alphas=ALPHAS, seed: int = 0, delta: float = 0.05,
          tracer_py: Path | None = None, tracer_timeout_s: float = 900.0, tracer_sizes=None,
          log=print) -> list[dict]:
    from benchmarks import certify_sweep  # the compiler: imported here, so the report need not
    from benchmarks.context import Context
    from benchmarks.data import load_task

    work = Path(tempfile.mkdtemp(prefix="tracec-size-sweep-"))
    cache = None if tracer_py is None else tracer_py.parents[1] / "bench-cache"
    ctx = Context(root, work, tuple(alphas), delta, seed, delta, tracer_py, cache, False, log=log)
    out = []
    try:
        for task in tasks:
            full = load_task(root, task)
            for n in sizes:
                if n > len(full.X_train):
                    log(f"{task}: {n:,} > {len(full.X_train):,} training traces, skipped")
                    continue
                t0 = time.perf_counter()
                cert = certify_sweep.run(task, alphas, train_rows=n, seed=seed, delta=delta,
                                         root=root)
                entry = {"task": task, "n": n, "splits": cert["splits"],
                         "tracec_seconds": round(time.perf_counter() - t0, 1),
                         "rows": cert["rows"], "tracer": {"status": "not run (--tracer-sizes)"}}
                if tracer_sizes is None or n in tracer_sizes:
                    entry["tracer"] = _tracer(ctx, full, n, seed, alphas, tracer_timeout_s, log)
                out.append(entry)
                log(json.dumps(entry))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _tracer(ctx, full, n: int, seed: int, alphas, timeout_s: float, log) -> dict:
    from benchmarks.context import tracer_alphas
    from benchmarks.data import size_subset
    from benchmarks.errors import BenchmarkError

    if ctx.tracer_py is None:
        return {"status": "not run"}
    ctx.deadline = time.monotonic() + timeout_s
    try:
        res = tracer_alphas(ctx, size_subset(full, n, seed), alphas, memo=True, bounded=True)
    except BenchmarkError as exc:  # a timeout or a failed fit is reported, not hidden
        log(f"TRACER {full.name}@{n}: {exc}")
        return {"status": "failed", "error": str(exc)[:300]}
    return {"status": "done", "cached": res["cached"], "process_wall_s": res["process_wall_s"],
            "alphas": {k: {"coverage": v["coverage"], "teacher_agreement": v["teacher_agreement"],
                           "family": v["family"]} for k, v in res["alphas"].items()}}


def table(entries: list[dict]) -> str:
    head = ("| task | traces | alpha | tracec test cov | tracec test TA | family | "
            "TRACER cov | TRACER TA | hindsight cov | tracec - hindsight (pts) |")
    lines = [head, "|" + "---|" * 10]
    for e in entries:
        tr = e["tracer"]
        for r in e["rows"]:
            t = tr.get("alphas", {}).get(alpha_key(r["alpha"])) if tr["status"] == "done" else None
            ta = "–" if r["test_ta"] is None else f"{r['test_ta']:.3f}"
            cov = f"{r['test_coverage']:.3f}" if r["family"] else "refused"
            tcov = f"{t['coverage']:.3f}" if t is not None else "not run" \
                if tr["status"].startswith("not run") else "timeout" \
                if "stopped after" in tr.get("error", "") else tr["status"]
            agree = None if t is None else t["teacher_agreement"]   # null or NaN: none handled
            tta = "–" if agree is None or agree != agree else f"{agree:.3f}"
            gap = 100 * (r["test_coverage"] - r["hindsight_coverage"])
            lines.append(f"| {e['task']} | {e['n']:,} | {r['alpha']:.2f} | {cov} | {ta} | "
                         f"{r['family'] or '–'} | {tcov} | {tta} | "
                         f"{r['hindsight_coverage']:.3f} | {gap:+.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.size_sweep",
                                description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    p.add_argument("--tasks", default="banking77_llm,clinc150_gold")
    p.add_argument("--sizes", default="1000,2000,5000,10000")
    p.add_argument("--alphas", default=",".join(map(str, ALPHAS)))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-tracer", action="store_true")
    p.add_argument("--tracer-timeout-s", type=float, default=900.0, help="per TRACER fit")
    p.add_argument("--tracer-sizes", default=None,
                   help="comma list: fit TRACER at these sizes only (default: every size)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "size_sweep.json")
    args = p.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[size-sweep] {msg}", file=sys.stderr, flush=True)

    from benchmarks import tracer_adapter

    py = None if args.no_tracer else tracer_adapter.ensure_venv(log=log)
    entries = sweep(args.data.resolve(), args.tasks.split(","),
                    [int(s) for s in args.sizes.split(",")],
                    [float(a) for a in args.alphas.split(",")], args.seed, tracer_py=py,
                    tracer_timeout_s=args.tracer_timeout_s, log=log,
                    tracer_sizes=None if args.tracer_sizes is None
                    else {int(s) for s in args.tracer_sizes.split(",")})
    doc = {"command": "python -m benchmarks.size_sweep " + " ".join(argv or sys.argv[1:]),
           "seed": args.seed, "entries": entries}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(table(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
