"""Where the gap between tracec's certified test coverage and the hindsight baseline comes
from (issue 13), per task x size x alpha, as a chain of measured steps on the test split:

 1. hindsight: ``baseline.py``'s LR trained on all n traces, threshold chosen on test;
 2. hindsight on tracec's own shipped model and score (the primary stage refit on
    train + validation, its shipped acceptor score), threshold chosen on test;
 3. valid oracle (``cert_oracle``): on step 2's test TA curve, the largest coverage one
    Clopper-Pearson test at full delta on tracec's calibration-split size passes with
    probability >= 0.5;
 4. tracec's certified test coverage (``certify_sweep``).

1 - 2 is the model / training-rows cost, 2 - 3 the finite-sample cost of any valid single-test
certificate at this calibration size, 3 - 4 tracec's procedure (planning the start on
validation, delta splitting, family choice, calibration noise).  One process, one thread.

    OMP_NUM_THREADS=1 python -m benchmarks.gap_decomposition --data ../shared/data \\
        [--tasks sick_gold,banking77_llm] [--sizes 1000,2000,5000,10000] [--seeds 0]

Writes ``benchmarks/results/gap_decomposition.json`` and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.cert_oracle import valid_oracle
from benchmarks.metrics import hindsight_threshold

REPO = Path(__file__).resolve().parents[1]
ALPHAS = (0.80, 0.85, 0.90, 0.95)


def decompose(root: Path, task: str, n: int | None, alphas, seed: int, delta: float = 0.05) -> dict:
    from benchmarks import certify_sweep
    from tracec.policy import score_stage
    from threadpoolctl import threadpool_limits

    keep: dict = {}
    cert = certify_sweep.run(task, alphas, train_rows=n, seed=seed, delta=delta, root=root,
                             keep=keep)
    with threadpool_limits(limits=1):
        shipped = keep["ship"](keep["primary"])
        s = score_stage(shipped, keep["X_test"].shape[1], {"test": keep["X_test"]})["test"]
    correct = s.label == keep["y_test"]
    n_cal = int(cert["splits"]["calibration"])
    rows = []
    for r in cert["rows"]:
        a = r["alpha"]
        h2 = hindsight_threshold(s.score, correct, a)
        orc = valid_oracle(s.score, correct, a, n_cal, delta)
        rows.append({"alpha": a, "hindsight": r["hindsight_coverage"],
                     "shipped_hindsight": round(h2.coverage, 4),
                     "oracle": round(orc["coverage"], 4), "oracle_detail": orc,
                     "tracec": r["test_coverage"] if r["family"] else 0.0,
                     "tracec_family": r["family"], "tracec_ta": r["test_ta"]})
    return {"task": task, "n": cert["n_traces"], "seed": seed, "splits": cert["splits"],
            "primary": keep["primary"].candidate.name,
            "shipped_full_agreement": round(float(correct.mean()), 4), "rows": rows}


def table(entries: list[dict]) -> str:
    lines = ["| task | traces | n_cal | seed | alpha | 1 hindsight | 2 shipped model, hindsight | "
             "3 valid oracle | 4 tracec | model (1-2) | finite sample (2-3) | procedure (3-4) | "
             "oracle - hindsight |", "|" + "---|" * 13]
    for e in entries:
        for r in e["rows"]:
            h, m, o, t = (100 * r[k] for k in ("hindsight", "shipped_hindsight", "oracle", "tracec"))
            tc = f"{r['tracec']:.3f}" if r["tracec_family"] else "refused"
            lines.append(f"| {e['task']} | {e['n']:,} | {e['splits']['calibration']:,} | "
                         f"{e['seed']} | {r['alpha']:.2f} | {r['hindsight']:.3f} | "
                         f"{r['shipped_hindsight']:.3f} | {r['oracle']:.3f} | {tc} | "
                         f"{h - m:+.1f} | {m - o:+.1f} | {o - t:+.1f} | {o - h:+.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gap_decomposition",
                                description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    p.add_argument("--runs", default="sick_gold:all,banking77_llm:1000,banking77_llm:2000,"
                   "banking77_llm:5000,banking77_llm:10000",
                   help="comma list of task:n (n = all: every training trace)")
    p.add_argument("--alphas", default=",".join(map(str, ALPHAS)))
    p.add_argument("--seeds", default="0")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gap_decomposition.json")
    args = p.parse_args(argv)
    alphas = [float(a) for a in args.alphas.split(",")]
    entries = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for run in args.runs.split(","):
            task, _, n = run.partition(":")
            e = decompose(args.data.resolve(), task, None if n in ("", "all") else int(n),
                          alphas, seed)
            print(f"[gap] {json.dumps(e)}", file=sys.stderr, flush=True)
            entries.append(e)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"command": "python -m benchmarks.gap_decomposition "
                                            + " ".join(argv or sys.argv[1:]),
                                            "entries": entries}, indent=2) + "\n")
    print(table(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
