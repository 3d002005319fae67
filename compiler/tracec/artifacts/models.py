"""Pydantic models of the interpretability artifacts (``BUNDLE/artifacts/*.json``).

They are the source of ``schemas/artifact-*.schema.json``.  Decimals are
strings (``Dec``); a null ``teacher``/``label`` means "a teacher label that
never occurred in training".  ``text`` is null in bundles built with
``--no-examples``.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from tracec.manifest import Dec

Version = Literal["1"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RowRef(_Model):
    """One held-out row, as an example."""

    row: int = Field(description="index into the held-out rows (calibration then shadow)")
    text: Optional[str] = Field(description="the input text; null with --no-examples")
    teacher: Optional[str]
    pred: str
    score: Dec
    handled: bool
    agrees: bool


# ------------------------------------------------------------------ (A) slices


class _SliceStats(_Model):
    n: int
    share: Dec = Field(description="share of held-out traffic in this slice")
    n_handled: int
    handled_rate: Optional[Dec]
    n_agree_handled: int
    ta_handled: Optional[Dec] = Field(description="teacher agreement on handled rows; null if none")


class LabelSlice(_SliceStats):
    label: Optional[str]


class LengthSlice(_SliceStats):
    bin: str
    min_words: int
    max_words: Optional[int]


class Slices(_Model):
    artifact: Literal["slices"]
    version: Version
    n_total: int
    n_handled: int
    routing_note: Optional[str]
    by_label: list[LabelSlice]
    by_length: list[LengthSlice]


# ---------------------------------------------------------- (B) representatives


class Representative(_Model):
    example: RowRef
    similarity: Dec = Field(description="cosine similarity to the subgroup's centroid")


class LabelRepresentatives(_Model):
    label: Optional[str]
    n: int
    n_handled: int
    n_deferred: int
    handled: Optional[Representative]
    deferred: Optional[Representative]


class Representatives(_Model):
    artifact: Literal["representatives"]
    version: Version
    method: str
    labels: list[LabelRepresentatives]


# ---------------------------------------------------------- (C) boundary pairs


class BoundaryPair(_Model):
    label: Optional[str]
    similarity: Dec = Field(description="cosine similarity between the two inputs")
    handled: RowRef
    deferred: RowRef
    n_handled: int
    n_deferred: int
    exhaustive: bool = Field(description="false if the search used an evenly spaced subsample")


class BoundaryPairs(_Model):
    artifact: Literal["boundary_pairs"]
    version: Version
    method: str
    tau: Dec
    pairs: list[BoundaryPair]
    labels_without_pair: list[Optional[str]]
    note: Optional[str]


# ------------------------------------------------------------------ (D) deltas


class BundleSummary(_Model):
    gate: Optional[str]
    family: Optional[str]
    alpha: Optional[Dec]
    delta: Optional[Dec]
    model_name: Optional[str]
    embedder: Optional[str]
    traces_sha256: Optional[str]
    config_fingerprint: Optional[str]


class OverallDelta(_Model):
    split: Literal["calibration", "shadow"]
    coverage_previous: Optional[Dec]
    coverage_now: Optional[Dec]
    coverage_change: Optional[Dec] = Field(description="now - previous; positive = coverage gained")
    ta_previous: Optional[Dec]
    ta_now: Optional[Dec]
    ta_change: Optional[Dec]


class LabelDelta(_Model):
    label: str
    n_previous: Optional[int]
    n_now: Optional[int]
    handled_rate_previous: Optional[Dec]
    handled_rate_now: Optional[Dec]
    change: Optional[Dec] = Field(description="now - previous; positive = coverage gained")
    ta_previous: Optional[Dec]
    ta_now: Optional[Dec]


class Deltas(_Model):
    artifact: Literal["deltas"]
    version: Version
    now: BundleSummary
    previous: Optional[BundleSummary]
    overall: list[OverallDelta]
    per_label: list[LabelDelta]
    labels_added: list[str]
    labels_removed: list[str]
    warnings: list[str]
    note: str


# ----------------------------------------------------------- (E) disagreements


class Confusion(_Model):
    teacher: Optional[str]
    count: int


class DisagreementCard(_Model):
    pred: str
    n_pred: int = Field(description="held-out rows predicted as this label")
    n_disagree: int
    disagree_rate: Dec
    n_disagree_handled: int = Field(description="wrong answers that the policy would have served")
    confused_with: list[Confusion]
    examples: list[RowRef]


class Collapse(_Model):
    detected: bool
    top_pred_label: Optional[str]
    top_pred_share: Dec
    teacher_share_of_top: Dec
    teacher_top_label: Optional[str]
    teacher_top_share: Dec
    n_distinct_pred: int
    n_distinct_teacher: int
    pred_effective_classes: Dec = Field(description="exp(entropy) of the predicted-label distribution")
    teacher_effective_classes: Dec
    explanation: str


class Disagreements(_Model):
    artifact: Literal["disagreements"]
    version: Version
    n_total: int
    n_disagree: int
    n_disagree_handled: int
    n_unseen_teacher: int = Field(description="rows whose teacher label never occurred in training")
    disagree_rate: Dec
    collapse: Collapse
    summary: list[str]
    cards: list[DisagreementCard]


# ------------------------------------------------------------------ refusal


class BlockingLabel(_Model):
    label: Optional[str]
    n: int
    n_deferred: int
    deferred_share: Dec = Field(description="this label's deferred rows / all held-out rows")
    ta_deferred: Optional[Dec] = Field(description="surrogate agreement on this label's deferred rows")
    ta_full_coverage: Dec = Field(description="surrogate agreement on all of this label's rows")
    impact: Dec = Field(description="deferred rows the surrogate gets wrong / all held-out rows")


class RefusalExplanation(_Model):
    artifact: Literal["refusal"]
    version: Version
    gate: Literal["open", "closed"]
    alpha: Dec
    delta: Dec
    reasons: list[str]
    best_ta_full_coverage: Dec
    best_ta_full_coverage_source: str
    highest_passing_alpha: Optional[Dec]
    highest_passing_alpha_source: str
    gap_to_alpha: Dec = Field(description="alpha - best TA at full coverage (positive = short)")
    majority_label: Optional[str] = Field(
        description="the teacher's most frequent label on the held-out rows")
    majority_share: Dec = Field(
        description="TA of always answering majority_label: the no-skill baseline")
    near_chance: bool = Field(
        description="best TA at full coverage is at most 5 points above majority_share: the "
                    "embeddings barely predict the teacher, so more traces alone are unlikely to help")
    manifest_blocking_labels: list[str]
    blocking_method: str
    blocking_labels: list[BlockingLabel]
    summary: str


# --------------------------------------------------------------------- cost


class Projection(_Model):
    coverage: Dec
    llm_calls_per_1k: Dec
    calls_avoided_per_1k: Dec
    llm_calls_per_day: Optional[int]
    cost_per_day: Optional[Dec]
    cost_per_year: Optional[Dec]
    savings_per_day: Optional[Dec]
    savings_per_year: Optional[Dec]


class Cost(_Model):
    artifact: Literal["cost"]
    version: Version
    gate: Literal["open", "closed"]
    teacher_cost_per_1k: Optional[Dec]
    daily_volume: Optional[int]
    days_per_year: int
    coverage_source: str
    without_bundle: Projection
    with_bundle: Projection
    with_bundle_conservative: Projection = Field(
        description="at the one-sided (1 - delta) Clopper-Pearson lower bound of shadow coverage")
    note: str


#: artifact file in the bundle -> (model, schema file name in ``schemas/``)
ARTIFACT_MODELS: dict[str, tuple[type[_Model], str]] = {
    "artifacts/slices.json": (Slices, "artifact-slices.schema.json"),
    "artifacts/representatives.json": (Representatives, "artifact-representatives.schema.json"),
    "artifacts/boundary_pairs.json": (BoundaryPairs, "artifact-boundary-pairs.schema.json"),
    "artifacts/deltas.json": (Deltas, "artifact-deltas.schema.json"),
    "artifacts/disagreements.json": (Disagreements, "artifact-disagreements.schema.json"),
    "artifacts/refusal.json": (RefusalExplanation, "artifact-refusal.schema.json"),
    "artifacts/cost.json": (Cost, "artifact-cost.schema.json"),
}


def _register() -> None:
    from tracec.schemas import register

    for model, filename in ARTIFACT_MODELS.values():
        register(filename, model)


_register()
