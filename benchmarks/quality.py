"""Per task and per alpha: coverage, TA, end-to-end accuracy and family of both systems, the
hindsight confidence baseline and the oracle limit."""

from __future__ import annotations

import os

from benchmarks.baseline import confidence_baseline
from benchmarks.context import Context, tracec_alpha, tracer_alphas
from benchmarks.data import TASKS, TaskData
from benchmarks.metrics import alpha_key
from benchmarks.scheduler import Job, Outcome

TIMED_TASK = "banking77_llm"  # the task whose compile / fit times are the headline numbers


def timed_jobs(ctx: Context, datasets: dict[str, TaskData]) -> list[Job]:
    """The headline timings, to be started together on the two lanes: TRACER's unmemoised fit
    and tracec's first compile on the headline task (both over every alpha), each with the
    default threading of its libraries.  Both are always recomputed (never from a cache)."""
    data = datasets[TIMED_TASK]
    env = dict(os.environ)
    jobs = []
    if ctx.tracer_py is not None:
        target = 0.9 if 0.9 in ctx.alphas else ctx.alphas[0]
        jobs.append(Job(f"tracer:{TIMED_TASK}",
                        lambda: tracer_alphas(ctx, data, ctx.alphas, memo=False,
                                              artifact_target=target, env=env, reuse=False),
                        "tracer-timed"))
    if ctx.tracec_ok:
        jobs.append(Job(f"tracec:{TIMED_TASK}:{alpha_key(ctx.alphas[0])}",
                        lambda: tracec_alpha(ctx, data, ctx.alphas[0], env=env), "tracec-compile"))
    return jobs


def task_jobs(ctx: Context, datasets: dict[str, TaskData], tracer_tasks) -> list[Job]:
    """Everything else of the quality table (run on the two lanes)."""
    jobs = []
    for name, data in datasets.items():
        if name in tracer_tasks and name != TIMED_TASK and ctx.tracer_py is not None:
            jobs.append(Job(f"tracer:{name}", _bind(tracer_alphas, ctx, data, ctx.alphas, True),
                            "tracer-task", estimate_s=600))
        jobs.append(Job(f"baseline:{name}", _bind(confidence_baseline, data, ctx.alphas, ctx.seed),
                        "baseline"))
        if not ctx.tracec_ok:
            continue
        for alpha in ctx.alphas:
            if name == TIMED_TASK and alpha == ctx.alphas[0]:
                continue  # done in the timed phase
            jobs.append(Job(f"tracec:{name}:{alpha_key(alpha)}", _bind(tracec_alpha, ctx, data, alpha),
                            "tracec-compile"))
    return jobs


def _bind(fn, *args):
    return lambda: fn(*args)


def assemble(ctx: Context, datasets: dict[str, TaskData], outcomes: dict[str, Outcome]) -> dict:
    """The ``quality`` section of the results."""
    tasks = {}
    for name, data in datasets.items():
        task = TASKS[name]
        entry = {"title": task.title, "kind": task.kind, "n_train": int(len(data.X_train)),
                 "n_test": int(len(data.X_test)),
                 "n_teacher_labels": int(len(set(map(str, data.teacher_train)))),
                 "teacher_gold_accuracy_test": float((data.teacher_test == data.gold_test).mean()),
                 "tracec": _tracec(ctx, name, outcomes), "tracer": _tracer(name, outcomes),
                 "baseline": _value(outcomes.get(f"baseline:{name}"))}
        tasks[name] = entry
    return {"alphas": [float(a) for a in ctx.alphas], "delta": ctx.delta, "timed_task": TIMED_TASK,
            "tasks": tasks}


def _value(outcome: Outcome | None):
    if outcome is None:
        return {"status": "not run"}
    if outcome.status != "done":
        return {"status": outcome.status, "error": outcome.error}
    return outcome.value


def _tracec(ctx: Context, name: str, outcomes: dict[str, Outcome]) -> dict:
    per = {}
    for alpha in ctx.alphas:
        value = _value(outcomes.get(f"tracec:{name}:{alpha_key(alpha)}"))
        per[alpha_key(alpha)] = {k: v for k, v in value.items() if k != "frontier"}
    first = _value(outcomes.get(f"tracec:{name}:{alpha_key(ctx.alphas[0])}"))
    walls = [v["compile_wall_s"] for v in per.values() if "compile_wall_s" in v]
    return {"alphas": per, "compile_wall_s": first.get("compile_wall_s"),
            "compile_cpu_s": first.get("compile_cpu_s"),
            "compile_wall_s_all": walls, "headline": name == TIMED_TASK,
            "frontier": first.get("frontier")}


def _tracer(name: str, outcomes: dict[str, Outcome]) -> dict:
    value = _value(outcomes.get(f"tracer:{name}"))
    if "alphas" in value:
        value = dict(value, headline=name == TIMED_TASK and not value.get("memo"))
    return value
