"""Write the results: one JSON file per section, the figures and the Markdown report."""

from __future__ import annotations

import json
import math
import os
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from benchmarks import plots, report
from benchmarks.data import TASKS
from benchmarks.targets import all_rows

SECTIONS = ("meta", "quality", "validity", "flywheel", "runtime")
# written by their own commands (benchmarks.compile_scale, benchmarks.size_sweep; `make bench`
# runs both after benchmarks.run); the report shows the latest found in the results directory
STANDALONE = ("compile_scale", "size_sweep")


def clean(obj):
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines()
                       if l.startswith("MemTotal"))
    except (OSError, StopIteration, ValueError):
        mem_kib = 0
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "os": platform.platform()}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for key, dist in (("tracec", "tracec"), ("tracec_runtime", "tracec-runtime"), ("numpy", "numpy"),
                      ("sklearn", "scikit-learn"), ("onnxruntime", "onnxruntime")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def finish(results: dict, out: Path, doc: Path, img: Path) -> list[Path]:
    """Write ``out/<section>.json``, ``out/targets.json``, the figures and ``doc``."""
    out.mkdir(parents=True, exist_ok=True)
    for name in STANDALONE:
        if results.get(name) is None and (out / f"{name}.json").is_file():
            results = dict(results, **{name: json.loads((out / f"{name}.json").read_text())})
    written = []
    for name in SECTIONS:
        if results.get(name) is not None:
            path = out / f"{name}.json"
            path.write_text(json.dumps(clean(results[name]), indent=1, sort_keys=True) + "\n")
            written.append(path)
    targets = [{"target": r.target, "measured": r.measured, "met": r.met} for r in all_rows(results)]
    (out / "targets.json").write_text(json.dumps(targets, indent=1) + "\n")
    written.append(out / "targets.json")
    figures = plots.all_plots(clean(results), img)
    written += figures
    rel = [os.path.relpath(f, doc.parent) for f in figures]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(report.render(clean(results), rel), encoding="utf-8")
    written.append(doc)
    return written


def load(out: Path) -> dict:
    """The results a run wrote into ``out`` (for re-rendering the report without re-running)."""
    results = {}
    for name in SECTIONS:
        path = out / f"{name}.json"
        if path.is_file():
            results[name] = json.loads(path.read_text())
    if "meta" not in results:
        raise FileNotFoundError(f"{out / 'meta.json'}: expected the results of a benchmark run")
    tasks = (results.get("quality") or {}).get("tasks")
    if tasks:  # the JSON is written with sorted keys; the report lists tasks in run order
        order = [n for n in TASKS if n in tasks] + [n for n in tasks if n not in TASKS]
        results["quality"]["tasks"] = {n: tasks[n] for n in order}
    return results
