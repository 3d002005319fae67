"""Canonical JSON (no floats, sorted, compact, UTF-8) and float32 decimal strings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tracec_runtime.canonical import canonical_bytes, canonical_file_bytes, f32_str, parse_f32


def test_canonical_form():
    doc = {"b": [1, "é", None, True], "a": {"z": "0.9", "y": -3}}
    out = canonical_bytes(doc)
    assert out == '{"a":{"y":-3,"z":"0.9"},"b":[1,"é",null,true]}'.encode("utf-8")
    assert canonical_file_bytes(doc) == out + b"\n"
    assert json.loads(out) == doc
    # Key order of the input does not matter.
    assert canonical_bytes(dict(reversed(list(doc.items())))) == out


@pytest.mark.parametrize("doc, path", [
    (0.5, "$"),
    ({"policy": {"stages": [{"coef": ["1", 2.0]}]}}, "$.policy.stages[0].coef[1]"),
    ({"odd key": [np.float64(1.0)]}, '$["odd key"][0]'),
    ({"a": float("nan")}, "$.a"),
    ((1, (2, 3.0)), "$[1][1]"),
])
def test_floats_are_refused_with_their_json_path(doc, path):
    with pytest.raises(TypeError) as info:
        canonical_bytes(doc)
    assert f"{path} is the float" in str(info.value)


@pytest.mark.parametrize("doc, words", [
    ({1: "x"}, "$ has the key 1"),
    ({"a": {"b": np.float32(1)}}, "$.a.b is a numpy.float32"),
    ({"a": b"raw"}, "$.a is a builtins.bytes"),
])
def test_non_json_values_are_refused(doc, words):
    with pytest.raises(TypeError) as info:
        canonical_bytes(doc)
    assert words in str(info.value)


def test_f32_round_trip_across_magnitudes():
    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.uniform(0, 1, 2000), 10.0 ** rng.uniform(-40, 38, 2000),
                         -rng.uniform(0, 1, 200), [0.0, 1.0, np.finfo(np.float32).max,
                                                   np.finfo(np.float32).tiny, np.inf]])
    for x in xs:
        s = f32_str(x)
        assert np.float32(s) == np.float32(x), (x, s)
        assert parse_f32(s) == np.float32(x) and isinstance(parse_f32(s), np.float32)
        assert f32_str(parse_f32(s)) == s  # the string form is a fixed point


def test_f32_str_examples():
    assert f32_str(0.734120011) == "0.734120011"
    assert f32_str(0.6) == "0.600000024"
    assert f32_str(1) == "1"
    with pytest.raises(ValueError):
        f32_str(float("nan"))


@pytest.mark.parametrize("bad", ["nan", "NaN", "0x1p-1", " 0.5", "0.5 ", "", "1e39", "-1e39",
                                 "1,5", "+0.5", 0.5, None])
def test_parse_f32_is_strict(bad):
    with pytest.raises(ValueError) as info:
        parse_f32(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("text, ok", [
    (b"[" * 32 + b"]" * 32, True),
    (b"[" * 33 + b"]" * 33, False),
    (b'{"a":' * 33 + b"1" + b"}" * 33, False),
    (b'["' + b"[" * 100 + b'"]', True),                 # brackets inside a string do not nest
    (b'["\\"' + b"[" * 100 + b'"]', True),              # nor after an escaped quote
    (b"[" * 1000 + b"]" * 1000, False),                 # RecursionError before the bound
    (b"[" + b"1" * 20 + b"]", True),
    (b"[-" + b"1" * 20 + b"]", True),
    (b"[" + b"1" * 21 + b"]", False),
    (b"[" + b"1" * 5000 + b"]", False),                 # ValueError from int() before the bound
])
def test_strict_json_bounds_depth_and_integer_digits(text, ok):
    from tracec_runtime.canonical import strict_json
    if ok:
        strict_json(text)
    else:
        with pytest.raises(ValueError, match="nest deeper than 32 levels|digits \\(at most 20\\)"):
            strict_json(text)


@pytest.mark.parametrize("text, words", [
    (b'{"a":1}', "one trailing newline"),
    (b'{"b":1,"a":2}\n', "byte 2"),
    (b'{"a": 1}\n', "byte 5"),
    (b'{"a":1.5}\n', "float literal 1.5"),
    (b'{"a":"\\ud800"}\n', "not canonical JSON"),
])
def test_parse_canonical_refuses_what_the_compiler_never_writes(text, words):
    from tracec_runtime.canonical import parse_canonical
    assert parse_canonical(b'{"a":1}\n') == {"a": 1}
    with pytest.raises(ValueError, match=words.replace("(", "\\(")):
        parse_canonical(text)
