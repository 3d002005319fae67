"""Drive TRACER (PyPI ``tracer-llm``) from its own virtual environment.

Run ONLY with ``benchmarks/.venv-tracer/bin/python``.  Imports numpy, TRACER and the
standard library; nothing from tracec.  Jobs and results are JSON files:

    python tracer_driver.py fit JOB.json OUT.json

(Serving measurements live in ``tracer_serve.py``, so that editing them does not
invalidate cached fit results, whose key includes this file's bytes.)

``fit`` calls ``tracer.fit.pipeline.fit_frontier`` unchanged on the given embeddings and
integer teacher labels and routes the test embeddings with ``route_pipeline`` for every
target.  With ``"memo": true`` it caches ``search_best_surrogate`` results keyed by the
SHA-256 of its inputs: fit_frontier calls it several times on identical arrays with
identical seeds, so the cache returns the very same fitted model the call would have
produced; outputs are unchanged, only repeated work is skipped.  Timed fits use
``"memo": false``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path


def _set_threads(n: int | None) -> None:
    if n:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(n)


def _digest(*arrays) -> str:
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def install_memo(stats: dict) -> None:
    """Cache ``search_best_surrogate`` inside ``tracer.fit.pipeline`` (see module doc)."""
    import tracer.fit.pipeline as pipeline

    original = pipeline.search_best_surrogate
    cache: dict = {}

    def memo(X_train, y_train, X_val, y_val, on_candidate=None, skip=()):
        key = _digest(X_train, y_train, X_val, y_val) + repr(tuple(skip))
        if key in cache:
            stats["hits"] += 1
            return cache[key]
        stats["misses"] += 1
        cache[key] = original(X_train, y_train, X_val, y_val, on_candidate=on_candidate, skip=skip)
        return cache[key]

    pipeline.search_best_surrogate = memo


def _stage_models(best) -> list:
    return [s.get("model_name") for s in best["stages"]] if best else []


def run_fit(job: dict) -> dict:
    import numpy as np

    _set_threads(job.get("threads"))
    import sklearn
    import tracer
    from tracer.fit.pipeline import fit_frontier, route_pipeline

    stats = {"hits": 0, "misses": 0}
    if job.get("memo"):
        install_memo(stats)
    X = np.load(job["X_train"]).astype(np.float32)
    y = np.load(job["y_train"]).astype(int)
    tests = {name: np.load(p).astype(np.float32) for name, p in job["X_test"].items()}
    log = None
    if job.get("verbose"):
        t_start = time.perf_counter()

        def log(msg):
            print(f"[tracer +{time.perf_counter() - t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    frontier, _split = fit_frontier(X, y, [float(t) for t in job["targets"]],
                                    alpha=float(job["cp_alpha"]), log=log)
    fit_seconds = time.perf_counter() - t0
    out = {"fit_seconds": fit_seconds, "memo": bool(job.get("memo")), "memo_stats": stats,
           "versions": {"tracer": tracer.__version__, "sklearn": sklearn.__version__,
                        "numpy": np.__version__, "python": sys.version.split()[0]},
           "targets": []}
    for item in frontier:
        best = item["best"]
        entry = {"target": item["target"], "method": best["summary"]["method"] if best else None,
                 "stage_models": _stage_models(best),
                 "coverage_cal": best["summary"].get("coverage_cal_total") if best else 0.0,
                 "ta_cal": best["summary"].get("teacher_agreement_cal_total") if best else None,
                 "candidates": [{k: c["summary"].get(k) for k in ("method", "status",
                                 "coverage_cal_total", "teacher_agreement_cal_total")}
                                for c in item["candidates"]],
                 "tests": {}}
        for name, Xt in tests.items():
            if best and best["stages"]:
                preds, handled, _ = route_pipeline(best["stages"], Xt)
            else:
                preds, handled = np.full(len(Xt), -1), np.zeros(len(Xt), dtype=bool)
            entry["tests"][name] = {"handled": handled.astype(int).tolist(),
                                    "pred": preds.astype(int).tolist()}
        out["targets"].append(entry)
        art = job.get("artifact")
        if art and best and abs(item["target"] - float(art["target"])) < 1e-9:
            save_artifact(Path(art["dir"]), best, job["labels"], X)
    return out


def save_artifact(artifact_dir: Path, best: dict, labels: list, X) -> None:
    """Write a ``.tracer`` directory the way ``tracer.api.fit`` does, with TRACER's own
    writers: ``pipeline.joblib``, ``manifest.json``, ``ood.json`` and the index embeddings."""
    from tracer.embeddings.index import EmbeddingIndex
    from tracer.fit.ood import fit_ood_gate
    from tracer.fit.pipeline import route_pipeline
    from tracer.policy.artifacts import save_pipeline, write_manifest
    from tracer.types import ArtifactManifest

    artifact_dir.mkdir(parents=True, exist_ok=True)
    path = save_pipeline(artifact_dir, best, labels)
    preds, _, _ = route_pipeline(best["stages"], X)
    gate = fit_ood_gate(X, [labels[int(p)] if p >= 0 else "?" for p in preds])
    if gate is not None:
        (artifact_dir / "ood.json").write_text(json.dumps(gate))
    EmbeddingIndex.build(X).save(artifact_dir / "index")
    s = best["summary"]
    write_manifest(artifact_dir / "manifest.json", ArtifactManifest(
        version="0.1.0", n_traces=len(X), label_space=list(labels), selected_method=s["method"],
        target_teacher_agreement=float(s.get("target_teacher_agreement", 0.9)),
        coverage_cal=s.get("coverage_cal_total"), teacher_agreement_cal=s.get("teacher_agreement_cal_total"),
        embedding_dim=int(X.shape[1]), n_retrains=1, pipeline_path=path,
        index_path=str(artifact_dir / "index")))


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else ""
    if cmd == "fit" and len(argv) == 3:
        job = json.loads(Path(argv[1]).read_text())
        Path(argv[2]).write_text(json.dumps(run_fit(job)))
        return 0
    print("usage: tracer_driver.py fit JOB OUT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
