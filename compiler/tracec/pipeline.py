"""The compile driver: traces in, certified and signed bundle out.

    load -> previous (a decision log replayed through --previous) -> embed -> check rules
         -> split -> train pool (<= 50k rows) -> primary stage -> refit on train+validation
         -> OOD gate (train rows only) -> export + score -> certify every alpha x family
         -> export the chosen policy -> stage bundle -> measure through the runtime -> shadow gate
         -> artifacts -> manifest -> seal -> publish

Every stage lives in its own module; this file only sequences them.  The
bundle is built in a temporary sibling directory and renamed into place at
the very end, so a failed compile leaves nothing behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np
from threadpoolctl import threadpool_limits

from tracec import emit
from tracec.bundle import Destination, seal_bundle
from tracec.candidates import train_pool
from tracec.config import CompileConfig
from tracec.export import build_policy_graph, verified_fastpath
from tracec.frontier import AlphaResult, Context, certify_alpha, frontier_document
from tracec.gate_rules import gate_with_rules
from tracec.inputs import embed_inputs, read_traces
from tracec.measure import concat, measured, route_split
from tracec.ood import fit_ood
from tracec.previous import against_previous, load_previous
from tracec.policy import Refitter, make_primary, score_shipped
from tracec.pool_sample import capped
from tracec.rules import check_labels
from tracec.signals import terminate_as_exception
from tracec.splits import auto_fractions, split_rows
from tracec_runtime.router import Router

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CompileResult:
    out: str
    gate_open: bool
    manifest: dict
    frontier: dict
    explanation: str
    timings: dict[str, float]
    traces: dict = field(default_factory=dict)  # what was read: format, rows, skipped by reason


def compile_bundle(config: CompileConfig, progress: Optional[Progress] = None) -> CompileResult:
    """Compile with one BLAS thread: deterministic sums, and faster on a small shared machine.

    ``--out`` is locked and checked first and held until the end (``bundle.Destination``);
    SIGTERM raises ``signals.Terminated`` so the staging directory is removed.
    """
    with terminate_as_exception(), threadpool_limits(limits=1), \
            Destination(config.out, config.force, progress) as dest:
        return _compile(config, progress, dest)


def _compile(config: CompileConfig, progress: Optional[Progress], dest: Destination) -> CompileResult:
    say = progress or (lambda _msg: None)
    clock = _Clock(say)
    signing_key = emit.load_signing_key(config)
    previous = load_previous(config)

    traces = clock("load", lambda: read_traces(config, say))
    traces = clock("previous", lambda: against_previous(traces, previous, config.delta, say))
    data = clock("embed", lambda: embed_inputs(config, traces, say))
    config = replace(config, rules=check_labels(config.rules, data.labels))  # --rules: known labels
    if config.fractions is None:  # --split auto: from the trace count; the manifest records it
        config = replace(config, fractions=auto_fractions(data.n))
    splits = split_rows(data.n, config.seed, config.fractions, data.traces.certifiable, data.traces.inputs)
    X = {name: data.X[idx] for name, idx in splits.__dict__.items()}
    y = {name: data.y[idx] for name, idx in splits.__dict__.items()}
    say("split " + ", ".join(f"{k} {v:,}" for k, v in splits.counts().items()))

    fit_X, fit_y = capped(X["train"], y["train"], config.seed, 0, say)  # <= POOL_CAP rows
    pool = clock("train", lambda: train_pool(
        fit_X, fit_y, X["validation"], y["validation"], seed=config.seed,
        include_trees=config.include_trees, size_budget_bytes=config.size_budget_bytes,
        progress=say))
    primary = make_primary(pool[0], X["validation"], y["validation"], config.seed)
    refit_X, refit_y = capped(np.concatenate([X["train"], X["validation"]]),
                              np.concatenate([y["train"], y["validation"]]), config.seed, 1, say)
    ship = Refitter(refit_X, refit_y, X["validation"], len(data.labels), config.size_budget_bytes,
                    say)
    certify_splits = {k: X[k] for k in ("validation", "calibration")}  # all certification reads
    ood = None if config.ood_quantile is None else clock("ood", lambda: fit_ood(
        X["train"], y["train"], seed=config.seed, quantile=config.ood_quantile))
    scored = clock("score", lambda: score_shipped(primary, ship(primary), data.dim, certify_splits,
                                                  ood))

    ctx = Context(pool, primary, scored, X, y, config.families, config.delta, config.min_accept,
                  config.seed, data.dim, say, config.size_budget_bytes, ship,
                  config.rules and config.rules.rules, tuple(data.labels))
    frontier = clock("certify", lambda: [certify_alpha(ctx, a) for a in config.alphas])
    chosen: AlphaResult = frontier[0]
    frontier_doc = frontier_document(frontier)

    with dest.staging() as tmp:
        candidate = _policy_graph(chosen, data.dim, config.size_budget_bytes, ood)
        emit.stage_provisional(tmp, candidate.graph, chosen, data, config, splits, ood)
        router = Router.load(tmp, allow_unsigned=True, engine="onnxruntime")
        routed = {s: route_split(router, X[s], y[s]) for s in ("calibration", "shadow")}
        del router
        gate = gate_with_rules(routed["shadow"], chosen.alpha, config.delta, config.min_coverage,
                               ctx.rules, data.labels)
        gate_open = chosen.winner is not None and gate.passed
        say(f"gate {'OPEN' if gate_open else 'CLOSED'}: shadow coverage "
            f"{routed['shadow'].handled.mean():.3f}, TA {_ta(routed['shadow']):.3f}")
        final = candidate if gate_open else _closed_graph(chosen, data.dim, config.size_budget_bytes,
                                                          ood)
        fast_files, fast_report = clock("fastpath", lambda: verified_fastpath(
            final.specs, mode=final.mode, tau=final.tau, graph_bytes=final.graph, X=data.X,
            ood=ood))
        manifest, artifacts = emit.write_bundle(
            tmp, graph=final.graph, fastpath=(fast_files, fast_report), config=config, data=data,
            splits=splits, chosen=chosen, ctx=ctx,
            calibration=measured(routed["calibration"], config.delta),
            shadow=(gate, measured(routed["shadow"], config.delta)),
            heldout=concat([routed["calibration"], routed["shadow"]]),
            heldout_rows=np.concatenate([splits.calibration, splits.shadow]),
            gate_open=gate_open, frontier=frontier_doc, previous=previous and previous.manifest,
            ood=ood)
        seal_bundle(tmp, signing_key)
        dest.publish(tmp)

    explanation = emit.explain(manifest, artifacts)
    return CompileResult(str(config.out), gate_open, manifest, frontier_doc, explanation,
                         clock.timings, data.traces.summary())


@dataclass(frozen=True)
class PolicyGraph:
    graph: bytes
    specs: tuple
    mode: str
    tau: float


def _build(stages, dim: int, tau: float, mode: str, budget: int, ood) -> PolicyGraph:
    specs = tuple(s.spec for s in stages)
    return PolicyGraph(build_policy_graph(specs, n_features=dim, tau=tau, mode=mode, max_bytes=budget,
                                          ood=ood), specs, mode, tau)


def _policy_graph(chosen: AlphaResult, dim: int, budget: int, ood=None) -> PolicyGraph:
    """The candidate policy's graph (a closed graph when nothing was certified)."""
    w = chosen.winner
    if w is None:
        return _closed_graph(chosen, dim, budget, ood)
    tau = float(w.certification.tau)
    if not np.isfinite(tau):  # the loosest step: accept everything in distribution, stage 1
        return _build(w.stages[:1], dim, 0.0, "global", budget, ood)
    return _build(w.stages, dim, tau, "cascade" if w.family == "cascade" else "l2d", budget, ood)


def _closed_graph(chosen: AlphaResult, dim: int, budget: int, ood=None) -> PolicyGraph:
    """Everything deferred; the stages are kept so operators can inspect what was refused."""
    stages = chosen.winner.stages if chosen.winner else chosen.results[0].stages
    tau = float(chosen.winner.certification.tau) if chosen.winner else 1.0
    return _build(stages, dim, tau if np.isfinite(tau) else 0.0, "closed", budget, ood)


def _ta(r) -> float:
    n = int(r.handled.sum())
    return float(np.mean(r.label[r.handled] == r.teacher[r.handled])) if n else 0.0


class _Clock:
    def __init__(self, say: Progress):
        self.say, self.timings = say, {}

    def __call__(self, name: str, fn):
        start = time.perf_counter()
        self.say(f"[{name}] ...")
        result = fn()
        self.timings[name] = round(time.perf_counter() - start, 3)
        self.say(f"[{name}] done in {self.timings[name]:.1f} s")
        return result
