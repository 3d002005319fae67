"""Time and peak RSS to refuse an oversized (2 GB, sparse) bundle file, one child per case.

    PYTHONPATH=compiler:runtime python -m benchmarks.loader_limits [--size-gb 2]

Builds a small signed bundle (a stand-in ``model.onnx``; it is refused before it
would be scanned), then for each of ``model.onnx``, ``manifest.json`` and
``bundle.dsse.json`` extends a fresh copy to the given size with ``truncate``
(sparse: no disk used) and runs ``verify_bundle`` in a child process, which
reports the wall time of the call and its peak RSS (``ru_maxrss``) beside the
RSS of the same child after imports alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
from tracec_runtime import verify_bundle
from tracec_runtime.errors import TracecError
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    verify_bundle(sys.argv[1], sys.argv[2])
    outcome = "accepted"
except TracecError as exc:
    outcome = type(exc).__name__ + ": " + str(exc)[:160]
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "rss_after_imports_mb": base / 1024, "peak_rss_mb": peak / 1024,
                  "outcome": outcome}))
"""


def _bundle(root: Path, private) -> Path:
    from tracec_runtime.canonical import canonical_file_bytes
    from tracec_runtime.envelope import MEDIA_TYPE, seal

    import hashlib
    files = {"model.onnx": b"\x08\x08" + bytes(4096), "frontier.json": b"{}\n"}
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    manifest = {"format_version": "1", "media_type": MEDIA_TYPE,
                "files": {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                          for n, d in files.items()}}
    (root / "manifest.json").write_bytes(canonical_file_bytes(manifest))
    seal(root, private)
    return root


def main(argv=None) -> int:
    from tracec_runtime.keys import generate_keypair

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=2.0)
    args = ap.parse_args(argv)
    size = int(args.size_gb * (1 << 30))
    private, public = generate_keypair()
    with tempfile.TemporaryDirectory(prefix="tracec-limits-") as tmp:
        tmp = Path(tmp)
        (tmp / "key.pub").write_text(json.dumps(public))
        good = _bundle(tmp / "good", private)
        for name in ("model.onnx", "manifest.json", "bundle.dsse.json"):
            case = tmp / name.replace("/", "_")
            shutil.copytree(good, case)
            with open(case / name, "r+b") as f:
                f.truncate(size)
            out = subprocess.run([sys.executable, "-c", _CHILD, str(case), str(tmp / "key.pub")],
                                 capture_output=True, text=True, check=True)
            row = json.loads(out.stdout)
            print(f"{name:17s} {size} bytes: refused in {row['seconds'] * 1000:.2f} ms, peak RSS "
                  f"{row['peak_rss_mb']:.1f} MB (after imports {row['rss_after_imports_mb']:.1f}"
                  f" MB) -> {row['outcome']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
