"""``tracec route``: run a bundle over embeddings, or over texts (text-in bundles), and summarise."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from tracec import npy
from tracec.embeddings import load_embeddings
from tracec.errors import EmbeddingError
from tracec.loader import describe_read
from tracec.manifest import dec
from tracec.texts import read_texts
from tracec_runtime.router import Router


def route_file(bundle: Path, embeddings: Optional[Path], traces: Optional[Path], public_key,
               allow_unsigned: bool, text: Optional[str] = None,
               trace_options: Optional[dict] = None, say=None):
    """Route ``embeddings`` (.npy), else the texts of ``traces``, else the one ``text``.

    ``traces`` is read like a compile's (any ``--format``, ``.gz``, ``-``); teacher labels
    are optional and add agreement figures when every row has one."""
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
        with open(path, "rb") as f:
            shape = npy.read_header(str(path), f.read(npy.MAX_HEADER + 12)).shape
    except (OSError, EmbeddingError):
        return -1
    return int(shape[0]) if shape else -1
