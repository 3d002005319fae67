"""`make demo` end to end: examples/demo.sh in a temporary directory, offline.

It must open the gate at the demo's alpha with margin, verify, route the held-out rows and
write the report, so the first thing a newcomer runs cannot silently break again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_script_passes_with_margin(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("TRACEC_CACHE_DIR", None)  # a fresh clone has no embedding cache
    proc = subprocess.run(["bash", str(REPO / "examples" / "demo.sh"), str(out)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Gate OPEN" in proc.stdout and "signature valid" in proc.stdout
    manifest = json.loads((out / "bundle" / "manifest.json").read_text(encoding="utf-8"))
    alpha, cal = float(manifest["policy"]["alpha"]), manifest["calibration"]
    assert alpha == 0.9 and float(cal["ta_lower"]) - alpha >= 0.02, cal  # not on a knife edge
    routed = json.loads((out / "holdout-routing.json").read_text(encoding="utf-8"))
    assert routed["ok"] is True and routed["summary"]["rows"] == 500
    assert float(routed["summary"]["coverage"]) > 0.5 and routed["summary"]["ta_below_alpha"] is False
    assert (out / "report.html").stat().st_size > 10_000
    assert f"report: {out}/report.html" in proc.stdout and "margin +" in proc.stdout
