"""Benchmark tasks: which JSONL/embedding files, which field is the teacher, which rows to keep.

A task loads into a ``TaskData`` holding the train and test embeddings (float16, exactly
as stored), the teacher labels and the gold labels as string arrays.  Both systems are
fed from the same ``TaskData`` (see ``workfiles.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.errors import BenchDataError

EMB_SUFFIX = ".minilm-l6-v2.f16.npy"


@dataclass(frozen=True)
class Split:
    """One split: a JSONL file, its row-aligned embeddings, and the teacher field."""

    jsonl: str  # relative to the data root
    embeddings: str
    teacher_field: str  # "teacher" for a real LLM teacher, "label" for gold-as-teacher


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    kind: str  # "main", "negative control", "partial control"
    train: Split
    test: Split
    drop_gold: tuple[str, ...] = ()


@dataclass
class TaskData:
    name: str
    X_train: np.ndarray
    teacher_train: np.ndarray
    gold_train: np.ndarray
    X_test: np.ndarray
    teacher_test: np.ndarray
    gold_test: np.ndarray
    texts_train: list[str]
    texts_test: list[str]

    def subset(self, train_rows: np.ndarray, name: str | None = None) -> "TaskData":
        """The same task trained on ``train_rows`` only (test untouched)."""
        rows = np.asarray(train_rows, dtype=np.int64)
        return TaskData(name or self.name, self.X_train[rows], self.teacher_train[rows],
                        self.gold_train[rows], self.X_test, self.teacher_test, self.gold_test,
                        [self.texts_train[i] for i in rows], self.texts_test)


def _split(folder: str, split: str, teacher: str, traces_dir: str | None = None) -> Split:
    jsonl = f"{folder}/{traces_dir}/{split}.jsonl" if traces_dir else f"{folder}/{split}.jsonl"
    return Split(jsonl, f"{folder}/{split}{EMB_SUFFIX}", teacher)


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("banking77_llm", "Banking77, real LLM teacher (Qwen3-30B-A3B)", "main",
         _split("banking77", "train", "teacher", "traces_qwen3-30b"),
         _split("banking77", "test", "teacher", "traces_qwen3-30b")),
    Task("banking77_gold", "Banking77, gold labels as teacher", "main",
         _split("banking77", "train", "label"), _split("banking77", "test", "label")),
    Task("clinc150_gold", "CLINC150 (150 in-scope intents), gold as teacher", "main",
         _split("clinc150", "train", "label"), _split("clinc150", "test", "label"),
         drop_gold=("oos",)),
    Task("mnli_gold", "MNLI sample (matched -> mismatched), gold as teacher", "negative control",
         _split("mnli_sample", "dev_matched", "label"),
         _split("mnli_sample", "dev_mismatched", "label")),
    Task("sick_gold", "SICK, gold as teacher", "partial control",
         _split("sick", "train", "label"), _split("sick", "test", "label")),
)}


def read_rows(path: Path, teacher_field: str) -> tuple[list[str], list[str], list[str]]:
    """(texts, teacher labels, gold labels) of a JSONL file; gold is the ``label`` field."""
    texts, teacher, gold = [], [], []
    if not path.is_file():
        raise BenchDataError(str(path), "expected a JSONL file, found nothing at this path")
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchDataError(str(path), f"expected a JSON object, found invalid JSON ({exc.msg})", n)
            for field in ("input", "label", teacher_field):
                if not isinstance(obj.get(field), str) or not obj[field]:
                    raise BenchDataError(str(path), f"field {field!r} must be a non-empty string, "
                                                    f"found {obj.get(field)!r}", n)
            texts.append(obj["input"])
            teacher.append(obj[teacher_field])
            gold.append(obj["label"])
    return texts, teacher, gold


def read_embeddings(path: Path, rows: int) -> np.ndarray:
    if not path.is_file():
        raise BenchDataError(str(path), "expected a .npy embedding matrix, found nothing at this path")
    X = np.load(path, allow_pickle=False)
    if X.ndim != 2 or X.shape[0] != rows:
        raise BenchDataError(str(path), f"expected shape ({rows}, D) row-aligned with the JSONL, "
                                        f"found {X.shape}")
    return X


def _load_split(root: Path, split: Split, drop_gold: tuple[str, ...]):
    texts, teacher, gold = read_rows(root / split.jsonl, split.teacher_field)
    X = read_embeddings(root / split.embeddings, len(texts))
    keep = np.array([g not in drop_gold for g in gold], dtype=bool)
    idx = np.flatnonzero(keep)
    return (X[idx], np.array(teacher, dtype=object)[idx], np.array(gold, dtype=object)[idx],
            [texts[i] for i in idx])


def load_task(root: Path, name: str) -> TaskData:
    """Load a task from the data root; rows whose gold label is in ``drop_gold`` are removed
    from texts, labels and embeddings together, so they stay row-aligned."""
    task = TASKS[name]
    Xa, ta, ga, xa = _load_split(root, task.train, task.drop_gold)
    Xb, tb, gb, xb = _load_split(root, task.test, task.drop_gold)
    return TaskData(name, Xa, ta, ga, Xb, tb, gb, xa, xb)


def pooled_resplit(data: TaskData, n_train: int, seed: int) -> TaskData:
    """Pool train+test and draw a new random train/test split of the same sizes (seeded)."""
    X = np.concatenate([data.X_train, data.X_test])
    teacher = np.concatenate([data.teacher_train, data.teacher_test])
    gold = np.concatenate([data.gold_train, data.gold_test])
    texts = data.texts_train + data.texts_test
    if not 0 < n_train < len(X):
        raise BenchDataError(data.name, f"resplit train size must be in (0, {len(X)}), found {n_train}")
    perm = np.random.default_rng(seed).permutation(len(X))
    a, b = perm[:n_train], perm[n_train:]
    return TaskData(f"{data.name}@resplit{seed}", X[a], teacher[a], gold[a], X[b], teacher[b],
                    gold[b], [texts[i] for i in a], [texts[i] for i in b])


def size_subset(data: TaskData, n: int, seed: int) -> TaskData:
    """The first ``n`` training traces of one seeded shuffle (a data-size sweep's rows)."""
    perm = np.random.default_rng(seed).permutation(len(data.X_train))
    return data.subset(np.sort(perm[:n]), name=f"{data.name}@{n}")


def daily_batches(n_rows: int, days: int, seed: int) -> list[np.ndarray]:
    """Shuffle row indices (seeded) and cut them into ``days`` near-equal batches."""
    perm = np.random.default_rng(seed).permutation(n_rows)
    return [np.sort(b) for b in np.array_split(perm, days)]
