"""Generated edge code vs the Python runtime's numpy engine, side by side in one run.

    python -m benchmarks.codegen_bench [--bundle DIR --public-key PUB] [--data ../shared/data]
        [--langs c,c-portable,...] [--baseline CHECKOUT]

Without ``--bundle`` it compiles Banking77's 10,003 training rows with the gold intent
as the teacher and ``--families l2d`` (one 77-class linear stage + acceptor + tau) into a
temporary directory.  Per language: source size, weights size, the example program's
``--bench`` numbers (weights load, single-decision p50/p99 over every test row,
batch throughput) and, for comparison, the source size and build/load cost of
inlining the weights as literals.  The Python runtime (numpy engine, one BLAS
thread) is measured in this process on the same rows.  ``--baseline CHECKOUT`` (another
checkout of this repository, e.g. ``git archive REV | tar -x -C DIR``) adds ``c (baseline)``
and ``c-portable (baseline)``: the C package that checkout generates for the same bundle,
built and timed in the same run (before/after side by side).  Writes
``benchmarks/results/codegen.json`` and prints a Markdown table (docs/codegen.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LANGS = ("c", "c-portable", "java", "js", "go", "python")
TOOLS = {"c": "cc", "c-portable": "cc", "java": "javac", "js": "node", "go": "go",
         "python": "python3"}
RESULTS = Path(__file__).resolve().parent / "results" / "codegen.json"


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **kw.pop("env", {})}
    proc = subprocess.run(cmd, capture_output=True, env=env, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                         f"{proc.stderr.decode()[-2000:]}")
    return proc


def _compile_bundle(data: Path, tmp: Path) -> Path:
    """Banking77's gold intents as the teacher: all 77 classes (the Qwen3 teacher used 59)."""
    traces = tmp / "banking77-gold.jsonl"
    rows = [json.loads(line) for line in
            (data / "banking77" / "train.jsonl").read_text("utf-8").splitlines()]
    traces.write_text("".join(json.dumps({"input": r["input"], "teacher": r["label"]}) + "\n"
                              for r in rows), encoding="utf-8")
    out = tmp / "banking77-l2d"
    tracec = Path(sys.executable).with_name("tracec")
    _run([tracec, "compile", "--unsigned", traces,
          "--embeddings", data / "banking77" / "train.minilm-l6-v2.f16.npy",
          "--embedder-id", "sentence-transformers/all-MiniLM-L6-v2", "--families", "l2d",
          "--alpha", "0.9", "--unsigned", "--out", out])
    return out


def _inline_cost(lang: str, weights: np.ndarray, tmp: Path) -> dict:
    """Source bytes and build time of the weights as one array literal (what we do not ship)."""
    lit = ",".join(format(float(v), ".9g") for v in weights)
    d = tmp / f"inline-{lang}"
    d.mkdir()
    if lang == "c":
        src = d / "w.c"
        src.write_text(f"const float W[{weights.size}] = {{{lit}}};\n")
        cmd = ["cc", "-O3", "-c", "-o", str(d / "w.o"), str(src)]
    elif lang == "java":
        src = d / "W.java"
        src.write_text("final class W { static final float[] V = {"
                       + ",".join(format(float(v), ".9g") + "f" for v in weights) + "}; }\n")
        cmd = ["javac", "-d", str(d), str(src)]
    elif lang == "js":
        src = d / "w.js"
        src.write_text(f"module.exports = new Float32Array([{lit}]);\n")
        cmd = ["node", "-e", f"require({json.dumps(str(src))})"]
    elif lang == "go":
        (d / "go.mod").write_text("module w\n\ngo 1.19\n")
        src = d / "w.go"
        src.write_text(f"package main\n\nvar W = [...]float32{{{lit}}}\n\nfunc main() {{ _ = W[0] }}\n")
        cmd = ["go", "build", "-o", str(d / "w"), "."]
    else:
        return {}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=d, capture_output=True)
    seconds = time.perf_counter() - t0
    out = {"inline_source_bytes": src.stat().st_size, "inline_build_or_load_s": round(seconds, 3)}
    if proc.returncode != 0:
        first = proc.stderr.decode().strip().splitlines()[0]
        out["inline_error"] = first.split("error:")[-1].strip()[:120]   # no temp paths
    return out


def _python_runtime(bundle: Path, pub, X: np.ndarray, repeat: int) -> dict:
    from threadpoolctl import threadpool_limits
    from tracec_runtime import Router

    with threadpool_limits(limits=1):
        t0 = time.perf_counter_ns()
        router = Router.load(bundle, public_key=pub, allow_unsigned=pub is None)
        load_ms = (time.perf_counter_ns() - t0) / 1e6
        for x in X:
            router.route(x)
        lat = []
        for _ in range(repeat):
            for x in X:
                t0 = time.perf_counter_ns()
                router.route(x)
                lat.append(time.perf_counter_ns() - t0)
        best = min(_timed(router.route_batch, X) for _ in range(repeat))
    lat.sort()
    return {"engine": router.engine, "rows": len(X), "load_ms": load_ms,
            "p50_us": lat[len(lat) // 2] / 1e3, "p99_us": lat[int(len(lat) * 0.99)] / 1e3,
            "batch_rows_per_s": len(X) / (best / 1e9)}


def _timed(fn, arg) -> int:
    t0 = time.perf_counter_ns()
    fn(arg)
    return time.perf_counter_ns() - t0


def _generate(bundle: Path, pub, lang: str, out: Path, checkout) -> None:
    if checkout is None:
        from tracec.codegen import codegen
        codegen(bundle, lang, out, public_key=pub, allow_unsigned=pub is None)
        return
    paths = os.pathsep.join(str(Path(checkout) / d) for d in ("compiler", "runtime"))
    _run([sys.executable, "-c", "import sys; from tracec.codegen import codegen; "
          "codegen(sys.argv[1], sys.argv[2], sys.argv[3], public_key=sys.argv[4] or None, "
          "allow_unsigned=not sys.argv[4])", str(bundle), lang, str(out), str(pub or "")],
         env={"PYTHONPATH": paths})


def _package(bundle: Path, pub, lang: str, tmp: Path, X_path: Path, repeat: int,
             checkout=None) -> dict:
    base = "c" if lang.startswith("c") else lang
    out = tmp / f"pkg-{lang}{'-baseline' if checkout else ''}"
    _generate(bundle, pub, base, out, checkout)
    sources = {p.relative_to(out).as_posix(): p.stat().st_size for p in out.rglob("*")
               if p.is_file() and p.name not in ("weights.bin", "codegen.dsse.json")}
    env = {"CFLAGS": ""} if lang == "c-portable" else {}
    t0 = time.perf_counter()
    _run(["sh", "build.sh"], cwd=out, env=env)
    build_s = time.perf_counter() - t0
    with open(X_path, "rb") as fh:
        stats = json.loads(_run(["./route_example", "--bench", str(repeat)], cwd=out,
                                stdin=fh).stdout.decode().strip().splitlines()[-1])
    return {"source_bytes": sum(sources.values()), "weights_bytes": (out / "weights.bin").stat().st_size,
            "build_s": round(build_s, 2), **stats}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--public-key", type=Path)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TRACEC_SHARED_DATA",
                                                                      "../shared/data")))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--python-rows", type=int, default=300,
                    help="rows for the generated pure-Python package (it is slow)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--langs", default=",".join(LANGS),
                    help=f"comma-separated subset of {','.join(LANGS)}")
    ap.add_argument("--baseline", type=Path,
                    help="another checkout: also time the C packages it generates")
    args = ap.parse_args(argv)
    X = np.load(args.data / "banking77" / "test.minilm-l6-v2.f16.npy").astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="codegen-bench-") as t:
        tmp = Path(t)
        bundle = args.bundle or _compile_bundle(args.data, tmp)
        manifest = json.loads((bundle / "manifest.json").read_text())
        x_path, x_small = tmp / "x.f32", tmp / "x300.f32"
        X.astype("<f4").tofile(x_path)
        X[:args.python_rows].astype("<f4").tofile(x_small)
        results = {"bundle": {"family": manifest["policy"]["family"],
                              "stages": [s["kind"] for s in manifest["policy"]["stages"]],
                              "labels": len(manifest["labels"]),
                              "ood": manifest["policy"].get("ood")},
                   "runtime_numpy": _python_runtime(bundle, args.public_key, X, args.repeat),
                   "langs": {}}
        weights = None
        langs = [lang for lang in LANGS if lang in args.langs.split(",")]
        for lang in langs:
            if shutil.which(TOOLS[lang]) is None:
                print(f"skip {lang}: {TOOLS[lang]} not found", file=sys.stderr)
                continue
            rows = x_small if lang == "python" else x_path
            r = _package(bundle, args.public_key, lang, tmp, rows, 1 if lang == "python" else args.repeat)
            if weights is None:
                weights = np.fromfile(tmp / f"pkg-{lang}" / "weights.bin", dtype="<f4")
            if lang in ("c", "java", "js", "go"):
                r.update(_inline_cost(lang, weights, tmp))
            results["langs"][lang] = r
            print(f"{lang}: {r}", file=sys.stderr)
            if args.baseline is not None and lang in ("c", "c-portable"):
                r = _package(bundle, args.public_key, lang, tmp, rows, args.repeat, args.baseline)
                results["langs"][f"{lang} (baseline)"] = r
                print(f"{lang} (baseline): {r}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(table(results))
    return 0


def table(res: dict) -> str:
    rt = res["runtime_numpy"]
    lines = ["| engine | source bytes | weights bytes | load ms | p50 µs | p99 µs | batch rows/s "
             "| p50 vs numpy | inlined source bytes | inlined build/load s |",
             "|---|---|---|---|---|---|---|---|---|---|",
             f"| Python runtime (numpy) | – | – | {rt['load_ms']:.1f} | {rt['p50_us']:.2f} | "
             f"{rt['p99_us']:.2f} | {rt['batch_rows_per_s']:,.0f} | 1.00x | – | – |"]
    for lang, r in res["langs"].items():
        inline = r.get("inline_source_bytes", "–")
        build = r.get("inline_error", r.get("inline_build_or_load_s", "–"))
        lines.append(f"| {lang} | {r['source_bytes']:,} | {r['weights_bytes']:,} | "
                     f"{r['load_ms']:.2f} | {r['p50_us']:.2f} | {r['p99_us']:.2f} | "
                     f"{r['batch_rows_per_s']:,.0f} | {rt['p50_us'] / r['p50_us']:.2f}x | "
                     f"{inline if isinstance(inline, str) else format(inline, ',')} | {build} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
