"""Micro-batching: concurrent text requests share one embedder call.

Requests wait at most ``max_wait_s`` (default 2 ms) for company, up to
``max_rows`` texts per call; the call runs in a worker thread so the event
loop keeps accepting.  Each request gets a :class:`BatchView` of its own rows.
The embedder's batching procedure gives the same numbers as one-by-one
embedding (docs/embedder.md), so batching never changes a decision.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["BatchView", "MicroBatcher"]


@dataclass(frozen=True)
class BatchView:
    label_index: np.ndarray
    handled: np.ndarray
    score: np.ndarray
    label_names: tuple
    gate_open: bool
    reason_codes: Optional[list] = None

    def __len__(self) -> int:
        return int(self.handled.shape[0])

    @classmethod
    def of(cls, batch: Any, start: int, stop: int) -> "BatchView":
        codes = getattr(batch, "reason_codes", None)
        return cls(batch.label_index[start:stop], batch.handled[start:stop], batch.score[start:stop],
                   tuple(batch.label_names), batch.gate_open,
                   None if codes is None else list(codes[start:stop]))


def _owner(fn: Callable) -> Any:
    """The router a bound ``route_texts`` belongs to (bound methods are new objects each time)."""
    return getattr(fn, "__self__", fn)


class MicroBatcher:
    def __init__(self, max_wait_s: float = 0.002, max_rows: int = 256):
        self.max_wait_s, self.max_rows = max_wait_s, max_rows
        self._queue: Optional[asyncio.Queue] = None
        self._task: Optional[asyncio.Task] = None
        self.calls = 0

    async def submit(self, fn: Callable[[list], Any], texts: list) -> BatchView:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run())
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((fn, texts, fut))
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            group, rows = [first], len(first[1])
            deadline = loop.time() + self.max_wait_s
            while rows < self.max_rows:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                if _owner(item[0]) is not _owner(first[0]):  # another bundle (after a reload)
                    await self._queue.put(item)
                    break
                group.append(item)
                rows += len(item[1])
            texts = [t for _, ts, _ in group for t in ts]
            try:
                batch = await loop.run_in_executor(None, first[0], texts)
                self.calls += 1
            except Exception as exc:  # the error belongs to every request of the group
                for _, _, fut in group:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            start = 0
            for _, ts, fut in group:
                if not fut.done():
                    fut.set_result(BatchView.of(batch, start, start + len(ts)))
                start += len(ts)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
