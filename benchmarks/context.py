"""Shared settings of one benchmark run, and the per-system "compile/fit then evaluate" steps
that every experiment reuses."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks import procs, tracec_adapter, tracer_adapter
from benchmarks.data import TaskData
from benchmarks.metrics import alpha_key, evaluate, oracle_limit, teacher_agreement
from benchmarks.workfiles import WorkFiles, write_task


@dataclass
class Context:
    data_root: Path
    work: Path  # temporary directory: traces, embeddings, bundles
    alphas: tuple[float, ...]
    delta: float
    seed: int
    tracer_cp_alpha: float  # TRACER's Clopper-Pearson level (its fit_frontier ``alpha``)
    tracer_py: Path | None  # None: TRACER side disabled
    tracer_cache: Path | None
    tracec_ok: bool
    deadline: float | None = None  # time.monotonic() at which optional jobs are stopped
    signing_key: Path | None = None
    public_key: Path | None = None
    log: Callable[[str], None] = print
    _locks: dict = field(default_factory=dict)
    _files: dict = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def files(self, data: TaskData) -> WorkFiles:
        """Write ``data`` once (thread-safe) and return its work files."""
        with self._guard:
            lock = self._locks.setdefault(data.name, threading.Lock())
        with lock:
            if data.name not in self._files:
                self._files[data.name] = write_task(data, self.work / "tasks")
            return self._files[data.name]


def tracec_alpha(ctx: Context, data: TaskData, alpha: float, alphas=None, seed: int | None = None,
                 tag: str = "", env: dict | None = None) -> dict:
    """Compile with ``alpha`` first (all of ``alphas`` certified), route test, evaluate.
    ``env`` defaults to one thread per math library (two jobs share the two cores)."""
    env = procs.one_thread_env() if env is None else env
    files = ctx.files(data)
    order = tracec_adapter.order_alphas(alphas or ctx.alphas, alpha)
    out = ctx.work / "bundles" / f"{data.name.replace('@', '_')}{tag}_a{alpha_key(alpha)}"
    run = tracec_adapter.compile_bundle(files, out, order, ctx.delta,
                                        ctx.seed if seed is None else seed, env=env,
                                        signing_key=ctx.signing_key)
    routed = tracec_adapter.route(run.bundle, np.load(files.X_test), ctx.public_key)
    ev = evaluate(routed.handled, routed.pred, data.teacher_test, data.gold_test).to_dict()
    full = teacher_agreement(np.ones(len(routed.pred), bool), routed.pred, data.teacher_test)
    ev.update(family=run.family, gate="open" if run.gate_open else "closed",
              compile_wall_s=run.wall_s, compile_cpu_s=run.cpu_s,
              full_coverage_agreement=full, oracle_limit=oracle_limit(full, alpha),
              alpha_order=[float(a) for a in order], bundle=str(run.bundle),
              frontier=(run.doc.get("frontier") or {}))
    return ev


def tracer_alphas(ctx: Context, data: TaskData, targets, memo: bool,
                  artifact_target: float | None = None, env: dict | None = None,
                  bounded: bool = False, reuse: bool = True) -> dict:
    """One TRACER fit_frontier over ``targets``; test coverage/TA/e2e per target.
    ``env`` defaults to one thread per math library (TRACER's own ``n_jobs=-1`` stays);
    ``bounded`` jobs are stopped at ``ctx.deadline``; ``reuse=False`` recomputes even when the
    result cache holds this fit (for timings)."""
    env = procs.one_thread_env() if env is None else env
    timeout = None
    if bounded and ctx.deadline is not None:
        timeout = max(1.0, ctx.deadline - time.monotonic())
    files = ctx.files(data)
    fit = tracer_adapter.fit(ctx.tracer_py, files, targets, ctx.tracer_cp_alpha, memo,
                             cache_dir=ctx.tracer_cache, artifact_target=artifact_target, env=env,
                             timeout_s=timeout, reuse=reuse)
    per = {}
    for t in targets:
        tt = fit.targets[round(float(t), 6)]
        ev = evaluate(tt.handled, tt.pred, data.teacher_test, data.gold_test).to_dict()
        ev.update(family=tt.method, stage_models=tt.stage_models, coverage_cal=tt.coverage_cal)
        per[alpha_key(t)] = ev
    return {"fit_seconds": fit.fit_seconds, "process_wall_s": fit.process_wall_s,
            "process_cpu_s": fit.process_cpu_s, "memo": fit.memo, "memo_stats": fit.memo_stats,
            "cached": fit.cached, "computed_at": fit.computed_at, "versions": fit.versions,
            "artifact": str(fit.artifact) if fit.artifact else None, "alphas": per}


def tracer_cached(ctx: Context, data: TaskData, targets, memo: bool) -> bool:
    """True when ``tracer_alphas`` would be answered from the result cache."""
    if ctx.tracer_py is None or ctx.tracer_cache is None:
        return False
    return tracer_adapter.is_cached(ctx.tracer_py, ctx.files(data), targets, ctx.tracer_cp_alpha,
                                    memo, ctx.tracer_cache)
