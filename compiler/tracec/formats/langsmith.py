"""``langsmith``: LangSmith runs (one exported run object per line), ``run_type`` ``llm``.

``inputs`` holds ``messages`` (a list, or LangChain's list of lists; OpenAI-style
``{"role", "content"}`` or serialised LangChain messages with ``kwargs.content``), or
``prompts`` / ``prompt`` / ``input`` text.  ``outputs`` holds ``generations`` (the first
generation's ``text`` or ``message``), a chat completion (``choices``), or ``output`` /
``content`` text.

Skipped (counted): runs of other types (``chain``, ``tool``, ``retriever``, ...) and failed
runs (``error`` set, ``status`` ``error``, or no ``outputs``).
"""

from __future__ import annotations

from typing import Any

from tracec.formats.base import FormatError, Rows, Skip, kind, view
from tracec.formats.langfuse import prompt_text, reply_text

NAME = "langsmith"
NOT_LLM = "run that is not an llm run"
FAILED = "failed run (error or no outputs)"
NO_TEXT = "llm run without a text output"


def sniff(obj: dict) -> bool:
    return "run_type" in obj or ("inputs" in obj and "outputs" in obj)


def _inputs(inputs: Any) -> str:
    if not isinstance(inputs, dict):
        raise FormatError("inputs", f"expected an object, found {kind(inputs)}")
    messages = inputs.get("messages")
    if isinstance(messages, list) and messages and all(isinstance(m, list) for m in messages):
        messages = messages[-1]  # LangChain batches: a list of conversations
    if messages is not None:
        return prompt_text(messages, "inputs.messages")
    for key in ("prompts", "prompt", "input"):
        value = inputs.get(key)
        if isinstance(value, list) and value and isinstance(value[-1], str):
            return value[-1]
        if isinstance(value, str):
            return value
    raise FormatError("inputs", f"expected 'messages', 'prompts', 'prompt' or 'input', found "
                                f"the keys {sorted(inputs)}")


def _outputs(outputs: dict) -> Any:
    gens = outputs.get("generations")
    if isinstance(gens, list) and gens:
        first = gens[0][0] if isinstance(gens[0], list) and gens[0] else gens[0]
        if isinstance(first, dict) and isinstance(first.get("text"), str) and first["text"].strip():
            return first["text"].strip()
        if isinstance(first, dict) and "message" in first:
            return reply_text(first["message"], "outputs.generations.0.0.message")
        raise FormatError("outputs.generations", f"expected a generation with 'text' or "
                                                 f"'message', found {kind(first)}")
    if "choices" in outputs:
        return reply_text(outputs, "outputs")
    for key in ("output", "content", "text"):
        if key in outputs:
            return reply_text(outputs[key], f"outputs.{key}")
    raise FormatError("outputs", f"expected 'generations', 'choices' or 'output', found the keys "
                                 f"{sorted(outputs)}")


def rows(obj: dict) -> Rows:
    if obj.get("run_type", "llm") != "llm":
        yield Skip(NOT_LLM)
        return
    if obj.get("error") or obj.get("status") == "error" or not isinstance(obj.get("outputs"), dict):
        yield Skip(FAILED)
        return
    teacher = _outputs(obj["outputs"])
    if isinstance(teacher, Skip) or not teacher:
        yield teacher if isinstance(teacher, Skip) else Skip(NO_TEXT)
        return
    yield view(_inputs(obj.get("inputs")), teacher, obj, id=obj.get("id"),
               timestamp=obj.get("start_time"))
