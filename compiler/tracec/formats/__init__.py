"""Trace formats: one module per log shape, each ``rows(record) -> views | Skip``.

``FORMATS`` is the registry (name -> module); ``sniff`` is ``--format auto``: the first
record decides, by the first format in ``SNIFF_ORDER`` whose ``sniff`` claims it:

    kind decision/feedback, request_id -> decision-log
    resourceSpans                      -> otel-genai
    custom_id                          -> openai-batch
    run_type, or inputs and outputs    -> langsmith
    traceId and type (input/output)    -> langfuse
    messages, or request and response  -> openai-chat
    anything else                      -> jsonl
"""

from __future__ import annotations

from types import ModuleType

from tracec.formats import decision_log, jsonl, langfuse, langsmith, openai_batch, openai_chat, otel_genai
from tracec.formats.base import FormatError, Skip, resolve

FORMATS: dict[str, ModuleType] = {m.NAME: m for m in (jsonl, openai_chat, openai_batch, otel_genai,
                                                      langfuse, langsmith, decision_log)}
SNIFF_ORDER = (decision_log, otel_genai, openai_batch, langsmith, langfuse, openai_chat, jsonl)
CHOICES = ("auto", *FORMATS)

__all__ = ["FORMATS", "CHOICES", "FormatError", "Skip", "resolve", "sniff"]


def sniff(first: dict) -> str:
    """The format ``auto`` picks for a source whose first record is ``first``."""
    return next(m.NAME for m in SNIFF_ORDER if m.sniff(first))
