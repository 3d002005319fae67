"""tracec: compile LLM classification traces into a certified, signed routing bundle.

    import tracec
    result = tracec.compile("traces.jsonl", out="bundle", embeddings="X.npy", alpha=0.9)

``import tracec`` is cheap: ``compile``, ``load_traces``, ``CompileResult`` and the errors
are imported on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {"compile": "tracec.api", "load_traces": "tracec.loader",
         "CompileResult": "tracec.pipeline", "Traces": "tracec.traces"}
_ERRORS = ("TracecError", "InputError", "TraceFileError", "EmbeddingError", "ParameterError",
           "ExportError", "GateRefused", "BundleVerificationError", "BundleIntegrityError",
           "SignatureError", "UnsignedBundleError", "KeyFileError")

__all__ = ["__version__", "errors", "codegen", *_LAZY, *_ERRORS]


def __getattr__(name: str) -> Any:
    import importlib

    if name in ("errors", "codegen"):  # codegen: a callable module, tracec.codegen(bundle, lang, out)
        return importlib.import_module(f"tracec.{name}")
    module = _LAZY.get(name) or ("tracec.errors" if name in _ERRORS else None)
    if module is None:
        raise AttributeError(f"module 'tracec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
