"""``jsonl``: tracec's own shape, one ``{"input": ..., "teacher": ...}`` object per line.

The record is its own view: aliases (``text``, ``llm_label``, ...) and the optional
``id``/``label``/``timestamp`` are handled by the common validation in ``tracec.traces``.
"""

from __future__ import annotations

from tracec.formats.base import Rows

NAME = "jsonl"


def sniff(obj: dict) -> bool:
    return True  # the fallback: auto picks it when no other format claims the first record


def rows(obj: dict) -> Rows:
    yield obj
