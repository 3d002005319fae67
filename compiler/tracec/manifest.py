"""The bundle manifest: a value type with canonical bytes.

Decimals are strings (``Dec``) so the signed document never depends on a
float repr; the JSON Schema in ``schemas/manifest.schema.json`` is generated
from these models (``python -m tracec.schemas --write``).
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from tracec_runtime.canonical import canonical_file_bytes

FORMAT_VERSION = "2"  # tracec_runtime.envelope.FORMAT_VERSION
MEDIA_TYPE = "application/vnd.tracec.bundle.v1+json"

Dec = Annotated[str, Field(pattern=r"^-?(\d+(\.\d+)?([eE][-+]?\d+)?|inf)$",
                           description="a decimal number written as a string")]


def dec(x: float, digits: int = 6) -> str:
    """A float as a short, stable decimal string (``round`` then ``repr``-free formatting)."""
    return format(round(float(x), digits), f".{digits}f").rstrip("0").rstrip(".") or "0"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fingerprint(_Model):
    canaries: list[str]
    vectors_f32le_hex: list[str] = Field(description="each canary's embedding: float32 "
                                                     "little-endian bytes as hex")
    max_abs_diff: Dec = Field(description="the runtime refuses a larger component difference")


class TextEmbedderRecord(_Model):
    """What the runtime needs to embed text exactly as the compiler did."""

    procedure: Literal["tracec-embed/1"]
    model: str = Field(description="bundle path of the embedder graph (ONNX)")
    tokenizer: str = Field(description="bundle path of tokenizer.json")
    max_tokens: int = Field(description="longer inputs are truncated (and flagged)")
    fingerprint: Fingerprint


class EmbedderInfo(_Model):
    id: str
    dimension: int
    normalization: Literal["l2", "none"]
    package: Optional[str] = None
    package_version: Optional[str] = None
    source: Literal["computed", "provided"] = Field(
        description="'computed' by tracec's embedder, or 'provided' with --embeddings")
    input: Literal["text", "embedding"] = Field(
        default="embedding", description="'text': the bundle carries its embedder (route_text); "
                                         "'embedding': embedding-in only")
    backend: Literal["minilm-int8", "sentence-transformers", "provided"] = "provided"
    pooling: Optional[str] = None
    digest: Optional[str] = Field(default=None, description="SHA-256 of the model weights file")
    max_tokens: Optional[int] = None
    text: Optional[TextEmbedderRecord] = None


class StageInfo(_Model):
    model_name: str
    kind: str
    val_macro_f1: Dec
    val_agreement: Dec
    n_classes: int
    acceptor_coef: list[Dec] = Field(description="folded coefficients over (top1, top2, margin, entropy)")
    acceptor_intercept: Dec


class OODRecord(_Model):
    """The out-of-distribution gate (tracec.ood): fit on the train split only."""

    method: Literal["prototype-cosine"]
    n_prototypes: int
    per_label: int = Field(description="k-means prototypes per teacher label (fewer for rare labels)")
    threshold: Dec = Field(description="float32 cosine threshold, '.9g' formatted (as tau)")
    quantile: Dec = Field(description="share of out-of-fold training rows below the threshold")
    fit_on: Literal["train"]


class Policy(_Model):
    gate: Literal["open", "closed"]
    family: Literal["global", "l2d", "cascade", "none"]
    alpha: Dec
    delta: Dec
    tau: Dec = Field(description="float32 threshold on the acceptor score, '.9g' formatted")
    model_name: str
    stages: list[StageInfo]
    ood: Optional[OODRecord] = Field(
        default=None, description="null: no out-of-distribution gate (bundles before it, --no-ood)")


class SplitCounts(_Model):
    total: int
    train: int
    validation: int
    calibration: int
    shadow: int
    method: str = Field(default="permutation", description=(
        "how rows were assigned (tracec.splits): blake2b-keyed-input-order, or permutation "
        "(one seeded permutation: bundles before the keyed order)"))


class Measured(_Model):
    """Coverage and teacher agreement of the exported graph on one split."""

    n_total: int
    n_handled: int
    n_agree: int
    coverage: Dec
    ta: Dec = Field(description="teacher agreement on handled rows (0 when nothing is handled)")
    ta_lower: Dec = Field(description="one-sided (1 - delta) Clopper-Pearson lower bound")
    ta_upper: Dec = Field(description="one-sided (1 - delta) Clopper-Pearson upper bound")


class Certificate(_Model):
    procedure: Literal["ltt-fixed-sequence-clopper-pearson"]
    delta_per_family: Dec
    families_tested: int
    steps_tested: int
    p_value: Optional[Dec]


class ShadowVerdict(Measured):
    passed: bool
    reasons: list[str]


class LabelStat(_Model):
    label: str
    n: int
    handled_rate: Dec
    ta: Optional[Dec] = Field(description="TA on this label's handled rows; null if none handled")


class Refusal(_Model):
    reasons: list[str]
    best_ta_full_coverage: Dec
    highest_passing_alpha: Optional[Dec]
    blocking_labels: list[str]


class Inputs(_Model):
    traces_sha256: str
    traces_rows: int
    embeddings_sha256: str


class PreviousLive(_Model):
    """``compile --previous`` on a decision log: the previous bundle's live performance measured
    on the log's uniform sample, after every replayed decision matched (tracec.previous)."""

    bundle: str = Field(description="the previous bundle's digest (SHA-256 of its manifest.json)")
    rows: int = Field(description="decisions the log attributes to it")
    other_rows: int = Field(description="decisions from other bundles (a log across a reload)")
    without_text: int = Field(description="its decisions without a text input (not replayed)")
    uniform: int = Field(description="its decisions in the uniform sample, each routed again "
                                     "through it: every one matched the log")
    handled: int = Field(description="of those, handled by the bundle")
    coverage: Optional[Dec] = Field(description="handled / uniform: its live handled share")
    audited: int = Field(description="handled uniform rows with a teacher label")
    agree: int
    ta: Optional[Dec] = Field(description="agree / audited: its live TA on handled traffic")
    ta_lower: Dec = Field(description="one-sided (1 - delta) Clopper-Pearson lower bound")
    ta_upper: Dec = Field(description="one-sided (1 - delta) Clopper-Pearson upper bound")
    delta: Dec = Field(description="the compile's delta")
    handled_without_label: int = Field(description="handled uniform rows never fed back (should "
                                                   "be 0: audits unanswered bias the TA)")
    live_gate_closed: int = Field(description="replayed decisions the service's live gate "
                                              "deferred (logged reason live_gate_closed)")


class Sampling(_Model):
    """A decision log's rows by use (docs/guarantee.md, "Production logs")."""

    decisions: int = Field(description="decision rows read")
    sample_rate: Dec = Field(description="the smallest audit rate in the log: a request is "
                                         "certifiable iff its sample_u is below it")
    dropped_surrogate_only: int = Field(description="decisions the surrogate answered alone, "
                                                    "never fed back: not teacher labels")
    training_only: int = Field(description="teacher-labelled rows outside the uniform sample")
    certifiable: int = Field(description="teacher-labelled rows in the uniform sample: the only "
                                         "rows calibration and shadow are drawn from")
    sampled_without_label: int = Field(description="sampled decisions never fed back (should "
                                                   "be 0: the sample is uniform only if complete)")
    bundles: Optional[dict[str, int]] = Field(
        default=None, description="decisions per serving bundle digest ('unknown': none logged)")
    previous: Optional[PreviousLive] = Field(
        default=None, description="compile --previous: that bundle's live figures on this log")


class PoolSample(_Model):
    """The candidate pool and the shipped stages' refit were fit on a seeded uniform sample
    (tracec.pool_sample): the train split, or train + validation, held more than ``cap`` rows."""

    method: Literal["uniform-seeded"]
    cap: int
    pool_fit_rows: int = Field(description="train-split rows the pool was fit on")
    pool_rows: int = Field(description="rows in the train split")
    refit_rows_fit: int = Field(description="train + validation rows the refit used")
    refit_rows: int = Field(description="rows in train + validation")


class FastPathRecord(_Model):
    """The compile-time identity check of the numpy fast path against the graph."""

    present: bool = Field(description="true iff fastpath.json/.bin ship and decisions matched on every row")
    rows_checked: int
    decision_mismatches: int
    label_mismatches: int
    handled_mismatches: int
    max_score_diff: Dec
    near_tau: int = Field(description="rows whose graph score lies within max_score_diff of tau")
    single_rows_checked: Optional[int] = Field(default=None, description=(
        "rows on which the single-row path was also compared: every row up to 100,000, else "
        "100,000 evenly spaced ones (null: bundles before the cap, where it was every row)"))


class RulesRecord(_Model):
    """``compile --rules`` (tracec.rules), decimals as strings; signed with the manifest."""

    never_handle: list[str] = Field(description="labels always deferred (sorted)")
    min_alpha: dict[str, Dec] = Field(description="per-label TA floor on handled rows")
    max_handled_share: Optional[Dec] = Field(description="cap on the calibration coverage")

    @classmethod
    def of(cls, rules) -> "RulesRecord":
        r = rules.record()
        return cls(never_handle=r["never_handle"],
                   min_alpha={k: dec(v) for k, v in r["min_alpha"].items()},
                   max_handled_share=None if r["max_handled_share"] is None
                   else dec(r["max_handled_share"]))


class FileDigest(_Model):
    sha256: str
    size: int


class Manifest(_Model):
    format_version: Literal["2"] = FORMAT_VERSION
    media_type: Literal["application/vnd.tracec.bundle.v1+json"] = MEDIA_TYPE
    policy: Policy
    labels: list[str]
    embedder: EmbedderInfo
    counts: SplitCounts
    certificate: Certificate
    calibration: Measured
    shadow: ShadowVerdict
    per_label: list[LabelStat] = Field(description="on the held-out calibration + shadow rows")
    refusal: Optional[Refusal]
    inputs: Inputs
    seed: int
    config: dict[str, str] = Field(description="every compile option, as strings")
    config_fingerprint: str
    tool_versions: dict[str, str]
    fastpath: Optional[FastPathRecord] = Field(
        default=None, description="null when the surrogate has no numpy fast path (e.g. trees)")
    sampling: Optional[Sampling] = Field(
        default=None, description="null unless the traces are a decision log")
    files: dict[str, FileDigest]
    pool_sample: Optional[PoolSample] = Field(
        default=None, description="null: the pool and the refit were fit on every row")
    rules: Optional[RulesRecord] = Field(
        default=None, description="the routing rules (compile --rules) the certificate accounts "
                                  "for; null: none (bundles before them)")

    def to_bytes(self) -> bytes:
        return canonical_file_bytes(self.model_dump(mode="json"))
