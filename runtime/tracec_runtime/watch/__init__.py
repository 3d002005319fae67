"""Watching a deployed bundle: an anytime-valid bound on live agreement and the gate it closes.

Standard library only (no HTTP stack): the service (``tracec_runtime.serve``)
and the ``watch`` command both use it.
"""

from tracec_runtime.watch.confseq import Interval, confidence_interval, prior_for
from tracec_runtime.watch.monitor import LiveMonitor, label_mix_distance, pooled

__all__ = ["Interval", "LiveMonitor", "confidence_interval", "label_mix_distance", "pooled",
           "prior_for"]
