"""Compile options: one frozen value, validated once, fingerprinted for the manifest."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from tracec.errors import ParameterError
from tracec.formats import CHOICES as TRACE_FORMATS
from tracec.ood import DEFAULT_QUANTILE
from tracec.splits import check_fractions

FAMILIES = ("global", "l2d", "cascade")


@dataclass(frozen=True)
class CompileConfig:
    traces: Any  # a Path or an iterable of mappings (read with the trace options below), or Traces
    out: Path
    embeddings: Any = field(default=None, compare=False)  # a .npy Path, a 2-D float array, or None
    alphas: tuple[float, ...] = (0.9,)
    delta: float = 0.05
    seed: int = 0
    include_trees: bool = False
    families: tuple[str, ...] = FAMILIES
    size_budget_bytes: int = 5_000_000
    fractions: Optional[tuple[float, ...]] = None   # None: splits.auto_fractions(n traces)
    min_accept: int = 100
    min_coverage: float = 0.05
    signing_key: Optional[Path] = None
    previous: Optional[Path] = None
    previous_public_key: Optional[Path] = None
    no_examples: bool = False
    teacher_cost_per_1k: Optional[float] = None
    daily_volume: Optional[int] = None
    force: bool = False
    embedder_id: Optional[str] = None
    embedder: str = "minilm-int8"
    ood_quantile: Optional[float] = DEFAULT_QUANTILE  # tracec.ood; None: no OOD gate
    cache_dir: Optional[Path] = field(default=None, compare=False)
    # how a trace file is read (docs/traces.md); the rows' digest stands for them in the manifest
    format: str = "auto"
    input_field: Optional[str] = None
    teacher_field: Optional[str] = None
    batch_output: Union[Path, tuple[Path, ...], None] = None
    rules: Any = field(default=None, compare=False)  # tracec.rules.RulesFile (--rules), or None

    def __post_init__(self):
        if self.format not in TRACE_FORMATS:
            raise ParameterError("format", "compile", f"one of {', '.join(TRACE_FORMATS)}", self.format)
        if not self.alphas:
            raise ParameterError("alpha", "compile", "a non-empty list of floats in (0, 1)", "")
        for a in self.alphas:
            _unit("alpha", a)
        _unit("delta", self.delta)
        _unit("min_coverage", self.min_coverage)
        if self.fractions is not None:
            check_fractions(tuple(self.fractions))
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ParameterError("seed", "compile", "a non-negative int", self.seed)
        if type(self.size_budget_bytes) is not int or self.size_budget_bytes < 10_000:
            raise ParameterError("size_budget", "compile", "at least 10 kB", self.size_budget_bytes)
        if self.min_accept < 1:
            raise ParameterError("min_accept", "compile", "a positive int", self.min_accept)
        bad = [f for f in self.families if f not in FAMILIES] or ([] if self.families else ["(none)"])
        if bad:
            raise ParameterError("families", "compile", f"a non-empty subset of {list(FAMILIES)}",
                                 ",".join(self.families))
        if self.teacher_cost_per_1k is not None and not (self.teacher_cost_per_1k >= 0
                                                         and math.isfinite(self.teacher_cost_per_1k)):
            raise ParameterError("teacher_cost_per_1k", "compile", "a finite float >= 0",
                                 self.teacher_cost_per_1k)
        if self.embeddings is not None and not (self.embedder_id or "").strip():
            raise ParameterError("embedder_id", "compile", "the name of the model that produced "
                                 "--embeddings (required with --embeddings; recorded in the "
                                 "manifest)", self.embedder_id)
        if self.embedder not in ("minilm-int8", "sentence-transformers"):
            raise ParameterError("embedder", "compile", "minilm-int8 or sentence-transformers",
                                 self.embedder)
        if self.ood_quantile is not None and not (isinstance(self.ood_quantile, (int, float))
                                                  and 0 <= self.ood_quantile < 0.5):
            raise ParameterError("ood_quantile", "compile", "a float in [0, 0.5)", self.ood_quantile)
        if self.daily_volume is not None and self.daily_volume < 0:
            raise ParameterError("daily_volume", "compile", "an int >= 0", self.daily_volume)

    def trace_options(self) -> dict[str, Any]:
        """The keyword arguments of ``tracec.traces.load_traces`` for ``self.traces``."""
        return {"format": self.format, "input_field": self.input_field,
                "teacher_field": self.teacher_field, "batch_output": self.batch_output}

    def recipe(self) -> dict[str, str]:
        """Every option that shapes the bundle, as strings (paths excluded: digests stand for them)."""
        return {
            "alphas": ",".join(_g(a) for a in self.alphas),
            "delta": _g(self.delta),
            "seed": str(self.seed),
            "include_trees": str(self.include_trees).lower(),
            "families": ",".join(self.families),
            "size_budget_bytes": str(self.size_budget_bytes),
            "fractions": "auto" if self.fractions is None else ",".join(_g(f) for f in self.fractions),
            "min_accept": str(self.min_accept),
            "min_coverage": _g(self.min_coverage),
            "no_examples": str(self.no_examples).lower(),
            "teacher_cost_per_1k": "" if self.teacher_cost_per_1k is None else _g(self.teacher_cost_per_1k),
            "daily_volume": "" if self.daily_volume is None else str(self.daily_volume),
            "embedder_id": self.embedder_id or "",
            "embedder": "provided" if self.embeddings is not None else self.embedder,
            "ood_quantile": "none" if self.ood_quantile is None else _g(self.ood_quantile),
            # only with --rules, so bundles without rules keep their fingerprint
            **({} if self.rules is None else {"rules": json.dumps(
                self.rules.rules.record(), sort_keys=True, separators=(",", ":"))}),
        }

    def fingerprint(self) -> str:
        text = "\n".join(f"{k}={v}" for k, v in sorted(self.recipe().items()))
        return hashlib.sha256(text.encode()).hexdigest()


def parse_alphas(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(p) for p in str(text).split(",") if p.strip())
    except ValueError:
        raise ParameterError("alpha", "compile", "a float in (0, 1) or a comma-separated list of them",
                             text) from None
    for a in values:
        _unit("alpha", a)
    if not values:
        raise ParameterError("alpha", "compile", "a float in (0, 1)", text)
    return values


def budget_bytes(megabytes: float) -> int:
    """``--size-budget-mb`` as bytes: a finite number of megabytes, at least 0.01 (10 kB)."""
    if isinstance(megabytes, bool) or not isinstance(megabytes, (int, float)) \
            or not math.isfinite(megabytes) or megabytes < 0.01:
        raise ParameterError("size_budget_mb", "compile", "a finite number of megabytes >= 0.01",
                             megabytes)
    return int(megabytes * 1e6)


def _unit(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not (0 < value < 1) or not math.isfinite(value):
        raise ParameterError(name, "compile", "a float in (0, 1)", value)


def _g(x: float) -> str:
    return format(float(x), ".10g")
