"""The embedder's tokenizer, built from verified ``tokenizer.json`` bytes.

Padding is switched off (every row is tokenized to its own length: no pad
tokens ever enter the graph) and truncation is set to the bundle's
``max_tokens``.  Text longer than ``MAX_CHARS`` characters is cut before
tokenizing (bounded work per request) and flagged truncated, like text whose
tokens exceed ``max_tokens``.
"""

from __future__ import annotations

from typing import Optional

from tracec_runtime.errors import ModelContractError

MAX_CHARS = 65536

EMPTY, INVALID, TRUNCATED = "empty", "invalid_text", "truncated"


def check_text(text: str) -> Optional[str]:
    """``"empty"`` (nothing but whitespace), ``"invalid_text"`` (unpaired surrogates), or None."""
    if not text.strip():
        return EMPTY
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return INVALID
    return None


class TextTokenizer:
    """``encode(text) -> (ids, truncated)``; ``ids`` a list of ints, no padding."""

    def __init__(self, data: bytes, max_tokens: int, where: str):
        from tokenizers import Tokenizer  # deferred: embedding-in bundles never need it

        try:
            tok = Tokenizer.from_str(data.decode("utf-8"))
        except Exception as exc:  # tokenizers raises its own exception types
            raise ModelContractError(f"{where}: not a tokenizers tokenizer.json ({exc})") from None
        tok.no_padding()
        tok.enable_truncation(max_length=max_tokens)
        self._tok, self.max_tokens = tok, max_tokens

    def encode(self, text: str) -> tuple[list, bool]:
        cut = len(text) > MAX_CHARS
        enc = self._tok.encode(text[:MAX_CHARS] if cut else text)
        return enc.ids, cut or bool(enc.overflowing)
