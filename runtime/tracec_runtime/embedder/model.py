"""Text -> embedding, by one procedure used identically at compile time and at run time.

Procedure ``tracec-embed/1``: tokenize each text on its own (no padding,
truncated at ``max_tokens``), group rows of equal token length (in order of
first appearance, at most ``MAX_GROUP`` per run) so a run never pads, run the
graph, mean-pool each row's token outputs (its attention mask is all ones)
in float64, L2-normalise, cast to float32.  A row's numbers therefore never
depend on the other rows of its batch.  At construction the embedder checks
that a group of equal-length texts gives bit-identical rows to running
them one by one; if this onnxruntime build does not, every row runs alone.
Empty or whitespace-only text and text with unpaired surrogates are embedded
as the empty string and flagged, so the router can defer them.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from tracec_runtime.embedder.session import OUTPUT, embedder_session
from tracec_runtime.embedder.tokenize import TRUNCATED, TextTokenizer, check_text
from tracec_runtime.errors import ModelContractError

PROCEDURE = "tracec-embed/1"
MAX_GROUP = 64


class TextEmbedder:
    """Built from the model and tokenizer bytes (verified by the caller)."""

    def __init__(self, model: bytes, tokenizer: bytes, *, max_tokens: int, dimension: int,
                 where: str):
        self.tokenizer = TextTokenizer(tokenizer, max_tokens, where)
        self.session, self._inputs = embedder_session(model, where)
        core = getattr(self.session, "_sess", None)
        self._call = core.run if callable(getattr(core, "run", None)) else self.session.run
        self.max_tokens, self.dimension, self._where = max_tokens, dimension, where
        self.max_group = MAX_GROUP
        self.batch_invariant = self._check_batch_invariance()

    def embed_many(self, texts: Sequence[str]) -> tuple[np.ndarray, list[Optional[str]]]:
        """``(X float32 [n, dimension], flags)``; each flag None, empty, invalid_text or truncated."""
        ids, flags = [], []
        for text in texts:
            flag = check_text(text)
            row, truncated = self.tokenizer.encode("" if flag else text)
            ids.append(row)
            flags.append(flag or (TRUNCATED if truncated else None))
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        groups: dict[int, list[int]] = {}
        for i, row in enumerate(ids):
            groups.setdefault(len(row), []).append(i)
        for rows in groups.values():
            for start in range(0, len(rows), self.max_group):
                part = rows[start:start + self.max_group]
                out[part] = self._run([ids[i] for i in part])
        return out, flags

    def _run(self, rows: list) -> np.ndarray:
        ids = np.asarray(rows, dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids)}
        hidden = self._call([OUTPUT], {k: feed[k] for k in self._inputs}, None)[0]
        if (not isinstance(hidden, np.ndarray) or hidden.dtype != np.float32
                or hidden.shape != (*ids.shape, self.dimension)):
            raise ModelContractError(f"{self._where}: {OUTPUT} must be float32 "
                                     f"{[*ids.shape, self.dimension]}; found "
                                     f"{getattr(hidden, 'dtype', type(hidden).__name__)} "
                                     f"{list(getattr(hidden, 'shape', []))}")
        out = np.empty((len(rows), self.dimension), dtype=np.float32)
        for i in range(len(rows)):
            v = hidden[i].astype(np.float64).mean(axis=0)
            norm = float(np.sqrt(v @ v))
            out[i] = v / norm if norm > 0 else v
        return out

    def _check_batch_invariance(self) -> bool:
        from tracec_runtime.embedder.fingerprint import EQUAL_LENGTH

        grouped, _ = self.embed_many(EQUAL_LENGTH)
        self.max_group = 1
        alone, _ = self.embed_many(EQUAL_LENGTH)
        if np.array_equal(grouped, alone):
            self.max_group = MAX_GROUP
            return True
        return False
