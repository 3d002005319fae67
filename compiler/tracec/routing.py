"""``tracec route``: run a bundle over embeddings, or over texts (text-in bundles), and summarise."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from tracec import npy
from tracec.calibration import cp_lower, cp_upper
from tracec.embeddings import load_embeddings
from tracec.errors import EmbeddingError
from tracec.loader import describe_read
from tracec.manifest import dec
from tracec.texts import read_texts
from tracec_runtime.cli import decision_rows
from tracec_runtime.router import Router


def route_file(bundle: Path, embeddings: Optional[Path], traces: Optional[Path], public_key,
               allow_unsigned: bool, text: Optional[str] = None,
               trace_options: Optional[dict] = None, say=None):
    """``(doc, text)``: route ``embeddings`` (.npy), else the texts of ``traces`` (text-in
    bundles), else the one ``text``.

    ``traces`` is read like a compile's (any ``--format``, ``.gz``, ``-``); teacher labels are
    optional (one label is enough: this evaluates, it does not train).  With them the summary
    adds TA against the bundle's alpha with a two-sided (1 - delta) Clopper-Pearson interval,
    teacher labels the bundle never saw, and a warning in ``warnings`` when the interval lies
    below alpha; the OOD share is always reported."""
    router = Router.load(bundle, public_key=public_key, allow_unsigned=allow_unsigned)
    rows = read_texts(traces, **(trace_options or {})) if traces is not None else None
    if rows is not None and say is not None:
        say(f"traces {describe_read(rows.traces)}")
    if embeddings is not None:
        X, _ = load_embeddings(embeddings, rows.n if rows else _rows_of(embeddings),
                               traces_path=traces)
        batch = router.route_batch(X)
    else:  # text-in: the bundle's own embedder
        batch = router.route_texts(list(rows.inputs) if rows is not None else [text])
    labels = router.labels
    decisions = decision_rows(batch, labels)
    summary = {"rows": len(decisions), "handled": int(np.sum(batch.handled)),
               "coverage": dec(float(np.mean(batch.handled)) if len(decisions) else 0.0),
               "gate": router.manifest["policy"]["gate"]}
    summary["alpha"] = router.manifest["policy"]["alpha"]
    summary["ood_share"] = dec(batch.ood_share)  # rows the bundle's OOD gate deferred
    if rows is not None and rows.teachers is not None:
        summary.update(_agreement(rows, labels, batch))
        summary.update(_live_ta(summary, router.manifest, np.asarray(batch.handled, dtype=bool)))
        summary.update(_unseen(rows.teachers, labels))
    summary["warnings"] = _warnings(summary)
    doc = {"bundle": str(bundle), "summary": summary, "decisions": decisions}
    out = ", ".join(f"{k} {v}" for k, v in summary.items() if k != "warnings" and v is not None)
    if rows is None and embeddings is None:  # one --text: say what was decided, and why
        one = batch[0]
        out = f"{one.label if one.handled else 'DEFER'}: {one.reason}"
    return doc, out


def _agreement(rows, labels: list[str], batch) -> dict:
    handled = np.asarray(batch.handled, dtype=bool)
    pred = np.array([labels[int(k)] for k in batch.label_index], dtype=object)
    teacher = np.array(rows.teachers, dtype=object)
    agree = pred == teacher
    out = {"ta_handled": dec(float(np.mean(agree[handled]))) if handled.any() else None,
           "_agree_handled": int(np.sum(agree & handled))}
    gold = np.array(rows.labels, dtype=object)
    if all(g is not None for g in rows.labels):
        final = np.where(handled, pred, teacher)
        out["accuracy_end_to_end"] = dec(float(np.mean(final == gold)))
        out["accuracy_teacher_only"] = dec(float(np.mean(teacher == gold)))
    return out


def _live_ta(summary: dict, manifest: dict, handled: np.ndarray) -> dict:
    """Two-sided (1 - delta) Clopper-Pearson interval of the live TA on handled rows."""
    k, n = summary.pop("_agree_handled"), int(handled.sum())
    if n == 0:
        return {"ta_interval": None, "ta_below_alpha": None}
    half = float(manifest["policy"]["delta"]) / 2
    low, high = cp_lower(k, n, half), cp_upper(k, n, half)
    return {"ta_interval": [dec(low), dec(high)],
            "ta_below_alpha": bool(high < float(manifest["policy"]["alpha"]))}


def _unseen(teachers, labels: list[str]) -> dict:
    known = set(labels)
    unseen = [t for t in teachers if t not in known]
    return {"unseen_teacher_rows": len(unseen), "unseen_teacher_labels": sorted(set(unseen))}


def _warnings(summary: dict) -> list[str]:
    out = []
    if summary.get("ta_below_alpha"):
        low, high = summary["ta_interval"]
        out.append(f"live TA on handled rows is {summary['ta_handled']} (interval {low}..{high}), "
                   f"credibly below the bundle's alpha {summary['alpha']}: the traffic has "
                   f"drifted from the traces it was certified on; recompile on recent traces")
    if summary.get("unseen_teacher_rows"):
        names = ", ".join(repr(x) for x in summary["unseen_teacher_labels"][:10])
        out.append(f"{summary['unseen_teacher_rows']:,} row(s) carry teacher labels the bundle has "
                   f"never seen ({names}): it can never answer them correctly; recompile with "
                   f"traces that contain them")
    return out


def _rows_of(path: Path) -> int:
    """Row count from the .npy header; an unreadable file falls through to the loader's typed error."""
    try:
        with open(path, "rb") as f:
            shape = npy.read_header(str(path), f.read(npy.MAX_HEADER + 12)).shape
    except (OSError, EmbeddingError):
        return -1
    return int(shape[0]) if shape else -1
