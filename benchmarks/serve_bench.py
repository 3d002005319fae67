"""Load test of the routing service on 127.0.0.1 (bounded in count and time).

    python -m benchmarks.serve_bench BUNDLE PUB EMBEDDINGS.npy
        [--text-bundle DIR --text-pub PUB --texts FILE.jsonl] [--seconds 10] [--quick]
        [--soak-s 300] [--server-arg=--embed-calls=1] [--out benchmarks/results/serve.json]

Starts ``python -m tracec_runtime.serve`` on a free loopback port and drives it with
``wrk`` (Debian package; C, one thread, so the load generator takes little of the
second core) at concurrency 1/16/64: embedding requests against BUNDLE, and text
requests against the text-in ``--text-bundle`` (each request one of the first 200
texts of ``--texts``, in turn, so the embedder sees real token-length mixes).  Per run:
throughput, p50/p99, errors (non-2xx plus socket errors) and the server's peak RSS.
Then concurrency 16 twice side by side, without and with one stalled client (a
connection that sends the headers and half the body, then waits; when the server's
read deadline closes it, it stalls again at once).  ``--soak-s`` keeps 16 text
connections busy for that long while sampling the server's RSS every 5 s: start,
end, max and the least-squares slope (MiB/min) over the whole run and its second half.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {{}}
for line in io.lines("{bodies}") do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
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


def _metric(base: str, name: str) -> float:
    text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
    m = re.search(rf"^{name}(?:{{}})? ([\d.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def wrk(url: str, bodies: Path, connections: int, seconds: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(LUA.format(bodies=bodies))
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency",
                              "--timeout", "10s", "-s", fh.name, url], capture_output=True, text=True,
                             timeout=seconds + 60).stdout
    finally:
        os.unlink(fh.name)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    if "50" not in lat:
        raise RuntimeError(f"wrk -c{connections} gave no latencies:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"connections": connections, "seconds": seconds,
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": _ms(lat["50"]), "p99_ms": _ms(lat["99"]),
            "errors": (int(non2xx.group(1)) if non2xx else 0)
            + (sum(map(int, errors.groups())) if errors else 0)}


class StalledClient:
    """One connection that sends the headers and half the body, then waits; reconnects when closed."""

    def __init__(self, port: int, body: bytes):
        self.port, self.stop, self.stalls = port, threading.Event(), 0
        half = body[: len(body) // 2]
        self.prefix = (b"POST /v1/route HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body)) + half
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            with socket.create_connection(("127.0.0.1", self.port)) as s:
                s.sendall(self.prefix)
                self.stalls += 1
                s.settimeout(0.5)
                while not self.stop.is_set():
                    try:
                        if not s.recv(4096):
                            break  # the server gave up on it (read deadline): stall again
                    except socket.timeout:
                        continue
                    except OSError:
                        break

    def __enter__(self) -> "StalledClient":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


@contextlib.contextmanager
def serving(bundle: str, pub: str, extra: list):
    port = _port()
    server = subprocess.Popen([sys.executable, "-m", "tracec_runtime.serve", bundle, "--public-key", pub,
                               "--port", str(port), "--log-level", "warning", *extra])
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(f"the server exited with {server.returncode}")
                time.sleep(0.1)
        yield base, port, server.pid
    finally:
        server.terminate()
        server.wait(timeout=60)


def suite(base: str, port: int, pid: int, bodies: Path, seconds: float) -> dict:
    url = base + "/v1/route"
    wrk(url, bodies, 4, min(2.0, seconds))  # warm-up (first embedder calls, allocator)
    runs = []
    for c in (1, 16, 64):
        runs.append(wrk(url, bodies, c, seconds))
        runs[-1]["server_peak_rss_mib"] = round(_rss_kib(pid) / 1024, 1)
    body = bodies.read_bytes().splitlines()[0]
    without = wrk(url, bodies, 16, seconds)
    with StalledClient(port, body) as stalled:
        time.sleep(0.2)
        with_stall = wrk(url, bodies, 16, seconds)
    with_stall["stalled_connections_opened"] = stalled.stalls
    return {"runs": runs, "c16_without_stalled_client": without, "c16_with_stalled_client": with_stall}


def _slope(t: np.ndarray, mib: np.ndarray) -> float:
    return round(float(np.polyfit(t / 60.0, mib, 1)[0]), 3) if len(t) > 2 else 0.0


def soak(base: str, pid: int, bodies: Path, seconds: float, every: float = 5.0) -> dict:
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(wrk(base + "/v1/route", bodies, 16, seconds)))
    t0 = time.time()
    runner.start()
    t, rss = [], []
    while runner.is_alive():
        t.append(time.time() - t0)
        rss.append(_rss_kib(pid, "VmRSS") / 1024)
        runner.join(timeout=every)
    T, R = np.array(t), np.array(rss)
    half = T >= T[-1] / 2
    return {"seconds": seconds, "connections": 16, "sample_every_s": every, "wrk": result,
            "rss_mib_start": round(R[0], 1), "rss_mib_end": round(R[-1], 1), "rss_mib_max": round(R.max(), 1),
            "slope_mib_per_min": _slope(T, R), "slope_second_half_mib_per_min": _slope(T[half], R[half]),
            "rss_mib_samples": [round(x, 1) for x in R]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("pub")
    p.add_argument("embeddings")
    p.add_argument("--text-bundle", help="a text-in bundle for the text runs")
    p.add_argument("--text-pub")
    p.add_argument("--texts", help="JSONL with an 'input' field (the first 200 are sent in turn)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--quick", action="store_true", help="3 s runs, no soak")
    p.add_argument("--soak-s", type=float, default=0.0)
    p.add_argument("--server-arg", action="append", default=[],
                   help="passed to the server, e.g. --server-arg=--embed-calls=1")
    p.add_argument("--skip-embedding", action="store_true")
    p.add_argument("--out", default="benchmarks/results/serve.json")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    seconds, soak_s = (3.0, 0.0) if args.quick else (args.seconds, args.soak_s)
    extra = args.server_arg
    tmp = Path(tempfile.mkdtemp())
    results: dict = {"cores": os.cpu_count(), "load_average_before": list(os.getloadavg()),
                     "seconds_per_run": seconds, "server_args": extra}
    if not args.skip_embedding:
        X = np.load(args.embeddings).astype(np.float32)[:200]
        (tmp / "emb.jsonl").write_text("".join(json.dumps({"embedding": x.tolist()}) + "\n" for x in X))
        with serving(args.bundle, args.pub, extra) as (base, port, pid):
            results["embedding"] = suite(base, port, pid, tmp / "emb.jsonl", seconds)
            results["embedding"]["server_peak_rss_mib"] = round(_rss_kib(pid) / 1024, 1)
    if args.text_bundle and args.texts:
        lines = Path(args.texts).read_text("utf-8").splitlines()[:200]
        (tmp / "text.jsonl").write_text("".join(json.dumps({"text": json.loads(x)["input"]}) + "\n"
                                                for x in lines))
        with serving(args.text_bundle, args.text_pub or args.pub, extra) as (base, port, pid):
            results["text"] = suite(base, port, pid, tmp / "text.jsonl", seconds)
            if soak_s:
                results["text"]["soak"] = soak(base, pid, tmp / "text.jsonl", soak_s)
            calls, texts = _metric(base, "tracec_embedder_calls_total"), _metric(base, "tracec_embedded_texts_total")
            results["text"]["texts_per_embedder_call"] = round(texts / calls, 2) if calls else None
            results["text"]["server_peak_rss_mib"] = round(_rss_kib(pid) / 1024, 1)
    results["load_average_after"] = list(os.getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
