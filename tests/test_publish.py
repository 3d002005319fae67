"""--out is never lost or half-written: attacks on publishing, each a real small compile.

Each test is named after the attack it defends against (issue 9, "Data loss and
leftovers at --out").  Compiles run in-process on 300 Banking77 rows with their
precomputed embeddings (about a second each); the crash tests run a compile in a
child process and kill it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import data_path, write_subset
from tracec import fsatomic
from tracec.bundle import Destination
from tracec.config import CompileConfig
from tracec.errors import OutputError, ParameterError, TraceFileError
from tracec.pipeline import compile_bundle
from tracec_runtime.verify import verify_bundle


def banking77_300(tmp_path_factory, seed: int):
    """300 Banking77 rows (real teacher) and their precomputed embeddings."""
    rows = np.sort(np.random.default_rng(seed).choice(10003, 300, replace=False))
    return write_subset(tmp_path_factory.mktemp("publish"),
                        data_path("banking77", "traces_qwen3-30b", "train.jsonl"),
                        data_path("banking77", "train.minilm-l6-v2.f16.npy"), rows, "b77p")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return banking77_300(tmp_path_factory, 3)


@pytest.fixture(scope="module")
def reference(small, tmp_path_factory):
    """One compiled bundle, copied where a test needs an existing bundle at --out."""
    out = tmp_path_factory.mktemp("ref") / "bundle"
    compile_bundle(_config(small, out))
    return out


@pytest.fixture(params=["renameat2", "fallback"])
def rename_mode(request, monkeypatch):
    """Every publish test runs with RENAME_NOREPLACE/EXCHANGE and with the portable fallback."""
    monkeypatch.setattr(fsatomic, "USE_RENAMEAT2", request.param == "renameat2")
    return request.param


def _config(small, out, **kw):
    traces, emb = small
    return CompileConfig(traces=traces, out=out, embeddings=emb, embedder_id="minilm", alphas=(0.8,), families=("global",),
                         **kw)


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _assert_untouched_plus(out: Path, reference: Path, added: str) -> None:
    """``out`` is still the reference bundle plus the user's ``added`` file, and nothing is left."""
    assert (out / added).read_text() == "mine"
    assert {k: v for k, v in _tree(out).items() if k != added} == _tree(reference)
    assert _leftovers(out) == []


def _during_compile(monkeypatch, action):
    """Run ``action()`` in the middle of the compile (after staging began, before publish)."""
    from tracec import pipeline
    real = pipeline.gate_with_rules

    def gate(*a, **kw):
        action()
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "gate_with_rules", gate)


# -- check-then-act race --------------------------------------------------------------------


@pytest.mark.parametrize("content", ["file", "empty"])
def test_out_race_dir_created_during_compile_is_not_deleted(small, tmp_path, monkeypatch,
                                                            rename_mode, content):
    """A directory created at --out while compiling (no --force) is neither moved nor deleted:
    even an empty one, which plain rename(2) would silently replace."""
    out = tmp_path / "out"

    def create():
        out.mkdir()
        if content == "file":
            (out / "mine.txt").write_text("precious")

    _during_compile(monkeypatch, create)
    with pytest.raises(OutputError, match="appeared while compiling") as info:
        compile_bundle(_config(small, out))
    assert info.value.exit_code == 3
    assert sorted(p.name for p in out.iterdir()) == (["mine.txt"] if content == "file" else [])
    assert _leftovers(out) == []


def test_out_race_with_force_dir_that_is_not_a_bundle_is_not_replaced(small, tmp_path, monkeypatch,
                                                                       rename_mode):
    out = tmp_path / "out"
    _during_compile(monkeypatch, lambda: (out.mkdir(), (out / "notes.txt").write_text("mine")))
    with pytest.raises(OutputError, match="does not verify as a tracec bundle"):
        compile_bundle(_config(small, out, force=True))
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1
    assert _leftovers(out) == []


def test_force_bundle_changed_during_compile_is_not_replaced(small, reference, tmp_path,
                                                             monkeypatch, rename_mode):
    """--force checked a real bundle at start; a file added to it mid-compile makes it something
    else, and publish (re-checking at that moment) leaves it alone."""
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    _during_compile(monkeypatch, lambda: (out / "added-later.txt").write_text("mine"))
    with pytest.raises(OutputError, match="extra: added-later.txt"):
        compile_bundle(_config(small, out, force=True))
    _assert_untouched_plus(out, reference, "added-later.txt")


# -- --force trusts only a verified bundle --------------------------------------------------


def test_force_refuses_directory_with_empty_manifest(small, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    (out / "thesis.tex").write_text("years of work")
    before = _tree(out)
    with pytest.raises(OutputError, match="does not verify as a tracec bundle") as info:
        compile_bundle(_config(small, out, force=True))
    assert info.value.exit_code == 3 and _tree(out) == before and _leftovers(out) == []


def test_force_refuses_a_bundle_with_a_tampered_file(small, reference, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "model.onnx").write_bytes(b"not the signed graph")
    with pytest.raises(OutputError, match="changed: model.onnx"):
        compile_bundle(_config(small, out, force=True))
    assert (out / "model.onnx").read_bytes() == b"not the signed graph"


def test_force_replaces_a_verified_bundle_atomically(small, reference, tmp_path, rename_mode):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    result = compile_bundle(_config(small, out, force=True, seed=1))
    verified = verify_bundle(out, allow_unsigned=True)
    assert verified.manifest == result.manifest and _tree(out) != _tree(reference)
    assert oct(out.stat().st_mode & 0o777) == "0o755"
    assert _leftovers(out) == []


def test_force_replaces_an_empty_directory(small, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    compile_bundle(_config(small, out, force=True))
    verify_bundle(out, allow_unsigned=True)


@pytest.mark.parametrize("swap", ["exchange", "two-renames"])
def test_force_bundle_changed_between_check_and_swap_is_put_back(small, reference, tmp_path,
                                                                 monkeypatch, swap):
    """The last window: --out changes after publish re-verified it and before the swap.  What
    came out of --out is verified again at its private name, found changed, and put back."""
    import tracec.bundle as bundle
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    real = bundle.exchange

    def exchange(a, b):
        if not (out / "late.txt").exists():
            (out / "late.txt").write_text("mine")
        return real(a, b) if swap == "exchange" else False

    monkeypatch.setattr(bundle, "exchange", exchange)
    with pytest.raises(OutputError, match="extra: late.txt"):
        compile_bundle(_config(small, out, force=True))
    _assert_untouched_plus(out, reference, "late.txt")


def test_failed_compile_removes_the_parent_directories_it_created(small, tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = small[0].read_text(encoding="utf-8").splitlines()
    bad.write_text("\n".join(lines[:-1] + ['{"input": "x", "teacher": 7}']) + "\n", encoding="utf-8")
    out = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(TraceFileError, match=f"bad.jsonl:{len(lines)}"):
        compile_bundle(CompileConfig(traces=bad, out=out, embeddings=small[1], embedder_id="minilm", alphas=(0.8,)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


# -- two compiles into one path ------------------------------------------------------------


def test_two_compiles_into_one_new_path_second_fails(small, tmp_path):
    out = tmp_path / "out"
    with Destination(out, force=False):  # the first compile holds --out
        with pytest.raises(OutputError, match=r"another tracec compile is writing it \(pid "
                                              rf"{os.getpid()}"):
            compile_bundle(_config(small, out, force=True))
        assert not out.exists()
    assert _leftovers(out) == []  # the lock file went with its holder
    compile_bundle(_config(small, out))
    verify_bundle(out, allow_unsigned=True)


_HOLDER = """
import sys, time
from pathlib import Path
from tracec.bundle import Destination
with Destination(Path(sys.argv[1]), force=False):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_two_compiles_across_processes_and_a_stale_lock_of_a_killed_one(small, tmp_path):
    """flock across processes: busy while the holder lives; after SIGKILL its lock file is
    stale (the kernel dropped the flock), the next compile takes it over and removes it."""
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdout=subprocess.PIPE,
                              text=True, env=os.environ.copy())
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(OutputError, match=rf"another tracec compile .*pid {holder.pid}"):
            compile_bundle(_config(small, out))
    finally:
        holder.kill()
        holder.wait()
    assert f".{out.name}.tracec-lock" in _leftovers(out)  # SIGKILL ran no cleanup
    said = []
    compile_bundle(_config(small, out), progress=said.append)
    assert any("left by a compile that was killed" in s for s in said), said
    assert any("removed" in s and "tracec-work" in s for s in said), said
    verify_bundle(out, allow_unsigned=True)
    assert _leftovers(out) == []


# -- crashes and signals --------------------------------------------------------------------

_CRASHER = """
import json, os, signal, sys, time
from pathlib import Path
import tracec.emit as emit, tracec.fsatomic as fsatomic, tracec.bundle as bundle
from tracec.config import CompileConfig
from tracec.pipeline import compile_bundle
from tracec.signals import Terminated
traces, emb, out, mode, force = sys.argv[1:6]
if mode == "hang-in-staging":
    real = emit.write_bundle
    def write_bundle(root, **kw):
        (root / "partial.txt").write_text("trace text")
        print("staging", flush=True)
        time.sleep(120)
    emit.write_bundle = write_bundle
if mode == "crash-between-renames":
    fsatomic.USE_RENAMEAT2 = False  # the two-rename fallback: the window the crash hits
    real_place = bundle.rename_noreplace
    def place(src, dst):
        if Path(src).name == "bundle":  # the new bundle, after the old one was moved aside
            os._exit(137)
        return real_place(src, dst)
    bundle.rename_noreplace = place
config = CompileConfig(traces=Path(traces), out=Path(out), embeddings=Path(emb), embedder_id="minilm", alphas=(0.8,),
                       families=("global",), force=force == "force")
try:
    compile_bundle(config)
except Terminated:
    sys.exit(143)
"""


def _crasher(small, out, mode, force=""):
    traces, emb = small
    return subprocess.Popen([sys.executable, "-c", _CRASHER, str(traces), str(emb), str(out), mode,
                             force], stdout=subprocess.PIPE, text=True, env=os.environ.copy())


def _work_dirs(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.tracec-work-*"))


def test_sigterm_during_staging_cleans_up(small, tmp_path):
    out = tmp_path / "out"
    proc = _crasher(small, out, "hang-in-staging")
    assert proc.stdout.readline().strip() == "staging"
    assert len(_work_dirs(out)) == 1  # the partial bundle with trace text exists now...
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert not out.exists() and _leftovers(out) == []  # ...and is gone with the lock


def test_sigkill_during_staging_leftovers_are_removed_by_next_compile(small, tmp_path):
    out = tmp_path / "out"
    proc = _crasher(small, out, "hang-in-staging")
    assert proc.stdout.readline().strip() == "staging"
    proc.kill()
    proc.wait()
    (work,) = _work_dirs(out)
    owner = json.loads((work / "owner.json").read_text())
    assert owner["pid"] == proc.pid and owner["state"] == "staging"
    assert (work / "bundle" / "partial.txt").read_text() == "trace text"
    said = []
    compile_bundle(_config(small, out), progress=said.append)
    assert any(f"removed {work}" in s and f"pid {proc.pid}" in s for s in said), said
    assert _leftovers(out) == [] and _work_dirs(out) == []
    verify_bundle(out, allow_unsigned=True)


def test_leftovers_of_a_live_process_are_not_touched(small, tmp_path):
    """A work dir whose owner still runs (here: this test process) is reported, never removed."""
    out = tmp_path / "out"
    work = tmp_path / f".{out.name}.tracec-work-foreign"
    (work / "bundle").mkdir(parents=True)
    (work / "owner.json").write_text(json.dumps({**fsatomic.owner_record(), "tool": "tracec",
                                                 "state": "staging"}))
    said = []
    compile_bundle(_config(small, out), progress=said.append)
    assert (work / "bundle").is_dir() and any("may still run" in s for s in said), said


@pytest.mark.skipif(not Path("/proc/1/stat").exists(), reason="needs Linux /proc")
def test_leftovers_whose_pid_was_reused_are_removed(small, tmp_path):
    """The recorded pid runs again, but as a process that started after the record: not ours."""
    out = tmp_path / "out"
    work = tmp_path / f".{out.name}.tracec-work-reused"
    (work / "bundle").mkdir(parents=True)
    (work / "owner.json").write_text(json.dumps({**fsatomic.owner_record(), "pid": 1,
                                                 "started_unix": 0, "tool": "tracec",
                                                 "state": "staging"}))
    compile_bundle(_config(small, out))
    assert not work.exists()


def test_lock_path_that_is_a_symlink_is_never_followed(small, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("do not truncate")
    out = tmp_path / "out"
    (tmp_path / f".{out.name}.tracec-lock").symlink_to(victim)
    with pytest.raises(OutputError, match="is not a regular file"):
        compile_bundle(_config(small, out))
    assert victim.read_text() == "do not truncate" and not out.exists()


def test_crash_between_the_two_renames_is_recovered(small, reference, tmp_path):
    """Without an atomic exchange, --force moves the old bundle aside, then the new one in.  A
    crash between the two leaves --out missing; the next compile restores the old bundle."""
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    proc = _crasher(small, out, "crash-between-renames", "force")
    assert proc.wait(timeout=120) == 137
    assert not out.exists()
    (work,) = _work_dirs(out)
    assert _tree(work / "old") == _tree(reference)
    said = []
    with pytest.raises(ParameterError, match="does not exist yet"):  # restored, so now it exists
        compile_bundle(_config(small, out), progress=said.append)
    assert any(f"restored the previous bundle at {out}" in s for s in said), said
    assert _tree(out) == _tree(reference) and _work_dirs(out) == []
    verify_bundle(out, allow_unsigned=True)


# -- write failures -----------------------------------------------------------------------


def test_disk_full_during_staging_is_typed_and_leaves_nothing(small, tmp_path, monkeypatch):
    from tracec import emit
    real, calls = emit.write_file, []

    def write_file(root, name, data):
        calls.append(name)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(root / name))
        return real(root, name, data)

    monkeypatch.setattr(emit, "write_file", write_file)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="No space left on device") as info:
        compile_bundle(_config(small, out))
    assert info.value.exit_code == 3
    assert not out.exists() and _leftovers(out) == []


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                    reason="mounting a tmpfs needs root on Linux")
def test_disk_full_on_a_real_tiny_tmpfs(small, tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = mnt / "out"
        with pytest.raises(OutputError, match="No space left on device"):
            compile_bundle(_config(small, out))
        assert list(mnt.iterdir()) == []
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(mnt)], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)


def test_signals_critical_holds_sigterm_until_the_block_ends():
    from tracec.signals import Terminated, critical, terminate_as_exception
    steps, before = [], signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        with terminate_as_exception():
            with critical():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("after the signal, still inside")
            steps.append("never")
    assert steps == ["after the signal, still inside"]
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back

