"""``tracec route``: run a bundle over embeddings, or over texts (text-in bundles), and summarise."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from tracec.embeddings import load_embeddings
from tracec.manifest import dec
from tracec.texts import read_texts
from tracec.traces import load_traces
from tracec_runtime.router import Router


def route_file(bundle: Path, embeddings: Optional[Path], traces: Optional[Path], public_key,
               allow_unsigned: bool, text: Optional[str] = None):
    """Route ``embeddings`` (.npy), else the texts of ``traces``, else the one ``text``."""
    router = Router.load(bundle, public_key=public_key, allow_unsigned=allow_unsigned)
    if embeddings is not None:
        rows = load_traces(traces, min_classes=1) if traces is not None else None
        X, _ = load_embeddings(embeddings, rows.n if rows else _rows_of(embeddings),
                               traces_path=traces)
        batch = router.route_batch(X)
    else:  # text-in: the bundle's own embedder
        rows = read_texts(traces) if traces is not None else None
        batch = router.route_texts(list(rows.inputs) if rows is not None else [text])
    labels = router.labels
    flags = batch.flags or (None,) * len(batch)
    decisions = [{"row": i, "label": labels[int(k)] if h else None, "handled": bool(h),
                  "surrogate_label": labels[int(k)], "score": format(float(s), ".6g"),
                  **({"flag": f} if f else {})}
                 for i, (k, h, s, f) in enumerate(zip(batch.label_index, batch.handled,
                                                      batch.score, flags))]
    summary = {"rows": len(decisions), "handled": int(np.sum(batch.handled)),
               "coverage": dec(float(np.mean(batch.handled)) if len(decisions) else 0.0),
               "gate": router.manifest["policy"]["gate"]}
    if rows is not None and rows.teachers is not None:
        summary.update(_agreement(rows, labels, batch))
    doc = {"bundle": str(bundle), "summary": summary, "decisions": decisions}
    text = ", ".join(f"{k} {v}" for k, v in summary.items())
    if rows is None and embeddings is None:  # one --text: say what was decided, and why
        one = batch[0]
        text = f"{one.label if one.handled else 'DEFER'}: {one.reason}"
    return doc, text


def _agreement(rows, labels: list[str], batch) -> dict:
    handled = np.asarray(batch.handled, dtype=bool)
    pred = np.array([labels[int(k)] for k in batch.label_index], dtype=object)
    teacher = np.array(rows.teachers, dtype=object)
    agree = pred == teacher
    out = {"ta_handled": dec(float(np.mean(agree[handled]))) if handled.any() else None}
    gold = np.array(rows.labels, dtype=object)
    if all(g is not None for g in rows.labels):
        final = np.where(handled, pred, teacher)
        out["accuracy_end_to_end"] = dec(float(np.mean(final == gold)))
        out["accuracy_teacher_only"] = dec(float(np.mean(teacher == gold)))
    return out


def _rows_of(path: Path) -> int:
    """Row count from the .npy header; an unreadable file falls through to the loader's typed error."""
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except Exception:  # noqa: BLE001 - load_embeddings reports it properly
        return -1
    return int(shape[0]) if shape else -1
