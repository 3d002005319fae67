"""Shared fixtures: the real datasets beside the checkout, and a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRACEC_SHARED_DATA", REPO.parent / "shared" / "data"))
TRACEC = Path(sys.executable).parent / "tracec"


def data_path(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


def run_tracec(*args, check_code: int | None = None, **kw) -> subprocess.CompletedProcess:
    """Run the installed CLI; optionally assert its exit code (showing stderr when it differs)."""
    proc = subprocess.run([str(TRACEC), *map(str, args)], capture_output=True, text=True, **kw)
    if check_code is not None:
        assert proc.returncode == check_code, (
            f"exit {proc.returncode} != {check_code}\nSTDOUT:\n{proc.stdout[-3000:]}\n"
            f"STDERR:\n{proc.stderr[-3000:]}")
    return proc


def write_subset(tmp: Path, traces: Path, embeddings: Path, rows: np.ndarray, name: str):
    """Write a row subset of a trace file and its embeddings (for quick real-data compiles)."""
    lines = traces.read_text(encoding="utf-8").splitlines()
    X = np.load(embeddings)
    t, e = tmp / f"{name}.jsonl", tmp / f"{name}.npy"
    t.write_text("".join(lines[i] + "\n" for i in rows), encoding="utf-8")
    np.save(e, X[rows])
    return t, e


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def banking77_teacher(seed: int, n: int | None = None):
    """Banking77 with the real LLM teacher: (X float32, y int64 teacher index) for a seeded
    random row order, optionally the first ``n`` rows of it."""
    traces = data_path("banking77", "traces_qwen3-30b", "train.jsonl")
    emb = data_path("banking77", "train.minilm-l6-v2.f16.npy")
    teacher = [json.loads(line)["teacher"] for line in traces.read_text("utf-8").splitlines()]
    names = sorted(set(teacher))
    index = {name: k for k, name in enumerate(names)}
    y = np.array([index[t] for t in teacher], dtype=np.int64)
    rows = np.random.default_rng(seed).permutation(len(y))[:n]
    return np.load(emb)[rows].astype(np.float32), y[rows]


def signed_banking77_bundle(base: Path, rows: np.ndarray, alpha: str = "0.85") -> tuple[Path, Path]:
    """Compile a signed Banking77 (real teacher, precomputed embeddings) bundle from ``rows`` of
    the training file into ``base/bundle``; return ``(bundle, public key)``."""
    run_tracec("keygen", "--out", base / "ci", check_code=0)
    t, e = write_subset(base, data_path("banking77", "traces_qwen3-30b", "train.jsonl"),
                        data_path("banking77", "train.minilm-l6-v2.f16.npy"), rows, "train")
    run_tracec("compile", t, "--embeddings", e, "--embedder-id", "minilm", "--alpha", alpha,
               "--signing-key", base / "ci.key", "--out", base / "bundle", check_code=0)
    return base / "bundle", base / "ci.pub"
