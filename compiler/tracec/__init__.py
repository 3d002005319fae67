"""tracec: compile LLM classification traces into a certified, signed routing bundle."""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "codegen":   # lazy: `tracec.codegen(...)` (docs/codegen.md) without importing jinja2 here
        import importlib
        return importlib.import_module("tracec.codegen")
    raise AttributeError(f"module 'tracec' has no attribute {name!r}")
