"""The routing service without its HTTP layer: load, route, audit, feedback, watch, reload.

One :class:`Loaded` value holds everything tied to one verified bundle (the
router, its digest, its live monitor); :meth:`Service.reload` builds a new one
from a freshly verified bundle and swaps the reference atomically, so a
request in flight finishes on the bundle it started with and a bundle that
fails verification never replaces the one serving.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional

from tracec_runtime.router import Router
from tracec_runtime.serve.bodies import FeedbackItem, RequestError, RouteRequest
from tracec_runtime.serve.metrics import Registry
from tracec_runtime.verify import verify_bundle
from tracec_runtime.watch import LiveMonitor

__all__ = ["Loaded", "Service", "declare_metrics"]

log = logging.getLogger("tracec.serve")
PENDING_MAX = 200_000


def sample_u(seed: int, request_id: str) -> float:
    """A uniform number in [0, 1) fixed by the request id: the request is in the uniform
    traffic sample iff it is below the audit rate (handled or deferred alike)."""
    h = hashlib.sha256(f"{seed}:{request_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


@dataclass(frozen=True)
class Loaded:
    router: Router
    digest: str
    monitor: LiveMonitor
    loaded_at: float
    path: str


def _expected_mix(manifest: dict) -> dict[str, float]:
    rows = [(r.get("label"), r.get("n")) for r in manifest.get("per_label") or []
            if isinstance(r, dict)]
    total = sum(n for _, n in rows if isinstance(n, int))
    return {k: n / total for k, n in rows if isinstance(k, str) and isinstance(n, int)} if total else {}


def _decimal(manifest: dict, dotted: str) -> float:
    node = manifest
    for part in dotted.split("."):
        node = node[part]
    return float(node)


def _deferral(flag: Optional[str], in_distribution: bool) -> str:
    """Why a row of an open bundle was deferred: the text's flag, the never_handle rule, the OOD
    gate, or tau."""
    if flag in ("empty", "invalid_text", "rule:never_handle"):
        return flag
    return "below_tau" if in_distribution else "out_of_distribution"


def declare_metrics(reg: Registry) -> Registry:
    for name, kind, text in [
        ("tracec_requests_total", "counter", "HTTP requests by endpoint and status code."),
        ("tracec_decisions_total", "counter", "Routing decisions by outcome, reason and surrogate label."),
        ("tracec_request_duration_seconds", "histogram", "Request latency by endpoint."),
        ("tracec_gate_open", "gauge", "1 if the gate is open: scope=bundle (certified) or live (watch)."),
        ("tracec_audit_requests_total", "counter", "Handled decisions marked for audit."),
        ("tracec_audit_outcomes_total", "counter", "Audit feedback: teacher agreed or disagreed."),
        ("tracec_feedback_total", "counter", "Feedback items by kind."),
        ("tracec_live_ta_lower", "gauge", "Anytime-valid lower bound on live teacher agreement."),
        ("tracec_live_ta_upper", "gauge", "Anytime-valid upper bound on live teacher agreement."),
        ("tracec_bundle_info", "gauge", "The serving bundle (digest, alpha, delta) = 1."),
        ("tracec_reloads_total", "counter", "Bundle reloads by result."),
        ("tracec_drift_alarm", "gauge", "1 while an input-drift alarm is raised, by kind."),
        ("tracec_embedder_calls_total", "counter", "Embedder calls (micro-batches of text requests)."),
        ("tracec_embedded_texts_total", "counter", "Texts embedded."),
    ]:
        reg.declare(name, kind, text)
    return reg


class Service:
    def __init__(self, bundle: str, public_key: object = None, *, allow_unsigned: bool = False,
                 audit_rate: float = 0.02, audit_seed: int = 0, watch_delta: Optional[float] = None,
                 decision_log: Optional[Callable[[dict], None]] = None,
                 registry: Optional[Registry] = None):
        if not 0.0 <= audit_rate <= 1.0:
            raise ValueError(f"audit_rate must be in [0, 1]; got {audit_rate!r}")
        self.bundle_path, self.public_key, self.allow_unsigned = str(bundle), public_key, allow_unsigned
        self.audit_rate, self.audit_seed, self.watch_delta = audit_rate, int(audit_seed), watch_delta
        self.metrics = declare_metrics(registry or Registry())
        self._log = decision_log
        self._boot = os.urandom(4).hex()
        self._counter = 0
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._pending: OrderedDict[str, tuple] = OrderedDict()
        self._label_counts: dict[str, int] = {}
        self._ood = self._total = 0
        self.loaded: Optional[Loaded] = None
        self.last_reload_error: Optional[str] = None

    # ---------------------------------------------------------------- loading
    def load(self, path: Optional[str] = None) -> Loaded:
        """Verify, build, then swap; raises (keeping the old bundle) if verification fails."""
        path = str(path or self.bundle_path)
        verified = verify_bundle(path, self.public_key, allow_unsigned=self.allow_unsigned)
        router = Router(verified)
        manifest = verified.manifest
        alpha = _decimal(manifest, "policy.alpha")
        delta = self.watch_delta or _decimal(manifest, "policy.delta")
        digest = verified.digest
        new = Loaded(router, digest, LiveMonitor(alpha, delta, _expected_mix(manifest)),
                     time.time(), path)
        with self._lock:
            self.loaded, self.bundle_path = new, path
            self._label_counts, self._ood, self._total = {}, 0, 0
        self.metrics.clear("tracec_bundle_info")
        self.metrics.set("tracec_bundle_info", 1, digest=digest, alpha=f"{alpha:g}", delta=f"{delta:g}")
        return new

    def reload(self, path: Optional[str] = None) -> tuple[bool, str]:
        with self._reload_lock:
            try:
                new = self.load(path)
            except Exception as exc:  # any failure keeps the old bundle serving
                self.last_reload_error = f"{type(exc).__name__}: {exc}"
                self.metrics.inc("tracec_reloads_total", result="refused")
                log.error("reload refused, still serving %s: %s",
                          self.loaded.digest if self.loaded else "nothing", self.last_reload_error)
                return False, self.last_reload_error
            self.last_reload_error = None
            self.metrics.inc("tracec_reloads_total", result="ok")
            log.info("reloaded %s (bundle %s)", new.path, new.digest)
            return True, new.digest

    def current(self) -> Loaded:
        cur = self.loaded
        if cur is None:
            raise RequestError(503, "no_bundle", "no verified bundle is loaded")
        return cur

    # ---------------------------------------------------------------- routing
    def _next_ids(self, n: int) -> list[str]:
        with self._lock:
            start = self._counter
            self._counter += n
        return [f"{self._boot}-{i:x}" for i in range(start, start + n)]

    def _sample_u(self, request_id: str) -> float:
        return sample_u(self.audit_seed, request_id)

    def _audited(self, request_id: str) -> bool:
        return self.audit_rate > 0.0 and self._sample_u(request_id) < self.audit_rate

    def route(self, req: RouteRequest, texts_fn=None) -> tuple[Loaded, list[dict]]:
        cur = self.current()
        router = cur.router
        if req.kind == "text":
            fn = texts_fn or getattr(router, "route_texts", None)
            if fn is None or not getattr(router, "text_in", False):
                raise RequestError(422, "text_not_supported", "this bundle is embedding-in only: "
                                   "send 'embedding' or 'embeddings'", "text" if req.single else "texts")
            batch = fn(req.texts)
        else:
            batch = router.route_batch(req.matrix)
        return cur, self._decisions(cur, batch, req)

    def _decisions(self, cur: Loaded, batch, req: RouteRequest) -> list[dict]:
        n = len(batch)
        ids = self._next_ids(n)
        live_open = cur.monitor.gate_open
        names = batch.label_names
        flags, inside = batch.flags, batch.in_distribution
        out = []
        for i, (k, h, s) in enumerate(zip(batch.label_index.tolist(), batch.handled.tolist(),
                                          batch.score.tolist())):
            surrogate = names[k]
            if not batch.gate_open:
                code = "gate_closed"
            elif not live_open:
                code = "live_gate_closed"
            elif h:
                code = "handled"
            else:
                code = _deferral(flags[i] if flags else None,
                                 True if inside is None else bool(inside[i]))
            handled = bool(h and batch.gate_open and live_open)
            audit = handled and self._audited(ids[i])
            out.append({"request_id": ids[i], "label": surrogate if handled else None,
                        "handled": handled, "score": s, "reason": code, "audit": audit,
                        "surrogate_label": surrogate,
                        "truncated": bool(flags) and flags[i] == "truncated"})
            self.metrics.inc("tracec_decisions_total", outcome="handled" if handled else "deferred",
                             reason=code, label=surrogate)
            if audit:
                self.metrics.inc("tracec_audit_requests_total")
        with self._lock:
            for d in out:
                self._pending[d["request_id"]] = (d["surrogate_label"], d["handled"], d["audit"], cur.digest)
                self._label_counts[d["surrogate_label"]] = self._label_counts.get(d["surrogate_label"], 0) + 1
                self._ood += d["reason"] == "out_of_distribution"
            self._total += len(out)
            while len(self._pending) > PENDING_MAX:
                self._pending.popitem(last=False)
        if self._log is not None:
            texts = req.texts if req.kind == "text" else [None] * n
            for d, text in zip(out, texts):
                u = self._sample_u(d["request_id"])  # sampled rows: certifiable (docs/guarantee.md)
                self._log({"kind": "decision", "time": time.time(), "bundle": cur.digest,
                           "input": text, "provenance": "surrogate" if d["handled"] else "deferred",
                           "audit_rate": self.audit_rate, "sample_u": u,
                           "sampled": self.audit_rate > 0.0 and u < self.audit_rate, **d})
        return out

    # --------------------------------------------------------------- feedback
    def feedback(self, items: list[FeedbackItem]) -> list[dict]:
        cur = self.current()
        results = []
        for item in items:
            with self._lock:
                entry = self._pending.pop(item.request_id, None)
            if entry is None:
                kind = "unknown_request"
            else:
                surrogate, handled, audit, digest = entry
                if digest != cur.digest:
                    kind = "stale_bundle"
                elif handled and audit:
                    agreed = surrogate == item.teacher
                    cur.monitor.record(agreed)
                    self.metrics.inc("tracec_audit_outcomes_total",
                                     outcome="agree" if agreed else "disagree")
                    kind = "audit"
                else:
                    kind = "not_audited" if handled else "deferred"
                if self._log is not None:
                    self._log({"kind": "feedback", "time": time.time(), "bundle": digest,
                               "request_id": item.request_id, "teacher": item.teacher,
                               "provenance": "teacher", "audited": kind == "audit",
                               "surrogate_label": surrogate, "handled": handled})
            self.metrics.inc("tracec_feedback_total", kind=kind)
            results.append({"request_id": item.request_id, "accepted": entry is not None, "kind": kind})
        return results

    # ------------------------------------------------------------------ state
    def status(self) -> dict:
        cur = self.loaded
        if cur is None:
            return {"ready": False, "bundle": None, "reason": "no verified bundle is loaded",
                    "last_reload_error": self.last_reload_error}
        mon, iv = cur.monitor, cur.monitor.interval
        with self._lock:
            drift = mon.drift(dict(self._label_counts), self._ood, self._total)
        bundle_open = cur.router.gate_open
        reason = (None if bundle_open and mon.gate_open else
                  ("the bundle's parity gate refused the policy: everything defers"
                   if not bundle_open else mon.closed_reason))
        return {"ready": True, "bundle": {"path": cur.path, "digest": cur.digest,
                                          "alpha": mon.alpha, "watch_delta": mon.delta},
                "gate": {"bundle_open": bundle_open, "live_open": mon.gate_open,
                         "open": bundle_open and mon.gate_open, "reason": reason},
                "live": {"audits": iv.n, "agree": iv.agree, "ta_lower": iv.lower, "ta_upper": iv.upper},
                "audit": {"rate": self.audit_rate, "seed": self.audit_seed},
                "drift": {"label_mix_tv": drift.label_mix_tv, "ood_share": drift.ood_share,
                          "alarms": drift.alarms},
                "last_reload_error": self.last_reload_error}

    def refresh_gauges(self) -> None:
        st = self.status()
        if not st["ready"]:
            return
        self.metrics.set("tracec_gate_open", int(st["gate"]["bundle_open"]), scope="bundle")
        self.metrics.set("tracec_gate_open", int(st["gate"]["live_open"]), scope="live")
        self.metrics.set("tracec_live_ta_lower", st["live"]["ta_lower"])
        self.metrics.set("tracec_live_ta_upper", st["live"]["ta_upper"])
        for kind in ("label_mix", "ood_share"):
            raised = any(a.startswith("label mix" if kind == "label_mix" else "out-of-distribution")
                         for a in st["drift"]["alarms"])
            self.metrics.set("tracec_drift_alarm", int(raised), kind=kind)
