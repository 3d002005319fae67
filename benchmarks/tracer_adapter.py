"""The TRACER side: its throw-away virtual environment and calls to ``tracer_driver.py``.

Nothing from TRACER is imported here: the driver runs under the venv's own python and
results come back as JSON files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from benchmarks import procs
from benchmarks.errors import BenchmarkError, SubprocessFailed
from benchmarks.workfiles import WorkFiles, decode

TRACER_SPEC = "tracer-llm==0.3.3"
HERE = Path(__file__).resolve().parent
DRIVER = HERE / "tracer_driver.py"
SERVE = HERE / "tracer_serve.py"
DEFAULT_VENV = HERE / ".venv-tracer"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path = DEFAULT_VENV, log=print) -> Path:
    """Create the venv with TRACER if missing.  scikit-learn is pinned to ours; numpy too
    when TRACER's own pin (numpy<2.1) allows it, otherwise pip picks the newest allowed."""
    py = venv_python(venv)
    if py.exists() and _has_tracer(py):
        return py
    log(f"creating {venv} with {TRACER_SPEC} (one-off, ~1 min)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    ours = {p: metadata.version(p) for p in ("scikit-learn", "numpy")}
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    pinned = pip + [TRACER_SPEC, f"scikit-learn=={ours['scikit-learn']}", f"numpy=={ours['numpy']}"]
    if subprocess.run(pinned, capture_output=True, text=True).returncode != 0:
        done = subprocess.run(pip + [TRACER_SPEC, f"scikit-learn=={ours['scikit-learn']}"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            done = subprocess.run(pip + [TRACER_SPEC], capture_output=True, text=True)
        if done.returncode != 0:
            raise SubprocessFailed(f"pip install {TRACER_SPEC} into {venv}", done.returncode, done.stderr)
    if not _has_tracer(py):
        raise BenchmarkError(f"{venv}: expected {TRACER_SPEC} importable after install, found it missing")
    return py


def _has_tracer(py: Path) -> bool:
    probe = subprocess.run([str(py), "-c", "import tracer.fit.pipeline"], capture_output=True)
    return probe.returncode == 0


def venv_versions_text(py: Path) -> str:
    """The venv's versions as JSON text (probed once per interpreter path)."""
    if str(py) not in _VERSIONS:
        _VERSIONS[str(py)] = json.dumps(venv_versions(py), sort_keys=True)
    return _VERSIONS[str(py)]


_VERSIONS: dict[str, str] = {}


def venv_versions(py: Path) -> dict:
    code = ("import json,sys,numpy,sklearn,tracer;print(json.dumps({'tracer':tracer.__version__,"
            "'sklearn':sklearn.__version__,'numpy':numpy.__version__,"
            "'python':sys.version.split()[0]}))")
    done = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SubprocessFailed("TRACER venv version probe", done.returncode, done.stderr)
    return json.loads(done.stdout)


@dataclass
class TracerTarget:
    target: float
    method: str | None
    stage_models: list
    coverage_cal: float
    handled: np.ndarray
    pred: np.ndarray  # label strings (None where TRACER gave no answer)


@dataclass
class TracerFit:
    fit_seconds: float  # fit_frontier alone, timed inside the driver
    process_wall_s: float  # the whole child process: start, imports, load, fit, routing
    process_cpu_s: float
    memo: bool
    memo_stats: dict
    versions: dict
    targets: dict[float, TracerTarget]
    cached: bool  # True when reused from the result cache (same inputs, same driver)
    computed_at: str
    artifact: Path | None


def _file_digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def fit(py: Path, files: WorkFiles, targets, cp_alpha: float, memo: bool,
        cache_dir: Path | None = None, artifact_target: float | None = None,
        verbose: bool = False, env: dict | None = None,
        timeout_s: float | None = None, reuse: bool = True) -> TracerFit:
    """One ``fit_frontier`` on ``files`` in a child process, test rows routed per target.

    With ``cache_dir``, a result computed earlier by the same driver and TRACER version on
    byte-identical inputs and parameters is reused (and flagged ``cached``) unless ``reuse`` is
    False; the fresh result is stored either way.  With
    ``artifact_target``, TRACER's ``.tracer`` directory for that target is kept too."""
    job, cached_json, artifact = _job(py, files, targets, cp_alpha, memo, cache_dir, artifact_target)
    job["verbose"] = verbose
    if reuse and _hit(cached_json, artifact):
        raw = json.loads(cached_json.read_text())
        return _parse(raw, files, cached=True, artifact=artifact)
    with tempfile.TemporaryDirectory(prefix="tracer-job-") as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_path.write_text(json.dumps(job))
        env = dict(os.environ if env is None else env, PYTHONHASHSEED="0")
        done = procs.run([str(py), str(DRIVER), "fit", str(job_path), str(out_path)], env=env,
                         stream_stderr=verbose, timeout_s=timeout_s)
        if done.returncode != 0:
            raise SubprocessFailed(f"TRACER fit on {files.dir}", done.returncode, done.stderr)
        raw = json.loads(out_path.read_text())
    raw.update(process_wall_s=done.wall_s, process_cpu_s=done.cpu_s,
               computed_at=time.strftime("%Y-%m-%d %H:%M:%S %z"))
    if cached_json is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cached_json.write_text(json.dumps(raw))
    return _parse(raw, files, cached=False, artifact=artifact)


def _job(py: Path, files: WorkFiles, targets, cp_alpha: float, memo: bool,
         cache_dir: Path | None, artifact_target: float | None):
    """The driver's job, the cache file of its result and the artifact directory (or None)."""
    job = {"X_train": str(files.X_train), "y_train": str(files.y_train),
           "X_test": {"test": str(files.X_test)}, "targets": [float(t) for t in targets],
           "cp_alpha": float(cp_alpha), "memo": bool(memo), "labels": list(files.labels)}
    key_src = json.dumps({k: v for k, v in job.items() if k not in ("X_train", "y_train", "X_test")},
                         sort_keys=True)
    key = hashlib.sha256((key_src + _file_digest(DRIVER, files.X_train, files.y_train, files.X_test)
                          + venv_versions_text(py) + repr(artifact_target)).encode()).hexdigest()[:32]
    artifact = None
    if artifact_target is not None:
        artifact = (cache_dir or files.dir) / f"{key}.tracer"
        job["artifact"] = {"dir": str(artifact), "target": float(artifact_target)}
    return job, (cache_dir / f"{key}.json" if cache_dir else None), artifact


def _hit(cached_json: Path | None, artifact: Path | None) -> bool:
    return cached_json is not None and cached_json.exists() and (artifact is None or artifact.exists())


def is_cached(py: Path, files: WorkFiles, targets, cp_alpha: float, memo: bool,
              cache_dir: Path | None, artifact_target: float | None = None) -> bool:
    """True when ``fit`` with these arguments would be served from the cache."""
    _, cached_json, artifact = _job(py, files, targets, cp_alpha, memo, cache_dir, artifact_target)
    return _hit(cached_json, artifact)


def _parse(raw: dict, files: WorkFiles, cached: bool, artifact: Path | None) -> TracerFit:
    out = {}
    for t in raw["targets"]:
        test = t["tests"]["test"]
        out[round(float(t["target"]), 6)] = TracerTarget(
            float(t["target"]), t["method"], t["stage_models"], float(t["coverage_cal"] or 0.0),
            np.asarray(test["handled"], dtype=bool), decode(test["pred"], files.labels))
    return TracerFit(raw["fit_seconds"], raw["process_wall_s"], raw["process_cpu_s"], raw["memo"],
                     raw["memo_stats"], raw["versions"], out, cached, raw["computed_at"], artifact)


def latency(py: Path, artifact: Path, x_path: Path, calls: int) -> dict:
    """Single-decision latencies and one-thread batch throughput of TRACER's Router."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with tempfile.TemporaryDirectory(prefix="tracer-lat-") as tmp:
        out = Path(tmp) / "lat.json"
        done = subprocess.run([str(py), str(SERVE), "latency", str(artifact), str(x_path), str(out),
                               str(calls), "1"],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SubprocessFailed("TRACER latency run", done.returncode, done.stderr)
        return json.loads(out.read_text())


def cold_command(py: Path, artifact: Path, x_path: Path) -> list[str]:
    return [str(py), str(SERVE), "cold", str(artifact), str(x_path)]


def without_ood(artifact: Path, dest: Path) -> Path:
    """A copy of a ``.tracer`` directory with only what the router needs without the optional
    OOD gate: ``manifest.json`` and ``pipeline.joblib`` (TRACER loads the gate only when
    ``ood.json`` is present)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("manifest.json", "pipeline.joblib"):
        shutil.copy2(artifact / name, dest / name)
    return dest
