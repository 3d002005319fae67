"""The CLI's ``--json`` documents, as pydantic models (schemas in ``schemas/``, drift-tested).

Each command prints exactly one of these on stdout; narration goes to stderr.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from tracec.manifest import Manifest
from tracec.schemas import register


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TracesRead(_Out):
    """What the trace loader read: the format, the rows kept, rows of other kinds skipped."""

    format: str
    rows: int
    skipped: dict[str, int]
    sampling: Optional[dict[str, Any]] = Field(
        None, description="decision-log only: rows by use (the manifest's sampling)")


class ErrorInfo(_Out):
    """A typed error as data: the same fields the exception carries (``tracec_runtime.cli``)."""

    type: str = Field(description="the error's class name, e.g. TraceFileError, UsageError")
    exit_code: int = Field(description="the process exit code (docs/architecture.md)")
    message: str
    path: Optional[str] = None
    line: Optional[int] = None
    field: Optional[str] = None
    row: Optional[int] = None
    bundle: Optional[str] = None
    problems: Optional[list[str]] = None
    name: Optional[str] = None
    owner: Optional[str] = None
    expected: Optional[str] = None
    got: Any = None
    explanation: Optional[str] = None


class ErrorOutput(_Out):
    """What every command prints with ``--json`` when it fails."""

    ok: Literal[False]
    error: ErrorInfo


class _Success(_Out):
    ok: Literal[True] = True


class CompileOutput(_Out):
    ok: bool = Field(description="true iff the gate is open (exit 0); a refusal carries 'error'")
    error: Optional[ErrorInfo] = None
    bundle: str
    gate: Literal["open", "closed"]
    explanation: str
    manifest: Manifest
    frontier: dict
    timings_s: dict[str, float]
    traces: Optional[TracesRead] = None


class VerifyOutput(_Success):
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
    flag: Optional[Literal["empty", "invalid_text", "truncated", "rule:never_handle"]] = None


class RouteSummary(_Out):
    rows: int
    handled: int
    coverage: str
    gate: Literal["open", "closed"]
    ta_handled: Optional[str] = None
    accuracy_end_to_end: Optional[str] = None
    accuracy_teacher_only: Optional[str] = None
    alpha: Optional[str] = Field(None, description="the bundle's certified TA target")
    ta_interval: Optional[list[str]] = Field(
        None, description="two-sided (1 - delta) Clopper-Pearson interval of ta_handled")
    ta_below_alpha: Optional[bool] = Field(
        None, description="true when the interval's upper bound is below alpha")
    unseen_teacher_rows: Optional[int] = None
    unseen_teacher_labels: Optional[list[str]] = Field(
        None, description="teacher labels the bundle has never seen (its label set lacks them)")
    ood_share: Optional[str] = Field(None, description="share of rows deferred as out-of-distribution")
    warnings: list[str] = []


class RouteOutput(_Success):
    bundle: str
    summary: RouteSummary
    decisions: list[RouteDecision]


class KeygenOutput(_Success):
    private_key: str
    public_key: str


class EmbedOutput(_Success):
    embeddings: str
    rows: int
    dimension: int
    format: Optional[str] = Field(None, description="the trace format read")
    skipped: dict[str, int] = Field(default_factory=dict, description="rows of other kinds, by reason")


class ReportOutput(_Success):
    report: str
    bundle: str


class Spread(_Out):
    """A projected number: the median over subsample seeds and the seeds' range (null: not
    reached within the projection's range)."""

    median: Optional[float]
    low: Optional[float]
    high: Optional[float]


class ProjectedAt(Spread):
    traces: int = Field(description="total traces (multiples of the traces scanned)")
    no_learning: float = Field(description="the pessimistic end: coverage at these traces if "
                                           "the model stopped learning (today's held-out "
                                           "agreement, certified on the larger calibration split)")


class CoverageTarget(_Out):
    coverage: float
    traces: Spread = Field(description="total traces projected to reach this coverage")


class ScanAlpha(_Out):
    alpha: float
    coverage_now: float = Field(description="calibration coverage the compile's procedure "
                                            "certifies on these traces (before the shadow gate)")
    family: Optional[str] = Field(description="the family certified now; null if none")
    model_coverage_now: float = Field(description="the projection model's coverage at the "
                                                  "traces scanned (compare with coverage_now)")
    status: Literal["projected", "cannot_project"]
    note: str
    at: list[ProjectedAt]
    traces_to_open: Optional[Spread] = None
    more_traces_to_open: Optional[int] = None
    traces_to_open_no_learning: Optional[int] = Field(
        default=None, description="total traces that would open the gate if the model stopped "
                                  "learning (null: not within max_factor x, or not projected)")
    targets: list[CoverageTarget] = []
    agreement_gain_per_doubling: Optional[Spread] = None


class ScanPoint(_Out):
    fraction: float
    repeat: int
    train_rows: int
    agreement_full_coverage: float


class ScanLabel(_Out):
    label: str
    traces: int
    heldout: int
    agreement: float = Field(description="held-out agreement of the full-data model on the label")
    agreement_half_data: Optional[float] = Field(description="the same at 50 % of the traces")
    error_share: float = Field(description="the label's disagreeing held-out rows / all held-out rows")


class ScanOutput(_Success):
    """``tracec scan``: certifiable coverage now and a learning-curve projection (docs/scan.md)."""

    traces: TracesRead
    labels_total: int
    seed: int
    delta: float
    splits: dict[str, int]
    method: dict[str, Any]
    learning_curve: list[ScanPoint]
    alphas: list[ScanAlpha]
    labels: list[ScanLabel]


register("cli-error.schema.json", ErrorOutput)
register("cli-scan.schema.json", ScanOutput)
register("cli-keygen.schema.json", KeygenOutput)
register("cli-embed.schema.json", EmbedOutput)
register("cli-report.schema.json", ReportOutput)
register("cli-compile.schema.json", CompileOutput)
register("cli-verify.schema.json", VerifyOutput)
register("cli-route.schema.json", RouteOutput)
register("manifest.schema.json", Manifest)
