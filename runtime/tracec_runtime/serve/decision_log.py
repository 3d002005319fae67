"""The decision log: JSONL, rotating, off by default.

One row per decision (``kind: decision``, provenance ``surrogate`` when the
surrogate answered alone, ``deferred`` when the LLM was asked) and one per
feedback item (``kind: feedback``, provenance ``teacher``, ``audited`` true
when the request was sampled for audit).  Rows that only the surrogate
answered are never teacher labels (docs/guarantee.md, "Production logs").
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

__all__ = ["DecisionLog"]


class DecisionLog:
    def __init__(self, path: str, max_bytes: int = 64 * 1024 * 1024, backups: int = 5):
        self.path, self.max_bytes, self.backups = Path(path), int(max_bytes), int(backups)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fh = open(self.path, "a", encoding="utf-8")

    def __call__(self, row: dict) -> None:
        line = json.dumps(row, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"
        with self._lock:
            if self._fh.tell() + len(line) > self.max_bytes and self._fh.tell() > 0:
                self._rotate()
            self._fh.write(line)

    def _rotate(self) -> None:
        self._fh.close()
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._fh = open(self.path, "a", encoding="utf-8")

    def flush(self) -> None:
        with self._lock:
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()
