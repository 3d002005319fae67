"""Run an exported policy graph with onnxruntime, exactly as the runtime does."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort


class GraphScorer:
    """One CPU session on the serialised graph (single thread: bitwise the runtime's numbers)."""

    def __init__(self, graph: bytes):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.gated = any(o.name == "in_distribution" for o in self._session.get_outputs())

    def run(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X = np.ascontiguousarray(X, dtype=np.float32)
        label, score, handled = self._session.run(["label", "score", "handled"], {self._input: X})
        return label.astype(np.int64), score.astype(np.float32), handled.astype(bool)

    def inside(self, X: np.ndarray) -> np.ndarray:
        """The graph's ``in_distribution`` flags (all true for a graph without the gate)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if not self.gated:
            return np.ones(X.shape[0], dtype=bool)
        return self._session.run(["in_distribution"], {self._input: X})[0].astype(bool)
