"""The text embedder, measured: ``python -m benchmarks.embedder_bench [--n 500]``.

Side by side in one run, one thread each, on the same Banking77 test texts:
the int8 ONNX embedder as a text-in bundle runs it (procedure tracec-embed/1,
dynamic length), the same procedure over the pinned file before the compiler's
rewrite (tracec.minilm_graph), the same file padded to 128 tokens as its tokenizer.json
ships, onnxruntime graph-optimisation levels, and the sentence-transformers
fp32 path (when torch is installed).  Cosine to the shared fp32 embeddings
(``test.minilm-l6-v2.f16.npy``) beside every latency.  Then: batched
throughput, a text-in bundle's size on disk, cold start (import, verify,
load the embedder, one decision) and peak RSS (VmHWM: ru_maxrss would carry
the parent's high-water mark across fork+exec) in a fresh process, and the
embedding-in decision latency on the same bundle.  Writes
``benchmarks/results/embedder.json`` and prints a Markdown table.
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

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "embedder.json"


def _texts(data: Path, n: int):
    lines = (data / "banking77" / "test.jsonl").read_text("utf-8").splitlines()[:n]
    ref = np.load(data / "banking77" / "test.minilm-l6-v2.f16.npy")[:n].astype(np.float32)
    return [json.loads(x)["input"] for x in lines], ref


def _cos(X, ref) -> dict:
    c = (X * ref).sum(1) / (np.linalg.norm(X, axis=1) * np.linalg.norm(ref, axis=1))
    return {"cos_min": round(float(c.min()), 5), "cos_median": round(float(np.median(c)), 5)}


def _interleaved(paths: dict, texts, warm: int = 20) -> dict:
    """Per text, each path once in turn: load on a shared machine hits every path alike."""
    for fn in paths.values():
        for t in texts[:warm]:
            fn(t)
    times = {k: [] for k in paths}
    outs = {k: [] for k in paths}
    for t in texts:
        for name, fn in paths.items():
            t0 = time.perf_counter()
            v = fn(t)
            times[name].append(time.perf_counter() - t0)
            outs[name].append(v)
    return {k: ({"p50_ms": round(float(np.median(v)) * 1e3, 3),
                 "p99_ms": round(float(np.percentile(v, 99)) * 1e3, 3)}, np.stack(outs[k]))
            for k, v in times.items()}


def _variant(files, level: str, pad):
    """A session over the same file with another optimisation level / fixed padding."""
    import onnxruntime as ort
    from tokenizers import Tokenizer
    from tracec_runtime.embedder.session import DISABLE_QDQ

    tok = Tokenizer.from_str(files.tokenizer.decode())
    tok.enable_truncation(max_length=256)
    if pad:
        tok.enable_padding(length=pad)
    else:
        tok.no_padding()
    o = ort.SessionOptions()
    o.intra_op_num_threads = o.inter_op_num_threads = 1
    o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    o.add_session_config_entry(DISABLE_QDQ, "1")  # as the runtime's session (embedder/session.py)
    sess = ort.InferenceSession(files.model, o, providers=["CPUExecutionProvider"])

    def embed(text):
        enc = tok.encode(text)
        ids = np.array([enc.ids], np.int64)
        mask = np.array([enc.attention_mask], np.int64)
        h = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
        v = (h[0] * mask[0][:, None]).sum(0) / mask.sum()
        return v / np.linalg.norm(v)
    return embed


def embedder_rows(texts, ref) -> list[dict]:
    from tracec import minilm

    files, emb = minilm.packaged_files(), minilm.embedder()
    paths = {"int8 ONNX, tracec-embed/1 (shipped: ORT_ENABLE_ALL, 1 thread, no padding)":
             lambda t: emb.embed_many([t])[0][0]}
    from tracec_runtime.embedder import TextEmbedder
    pinned = TextEmbedder(minilm._read(minilm.MODEL_PACKAGE, minilm.MODEL_FILE), files.tokenizer,
                          max_tokens=minilm.MAX_TOKENS, dimension=minilm.DIMENSION, where="pinned")
    before = "int8 ONNX, tracec-embed/1 over the pinned file (before tracec.minilm_graph)"
    paths[before] = lambda t: pinned.embed_many([t])[0][0]
    for level in ("ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED"):
        paths[f"int8 ONNX, no padding, {level}"] = _variant(files, level, None)
    paths["int8 ONNX, padded to 128 as tokenizer.json ships"] = _variant(files, "ORT_ENABLE_ALL", 128)
    missing = None
    try:
        import torch
        from tracec import embed_st
        torch.set_num_threads(1)
        model = embed_st.load_model()
        paths["sentence-transformers fp32 (torch, 1 thread)"] = \
            lambda t: model.encode([t], normalize_embeddings=True)[0]
    except Exception as exc:  # noqa: BLE001 - optional extra
        missing = f"sentence-transformers fp32: unavailable ({exc})"
    rows = [{"path": k, **lat, **_cos(X, ref)} for k, (lat, X) in _interleaved(paths, texts).items()]
    return rows + ([{"path": missing}] if missing else [])


def throughput(texts) -> dict:
    from tracec import minilm

    emb = minilm.embedder()
    emb.embed_many(texts[:50])
    t0 = time.perf_counter()
    emb.embed_many(texts)
    dt = time.perf_counter() - t0
    return {"texts": len(texts), "texts_per_s": round(len(texts) / dt, 1)}


COLD = """
import sys, time, json
t0 = time.perf_counter()
from tracec_runtime import Router
t1 = time.perf_counter()
router = Router.load(sys.argv[1], sys.argv[2])
t2 = time.perf_counter()
d = router.route_text("I still have not received my new card")
t3 = time.perf_counter()
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_decision_s": t3 - t2,
                  "total_s": t3 - t0, "peak_rss_mib": int(hwm) / 1024}))
"""


def bundle_rows(tmp: Path) -> dict:
    tracec = Path(sys.executable).parent / "tracec"
    subprocess.run([str(tracec), "keygen", "--out", str(tmp / "k")], check=True, capture_output=True)
    env = {**os.environ, "TRACEC_CACHE_DIR": str(tmp / "cache")}
    subprocess.run([str(tracec), "compile", str(REPO / "examples" / "traces.jsonl"), "--out",
                    str(tmp / "b"), "--signing-key", str(tmp / "k.key")], check=True,
                   capture_output=True, env=env)
    files = [p for p in (tmp / "b").rglob("*") if p.is_file()]
    size = {"bundle_bytes": sum(p.stat().st_size for p in files),
            "embedder_bytes": sum(p.stat().st_size for p in files if "embedder" in p.parts)}
    colds = [json.loads(subprocess.run([sys.executable, "-c", COLD, str(tmp / "b"), str(tmp / "k.pub")],
                                       check=True, capture_output=True, text=True).stdout)
             for _ in range(3)]
    cold = {k: round(float(np.median([c[k] for c in colds])), 3) for k in colds[0]}
    from tracec_runtime import Router
    router = Router.load(tmp / "b", tmp / "k.pub")
    X = np.random.default_rng(0).normal(size=(2000, router.dimension)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    for x in X[:200]:
        router.route(x)
    times = []
    for x in X:
        t0 = time.perf_counter()
        router.route(x)
        times.append(time.perf_counter() - t0)
    big = np.tile(X, (50, 1))
    t0 = time.perf_counter()
    router.route_batch(big)
    per_s = len(big) / (time.perf_counter() - t0)
    emb_in = {"engine": router.engine, "route_p50_us": round(float(np.median(times)) * 1e6, 2),
              "route_batch_per_s": round(per_s)}
    return {**size, "cold_start": cold, "embedding_in": emb_in}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=500, help="Banking77 test texts (default 500)")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("TRACEC_SHARED_DATA",
                                                                    REPO.parent / "shared" / "data")))
    args = p.parse_args(argv)
    texts, ref = _texts(args.data, args.n)
    from tokenizers import Tokenizer  # noqa: F401 - import cost outside the timings
    doc = {"n_texts": len(texts), "load_average_before": list(os.getloadavg()),
           "single_text": embedder_rows(texts, ref),
           "batched": throughput([json.loads(x)["input"] for x in
                                  (args.data / "banking77" / "test.jsonl").read_text("utf-8").splitlines()])}
    with tempfile.TemporaryDirectory() as tmp:
        doc.update(bundle_rows(Path(tmp)))
    doc["load_average_after"] = list(os.getloadavg())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n", "utf-8")
    print("| path | p50 ms | p99 ms | cosine min | cosine median |\n|---|---|---|---|---|")
    for r in doc["single_text"]:
        print(f"| {r['path']} | {r.get('p50_ms', '')} | {r.get('p99_ms', '')} | "
              f"{r.get('cos_min', '')} | {r.get('cos_median', '')} |")
    print(json.dumps({k: v for k, v in doc.items() if k != "single_text"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
