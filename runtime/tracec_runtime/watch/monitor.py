"""The live gate: audit outcomes -> anytime-valid bound -> closed when TA < alpha is credible.

Thread-safe and counts-only, so replicas' counters add (``watch.pooled``).
The gate closes, for good, when the upper end of the confidence sequence
drops below the certified alpha; only loading a (new) bundle re-opens it.
Input drift (label mix, out-of-distribution share) raises alarms but never
closes the gate: drift alone does not show that agreement fell.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Optional

from tracec_runtime.watch.confseq import Interval, confidence_interval, excludes_above, prior_for

__all__ = ["LiveMonitor", "DriftAlarm", "label_mix_distance"]

#: Total-variation distance between live and calibration label mix that raises an alarm.
LABEL_MIX_TV_ALARM = 0.25
#: Out-of-distribution share (of all requests) above which an alarm is raised.
OOD_SHARE_ALARM = 0.25
#: Requests before the drift alarms are evaluated (few requests say nothing about a mix).
DRIFT_MIN_REQUESTS = 500


def label_mix_distance(expected: dict[str, float], counts: dict[str, int]) -> Optional[float]:
    """Total-variation distance between a reference mix and observed counts (None if empty)."""
    total = sum(counts.values())
    if total == 0 or not expected:
        return None
    labels = set(expected) | set(counts)
    return 0.5 * sum(abs(expected.get(k, 0.0) - counts.get(k, 0) / total) for k in labels)


@dataclass
class DriftAlarm:
    label_mix_tv: Optional[float] = None
    ood_share: Optional[float] = None
    alarms: list[str] = field(default_factory=list)


class LiveMonitor:
    """Audit counts, the live interval and the gate it closes."""

    def __init__(self, alpha: float, delta: float, expected_mix: Optional[dict[str, float]] = None):
        self.alpha, self.delta = float(alpha), float(delta)
        self.prior = prior_for(self.alpha)
        self.expected_mix = dict(expected_mix or {})
        self._lock = threading.Lock()
        self.agree = self.disagree = 0
        self.closed_reason: Optional[str] = None
        self._cached: Optional[Interval] = None

    # ------------------------------------------------------------------ audits
    def record(self, agreed: bool) -> bool:
        """Add one audit outcome; close the gate when the evidence says TA < alpha.

        Returns whether the gate is still open.  O(1): checked after every audit.
        """
        with self._lock:
            if agreed:
                self.agree += 1
            else:
                self.disagree += 1
            self._cached = None
            if self.closed_reason is None and excludes_above(self.agree, self.disagree,
                                                             self.alpha, self.delta, self.prior):
                iv = self.interval
                self.closed_reason = (
                    f"live teacher agreement is below alpha {self.alpha:g}: anytime-valid "
                    f"{1 - self.delta:.0%} upper bound {iv.upper:.4f} after "
                    f"{iv.n} audits ({self.agree} agreed)")
            return self.closed_reason is None

    @property
    def interval(self) -> Interval:
        """The current (1 - delta) anytime-valid interval (computed on demand, cached)."""
        iv = self._cached
        if iv is None or iv.n != self.agree + self.disagree:
            iv = confidence_interval(self.agree, self.disagree, self.delta, self.prior)
            self._cached = iv
        return iv

    @property
    def gate_open(self) -> bool:
        return self.closed_reason is None

    # ------------------------------------------------------------------- drift
    def drift(self, label_counts: dict[str, int], ood: int, total: int) -> DriftAlarm:
        out = DriftAlarm()
        if total < DRIFT_MIN_REQUESTS:
            return out
        out.label_mix_tv = label_mix_distance(self.expected_mix, label_counts)
        out.ood_share = ood / total
        if out.label_mix_tv is not None and out.label_mix_tv > LABEL_MIX_TV_ALARM:
            out.alarms.append(f"label mix differs from calibration (total variation "
                              f"{out.label_mix_tv:.3f} > {LABEL_MIX_TV_ALARM})")
        if out.ood_share > OOD_SHARE_ALARM:
            out.alarms.append(f"out-of-distribution share {out.ood_share:.3f} > {OOD_SHARE_ALARM}")
        return out


def pooled(agree: int, disagree: int, alpha: float, delta: float) -> tuple[Interval, bool]:
    """The interval over counts summed across replicas, and whether the gate should be open."""
    iv = confidence_interval(int(agree), int(disagree), delta, prior_for(alpha))
    return iv, iv.upper >= alpha
