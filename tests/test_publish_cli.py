"""--out and --size-budget-mb through the installed CLI: typed errors and exit code 3, nothing touched."""

from __future__ import annotations

import pytest

from conftest import run_tracec
from test_publish import banking77_300


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return banking77_300(tmp_path_factory, 4)


def _compile(small, out, *extra, **kw):
    traces, emb = small
    return run_tracec("compile", traces, "--embeddings", emb, "--embedder-id", "minilm", "--alpha", "0.8", "--families",
                      "global", "--out", out, *extra, **kw)


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_out_pointing_at_a_regular_file_exits_3_and_keeps_it(small, tmp_path, force):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    proc = _compile(small, target, *force, check_code=3)
    assert "The 'out' parameter of compile must be a bundle directory path (it is a regular file" \
        in proc.stderr and "Traceback" not in proc.stderr
    assert target.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_out_dot_with_force_exits_3_and_keeps_the_current_directory(small, tmp_path):
    bundle = tmp_path / "b"
    proc = _compile(small, bundle)
    assert proc.returncode in (0, 1), proc.stderr
    before = sorted(p.name for p in bundle.rglob("*"))
    proc = _compile(small, ".", "--force", cwd=bundle, check_code=3)
    assert "must be a directory other than the current directory and its parents" in proc.stderr
    assert sorted(p.name for p in bundle.rglob("*")) == before
    run_tracec("verify", bundle, "--allow-unsigned", check_code=0)


def test_force_on_a_directory_with_an_empty_manifest_exits_3(small, tmp_path):
    out = tmp_path / "fake"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    (out / "data.csv").write_text("a,b\n1,2\n")
    proc = _compile(small, out, "--force", check_code=3)
    assert "--force replaces only an empty directory or a tracec bundle" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["data.csv", "manifest.json"]
    assert (out / "manifest.json").read_text() == "{}"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0"])
def test_size_budget_mb_nan_or_inf_exits_3(small, tmp_path, value):
    proc = _compile(small, tmp_path / "x", "--size-budget-mb", value, check_code=3)
    assert (f"The 'size_budget_mb' parameter of compile must be a finite number of megabytes "
            f">= 0.01. Got {float(value)!r} instead.") in proc.stderr
    assert list(tmp_path.iterdir()) == []
