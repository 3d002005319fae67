"""Routing rules (``tracec compile --rules rules.yaml|.json``): read, check, apply, certify.

* ``never_handle``: labels always deferred, by the surrogate's predicted label;
* ``min_alpha``: per predicted label, a TA floor on handled rows (class-conditional);
* ``max_handled_share``: a cap on the share of calibration rows handled.

One global tau serves every rule: the fixed sequence of thresholds is walked
with the overall hypothesis and one hypothesis per ``min_alpha`` label, each at
``delta / (1 + m)`` (Bonferroni), and stops at the first step where any fails;
steps whose calibration coverage exceeds the cap are cut off the end of the
sequence first.  See docs/guarantee.md#routing-rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tracec.calibration import Certification, fixed_sequence
from tracec.errors import InputError
from tracec.schemas import register

__all__ = ["RoutingRules", "RulesError", "read_rules", "check_labels", "certify_with_rules",
           "never_mask"]


class RulesError(InputError):
    """A rules file is unreadable or invalid.  Names the file and the field; exit code 3."""

    def __init__(self, path: str, field: Optional[str], message: str):
        self.path, self.field, self.message = str(path), field, message
        where = self.path if field is None else f"{self.path}: field {field!r}"
        super().__init__(f"{where}: {message}")


class RoutingRules(BaseModel):
    """The rules file (YAML or JSON); also recorded as ``manifest.rules``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    never_handle: list[str] = Field(default_factory=list, description=(
        "teacher labels never handled: a row whose surrogate label is one of them is deferred"))
    min_alpha: dict[str, float] = Field(default_factory=dict, description=(
        "per surrogate label, the minimum TA on handled rows predicted as that label, in (0, 1)"))
    max_handled_share: Optional[float] = Field(default=None, description=(
        "maximum share of calibration rows handled, in (0, 1]; null: no cap"))

    def is_empty(self) -> bool:
        return not self.never_handle and not self.min_alpha and self.max_handled_share is None

    def record(self) -> dict:
        """Canonical form (sorted) for the manifest."""
        return {"never_handle": sorted(set(self.never_handle)),
                "min_alpha": {k: self.min_alpha[k] for k in sorted(self.min_alpha)},
                "max_handled_share": self.max_handled_share}


register("rules.schema.json", RoutingRules)


@dataclass(frozen=True)
class RuledCertification(Certification):
    """A certification under rules; ``stopped_by`` names the hypothesis or rule that ended the
    walk (e.g. ``"min_alpha.fraud"``, ``"max_handled_share"``), None if it ran to the end."""

    stopped_by: Optional[str] = None
    delta_each: float = 0.0            # delta / (1 + m), the level of every hypothesis


@dataclass(frozen=True)
class RulesFile:
    path: str
    rules: RoutingRules


def as_rules(value) -> RulesFile:
    """``compile(rules=...)``: a path (``read_rules``), a mapping (checked the same way) or a
    ``RulesFile``."""
    if isinstance(value, RulesFile):
        return value
    if isinstance(value, dict):
        return _checked("<rules>", value)
    return read_rules(Path(value))


def read_rules(path: Path) -> RulesFile:
    """Parse ``path`` (``.json``, ``.yaml``/``.yml``) into checked rules, else ``RulesError``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(str(p), None, f"cannot be read: {exc}") from None
    suffix = p.suffix.lower()
    if suffix == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RulesError(str(p), None, f"is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    elif suffix in (".yaml", ".yml"):
        import yaml  # declared dependency (pyyaml); safe_load builds plain types only
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RulesError(str(p), None, f"is not valid YAML: {exc}") from None
    else:
        raise RulesError(str(p), None, f"expected a .json, .yaml or .yml file; found {suffix!r}")
    return _checked(str(p), {} if doc is None else doc)


def _checked(p: str, doc) -> RulesFile:
    if not isinstance(doc, dict):
        raise RulesError(str(p), None, f"expected a mapping at the top level; found "
                                       f"{type(doc).__name__}")
    try:
        rules = RoutingRules.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        got = err.get("input")
        raise RulesError(str(p), field, f"{err['msg']} (found {got!r:.80})") from None
    for label, a in rules.min_alpha.items():
        if isinstance(a, bool) or not 0.0 < float(a) < 1.0 or not np.isfinite(a):
            raise RulesError(str(p), f"min_alpha.{label}", f"expected a float in (0, 1); found {a!r}")
    cap = rules.max_handled_share
    if cap is not None and (isinstance(cap, bool) or not 0.0 < float(cap) <= 1.0):
        raise RulesError(str(p), "max_handled_share", f"expected a float in (0, 1]; found {cap!r}")
    both = sorted(set(rules.never_handle) & set(rules.min_alpha))
    if both:
        raise RulesError(str(p), f"min_alpha.{both[0]}", "this label is also in never_handle "
                                                         "(never handled: a TA floor is moot)")
    return RulesFile(str(p), rules)


def check_labels(rules_file: Optional[RulesFile], labels: Sequence[str]) -> Optional[RulesFile]:
    """Every label named in the rules must be a teacher label of the traces.  Empty rules are
    no rules (``None``: the bundle is the one compiled without ``--rules``)."""
    if rules_file is None or rules_file.rules.is_empty():
        return None
    known = set(labels)
    r = rules_file.rules
    named = [(f"never_handle[{i}]", x) for i, x in enumerate(r.never_handle)] + \
            [(f"min_alpha.{x}", x) for x in r.min_alpha]
    for field, label in named:
        if label not in known:
            close = sorted(known, key=lambda k: (k.lower() != label.lower(), k))[:3]
            raise RulesError(rules_file.path, field, f"unknown label {label!r}: not a teacher "
                                                     f"label of the traces (e.g. {close})")
    return rules_file


def never_mask(rules: Optional[RoutingRules], labels: Sequence[str]) -> np.ndarray:
    """bool per label index: True where the label is never handled."""
    mask = np.zeros(len(labels), dtype=bool)
    if rules is not None:
        index = {name: i for i, name in enumerate(labels)}
        mask[[index[x] for x in rules.never_handle]] = True
    return mask


def with_rules(decide: Callable, rules: Optional[RoutingRules], labels: Sequence[str]) -> Callable:
    """``decide(tau) -> (handled, label)`` with never_handle labels deferred."""
    never = never_mask(rules, labels)
    if not never.any():
        return decide

    def ruled(tau):
        handled, label = decide(tau)
        return handled & ~never[label], label
    return ruled


def certify_with_rules(grid: np.ndarray, decide: Callable, y: np.ndarray, alpha: float,
                       delta: float, rules: Optional[RoutingRules],
                       labels: Sequence[str]) -> Certification:
    """Fixed sequence over ``grid`` with every rule; the overall + per-label hypotheses each at
    ``delta / (1 + m)``; the promoted step is the last one before the first step where any
    hypothesis fails.  Returns the overall certification truncated at that step."""
    decide = with_rules(decide, rules, labels)
    per = dict(rules.min_alpha) if rules is not None else {}
    index = {name: i for i, name in enumerate(labels)}
    d = delta / (1 + len(per))
    nh, na, label_counts = [], [], {k: ([], []) for k in per}
    for tau in grid:
        handled, label = decide(tau)
        agree = handled & (label == y)
        nh.append(int(handled.sum()))
        na.append(int(agree.sum()))
        for name, (h, a) in label_counts.items():
            is_l = label == index[name]
            h.append(int((handled & is_l).sum()))
            a.append(int((agree & is_l).sum()))
    n = len(y)
    cap = None if rules is None else rules.max_handled_share
    keep = len(grid) if cap is None else int(np.sum(np.asarray(nh) <= cap * n + 1e-9))
    if keep == 0:  # even the strictest step handles more than the cap: nothing is tested
        return RuledCertification(False, None, (), None, alpha, delta, "max_handled_share", d)
    nh_all = nh
    grid, nh, na = grid[:keep], nh[:keep], na[:keep]
    overall = fixed_sequence(nh, na, n, grid, alpha, d)
    n_passed = (overall.chosen.index + 1) if overall.passed else 0
    stopped = None if n_passed == keep else "alpha"
    for name, (h, a) in label_counts.items():
        c = fixed_sequence(h[:keep], a[:keep], n, grid, float(per[name]), d)
        mine = (c.chosen.index + 1) if c.passed else 0
        if mine < n_passed:
            n_passed, stopped = mine, f"min_alpha.{name}"
    if stopped is None and keep < len(nh_all):
        stopped = "max_handled_share"
    steps = overall.steps[:n_passed + 1]
    chosen = steps[n_passed - 1] if n_passed else None
    return RuledCertification(passed=chosen is not None,
                              tau=None if chosen is None else chosen.tau, steps=steps,
                              chosen=chosen, alpha=alpha, delta=delta, stopped_by=stopped,
                              delta_each=d)
