"""JSON Schemas generated from the pydantic models, with a drift check.

Modules register their models with ``register(filename, model_cls)`` at import
time; ``SCHEMAS`` maps each file name in ``schemas/`` to a function producing
its schema.  The committed files are regenerated with::

    python -m tracec.schemas --write        # or --check (exit 1 on drift)
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Callable

from tracec.resources import resource_dir

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://tracec.dev/schemas/"
#: The schemas shipped in the package (a wheel), else the checkout's ``schemas/``.
DEFAULT_DIR = resource_dir("schemas")

#: Modules whose import registers schemas; imported lazily by ``all_schemas``.
REGISTERING_MODULES: list[str] = ["tracec.traces", "tracec.artifacts.models", "tracec.outputs",
                                   "tracec.rules"]

SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {}


def register(filename: str, model_cls: Any) -> None:
    """Register ``model_cls`` (a pydantic model) as the source of ``schemas/<filename>``."""
    if not filename.endswith(".schema.json") or "/" in filename:
        raise ValueError(f"schema file name must look like 'name.schema.json', got {filename!r}")

    def generate() -> dict[str, Any]:
        schema = model_cls.model_json_schema(mode="validation")
        return {"$schema": SCHEMA_DIALECT, "$id": ID_BASE + filename, **schema}

    SCHEMAS[filename] = generate


def all_schemas() -> dict[str, dict[str, Any]]:
    """Import every registering module, then generate every schema (sorted by file name)."""
    for module in REGISTERING_MODULES:
        importlib.import_module(module)
    return {name: SCHEMAS[name]() for name in sorted(SCHEMAS)}


def schema_bytes(schema: dict[str, Any]) -> bytes:
    """The on-disk form: sorted keys, 2-space indent, UTF-8, trailing newline."""
    return (json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_schemas(out_dir: Path | str = DEFAULT_DIR) -> list[Path]:
    """Write every registered schema into ``out_dir``; return the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in all_schemas().items():
        (out / name).write_bytes(schema_bytes(schema))
        written.append(out / name)
    return written


def check_schemas(out_dir: Path | str = DEFAULT_DIR) -> list[str]:
    """Compare ``out_dir`` with freshly generated schemas; return diff-style problems.

    ``changed: NAME (first difference at line N: ...)``, ``missing: NAME``,
    ``extra: NAME`` (a ``*.schema.json`` file no model produces).  Empty means no drift.
    """
    out = Path(out_dir)
    expected = {name: schema_bytes(s) for name, s in all_schemas().items()}
    present = {p.name for p in out.glob("*.schema.json")} if out.is_dir() else set()
    problems = []
    for name in sorted(set(expected) | present):
        if name not in present:
            problems.append(f"missing: {name}")
        elif name not in expected:
            problems.append(f"extra: {name}")
        else:
            found = (out / name).read_bytes()
            if found != expected[name]:
                problems.append(f"changed: {name} ({_first_difference(found, expected[name])})")
    return problems


def _first_difference(found: bytes, expected: bytes) -> str:
    a = found.decode("utf-8", "replace").splitlines()
    b = expected.decode("utf-8", "replace").splitlines()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            was = a[i1].strip() if i1 < i2 else "<nothing>"
            now = b[j1].strip() if j1 < j2 else "<nothing>"
            return f"first difference at line {i1 + 1}: file has {was!r}, code generates {now!r}"
    return "differs only in line endings or trailing bytes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracec.schemas", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the schema files")
    mode.add_argument("--check", action="store_true", help="exit 1 if the files drifted")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"default: {DEFAULT_DIR}")
    args = parser.parse_args(argv)
    if args.write:
        for path in write_schemas(args.dir):
            print(f"wrote {path}")
        stale = [p for p in check_schemas(args.dir) if p.startswith("extra: ")]
        for p in stale:
            print(f"warning: {p} (no model produces it; delete it if it is stale)", file=sys.stderr)
        return 0
    problems = check_schemas(args.dir)
    for p in problems:
        print(p)
    if problems:
        print("schemas drifted: run `python -m tracec.schemas --write`", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: registrations go
    # into ``tracec.schemas.SCHEMAS``.
    from tracec.schemas import main as _main

    sys.exit(_main())
