"""Chat messages as the logging tools write them: the last user turn and the assistant reply.

Content is a string, or a list of parts (``{"type": "text", "text": ...}`` as OpenAI
writes them, ``{"type": "text", "content": ...}`` as OTel GenAI does); text parts are
joined with newlines.  Roles ``user``/``human`` and ``assistant``/``ai`` are accepted.
"""

from __future__ import annotations

from typing import Any, Optional

from tracec.formats.base import FormatError, kind

USER = ("user", "human")
ASSISTANT = ("assistant", "ai")


def role(message: Any) -> Optional[str]:
    if not isinstance(message, dict):
        return None
    value = message.get("role", message.get("type"))
    if value == "constructor" and isinstance(message.get("kwargs"), dict):  # LangChain serialised
        value = message["kwargs"].get("type")
        if value is None and isinstance(message.get("id"), list) and message["id"]:
            value = {"HumanMessage": "human", "AIMessage": "ai"}.get(message["id"][-1])
    return value.lower() if isinstance(value, str) else None


def text(content: Any, where: str) -> Optional[str]:
    """The text of a message's content; None when it holds no text (e.g. only tool calls)."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p if isinstance(p, str) else p.get("text", p.get("content"))
                 for p in content if isinstance(p, str) or (isinstance(p, dict)
                                                            and p.get("type", "text") == "text")]
        parts = [p for p in parts if isinstance(p, str)]
        return "\n".join(parts) if parts else None
    raise FormatError(where, f"expected the message content to be a string or a list of parts, "
                             f"found {kind(content)}")


def content_of(message: dict) -> Any:
    if "content" in message or "parts" in message:
        return message.get("content", message.get("parts"))
    kwargs = message.get("kwargs")
    return kwargs.get("content") if isinstance(kwargs, dict) else None


def last_user(messages: Any, where: str) -> str:
    """The text of the last user message; FormatError if there is none."""
    if not isinstance(messages, list):
        raise FormatError(where, f"expected a list of messages, found {kind(messages)}")
    for i in range(len(messages) - 1, -1, -1):
        if role(messages[i]) in USER:
            value = text(content_of(messages[i]), f"{where}.{i}.content")
            if value is not None:
                return value
    roles = [role(m) for m in messages]
    raise FormatError(where, f"expected a user message with text, found roles {roles}")


def reply(message: Any, where: str) -> Optional[str]:
    """An assistant message's text, stripped; None when it carries no text."""
    if not isinstance(message, dict):
        raise FormatError(where, f"expected an assistant message object, found {kind(message)}")
    value = text(content_of(message), f"{where}.content")
    return value.strip() if isinstance(value, str) else None
