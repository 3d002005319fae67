"""The paper's flywheel: the training traces arrive in equal daily batches; each day both
systems recompile on every trace seen so far; coverage and TA on the fixed test set."""

from __future__ import annotations

import numpy as np

from benchmarks.context import Context, tracec_alpha, tracer_alphas, tracer_cached
from benchmarks.data import TaskData, daily_batches
from benchmarks.metrics import alpha_key
from benchmarks.scheduler import Job, Outcome


def day_data(data: TaskData, days: int, seed: int) -> list[TaskData]:
    """Training data of day 1..days: the union of the first d shuffled batches."""
    batches = daily_batches(len(data.X_train), days, seed)
    return [data.subset(np.sort(np.concatenate(batches[:d])), name=f"{data.name}@day{d}")
            for d in range(1, days + 1)]


def flywheel_jobs(ctx: Context, data: TaskData, days: int, alpha: float, seed: int,
                  tracer: bool) -> list[Job]:
    jobs = []
    for d, dd in enumerate(day_data(data, days, seed), start=1):
        if ctx.tracec_ok:
            jobs.append(Job(f"flywheel:tracec:{d}", _bind(tracec_alpha, ctx, dd, alpha, (alpha,)),
                            "flywheel-tracec"))
        if tracer and ctx.tracer_py is not None:
            jobs.append(Job(f"flywheel:tracer:{d}",
                            _bind(tracer_alphas, ctx, dd, (alpha,), True, None, None, True),
                            "flywheel-tracer", optional=True, estimate_s=400,
                            ready=_bind(tracer_cached, ctx, dd, (alpha,), True)))
    return jobs


def _bind(fn, *args):
    return lambda: fn(*args)


def assemble(outcomes: dict[str, Outcome], data: TaskData, days: int, alpha: float,
             seed: int) -> dict:
    key = alpha_key(alpha)
    sizes = [len(b) for b in daily_batches(len(data.X_train), days, seed)]
    rows = []
    for d in range(1, days + 1):
        row = {"day": d, "n_traces": int(sum(sizes[:d]))}
        for system in ("tracec", "tracer"):
            o = outcomes.get(f"flywheel:{system}:{d}")
            if o is None:
                row[system] = {"status": "not run"}
            elif o.status != "done":
                row[system] = {"status": o.status}
            else:
                ev = o.value if system == "tracec" else o.value["alphas"][key]
                row[system] = {k: ev.get(k) for k in ("coverage", "teacher_agreement",
                                                      "e2e_accuracy", "family", "gate")}
                if system == "tracer":
                    row[system]["cached"] = o.value["cached"]
        rows.append(row)
    return {"task": data.name, "alpha": alpha, "days": days, "shuffle_seed": seed, "rows": rows}
