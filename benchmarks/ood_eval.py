"""The out-of-distribution gate on the shared data: coverage cost and OOD deferral.

For each task (Banking77 real teacher, CLINC150 in-scope gold, SICK gold) and each alpha,
compile twice with the installed CLI, with the gate (default) and with ``--no-ood``, route
the task's test split, and print certified calibration coverage, test coverage and test TA
side by side; then route out-of-distribution inputs through the gated bundles:
1,000 random unit vectors, MNLI inputs (into Banking77), CLINC150 ``oos`` test rows (into
CLINC150) and any extra ``--ood NAME=PATH.npy`` embeddings.

    python -m benchmarks.ood_eval --work /tmp/ood [--alphas 0.8,0.85,0.9,0.95] \
        [--ood gibberish=/tmp/gib.npy] [--json out.json]
    python -m benchmarks.ood_eval --work /tmp/ood --latency banking77_llm:0.9

``--latency TASK:ALPHA`` times the embedding-in path (``benchmarks/rt_tracec.py latency``,
one thread, the task's test embeddings) on that pair of bundles, interleaved, 3 rounds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

DATA = Path("/work/shared/data")
EMB = ".minilm-l6-v2.f16.npy"
TRACEC = Path(sys.executable).parent / "tracec"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _task(work: Path, name: str, folder: str, traces: str, teacher: str, drop: str | None):
    """(train traces path, train embeddings path, X_test, teacher_test names, X_oos or None)."""
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    src = {s: _rows(DATA / folder / (f"{traces}/{s}.jsonl" if traces else f"{s}.jsonl"))
           for s in ("train", "test")}
    X = {s: np.load(DATA / folder / f"{s}{EMB}") for s in ("train", "test")}
    keep = {s: np.array([r["label"] != drop for r in src[s]]) for s in src}
    lines = [json.dumps({"input": r["input"], "teacher": r[teacher]}) + "\n"
             for r, k in zip(src["train"], keep["train"]) if k]
    (out / "train.jsonl").write_text("".join(lines), "utf-8")
    np.save(out / "train.npy", X["train"][keep["train"]])
    test_teacher = [r[teacher] for r, k in zip(src["test"], keep["test"]) if k]
    oos = X["test"][~keep["test"]].astype(np.float32) if drop else None
    return out / "train.jsonl", out / "train.npy", X["test"][keep["test"]].astype(np.float32), \
        test_teacher, oos


TASKS = {
    "banking77_llm": ("banking77", "traces_qwen3-30b", "teacher", None),
    "clinc150_gold": ("clinc150", None, "label", "oos"),
    "sick_gold": ("sick", None, "label", None),
}


def _compile(traces: Path, emb: Path, out: Path, alpha: str, gated: bool) -> dict:
    cmd = [str(TRACEC), "compile", str(traces), "--embeddings", str(emb), "--embedder-id", "minilm",
           "--alpha", alpha, "--out", str(out), "--force", "--json"]
    done = subprocess.run(cmd + ([] if gated else ["--no-ood"]), capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"compile failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _route(bundle: Path, X: np.ndarray, teacher: list | None):
    from tracec_runtime import Router

    batch = Router.load(bundle, allow_unsigned=True).route_batch(X)
    if teacher is None:
        return {"deferred": round(1 - batch.coverage, 4), "ood_share": round(batch.ood_share, 4)}
    names = np.array(batch.label_names, dtype=object)[batch.label_index]
    h = batch.handled
    ta = float(np.mean(names[h] == np.array(teacher, dtype=object)[h])) if h.any() else 0.0
    return {"coverage": round(batch.coverage, 4), "ta": round(ta, 4),
            "ood_share": round(batch.ood_share, 4)}


def _random_units(n: int = 1000, dim: int = 384) -> np.ndarray:
    x = np.random.default_rng(12345).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def latency(work: Path, task: str, alpha: str, rounds: int = 3, calls: int = 20000) -> dict:
    """p50 / p99 single decision and batch decisions/s, plain vs gated, side by side."""
    from benchmarks import procs
    from benchmarks.runtime_bench import RT_TRACEC, _summarise

    folder = TASKS[task][0]
    x_path, out = work / "latency_x.npy", work / "latency.json"
    np.save(x_path, np.load(DATA / folder / f"test{EMB}").astype(np.float32))
    runs: dict = {"plain": [], "ood": []}
    for _ in range(rounds):
        for tag in runs:
            bundle = work / task / f"a{alpha}_{tag}"
            done = procs.run([sys.executable, str(RT_TRACEC), "latency", str(bundle), "-",
                              str(x_path), str(out), str(calls)], env=procs.one_thread_env())
            if done.returncode != 0:
                raise SystemExit(f"latency run failed: {done.stderr[-2000:]}")
            runs[tag].append(_summarise(json.loads(out.read_text())))
    summary = {tag: {k: float(np.median([r[k] for r in rs]))
                     for k in ("p50", "p99", "batch_decisions_per_s")} for tag, rs in runs.items()}
    for tag, v in summary.items():
        print(f"{task} a={alpha} {tag:5}: p50 {v['p50']:.2f} us, p99 {v['p99']:.2f} us, "
              f"batch {v['batch_decisions_per_s'] / 1e6:.2f} M decisions/s", flush=True)
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--alphas", default="0.8,0.85,0.9,0.95")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--ood", action="append", default=[], help="NAME=PATH.npy, routed into every task")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--latency", metavar="TASK:ALPHA", help="time the bundles an earlier run wrote")
    args = ap.parse_args()
    if args.latency:
        task, alpha = args.latency.split(":")
        latency(args.work, task, alpha)
        return
    mnli = np.concatenate([np.load(DATA / "mnli_sample" / f"dev_{s}{EMB}")
                           for s in ("matched", "mismatched")]).astype(np.float32)
    extra = {k: np.load(v).astype(np.float32) for k, v in (o.split("=", 1) for o in args.ood)}
    results = []
    for name in args.tasks.split(","):
        traces, emb, X_test, t_test, oos = _task(args.work, name, *TASKS[name])
        for alpha in args.alphas.split(","):
            row = {"task": name, "alpha": alpha}
            for gated in (False, True):
                out = args.work / name / f"a{alpha}_{'ood' if gated else 'plain'}"
                doc = _compile(traces, emb, out, alpha, gated)
                cal = doc["manifest"]["calibration"]
                tag = "ood" if gated else "plain"
                row[tag] = {"gate": doc["gate"], "cal_coverage": float(cal["coverage"]),
                            "test": _route(out, X_test, t_test)}
                if gated:
                    row["deferred"] = {"random_unit": _route(out, _random_units(), None)}
                    if name.startswith("banking77"):
                        row["deferred"]["mnli"] = _route(out, mnli, None)
                    if oos is not None:
                        row["deferred"]["clinc_oos"] = _route(out, oos, None)
                    for k, v in extra.items():
                        row["deferred"][k] = _route(out, v, None)
            results.append(row)
            p, o = row["plain"], row["ood"]
            print(f"{name:14} a={alpha:5} cal cov {p['cal_coverage']:.4f} -> {o['cal_coverage']:.4f}"
                  f"  test cov {p['test']['coverage']:.4f} -> {o['test']['coverage']:.4f}"
                  f"  TA {p['test']['ta']:.4f} -> {o['test']['ta']:.4f}"
                  f"  test ood {o['test']['ood_share']:.4f}  deferred {row['deferred']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), "utf-8")


if __name__ == "__main__":
    main()
