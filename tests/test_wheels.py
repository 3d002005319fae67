"""Both distributions build as wheels and work from a brand-new venv: no editable install,
no checkout on the path, run from a directory outside the checkout.

Dependencies come from pip's configured index and cache (the machine's find-links make this
offline-friendly); the wheels are built from a copy of the sources, so stale ``build/``
directories in the checkout cannot leak into them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import REPO, data_path, write_subset

SOURCES = ("compiler", "runtime", "templates", "schemas", "pyproject.toml", "setup.py",
           "MANIFEST.in", "README.md", "LICENSE")


def _run(cmd, cwd, env, code=0) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == code, (f"{cmd}: exit {proc.returncode} != {code}\n"
                                     f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.mark.slow
def test_wheels_install_into_a_clean_venv_and_every_command_works(tmp_path):
    traces, emb = write_subset(tmp_path, data_path("banking77", "traces_qwen3-30b", "train.jsonl"),
                               data_path("banking77", "train.minilm-l6-v2.f16.npy"),
                               np.sort(np.random.default_rng(3).choice(10003, 2000, replace=False)),
                               "b77")
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "_data")
    for name in SOURCES:
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy2)(
            REPO / name, src / name, **({"ignore": ignore} if (REPO / name).is_dir() else {}))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", dist, src, src / "runtime"], tmp_path, env)
    wheels = sorted(p.name for p in dist.glob("*.whl"))
    assert [w.split("-")[0] for w in wheels] == ["tracec", "tracec_runtime"], wheels

    for wheel in dist.glob("*.whl"):
        names = zipfile.ZipFile(wheel).namelist()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), wheel.name
        if wheel.name.startswith("tracec_runtime"):
            assert "tracec_runtime/py.typed" in names
        else:
            assert {"tracec/_data/templates/report.html.j2",
                    "tracec/_data/schemas/cli-error.schema.json"} <= set(names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp_path, env)
    bin_ = venv / "bin"
    # both wheels in one pip command: the compiler's runtime requirement resolves to the local wheel
    _run([bin_ / "pip", "install", "-q", "-c", REPO / "constraints.txt",
          *sorted(dist.glob("*.whl"))], tmp_path, env)
    work = tmp_path / "work"
    work.mkdir()
    where = _run([bin_ / "python", "-c", "import sys, tracec, tracec_runtime; "
                  "print(tracec.__file__); print(tracec_runtime.__file__); print(sys.path)"],
                 work, env).stdout
    assert str(REPO) not in where and where.count(str(venv)) >= 2
    _run([bin_ / "python", "-c", "import importlib.metadata as m, tracec, tracec_runtime; "
          "assert m.version('tracec') == tracec.__version__, 'tracec version'; "
          "assert m.version('tracec-runtime') == tracec_runtime.__version__, 'runtime version'"],
         work, env)  # one version source each: the package's __version__

    tracec, runtime = bin_ / "tracec", bin_ / "tracec-runtime"
    _run([tracec, "keygen", "--out", work / "k"], work, env)
    proc = _run([tracec, "compile", traces, "--embeddings", emb, "--alpha", "0.8",
                 "--signing-key", work / "k.key", "--out", work / "b", "--json"], work, env,
                code=0)
    assert json.loads(proc.stdout)["ok"] is True
    pub = work / "k.pub"
    _run([tracec, "verify", work / "b", "--public-key", pub], work, env)
    route = json.loads(_run([tracec, "route", work / "b", "--embeddings", emb, "--traces", traces,
                             "--public-key", pub, "--json"], work, env).stdout)
    assert route["summary"]["rows"] == 2000 and route["summary"]["ta_interval"] is not None
    _run([tracec, "report", work / "b", "--public-key", pub, "--out", work / "r.html"], work, env)
    assert "Glossary" in (work / "r.html").read_text(encoding="utf-8")
    _run([bin_ / "python", "-m", "tracec.schemas", "--check"], work, env)
    ok = json.loads(_run([runtime, "verify", work / "b", "--public-key", pub, "--json"],
                         work, env).stdout)
    assert ok["valid"] is True and ok["signed"] is True
    routed = json.loads(_run([bin_ / "python", "-m", "tracec_runtime", "route", work / "b",
                              "--embeddings", emb, "--public-key", pub, "--json"], work, env).stdout)
    assert [d["handled"] for d in routed["decisions"]] == [d["handled"] for d in route["decisions"]]
