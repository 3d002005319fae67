"""Load test of the routing service on 127.0.0.1 (bounded in count and time).

    python -m benchmarks.serve_bench BUNDLE PUB EMBEDDINGS.npy [--texts FILE.jsonl]
        [--seconds 10] [--soak-s 300] [--out benchmarks/results/serve.json]

Starts ``python -m tracec_runtime.serve`` on a free loopback port, drives it with
``wrk`` (Debian package; C, so the load generator is not the bottleneck) at
concurrency 1/16/64 for embedding requests (and text requests when the bundle
is text-in), reports throughput, p50/p99, non-2xx responses and the server's
peak RSS; then repeats concurrency 16 with one stalled client holding a half-sent
request, and optionally soaks for ``--soak-s`` seconds sampling RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb"); wrk.body = f:read("*a"); f:close()
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kib(pid: int, field: str = "VmHWM") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(url: str, body: Path, connections: int, seconds: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(LUA.format(body=body))
    threads = max(1, min(2, connections))
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency",
                          "-s", fh.name, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    os.unlink(fh.name)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"connections": connections, "requests_per_s": rps, "p50_ms": _ms(lat["50"]),
            "p99_ms": _ms(lat["99"]), "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("pub")
    p.add_argument("embeddings")
    p.add_argument("--texts")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--soak-s", type=float, default=0.0)
    p.add_argument("--out", default="benchmarks/results/serve.json")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    port = _port()
    server = subprocess.Popen([sys.executable, "-m", "tracec_runtime.serve", args.bundle, "--public-key",
                               args.pub, "--port", str(port), "--log-level", "warning"])
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        tmp = Path(tempfile.mkdtemp())
        X = np.load(args.embeddings).astype(np.float32)
        (tmp / "emb.json").write_text(json.dumps({"embedding": X[0].tolist()}))
        results = {"embedding": [wrk(base + "/v1/route", tmp / "emb.json", c, args.seconds)
                                 for c in (1, 16, 64)]}
        if args.texts:
            text = json.loads(Path(args.texts).read_text().splitlines()[0])["input"]
            (tmp / "text.json").write_text(json.dumps({"text": text}))
            results["text"] = [wrk(base + "/v1/route", tmp / "text.json", c, args.seconds)
                               for c in (1, 16, 64)]
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(b"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
        results["embedding_c16_with_stalled_client"] = wrk(base + "/v1/route", tmp / "emb.json", 16,
                                                           args.seconds)
        stalled.close()
        if args.soak_s:
            rss, t0 = [], time.time()
            while time.time() - t0 < args.soak_s:
                wrk(base + "/v1/route", tmp / "emb.json", 16, min(30.0, args.soak_s))
                rss.append(_rss_kib(server.pid, "VmRSS"))
            results["soak"] = {"seconds": args.soak_s, "rss_kib_samples": rss}
        results["server_peak_rss_mib"] = round(_rss_kib(server.pid) / 1024, 1)
        results["cores"] = os.cpu_count()
    finally:
        server.terminate()
        server.wait(timeout=60)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
