"""ONNX export: each stage to ONNX, composed into one policy graph, plus its numpy reference."""

from tracec.export.compose import DEFAULT_SIZE_BUDGET, build_policy_graph
from tracec.export.convert import TARGET_OPSETS, global_classes, surrogate_to_onnx
from tracec.export.reference import policy_numpy, stage_numpy
from tracec.export.fastpath import IdentityReport, check_identical, fastpath_files, verified_fastpath
from tracec.export.spec import MODES, StageGraphSpec

__all__ = [
    "DEFAULT_SIZE_BUDGET", "MODES", "StageGraphSpec", "TARGET_OPSETS", "build_policy_graph",
    "IdentityReport", "check_identical", "fastpath_files", "verified_fastpath", "global_classes", "policy_numpy", "stage_numpy", "surrogate_to_onnx",
]
