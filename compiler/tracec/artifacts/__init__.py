"""Interpretability artifacts written into every bundle under ``artifacts/``.

``build_artifacts`` turns the held-out rows (as routed by the exported graph)
and the manifest into seven JSON documents: slices, representatives,
boundary pairs, deltas, disagreement cards, the refusal explanation and the
cost projection.  See docs/report.md for what each means.
"""

from tracec.artifacts.build import build_artifacts
from tracec.artifacts.models import ARTIFACT_MODELS
from tracec.artifacts.rows import ArtifactError, ArtifactInputError, CostInputs, EvalRows

__all__ = ["build_artifacts", "EvalRows", "CostInputs", "ArtifactError", "ArtifactInputError",
           "ARTIFACT_MODELS"]
