"""The defensive .npy reader: every header attack is a typed EmbeddingError, found before allocating."""

from __future__ import annotations

import io
import struct
import tracemalloc

import numpy as np
import pytest

from tracec import npy
from tracec.embeddings import load_embeddings
from tracec.errors import EmbeddingError

_GOOD = "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 4), }"


def _npy(header: str, payload: bytes = bytes(80), version: int = 1) -> bytes:
    text = header.encode("latin1") + b"\n"
    size = struct.pack("<H", len(text)) if version == 1 else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + size + text + payload


def _fails(tmp_path, data: bytes, rows: int = 5) -> EmbeddingError:
    path = tmp_path / "X.npy"
    path.write_bytes(data)
    with pytest.raises(EmbeddingError) as info:
        load_embeddings(path, rows)
    assert str(info.value).startswith(f"{path}: "), "the error names the file"
    return info.value


@pytest.mark.parametrize("arr", [
    np.arange(12, dtype="<f4").reshape(3, 4), np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    np.arange(10, dtype=">f8").reshape(5, 2), np.zeros((0, 7), np.float16), np.array(2.5),
    np.zeros((2, 3, 4), np.int8)])
@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_numpy_written_files_read_back_exactly(arr, version):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version)
    data = buf.getvalue()
    got = npy.read_array("X.npy", data, npy.read_header("X.npy", data))
    assert got.dtype == arr.dtype and got.shape == arr.shape and np.array_equal(got, arr)


def test_npy_unbalanced_header_dict_is_typed(tmp_path):
    err = _fails(tmp_path, _npy("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 4), "))
    assert "expected a NumPy .npy file, found a header dict that ends early" in str(err)


def test_npy_oversized_dimension_is_typed(tmp_path):
    err = _fails(tmp_path, _npy(_GOOD.replace("(5, 4)", "(5, 4" + "0" * 30 + ")")))
    assert "a shape dimension with 31 digits" in str(err)


def test_npy_petabyte_shape_is_refused_before_allocating(tmp_path):
    data = _npy(_GOOD.replace("(5, 4)", "(2500, 1000000000000)"))
    tracemalloc.start()
    try:
        err = _fails(tmp_path, data, rows=2500)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "expected 2,500 x 1,000,000,000,000 values after the .npy header, found a truncated " \
           "file (80 of 10,000,000,000,000,000 bytes)" in str(err)
    assert peak < 1 << 20


def test_npy_trailing_garbage_is_refused(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.ones((5, 4), np.float32))
    err = _fails(tmp_path, buf.getvalue() + b"garbage")
    assert "expected 5 x 4 values after the .npy header and nothing more, found 7 trailing bytes" \
        in str(err)


@pytest.mark.parametrize("header, words", [
    ("{'descr': __import__('os').system('true'), 'fortran_order': False, 'shape': (5, 4)}",
     "unexpected"),
    ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (5, 4)}", "unexpected"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 4), 'extra': 1}",
     "the header key 'extra' which is not one of"),
    ("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (5, 4)}",
     "the header key 'descr' twice"),
    ("{'descr': '<f4', 'shape': (5, 4)}", "a header without fortran_order"),
    ("{'descr': '<f4', 'fortran_order': 0, 'shape': (5, 4)}", "where True or False was expected"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (20)}", "one-element shape without"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': ((5,), 4)}", "where an integer was"),
    ("{'descr': 'not a dtype', 'fortran_order': False, 'shape': (5, 4)}", "the dtype 'not a dtype'"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1, " * 40 + ")}", "more than 32"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 4)} {}", "more after the header dict"),
])
def test_npy_header_grammar_is_strict(tmp_path, header, words):
    assert words in str(_fails(tmp_path, _npy(header)))


def test_npy_header_length_is_bounded(tmp_path):
    data = b"\x93NUMPY\x02\x00" + struct.pack("<I", 4_000_000_000) + b"{"
    assert "a header of 4,000,000,000 bytes (at most 10,000 are read)" in str(_fails(tmp_path, data))


@pytest.mark.parametrize("data, words", [
    (b"\x93NUMPY\x01\x00\x50\x00{'descr'", "ends inside its 80-byte header"),
    (b"\x93NUMPY\x01\x00", "8 bytes"),
    (b"\x93NUMPY\x04\x00\x10\x00" + b" " * 16, "format version 4.0"),
])
def test_npy_truncated_or_unknown_versions_are_typed(tmp_path, data, words):
    assert words in str(_fails(tmp_path, data))


def test_npy_zero_itemsize_dtype_is_refused():
    data = _npy("{'descr': '|S0', 'fortran_order': False, 'shape': (1000000000, 1000000000)}", b"")
    with pytest.raises(EmbeddingError, match="positive item size"):
        npy.read_array("X.npy", data, npy.read_header("X.npy", data))


def test_npy_sparse_2gb_file_is_refused_without_reading_it(tmp_path):
    """A valid header for 10 x 4 float32 followed by 2 GB (sparse) of trailing bytes: the size
    check runs on the header and stat() alone, so the payload is never read."""
    path = tmp_path / "X.npy"
    buf = io.BytesIO()
    np.save(buf, np.ones((10, 4), np.float32))
    with open(path, "wb") as f:
        f.write(buf.getvalue())
        f.truncate(2_000_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(EmbeddingError, match="trailing bytes after them"):
            load_embeddings(path, 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
