"""Micro-batching: concurrent text requests share one embedder call.

Requests wait at most ``max_wait_s`` (default 2 ms) for company, up to
``max_rows`` texts per call; the call runs in a worker thread so the event
loop keeps accepting.  Up to ``max_inflight`` calls run at once (onnxruntime
releases the GIL while it runs, so two calls use two cores); while they run,
new requests queue and form the next group.  Each request gets a :class:`BatchView` of its own rows.
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
    flags: tuple = ()
    in_distribution: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.handled.shape[0])

    @classmethod
    def of(cls, batch: Any, start: int, stop: int) -> "BatchView":
        inside = batch.in_distribution
        return cls(batch.label_index[start:stop], batch.handled[start:stop], batch.score[start:stop],
                   tuple(batch.label_names), batch.gate_open, tuple(batch.flags[start:stop]),
                   None if inside is None else inside[start:stop])


def _owner(fn: Callable) -> Any:
    """The router a bound ``route_texts`` belongs to (bound methods are new objects each time)."""
    return getattr(fn, "__self__", fn)


class MicroBatcher:
    def __init__(self, max_wait_s: float = 0.002, max_rows: int = 256,
                 on_call: Optional[Callable[[int], None]] = None, max_inflight: int = 1):
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be at least 1, found {max_inflight}")
        self.max_wait_s, self.max_rows, self.on_call = max_wait_s, max_rows, on_call
        self.max_inflight = max_inflight
        self._slots: Optional[asyncio.Semaphore] = None
        self._inflight: set = set()  # the running calls (a task needs a reference)
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
        self._slots = asyncio.Semaphore(self.max_inflight)
        while True:
            await self._slots.acquire()  # a free call slot first: meanwhile the queue fills
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
            task = loop.create_task(self._call(loop, group))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _call(self, loop, group: list) -> None:
        try:
            texts = [t for _, ts, _ in group for t in ts]
            try:
                batch = await loop.run_in_executor(None, group[0][0], texts)
                self.calls += 1
                if self.on_call is not None:
                    self.on_call(len(texts))
            except Exception as exc:  # the error belongs to every request of the group
                for _, _, fut in group:
                    if not fut.done():
                        fut.set_exception(exc)
                return
            start = 0
            for _, ts, fut in group:
                if not fut.done():
                    fut.set_result(BatchView.of(batch, start, start + len(ts)))
                start += len(ts)
        finally:
            self._slots.release()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
