"""A runtime-only virtual environment (the tracec-runtime wheel and its dependencies: no
compiler, no torch) routes text through a text-in bundle compiled from the example traces,
and decides exactly as the development environment does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, run_tracec

pytestmark = pytest.mark.slow

SCRIPT = r"""
import importlib.util, json, sys
from tracec_runtime import Router
router = Router.load(sys.argv[1], sys.argv[2])
texts = [json.loads(l)["input"] for l in open(sys.argv[3], encoding="utf-8")]
batch = router.route_texts(texts + ["", "x\ud800"])
one = router.route_text(texts[0])
absent = [m for m in ("torch", "transformers", "sentence_transformers", "sklearn", "scipy",
                      "pydantic", "tracec") if importlib.util.find_spec(m) is None]
print(json.dumps({"handled": batch.handled.tolist(), "labels": batch.labels,
                  "flags": list(batch.flags[-2:]), "one": [one.label, one.handled],
                  "absent": absent, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""

FORBIDDEN = ["torch", "transformers", "sentence_transformers", "sklearn", "scipy", "pydantic",
             "tracec"]


def _du(path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
               if not os.path.islink(os.path.join(d, f)))


def test_runtime_wheel_alone_routes_text(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(REPO / "runtime")], check=True, capture_output=True)
    wheel = next(wheels.glob("tracec_runtime-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing but the venv
    proc = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "-c", str(REPO / "constraints.txt"), str(wheel)],
                          capture_output=True, text=True, timeout=900, env=clean, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"runtime-only venv: {_du(venv) / 2**20:.0f} MiB")

    run_tracec("keygen", "--out", tmp_path / "k", check_code=0)
    bundle = tmp_path / "bundle"
    run_tracec("compile", REPO / "examples" / "traces.jsonl", "--out", bundle, "--signing-key",
               tmp_path / "k.key", check_code=0,
               env={**os.environ, "TRACEC_CACHE_DIR": str(tmp_path / "cache")})
    holdout = REPO / "examples" / "holdout.jsonl"
    args = [str(bundle), str(tmp_path / "k.pub"), str(holdout)]
    alone = subprocess.run([str(py), "-c", SCRIPT, *args], capture_output=True, text=True,
                           cwd=tmp_path, env=clean, timeout=300)
    assert alone.returncode == 0, alone.stderr
    out = json.loads(alone.stdout)
    assert sorted(out["absent"]) == sorted(FORBIDDEN), "the runtime-only venv holds more than the runtime"
    assert set(out["modules"]).isdisjoint(FORBIDDEN)
    assert {"onnxruntime", "tokenizers", "nacl", "numpy", "tracec_runtime"} <= set(out["modules"])
    assert out["flags"] == ["empty", "invalid_text"] and out["handled"][-2:] == [False, False]
    here = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert here.returncode == 0, here.stderr
    dev = json.loads(here.stdout)
    assert (out["handled"], out["labels"], out["one"]) == (dev["handled"], dev["labels"], dev["one"])
    assert 0.3 < sum(out["handled"]) / len(out["handled"]) < 1
