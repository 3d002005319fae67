"""The loader's limits, in one place (docs/bundle-format.md, "Loader limits").

Everything the runtime reads from a bundle is bounded before it is parsed:
file sizes are compared with ``stat`` before a byte is read, JSON depth and
integer length are checked before the JSON parser runs, and ONNX graphs are
scanned (bounded nesting) before any onnxruntime session exists.
"""

from __future__ import annotations

MAX_ENVELOPE_BYTES = 4 << 20      # bundle.dsse.json: 4 MiB (about 20,000 subjects)
MAX_MANIFEST_BYTES = 16 << 20     # manifest.json: 16 MiB (a real one is 5-30 KB)
MAX_FILE_BYTES = 1 << 30          # any one signed file: 1 GiB
MAX_BUNDLE_BYTES = 2 << 30        # all signed files together: 2 GiB
MAX_JSON_DEPTH = 32               # nesting of objects/arrays (real documents: <= 6)
MAX_INT_DIGITS = 20               # digits of one JSON integer (2**64 has 20)
MAX_ONNX_DEPTH = 8                # graphs nested in node attributes (the compiler writes 0)
