"""``compile --previous OLD`` on a decision log: provenance, replay, live figures (fail closed).

    digests -> replay through the verified previous bundle -> its live performance on the log

1. Provenance: the log's ``bundle`` digests (``tracec-runtime serve`` writes the SHA-256 of the
   serving bundle's manifest, ``VerifiedBundle.digest``) are counted; no decision from the
   previous bundle refuses (``ProvenanceError``, exit 3).  Rows from other bundles (a log across
   a hot reload) stay usable: the uniform sample (``sample_u < rate``) does not depend on the
   bundle, and teacher labels are the LLM's whichever bundle deferred.
2. Replay: the previous bundle's decisions in the uniform sample (the rows its figures are
   measured on: about ``rate`` x its decisions, so the cost is bounded) are routed again, in
   batches, through that bundle's text routing; a logged ``handled``, ``surrogate_label`` or
   ``label`` that differs refuses, naming the line.  Rows outside the sample only train the
   new bundle, where the logged decision plays no part; they are not replayed.
3. Live figures on the uniform rows: the bundle's handled share and its TA on the audited
   (teacher-labelled) handled rows with one-sided (1 - delta) Clopper-Pearson bounds, recorded
   as ``sampling.previous`` (manifest, ``compile --json``, report.html).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from tracec.calibration import cp_lower, cp_upper
from tracec.config import CompileConfig
from tracec.errors import ProvenanceError
from tracec.manifest import dec
from tracec.traces import Traces
from tracec_runtime.router import Router
from tracec_runtime.verify import VerifiedBundle, verify_bundle

BATCH = 256
LIVE_CLOSED = "live_gate_closed"  # the service's live gate deferred it, not the bundle


def load_previous(config: CompileConfig) -> Optional[VerifiedBundle]:
    """The previous bundle, verified (signature too when its key is given)."""
    if config.previous is None:
        return None
    return verify_bundle(config.previous, public_key=config.previous_public_key,
                         allow_unsigned=config.previous_public_key is None)


def against_previous(traces: Traces, previous: Optional[VerifiedBundle], delta: float,
                     say: Callable[[str], None]) -> Traces:
    """``traces`` with ``sampling.previous`` when they are a decision log and ``--previous`` is
    given; raises ``ProvenanceError`` if the log does not come from that bundle."""
    if previous is None or traces.decisions is None:
        return traces
    digest, counts = previous.digest, traces.sampling["bundles"]
    found = ", ".join(f"{d} ({n:,})" for d, n in counts.items())
    if not counts.get(digest):
        raise ProvenanceError(traces.path, None, f"no decision comes from the --previous bundle "
                              f"{previous.path} (expected bundle digest {digest}; found {found})",
                              "bundle")
    mine = [d for d in traces.decisions if d.bundle == digest]
    texts = [d for d in mine if d.uniform and isinstance(d.input, str)]
    replayed = _replay(traces.path, previous, digest, texts)
    say(f"previous bundle {digest[:12]}: {len(mine):,} of {sum(counts.values()):,} decisions "
        f"(digests: {found}); {len(texts):,} in the uniform sample replayed, all match")
    live = _live(texts, replayed, delta)
    live.update(bundle=digest, rows=len(mine), other_rows=sum(counts.values()) - len(mine),
                without_text=sum(not isinstance(d.input, str) for d in mine))
    return dataclasses.replace(traces, sampling={**traces.sampling, "previous": live})


def _replay(path: str, bundle: VerifiedBundle, digest: str, rows: list) -> list[tuple[bool, str]]:
    """Route ``rows``' texts through ``bundle`` (its text routing, in batches), compare each
    with its line, and return the bundle's ``(handled, surrogate label)`` per row."""
    router = Router(bundle)
    if not router.text_in and rows:
        raise ProvenanceError(path, rows[0].line, f"the --previous bundle {bundle.path} is "
                              f"embedding-in: its decisions cannot be replayed from the log's "
                              f"texts (a text decision cannot come from it)", "input")
    out: list[tuple[bool, str]] = []
    for start in range(0, len(rows), BATCH):
        chunk = rows[start:start + BATCH]
        batch = router.route_texts([d.input for d in chunk])
        for d, k, h in zip(chunk, batch.label_index.tolist(), batch.handled.tolist()):
            surrogate = batch.label_names[k]
            served = bool(h) and not (d.reason == LIVE_CLOSED and router.gate_open)
            for key, value, logged in (("handled", served, d.handled),
                                       ("surrogate_label", surrogate, d.surrogate_label),
                                       ("label", surrogate if served else None, d.label)):
                checked = key == "handled" or logged is not None  # label fields: when logged
                if checked and (logged != value or type(logged) is not type(value)):
                    raise ProvenanceError(
                        path, d.line, f"decision {d.request_id}: logged {key} {logged!r}, but "
                        f"the --previous bundle {digest[:12]} replays {value!r} (handled "
                        f"{bool(h)}, surrogate label {surrogate!r}): the log does not come from "
                        f"this bundle or was altered", key)
            out.append((bool(h), surrogate))
    return out


def _live(rows: list, replayed: list[tuple[bool, str]], delta: float) -> dict:
    """The previous bundle on the uniform rows: handled share, TA on the audited handled rows."""
    handled = [(d, label) for d, (h, label) in zip(rows, replayed) if h]
    audited = [(d, label) for d, label in handled if d.teacher is not None]
    agree, n = sum(d.teacher == label for d, label in audited), len(audited)
    return {"uniform": len(rows), "handled": len(handled),
            "coverage": dec(len(handled) / len(rows)) if rows else None,
            "audited": n, "agree": agree, "ta": dec(agree / n) if n else None,
            "ta_lower": dec(cp_lower(agree, n, delta)), "ta_upper": dec(cp_upper(agree, n, delta)),
            "delta": dec(delta), "handled_without_label": len(handled) - n,
            "live_gate_closed": sum(d.reason == LIVE_CLOSED for d in rows)}
