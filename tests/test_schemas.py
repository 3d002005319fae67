"""The committed JSON Schemas are exactly what the code generates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from tracec import schemas
from tracec.traces import ALIASES, TraceRecord

COMMITTED = Path(__file__).resolve().parents[1] / "schemas"


def test_committed_schemas_have_not_drifted():
    problems = schemas.check_schemas(COMMITTED)
    assert not problems, ("schemas/ differs from the models:\n  " + "\n  ".join(problems)
                          + "\nupdate with: python -m tracec.schemas --write")


def test_check_reports_changed_missing_and_extra(tmp_path):
    written = schemas.write_schemas(tmp_path)
    assert {p.name for p in written} == set(schemas.all_schemas()) >= {"trace-record.schema.json"}
    assert schemas.check_schemas(tmp_path) == []
    target = tmp_path / "trace-record.schema.json"
    target.write_text(target.read_text().replace('"minLength": 1', '"minLength": 2', 1))
    (tmp_path / "stale.schema.json").write_text("{}\n")
    problems = schemas.check_schemas(tmp_path)
    assert problems[0] == "extra: stale.schema.json"
    assert problems[1].startswith("changed: trace-record.schema.json (first difference at line ")
    assert "'\"minLength\": 2,'" in problems[1] and "'\"minLength\": 1,'" in problems[1]
    target.unlink()
    assert "missing: trace-record.schema.json" in schemas.check_schemas(tmp_path)


def test_register_adds_a_generator(monkeypatch):
    monkeypatch.setattr(schemas, "SCHEMAS", {})

    class Thing(BaseModel):
        size: int

    schemas.register("thing.schema.json", Thing)
    generated = schemas.all_schemas()  # also re-imports the registering modules (already loaded)
    assert generated["thing.schema.json"]["$id"] == schemas.ID_BASE + "thing.schema.json"
    assert generated["thing.schema.json"]["$schema"] == schemas.SCHEMA_DIALECT
    assert generated["thing.schema.json"]["required"] == ["size"]
    with pytest.raises(ValueError, match="name.schema.json"):
        schemas.register("thing.json", Thing)


def test_trace_record_schema_accepts_what_the_loader_accepts():
    schema = json.loads((COMMITTED / "trace-record.schema.json").read_text(encoding="utf-8"))
    assert "required" not in schema  # input/teacher may come under an alias
    groups = [sorted(r["required"][0] for r in group["anyOf"]) for group in schema["allOf"]]
    assert groups == [sorted((field, *alts)) for field, alts in ALIASES.items()]
    model_fields = set(TraceRecord.model_fields)
    aliases = {a for alts in ALIASES.values() for a in alts}
    assert set(schema["properties"]) == model_fields | aliases
    assert schema.get("additionalProperties", True) is True  # unknown keys are ignored


def test_module_entry_point(tmp_path):
    run = [sys.executable, "-m", "tracec.schemas"]
    drift = subprocess.run(run + ["--check", "--dir", str(tmp_path)], capture_output=True, text=True)
    assert drift.returncode == 1 and "missing: trace-record.schema.json" in drift.stdout
    assert "python -m tracec.schemas --write" in drift.stderr
    wrote = subprocess.run(run + ["--write", "--dir", str(tmp_path)], capture_output=True, text=True)
    assert wrote.returncode == 0 and (tmp_path / "trace-record.schema.json").exists()
    ok = subprocess.run(run + ["--check", "--dir", str(tmp_path)], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout == ""
