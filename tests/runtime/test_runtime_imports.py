"""The runtime stays small: loading and routing a bundle imports none of the compiler's stack."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import make_bundle

FORBIDDEN = ["sklearn", "scipy", "pydantic", "torch", "tracec", "onnx", "skl2onnx",
             "sentence_transformers", "joblib"]

SCRIPT = """
import json, sys
import tracec_runtime
cheap = sorted({m.split('.')[0] for m in sys.modules} & {'onnxruntime', 'nacl', 'numpy'})
from tracec_runtime import Router
router = Router.load(sys.argv[1], sys.argv[2])
d = router.route([0.5, -1.0, 2.0, 0.25], fallback=lambda: "llm")
b = router.route_batch([[0.5, -1.0, 2.0, 0.25]] * 3)
print(json.dumps({"cheap": cheap, "modules": sorted({m.split('.')[0] for m in sys.modules}),
                  "label": d.label, "n": len(b)}))
"""


def _run(script: str, bundle, public_key: dict, tmp_path) -> dict:
    """Run ``script`` in a fresh interpreter on ``bundle``; its one JSON line, parsed."""
    pub = tmp_path / "k.pub"
    pub.write_text(json.dumps(public_key))
    proc = subprocess.run([sys.executable, "-c", script, str(bundle), str(pub)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_load_and_route_import_only_the_runtime_stack(tmp_path, keys):
    out = _run(SCRIPT, make_bundle(tmp_path / "b", keys[0]), keys[1], tmp_path)
    assert out["n"] == 3 and out["label"] is not None
    assert out["cheap"] == [], "import tracec_runtime must not load numpy/onnxruntime/nacl"
    loaded = set(out["modules"])
    assert {"onnxruntime", "nacl", "numpy", "tracec_runtime"} <= loaded
    assert loaded.isdisjoint(FORBIDDEN), sorted(loaded & set(FORBIDDEN))


FAST_SCRIPT = """
import json, sys
import tracec_runtime
cheap = sorted({m.split('.')[0] for m in sys.modules} & {'onnxruntime', 'nacl', 'numpy'})
router = tracec_runtime.Router.load(sys.argv[1], sys.argv[2])
row = [((i * 7) % 11 - 5) / 20 for i in range(router.dimension)]
d = router.route(row, fallback=lambda: "llm")
b = router.route_batch([row] * 3)
print(json.dumps({"cheap": cheap, "modules": sorted({m.split('.')[0] for m in sys.modules}),
                  "engine": router.engine, "label": d.label, "n": len(b)}))
"""


def test_fast_path_bundle_routes_without_onnxruntime(tmp_path, keys):
    from .fastpath_fixtures import make_fastpath_bundle, random_stage

    bundle = make_fastpath_bundle(tmp_path / "b", keys[0], stages=[random_stage(16, 5, 1)],
                                  tau="0.5")
    out = _run(FAST_SCRIPT, bundle, keys[1], tmp_path)
    assert out["engine"] == "numpy" and out["n"] == 3 and out["label"] is not None
    assert out["cheap"] == []
    loaded = set(out["modules"])
    assert {"nacl", "numpy", "tracec_runtime"} <= loaded
    assert loaded.isdisjoint(FORBIDDEN + ["onnxruntime"]), sorted(loaded & {*FORBIDDEN,
                                                                            "onnxruntime"})


TEXT_SCRIPT = """
import json, sys
import tracec_runtime
cheap = sorted({m.split('.')[0] for m in sys.modules} & {'onnxruntime', 'nacl', 'numpy', 'tokenizers'})
router = tracec_runtime.Router.load(sys.argv[1], sys.argv[2])
d = router.route_text("I lost my card", fallback=lambda: "llm")
b = router.route_texts(["I lost my card", "", "refund please"])
print(json.dumps({"cheap": cheap, "modules": sorted({m.split('.')[0] for m in sys.modules}),
                  "label": d.label, "n": len(b), "flags": list(b.flags)}))
"""


def test_text_routing_imports_only_the_runtime_stack(tmp_path, keys):
    from .text_fixtures import make_text_bundle

    out = _run(TEXT_SCRIPT, make_text_bundle(tmp_path / "t", keys[0]), keys[1], tmp_path)
    assert out["n"] == 3 and out["label"] is not None and out["flags"] == [None, "empty", None]
    assert out["cheap"] == [], "import tracec_runtime must not load its engines"
    loaded = set(out["modules"])
    assert {"onnxruntime", "nacl", "numpy", "tokenizers", "tracec_runtime"} <= loaded
    assert loaded.isdisjoint(FORBIDDEN + ["transformers"]), sorted(loaded & {*FORBIDDEN,
                                                                             "transformers"})
