"""Write one task's inputs for both systems into a work directory (never the repo).

Both systems read the very same arrays: the float16 training embeddings as stored, the
test embeddings widened to float32, and the teacher labels (strings for tracec's JSONL,
indices into ``labels`` for TRACER).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.data import TaskData


@dataclass(frozen=True)
class WorkFiles:
    dir: Path
    traces: Path  # JSONL with input / teacher / label, for tracec
    X_train: Path  # float16, row-aligned with ``traces``
    y_train: Path  # int64 teacher indices into ``labels``, for TRACER
    X_test: Path  # float32
    labels: tuple[str, ...]  # sorted teacher label space of the training rows


def label_space(teacher) -> tuple[str, ...]:
    return tuple(sorted({str(t) for t in teacher}))


def encode(values, labels) -> np.ndarray:
    """Indices of ``values`` in ``labels``; -1 for a value outside the label space."""
    index = {lab: i for i, lab in enumerate(labels)}
    return np.array([index.get(str(v), -1) for v in values], dtype=np.int64)


def decode(indices, labels) -> np.ndarray:
    """Label strings for indices; -1 (no answer) decodes to None."""
    return np.array([labels[i] if 0 <= i < len(labels) else None for i in np.asarray(indices)],
                    dtype=object)


def write_traces(path: Path, texts, teacher, gold) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for x, t, g in zip(texts, teacher, gold):
            fh.write(json.dumps({"input": x, "teacher": str(t), "label": str(g)},
                                ensure_ascii=False) + "\n")


def write_task(data: TaskData, root: Path) -> WorkFiles:
    """Write ``data`` under ``root/<data.name>/`` and return the paths."""
    d = root / data.name.replace("@", "_")
    d.mkdir(parents=True, exist_ok=True)
    labels = label_space(data.teacher_train)
    files = WorkFiles(d, d / "train.jsonl", d / "X_train.f16.npy", d / "y_train.npy",
                      d / "X_test.f32.npy", labels)
    write_traces(files.traces, data.texts_train, data.teacher_train, data.gold_train)
    np.save(files.X_train, np.asarray(data.X_train, dtype=np.float16), allow_pickle=False)
    np.save(files.y_train, encode(data.teacher_train, labels), allow_pickle=False)
    np.save(files.X_test, np.asarray(data.X_test, dtype=np.float32), allow_pickle=False)
    return files
