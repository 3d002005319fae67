"""The CLI's ``--json`` documents, as pydantic models (schemas in ``schemas/``, drift-tested).

Each command prints exactly one of these on stdout; narration goes to stderr.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict

from tracec.manifest import Manifest
from tracec.schemas import register


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TracesRead(_Out):
    """What the trace loader read: the format, the rows kept, rows of other kinds skipped."""

    format: str
    rows: int
    skipped: dict[str, int]


class CompileOutput(_Out):
    bundle: str
    gate: Literal["open", "closed"]
    explanation: str
    manifest: Manifest
    frontier: dict
    timings_s: dict[str, float]
    traces: Optional[TracesRead] = None


class VerifyOutput(_Out):
    bundle: str
    valid: bool
    signed: bool
    files: list[str]
    gate: Literal["open", "closed"]
    alpha: str
    tau: str


class RouteDecision(_Out):
    row: int
    label: Optional[str]
    handled: bool
    surrogate_label: str
    score: str
    flag: Optional[Literal["empty", "invalid_text", "truncated"]] = None


class RouteSummary(_Out):
    rows: int
    handled: int
    coverage: str
    gate: Literal["open", "closed"]
    ta_handled: Optional[str] = None
    accuracy_end_to_end: Optional[str] = None
    accuracy_teacher_only: Optional[str] = None


class RouteOutput(_Out):
    bundle: str
    summary: RouteSummary
    decisions: list[RouteDecision]


register("cli-compile.schema.json", CompileOutput)
register("cli-verify.schema.json", VerifyOutput)
register("cli-route.schema.json", RouteOutput)
register("manifest.schema.json", Manifest)
