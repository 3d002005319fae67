"""Compile options: one frozen value, validated once, fingerprinted for the manifest."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tracec.errors import ParameterError
from tracec.splits import check_fractions

FAMILIES = ("global", "l2d", "cascade")


@dataclass(frozen=True)
class CompileConfig:
    traces: Path
    out: Path
    embeddings: Optional[Path] = None
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
    cache_dir: Optional[Path] = field(default=None, compare=False)

    def __post_init__(self):
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
        if self.size_budget_bytes < 10_000:
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
        if self.daily_volume is not None and self.daily_volume < 0:
            raise ParameterError("daily_volume", "compile", "an int >= 0", self.daily_volume)

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


def _unit(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not (0 < value < 1) or not math.isfinite(value):
        raise ParameterError(name, "compile", "a float in (0, 1)", value)


def _g(x: float) -> str:
    return format(float(x), ".10g")
