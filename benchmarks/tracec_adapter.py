"""The tracec side: compile with the ``tracec`` CLI, route with ``tracec_runtime.Router``.

The CLI writes a bundle for the FIRST alpha of ``--alpha`` (and ``frontier.json`` for all
of them); to measure another alpha on test the harness compiles again with that alpha
first.  Exit 0 means the gate opened, 1 that it refused (a closed bundle is written and
routes nothing); anything else is a failure.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import procs
from benchmarks.errors import BenchmarkError, SubprocessFailed
from benchmarks.workfiles import WorkFiles

TRACEC = Path(sys.executable).with_name("tracec")


def available() -> bool:
    """True when the CLI exists and the compiler and runtime modules it needs import."""
    if not TRACEC.exists():
        return False
    probe = [sys.executable, "-c", "import tracec.pipeline, tracec_runtime.router"]
    return procs.run(probe).returncode == 0


@dataclass(frozen=True)
class CompileRun:
    alpha: float  # the alpha the bundle was built for
    bundle: Path
    gate_open: bool
    family: str | None
    wall_s: float
    cpu_s: float
    doc: dict  # the CLI's --json document


def order_alphas(alphas, first: float) -> list[float]:
    """``alphas`` with ``first`` moved to the front (the CLI builds the bundle for it)."""
    rest = [a for a in alphas if abs(a - first) > 1e-12]
    return [first] + rest


def compile_bundle(files: WorkFiles, out: Path, alphas, delta: float, seed: int,
                   env: dict | None = None, signing_key: Path | None = None) -> CompileRun:
    """``tracec compile`` on the work files, bundle for ``alphas[0]``; timed as a process."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [str(TRACEC), "compile", str(files.traces), "--embeddings", str(files.X_train),
           "--embedder-id", "sentence-transformers/all-MiniLM-L6-v2 (shared f16)",
           "--out", str(out), "--alpha", ",".join(format(a, "g") for a in alphas),
           "--delta", format(delta, "g"), "--seed", str(seed), "--json"]
    cmd += ["--signing-key", str(signing_key)] if signing_key is not None else ["--unsigned"]
    done = procs.run(cmd, env=env)
    if done.returncode not in (0, 1):
        raise SubprocessFailed(f"tracec compile {files.traces}", done.returncode, done.stderr)
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"tracec compile {files.traces} (exit {done.returncode}): expected one "
                             f"JSON document on stdout (--json), found invalid JSON ({exc.msg}): "
                             f"{done.stdout[:200]!r}; stderr: {done.stderr[-800:]}") from None
    policy = (doc.get("manifest") or {}).get("policy") or {}
    return CompileRun(float(alphas[0]), out, done.returncode == 0, policy.get("family"),
                      done.wall_s, done.cpu_s, doc)


@dataclass(frozen=True)
class Routed:
    handled: np.ndarray  # bool, what the bundle answers locally
    pred: np.ndarray  # label strings for every row (the surrogate at full coverage)
    labels: tuple[str, ...]


def keygen(prefix: Path) -> tuple[Path, Path]:
    """``tracec keygen --out PREFIX``: (private key, public key)."""
    done = procs.run([str(TRACEC), "keygen", "--out", str(prefix), "--json"])
    if done.returncode != 0:
        raise SubprocessFailed("tracec keygen", done.returncode, done.stderr)
    doc = json.loads(done.stdout)
    return Path(doc["private_key"]), Path(doc["public_key"])


def route(bundle: Path, X: np.ndarray, public_key: Path | None = None) -> Routed:
    """Route test embeddings through a bundle, in-process (verified with ``public_key``;
    unsigned bundles are accepted only when no key is given)."""
    from tracec_runtime import Router

    if public_key is None:
        router = Router.load(bundle, allow_unsigned=True)
    else:
        router = Router.load(bundle, public_key)
    decision = router.route_batch(np.asarray(X, dtype=np.float32))
    names = tuple(router.labels)
    pred = np.array([names[i] for i in np.asarray(decision.label_index)], dtype=object)
    return Routed(np.asarray(decision.handled, dtype=bool).copy(), pred, names)
