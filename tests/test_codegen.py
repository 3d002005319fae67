"""Edge codegen on real Banking77 bundles: every language against tracec_runtime.

Fast variant: a 3,000-row Banking77 subset (real Qwen3-30B teacher) compiled into a
signed linear + MLP cascade (with the default out-of-distribution gate), a closed
bundle and a `--no-ood` bundle; 300 Banking77 test rows + 100 random unit vectors +
200 MNLI rows (so the gate rejects rows).  Per language: labels, handled and
in-distribution flags identical to the runtime, scores within 1e-5; bad input and
tampered weights refused; same bundle => byte-identical package; the signed
statement verifies with `tracec verify`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import data_path, read_json, run_tracec, write_subset
from test_codegen_harness import (LANGS, assert_matches_runtime, built, digest, need,
                                  read_statement, run_example)

ROWS = 300
NOISE, MNLI = 100, 200


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("cg_keys") / "cg"
    run_tracec("keygen", "--out", base, check_code=0)
    return base.with_suffix(".key"), base.with_suffix(".pub")


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cg_data")
    traces = data_path("banking77", "traces_qwen3-30b", "train.jsonl")
    emb = data_path("banking77", "train.minilm-l6-v2.f16.npy")
    rows = np.random.default_rng(0).permutation(10003)[:3000]
    return write_subset(tmp, traces, emb, rows, "b77")


@pytest.fixture(scope="module")
def X():
    """Banking77 test rows, then random unit vectors, then MNLI premises+hypotheses."""
    b77 = np.load(data_path("banking77", "test.minilm-l6-v2.f16.npy"))[:ROWS]
    noise = np.random.default_rng(3).standard_normal((NOISE, b77.shape[1]))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    mnli = np.load(data_path("mnli_sample", "dev_matched.minilm-l6-v2.f16.npy"))[:MNLI]
    return np.ascontiguousarray(np.vstack([b77, noise, mnli]), dtype=np.float32)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("cg_pkgs")


def _compile(subset, out, *args, code=0):
    t, e = subset
    signing = [] if "--signing-key" in args else ["--unsigned"]
    run_tracec("compile", *signing, t, "--embeddings", e, "--embedder-id", "minilm", "--out", out,
               *args, check_code=code)
    return out


@pytest.fixture(scope="module")
def cascade(tmp_path_factory, subset, keys):
    out = _compile(subset, tmp_path_factory.mktemp("cg_b") / "cascade", "--families", "cascade",
                   "--alpha", "0.9", "--split", "0.55,0.15,0.15,0.15",  # an MLP residual stage
                   "--signing-key", keys[0])
    kinds = [s["kind"] for s in read_json(out / "manifest.json")["policy"]["stages"]]
    assert read_json(out / "manifest.json")["policy"]["family"] == "cascade"
    assert sorted(kinds) == ["linear", "neural"], kinds   # both dense node shapes are exercised
    assert read_json(out / "manifest.json")["policy"]["ood"]["method"] == "prototype-cosine"
    return out


@pytest.fixture(scope="module")
def closed(tmp_path_factory, subset):
    out = _compile(subset, tmp_path_factory.mktemp("cg_b") / "closed", "--families", "global",
                   "--alpha", "0.97", "--unsigned", code=1)
    assert read_json(out / "manifest.json")["policy"]["gate"] == "closed"
    assert read_json(out / "manifest.json")["policy"]["ood"] is not None
    return out


@pytest.fixture(scope="module")
def no_ood(tmp_path_factory, subset):
    out = _compile(subset, tmp_path_factory.mktemp("cg_b") / "no_ood", "--families", "l2d",
                   "--alpha", "0.9", "--no-ood", "--unsigned")
    assert read_json(out / "manifest.json")["policy"].get("ood") is None
    return out


@pytest.mark.parametrize("lang", LANGS)
def test_cascade_matches_runtime(cascade, keys, X, root, lang):
    info = assert_matches_runtime(cascade, lang, X, root, keys[1])
    assert info["engine"] == "numpy" and info["gated"]
    assert 0.05 < info["handled"] < 0.99   # tau actually splits the rows
    # the gate rejects rows: every noise row, some MNLI rows, few Banking77 rows
    assert (NOISE + 0.2 * MNLI) / len(X) < info["ood_share"] < (NOISE + MNLI + 0.1 * ROWS) / len(X)


@pytest.mark.parametrize("lang", LANGS)
def test_closed_bundle_defers_everything(closed, X, root, lang):
    info = assert_matches_runtime(closed, lang, X, root)
    assert info["handled"] == 0.0 and info["gated"] and info["ood_share"] > NOISE / len(X)


@pytest.mark.parametrize("lang", LANGS)
def test_bundle_without_gate_matches_runtime(no_ood, X, root, lang):
    info = assert_matches_runtime(no_ood, lang, X, root)
    assert not info["gated"] and info["ood_share"] == 0.0
    assert 0.05 < info["handled"] < 0.99


@pytest.mark.parametrize("lang", LANGS)
def test_bad_input_is_an_error_never_a_decision(cascade, keys, X, root, lang):
    pkg = built(cascade, lang, root, keys[1])
    for bad in (np.nan, np.inf, -np.inf):
        rows = X[:5].copy()
        rows[3, 17] = bad
        proc = run_example(pkg, rows)
        assert proc.returncode == 3, (bad, proc.stderr)
        lines = proc.stdout.decode().splitlines()
        assert len(lines) == 3   # rows 0-2 decided; row 3 refused; nothing after it
        assert b"NaN or infinity" in proc.stderr
    short = np.ascontiguousarray(X[:2], dtype="<f4").tobytes()[:-4]   # wrong dimension
    proc = run_example(pkg, np.frombuffer(short, dtype="<f4"))
    assert proc.returncode == 3 and b"multiple of" in proc.stderr


def test_c_fallback_build_and_plain_c_kernel_print_the_same_bits(cascade, keys, X, root,
                                                               tmp_path):
    """build.sh without -march=native when the compiler refuses it, and the plain-C mat-vec
    (no vector extension), print exactly the default build's decisions and scores: every
    path computes the same float32 sums (Banking77 rows mostly pass the gate's first-prototype
    shortcut; the random and MNLI rows need every prototype)."""
    pkg = built(cascade, "c", root, keys[1])
    want = run_example(pkg, X, "--scores")
    assert want.returncode == 0
    refuses_native = tmp_path / "cc"
    refuses_native.write_text('#!/bin/sh\nfor a; do [ "$a" = -march=native ] && exit 1; done\n'
                              'exec cc "$@"\n')
    refuses_native.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k not in ("CC", "CFLAGS")}
    for i, extra in enumerate(({"CC": str(refuses_native)},
                               {"CFLAGS": "-march=native -DTC_NO_VECTOR_EXT"})):
        other = tmp_path / f"pkg{i}"
        shutil.copytree(pkg, other)
        (other / "route_example").unlink()
        proc = subprocess.run(["sh", "build.sh"], cwd=other, env={**base, **extra},
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (extra, proc.stderr)
        got = run_example(other, X, "--scores")
        assert got.returncode == 0 and got.stdout == want.stdout, extra


@pytest.mark.parametrize("lang", LANGS)
def test_tampered_weights_are_refused_at_load(cascade, keys, X, root, tmp_path, lang):
    pkg = tmp_path / "pkg"
    shutil.copytree(built(cascade, lang, root, keys[1]), pkg)
    weights = bytearray((pkg / "weights.bin").read_bytes())
    weights[len(weights) // 2] ^= 0x01   # one bit of one weight
    (pkg / "weights.bin").write_bytes(bytes(weights))
    proc = run_example(pkg, X[:3])
    assert proc.returncode == 1 and proc.stdout == b"", proc.stderr
    assert b"SHA-256" in proc.stderr
    (pkg / "weights.bin").write_bytes(bytes(weights[:-4]))
    proc = run_example(pkg, X[:3])
    assert proc.returncode == 1 and b"bytes" in proc.stderr
    proc = run_tracec("verify", pkg, "--allow-unsigned")
    assert proc.returncode == 1 and "changed: weights.bin" in proc.stderr


def _load_python_package(pkg):
    spec = importlib.util.spec_from_file_location(f"tracec_policy_{abs(hash(str(pkg)))}",
                                                  pkg / "tracec_policy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_python_api_route_and_errors(cascade, keys, X, root):
    from tracec_runtime import Router

    mod = _load_python_package(built(cascade, "python", root, keys[1]))
    policy = mod.Policy()
    router = Router.load(cascade, public_key=keys[1])
    for row in (0, ROWS):   # a Banking77 row, a random unit vector (out of distribution)
        idx, label, handled, score, reason, inside = policy.route(X[row].tolist())
        ref = router.route(X[row])
        assert label == ref.surrogate_label and handled == ref.handled
        assert inside == ref.in_distribution and inside == (row < ROWS)
        assert abs(score - ref.score) <= 1e-5
        assert reason == (mod.DEFERRED_OUT_OF_DISTRIBUTION if not inside else
                          mod.HANDLED if handled else mod.DEFERRED_SCORE)
        assert ("out_of_distribution" in ref.reason) == (reason == mod.DEFERRED_OUT_OF_DISTRIBUTION)
    assert [d[0] for d in policy.route_batch(X[:4])] == \
        [int(k) for k in router.route_batch(X[:4]).label_index]
    with pytest.raises(mod.PolicyInputError, match="384 values"):
        policy.route(X[0][:-1])
    with pytest.raises(mod.PolicyInputError, match="NaN"):
        policy.route([float("nan")] + X[0][1:].tolist())


def test_same_bundle_gives_byte_identical_packages(cascade, keys, tmp_path):
    from tracec.codegen import generate

    for lang in LANGS:
        a = generate(cascade, lang, keys[1], signing_key=keys[0])
        b = generate(cascade, lang, keys[1], signing_key=keys[0])
        assert a == b, lang
        assert {"weights.bin", "codegen.dsse.json", "build.sh"} <= set(a)
    out = tmp_path / "c"
    run_tracec("codegen", cascade, "--lang", "c", "--out", out, "--public-key", keys[1],
               "--signing-key", keys[0], check_code=0)
    on_disk = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert on_disk == generate(cascade, "c", keys[1], signing_key=keys[0])


def test_statement_is_signed_and_verify_checks_it(cascade, keys, tmp_path):
    out = tmp_path / "go"
    run_tracec("codegen", cascade, "--lang", "go", "--out", out, "--public-key", keys[1],
               "--signing-key", keys[0], check_code=0)
    st = read_statement(out)
    assert st["predicateType"] == "https://tracec.dev/codegen/v1"
    assert st["predicate"]["bundle"]["envelope_sha256"] == digest(cascade / "bundle.dsse.json")
    subjects = {s["name"]: s["digest"]["sha256"] for s in st["subject"]}
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert sorted(subjects) == [f for f in files if f != "codegen.dsse.json"]
    assert all(subjects[f] == digest(out / f) for f in subjects)
    doc = json.loads(run_tracec("verify", out, "--public-key", keys[1], "--json",
                                check_code=0).stdout)
    assert doc["valid"] and doc["signed"] and doc["language"] == "go"
    (out / "route_example").write_bytes(b"a build product")   # declared: ignored
    run_tracec("verify", out, "--public-key", keys[1], check_code=0)
    other = tmp_path / "other"
    run_tracec("keygen", "--out", other, check_code=0)
    assert "signature" in run_tracec("verify", out, "--public-key", other.with_suffix(".pub"),
                                     check_code=1).stderr
    (out / "tracecpolicy" / "extra.go").write_text("package tracecpolicy\n")
    assert "extra: tracecpolicy/extra.go" in run_tracec("verify", out, "--public-key", keys[1],
                                                        check_code=1).stderr
    (out / "tracecpolicy" / "extra.go").unlink()
    src = out / "tracecpolicy" / "policy.go"
    src.write_text(src.read_text().replace("score >= p.tau", "score >= 0"))
    assert "changed: tracecpolicy/policy.go" in run_tracec("verify", out, "--public-key", keys[1],
                                                           check_code=1).stderr


def test_cli_refuses_before_writing(cascade, keys, tmp_path):
    existing = tmp_path / "mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    run_tracec("codegen", cascade, "--lang", "c", "--out", existing, "--public-key", keys[1],
               "--force", check_code=3)
    assert (existing / "notes.txt").read_text() == "keep me"
    run_tracec("codegen", cascade, "--lang", "c", "--out", tmp_path / "x", check_code=2)
    run_tracec("codegen", cascade, "--lang", "rust", "--out", tmp_path / "x",
               "--public-key", keys[1], check_code=2)
    bad = tmp_path / "bad"
    shutil.copytree(cascade, bad)
    (bad / "fastpath.bin").write_bytes(b"\0" + (bad / "fastpath.bin").read_bytes()[1:])
    proc = run_tracec("codegen", bad, "--lang", "c", "--out", tmp_path / "y",
                      "--public-key", keys[1], check_code=1)
    assert "fastpath.bin" in proc.stderr and not (tmp_path / "y").exists()
    assert not list(tmp_path.glob(".y.*"))   # no staging left behind


def test_force_replaces_only_an_earlier_package(cascade, keys, tmp_path):
    out = tmp_path / "pkg"
    run_tracec("codegen", cascade, "--lang", "js", "--out", out, "--public-key", keys[1],
               check_code=0)
    run_tracec("codegen", cascade, "--lang", "js", "--out", out, "--public-key", keys[1],
               check_code=3)   # exists, no --force
    (out / "stale.txt").write_text("from the earlier package's build")
    run_tracec("codegen", cascade, "--lang", "c", "--out", out, "--public-key", keys[1],
               "--force", check_code=0)
    assert (out / "tracec_policy.c").is_file() and not (out / "tracec_policy.js").exists()
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]   # no staging left behind
    run_tracec("verify", out, "--allow-unsigned", check_code=0)


def test_unknown_stage_kinds_are_refused(cascade, keys):
    from tracec.codegen import UnsupportedStageError
    from tracec.codegen.blob import pack
    from tracec.codegen.emit import render
    from tracec.codegen.load import _check_known, policy_of
    from tracec_runtime.verify import verify_bundle

    verified = verify_bundle(cascade, keys[1])
    _, layout = pack(policy_of(verified, (cascade / "bundle.dsse.json").read_bytes()))
    layout["stages"][1]["kind"] = "ood_gate"   # e.g. a stage kind added to the format later
    for lang in LANGS:
        with pytest.raises(UnsupportedStageError, match="ood_gate"):
            render(lang, layout)
    layout["stages"][1]["kind"] = "dense"
    layout["ood"]["kind"] = "ood_v2"    # a gate kind the emitters do not know
    for lang in LANGS:
        with pytest.raises(UnsupportedStageError, match="out-of-distribution gate"):
            render(lang, layout)
    doc = json.loads(verified.files["fastpath.json"])
    from tracec_runtime.fastpath_format import parse_fastpath
    spec = parse_fastpath(verified.files["fastpath.json"], verified.files["fastpath.bin"])
    _check_known(doc, spec)   # the gate as the compiler writes it is known
    with pytest.raises(UnsupportedStageError, match=r"\$\.ood\.method"):
        _check_known({**doc, "ood": {**doc["ood"], "method": "low-rank-density"}}, spec)
    with pytest.raises(UnsupportedStageError, match="temperature"):
        _check_known({**doc, "ood": {**doc["ood"], "temperature": "1"}}, spec)
    doc["stages"][0]["head"] = "ood_gate"
    with pytest.raises(UnsupportedStageError, match="ood_gate"):
        _check_known(doc, spec)


def test_gate_must_be_the_one_the_manifest_records(cascade, keys):
    """The engine's gate and manifest policy.ood agree, or codegen refuses (as the runtime)."""
    from tracec.codegen import UnsupportedStageError
    from tracec.codegen.ir import OOD
    from tracec.codegen.load import _check_gate

    manifest = read_json(cascade / "manifest.json")
    gate = OOD(np.ones((2, 384), np.float32),
               np.float32(float(manifest["policy"]["ood"]["threshold"])))
    _check_gate(manifest, gate, "m")
    with pytest.raises(UnsupportedStageError, match="no gate"):
        _check_gate(manifest, None, "m")
    with pytest.raises(UnsupportedStageError, match="threshold"):
        _check_gate(manifest, OOD(gate.prototypes, np.float32(0.5)), "m")
    with pytest.raises(UnsupportedStageError, match="policy.ood"):
        _check_gate({"policy": {"ood": None}}, gate, "m")


def test_python_api_is_tracec_codegen(cascade, keys, tmp_path):
    import tracec

    summary = tracec.codegen(cascade, "python", tmp_path / "py", public_key=keys[1])
    assert summary["lang"] == "python" and "weights.bin" in summary["files"]
    need("python")
    assert (tmp_path / "py" / "tracec_policy.py").is_file()
    assert sys.modules["tracec.codegen"].verify_codegen(tmp_path / "py",
                                                      allow_unsigned=True)["signer"] is None


_WRONG_DIM = {   # a program calling each language's API with a 10-value embedding
    "c": ("dim.c", '#include <stdio.h>\n#include "tracec_policy.h"\nint main(void) {\n'
          '    float x[10] = {0}; tracec_decision d;\n    if (tracec_load("weights.bin")) return 9;\n'
          '    int s = tracec_route(x, 10, &d);\n'
          '    printf("%d %d %d\\n", s, d.handled, d.label_index);\n    return 0;\n}\n',
          ["sh", "-c", "cc -std=c99 -o dim dim.c tracec_policy.c -lm && ./dim"], "-1 0 -1"),
    "js": ("dim.js", 'const t = require("./tracec_policy.js");\n'
           'try { new t.Policy().route(new Float32Array(10)); console.log("decided"); }\n'
           'catch (e) { console.log(e instanceof t.PolicyInputError ? "PolicyInputError" : e); }\n',
           ["node", "dim.js"], "PolicyInputError"),
    "java": ("Dim.java", 'public class Dim { public static void main(String[] a) throws Exception {\n'
             '  try { new TracecPolicy(null).route(new float[10]); System.out.println("decided"); }\n'
             '  catch (TracecPolicy.PolicyInputException e) { System.out.println("PolicyInputException"); }\n'
             '} }\n', ["sh", "-c", "javac -cp classes -d classes Dim.java && java -cp classes Dim"],
             "PolicyInputException"),
    "go": ("cmd/dim/main.go", 'package main\n\nimport (\n\t"errors"\n\t"fmt"\n\n'
           '\t"tracecroute/tracecpolicy"\n)\n\nfunc main() {\n'
           '\tp, err := tracecpolicy.Load("weights.bin")\n\tif err != nil {\n\t\tpanic(err)\n\t}\n'
           '\t_, err = p.Route(make([]float32, 10))\n\tfmt.Println(errors.Is(err, tracecpolicy.ErrInput))\n}\n',
           ["sh", "-c", "GOPROXY=off go run ./cmd/dim"], "true"),
}


@pytest.mark.parametrize("lang", sorted(_WRONG_DIM))
def test_api_refuses_a_wrong_dimension(cascade, keys, root, tmp_path, lang):
    import subprocess

    pkg = tmp_path / "pkg"
    shutil.copytree(built(cascade, lang, root, keys[1]), pkg)
    name, source, cmd, expected = _WRONG_DIM[lang]
    (pkg / name).parent.mkdir(parents=True, exist_ok=True)
    (pkg / name).write_text(source)
    proc = subprocess.run(cmd, cwd=pkg, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected
