"""Build every interpretability artifact of a bundle from its held-out rows and manifest."""

from __future__ import annotations

from typing import Any, Optional

from tracec.artifacts.boundary import build_boundary_pairs
from tracec.artifacts.cost import build_cost
from tracec.artifacts.deltas import build_deltas
from tracec.artifacts.disagreements import build_disagreements
from tracec.artifacts.models import ARTIFACT_MODELS
from tracec.artifacts.refusal import build_refusal
from tracec.artifacts.representatives import build_representatives
from tracec.artifacts.rows import ArtifactError, CostInputs, EvalRows, validate, validate_cost
from tracec.artifacts.slices import build_slices


def build_artifacts(rows: EvalRows, *, manifest: dict, no_examples: bool,
                    previous_manifest: Optional[dict], cost: Optional[CostInputs]) -> dict[str, dict]:
    """``{"artifacts/NAME.json": document}`` for every artifact; documents hold no floats.

    ``manifest`` is the manifest as a JSON dict (without ``files``);
    ``previous_manifest`` is the verified manifest of the bundle this one replaces, or None.
    With ``no_examples`` no input text is copied into any artifact.
    """
    r = validate(rows, no_examples)
    c = validate_cost(cost)
    docs = {
        "artifacts/slices.json": build_slices(r, manifest),
        "artifacts/representatives.json": build_representatives(r),
        "artifacts/boundary_pairs.json": build_boundary_pairs(r, manifest),
        "artifacts/deltas.json": build_deltas(manifest, previous_manifest),
        "artifacts/disagreements.json": build_disagreements(r, manifest),
        "artifacts/refusal.json": build_refusal(r, manifest),
        "artifacts/cost.json": build_cost(manifest, c),
    }
    out = {}
    for name, doc in docs.items():
        model, _schema = ARTIFACT_MODELS[name]
        out[name] = model.model_validate(doc).model_dump(mode="json")
        _check_no_floats(out[name], name)
    return out


def _check_no_floats(value: Any, where: str) -> None:
    if isinstance(value, float):
        raise ArtifactError(f"{where} must be JSON without floats (decimals as strings). "
                            f"Got the float {value!r} instead.")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_no_floats(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_no_floats(v, f"{where}[{i}]")
