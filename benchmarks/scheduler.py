"""Two lanes of jobs under a wall-clock budget.

Jobs run in submission order on ``lanes`` worker threads (each job mostly waits for a
child process).  A job marked ``optional`` starts only if its estimated duration still
fits before the deadline, or its ``ready()`` says the result is at hand (a cache hit);
otherwise it is recorded as skipped.  The estimate of a group
is the mean wall time of the group's finished jobs (or the job's own ``estimate_s``).
"""

from __future__ import annotations

import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from benchmarks.errors import BudgetExceeded


@dataclass
class Job:
    name: str
    fn: Callable[[], Any]
    group: str
    optional: bool = False
    estimate_s: float = 60.0
    ready: Callable[[], bool] | None = None  # True: the result is already at hand (runs anyway)


@dataclass
class Outcome:
    name: str
    status: str  # "done", "failed", "skipped" (not started, or stopped at the deadline)
    value: Any = None
    error: str | None = None
    wall_s: float = 0.0


@dataclass
class Scheduler:
    deadline: float  # time.monotonic() value after which no optional job starts
    lanes: int = 2
    log: Callable[[str], None] = print
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    _durations: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def estimate(self, job: Job) -> float:
        with self._lock:
            seen = self._durations.get(job.group)
        return sum(seen) / len(seen) if seen else job.estimate_s

    def _run(self, job: Job) -> Outcome:
        late = time.monotonic() + self.estimate(job) > self.deadline
        if job.optional and late and not (job.ready is not None and job.ready()):
            self.log(f"skip  {job.name} (budget: ~{self.estimate(job):.0f}s would pass the deadline)")
            return self._record(Outcome(job.name, "skipped"))
        self.log(f"start {job.name}")
        t0 = time.monotonic()
        try:
            value = job.fn()
        except BudgetExceeded as exc:
            self.log(f"stop  {job.name}: {exc}")
            return self._record(Outcome(job.name, "skipped", error=str(exc),
                                        wall_s=time.monotonic() - t0))
        except Exception as exc:  # recorded, reported, never silently dropped
            self.log(f"FAIL  {job.name}: {exc}")
            return self._record(Outcome(job.name, "failed", error=f"{type(exc).__name__}: {exc}\n"
                                        + traceback.format_exc(limit=3), wall_s=time.monotonic() - t0))
        wall = time.monotonic() - t0
        with self._lock:
            self._durations.setdefault(job.group, []).append(wall)
        self.log(f"done  {job.name} ({wall:.1f}s)")
        return self._record(Outcome(job.name, "done", value, wall_s=wall))

    def _record(self, outcome: Outcome) -> Outcome:
        with self._lock:
            self.outcomes[outcome.name] = outcome
        return outcome

    def run(self, jobs: list[Job], lanes: int | None = None) -> dict[str, Outcome]:
        """Run ``jobs`` (``lanes`` at a time, default ``self.lanes``); return every outcome."""
        with ThreadPoolExecutor(max_workers=lanes or self.lanes) as pool:
            for _ in pool.map(self._run, jobs):
                pass
        return {j.name: self.outcomes[j.name] for j in jobs}
