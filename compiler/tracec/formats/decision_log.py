"""``decision-log``: the routing service's decision log (``tracec-runtime serve --decision-log``).

Two kinds of line, joined on ``request_id``: ``{"kind": "decision", "input": text, "handled":
..., "audit_rate": r, "sample_u": u, ...}`` (one per routed request) and ``{"kind": "feedback",
"request_id": ..., "teacher": label, "provenance": "teacher"}`` (the LLM's label, posted back).
A row is a decision with its feedback; it is yielded at the feedback line.  Concatenate rotated
files oldest first (``log.5 ... log.1 log``) so every decision precedes its feedback.

Each row carries ``certifiable``: the request is in the uniform traffic sample, ``sample_u <
r_min`` where ``r_min`` is the smallest ``audit_rate`` in the log (thinning every period to the
same rate keeps the union uniform).  Certification (calibration, shadow) uses only those rows;
other teacher-labelled rows (deferred, unsampled) are for training (docs/guarantee.md,
"Production logs").

Every decision is also kept as a :class:`Logged` row (its line, the serving bundle's digest
``bundle``, the logged decision, the teacher label once fed back) and counted per digest
(``bundles``): ``compile --previous`` checks them against the previous bundle
(``tracec.previous``).

Dropped (counted): decisions the surrogate answered alone (no teacher label: never a teacher
label), deferred decisions never fed back, decisions without a text input (embedding-in
requests), and feedback whose decision is not in the file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Optional

from tracec.formats.base import FormatError, Rows, Skip, get, kind, view

NAME = "decision-log"
SURROGATE_ONLY = "decision the surrogate answered alone (no teacher label)"
UNANSWERED = "deferred decision without feedback"
NO_TEXT = "decision without a text input (embedding-in request)"
ORPHAN = "feedback without its decision in the log"
REPEATED = "repeated feedback for one request"
NO_DIGEST = "unknown"  # ``bundles`` key of decisions without a ``bundle`` digest


@dataclass(slots=True)
class Logged:
    """One decision line as logged (``teacher`` is set when its feedback is read)."""

    line: int
    request_id: str
    bundle: Optional[str]
    input: Any
    u: Optional[float]
    handled: Any
    label: Any
    surrogate_label: Any
    reason: Any
    teacher: Optional[str] = None
    uniform: bool = False   # in the uniform traffic sample (set by ``Reader.finish``)


def sniff(obj: dict) -> bool:
    return obj.get("kind") in ("decision", "feedback") and "request_id" in obj and \
        ("provenance" in obj or "handled" in obj)


def _unit(obj: dict, key: str) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise FormatError(key, f"expected a number in [0, 1] or null, found {kind(value)}"
                               + (f" {value!r}" if isinstance(value, (int, float)) else ""))
    return float(value)


class Reader:
    """Stateful: ``rows`` buffers decisions and yields one view per fed-back decision;
    ``finish`` counts what was dropped and fixes the certifiable mask (``certifiable``)."""

    def __init__(self) -> None:
        self.pending: dict[str, Logged] = {}    # request id -> decision, not yet fed back
        self.answered: set[str] = set()
        self.rates: list[float] = []
        self.units: list[Any] = []              # per yielded row: its sample_u (None: unknown)
        self.decisions: list[Logged] = []       # every decision, in log order
        self.n_decisions = 0

    def rows(self, obj: dict, line: int = 0) -> Rows:
        rid = get(obj, "request_id", str, "")
        if obj.get("kind") == "decision":
            if rid in self.pending or rid in self.answered:
                raise FormatError("request_id", f"expected each decision once, found {rid!r} again")
            rate, u = _unit(obj, "audit_rate"), _unit(obj, "sample_u")
            self.n_decisions += 1
            self.rates.append(rate if rate is not None else 0.0)  # unknown rate: nothing certifiable
            digest = obj.get("bundle")
            d = Logged(line, rid, digest if isinstance(digest, str) else None, obj.get("input"), u,
                       obj.get("handled"), obj.get("label"), obj.get("surrogate_label"),
                       obj.get("reason"))
            self.pending[rid] = d
            self.decisions.append(d)
            return
        if obj.get("kind") != "feedback":
            raise FormatError("kind", f"expected \"decision\" or \"feedback\", found {kind(obj.get('kind'))}")
        decision = self.pending.pop(rid, None)
        if decision is None:
            yield Skip(REPEATED if rid in self.answered else ORPHAN)
            return
        self.answered.add(rid)
        if isinstance(obj.get("teacher"), str):
            decision.teacher = obj["teacher"]
        if decision.input is None:
            yield Skip(NO_TEXT)
            return
        self.units.append(decision.u)
        yield view(decision.input, obj.get("teacher"), obj, id=rid,
                   label=obj.get("label") if isinstance(obj.get("label"), str) else None)

    def finish(self, skipped: dict) -> dict:
        """Count the decisions never fed back into ``skipped``; return the sampling record."""
        for d in self.pending.values():
            reason = NO_TEXT if d.input is None else SURROGATE_ONLY if d.handled else UNANSWERED
            skipped[reason] = skipped.get(reason, 0) + 1
        rate = min(self.rates) if self.rates else 0.0
        self.certifiable = tuple(u is not None and rate > 0.0 and u < rate for u in self.units)
        for d in self.decisions:
            d.uniform = d.u is not None and rate > 0.0 and d.u < rate
        unlabelled = sum(1 for d in self.pending.values() if d.uniform)
        n_cert = sum(self.certifiable)
        bundles = Counter(d.bundle or NO_DIGEST for d in self.decisions)
        return {"decisions": self.n_decisions, "sample_rate": rate,
                "dropped_surrogate_only": skipped.get(SURROGATE_ONLY, 0),
                "certifiable": n_cert, "training_only": len(self.units) - n_cert,
                "sampled_without_label": unlabelled, "bundles": dict(sorted(bundles.items()))}
