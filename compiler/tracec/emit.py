"""Emit the bundle's files: graph, frontier, artifacts and the manifest."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Optional

import numpy as np

from tracec import __version__
from tracec.artifacts import CostInputs, EvalRows, build_artifacts
from tracec.bundle import file_digests, seal_bundle, write_file, write_json
from tracec.config import CompileConfig
from tracec.frontier import AlphaResult, Context, highest_passing_alpha
from tracec.projection import refusal_line
from tracec.manifest import (Certificate, FastPathRecord, OODRecord, FileDigest, Inputs, Manifest, Measured, Policy, Refusal,
                             RulesRecord, Sampling, ShadowVerdict, SplitCounts, StageInfo, dec)
from tracec.measure import Routed, blocking_labels, per_label
from tracec import pool_sample
from tracec.splits import SPLIT_METHOD
from tracec.ood import manifest_record
from tracec.report_view import rules_lines
from tracec_runtime.keys import load_private_key

_ZERO = Measured(n_total=0, n_handled=0, n_agree=0, coverage="0", ta="0", ta_lower="0", ta_upper="0")
_TOOLS = ("numpy", "scikit-learn", "scipy", "skl2onnx", "onnx", "onnxruntime", "pynacl", "pydantic",
          "tracec-runtime", "tokenizers")


def load_signing_key(config: CompileConfig):
    return None if config.signing_key is None else load_private_key(config.signing_key)


def write_embedder(root: Path, data) -> None:
    """A text-in bundle's embedder graph and tokenizer (listed and signed like every file)."""
    for name, blob in sorted(data.embedder_files.items()):
        write_file(root, name, blob)


def tau_of(chosen: AlphaResult) -> str:
    if chosen.winner is None:
        return "inf"
    return format(float(np.float32(chosen.winner.certification.tau)), ".9g")


def stage_provisional(root: Path, graph: bytes, chosen: AlphaResult, data, config, splits,
                      ood=None) -> None:
    """A sealed, unsigned bundle with the candidate graph, for measuring through the runtime."""
    write_file(root, "model.onnx", graph)
    write_embedder(root, data)
    manifest = _manifest(root, chosen, data, config, splits, ctx=None, gate_open=True,
                         calibration=_ZERO, shadow=ShadowVerdict(**_ZERO.model_dump(), passed=False,
                                                                 reasons=[]),
                         per_label=[], refusal=None, ood=ood)
    write_file(root, "manifest.json", manifest.to_bytes())
    seal_bundle(root, None)


def write_bundle(root: Path, *, graph: bytes, fastpath: tuple, config: CompileConfig, data, splits,
                 chosen: AlphaResult, ctx: Context, calibration: Measured, shadow, heldout: Routed,
                 heldout_rows: np.ndarray, gate_open: bool, frontier: dict,
                 previous: Optional[dict], ood=None) -> tuple[dict, dict]:
    gate, shadow_measured = shadow
    verdict = ShadowVerdict(**shadow_measured.model_dump(), passed=gate.passed,
                            reasons=list(gate.reasons))
    refusal = None if gate_open else _refusal(chosen, ctx, gate, heldout, data.labels)
    write_file(root, "model.onnx", graph)
    write_embedder(root, data)
    fast_files, fast_report = fastpath
    for name, blob in sorted((fast_files or {}).items()):
        write_file(root, name, blob)
    write_json(root, "frontier.json", frontier)
    manifest = _manifest(root, chosen, data, config, splits, ctx, gate_open, calibration, verdict,
                         per_label(heldout, data.labels), refusal, ood)
    if fast_report is not None:
        manifest = manifest.model_copy(update={
            "fastpath": FastPathRecord(**fast_report.manifest_record())})
    rows = EvalRows(texts=[data.traces.inputs[i] for i in heldout_rows], teacher=heldout.teacher,
                    pred=heldout.label, handled=heldout.handled, score=heldout.score,
                    embeddings=data.X[heldout_rows], labels=data.labels)
    docs = build_artifacts(rows, manifest=manifest.model_dump(mode="json", exclude={"files"}),
                           no_examples=config.no_examples, previous_manifest=previous,
                           cost=CostInputs(config.teacher_cost_per_1k, config.daily_volume))
    for name, doc in sorted(docs.items()):
        write_json(root, name, doc)
    manifest = manifest.model_copy(update={"files": {
        k: FileDigest(**v) for k, v in file_digests(root).items()}})
    write_file(root, "manifest.json", manifest.to_bytes())
    return manifest.model_dump(mode="json"), docs


def _manifest(root, chosen, data, config, splits, ctx, gate_open, calibration, shadow, per_label,
              refusal, ood=None) -> Manifest:
    w = chosen.winner
    stages = w.stages if w else (chosen.results[0].stages if chosen.results else ())
    cert = w.certification if w else None
    return Manifest(
        policy=Policy(gate="open" if gate_open else "closed", family=w.family if w else "none",
                      alpha=dec(chosen.alpha), delta=dec(config.delta), tau=tau_of(chosen),
                      model_name="+".join(s.candidate.name for s in stages) or "none",
                      stages=[_stage_info(s) for s in stages],
                      ood=None if ood is None else OODRecord(**manifest_record(ood))),
        labels=list(data.labels), embedder=data.embedder,
        counts=SplitCounts(total=data.n, method=SPLIT_METHOD, **splits.counts()),
        certificate=Certificate(
            procedure="ltt-fixed-sequence-clopper-pearson",
            delta_per_family=dec(chosen.delta_per_family), families_tested=len(chosen.results),
            steps_tested=sum(len(r.certification.steps) for r in chosen.results),
            p_value=dec(cert.chosen.p_value) if cert and cert.chosen else None),
        calibration=calibration, shadow=shadow, per_label=per_label, refusal=refusal,
        inputs=Inputs(traces_sha256=data.traces.rows_sha256, traces_rows=data.n,
                      embeddings_sha256=data.embeddings_sha256),
        seed=config.seed, config=config.recipe(), config_fingerprint=config.fingerprint(),
        tool_versions=_tool_versions(), sampling=_sampling(data.traces.sampling),
        rules=None if config.rules is None else RulesRecord.of(config.rules.rules),
        pool_sample=pool_sample.record(splits.counts()),
        files={k: FileDigest(**v) for k, v in file_digests(root).items()})


def _sampling(record) -> Optional[Sampling]:
    return None if record is None else Sampling(**{**record, "sample_rate": dec(record["sample_rate"])})


def _stage_info(stage) -> StageInfo:
    c = stage.candidate
    return StageInfo(model_name=c.name, kind=c.kind, val_macro_f1=dec(c.val_macro_f1),
                     val_agreement=dec(c.val_agreement),
                     n_classes=int(len(c.estimator.classes_)),
                     acceptor_coef=[dec(v, 9) for v in stage.acceptor.coef],
                     acceptor_intercept=dec(stage.acceptor.intercept, 9))


def _refusal(chosen: AlphaResult, ctx: Context, gate, heldout: Routed, labels) -> Refusal:
    reasons = []
    if chosen.winner is None:
        for r in chosen.results:
            first = r.certification.steps[0] if r.certification.steps else None
            detail = (f": at the first step tested ({first.n_handled} calibration rows) TA was "
                      f"{first.ta:.3f} (p = {first.p_value:.3g} > {_level(r, chosen)})"
                      if first else ": nothing to test (no second stage: stage 1 alone meets "
                      "alpha on nearly all validation rows; add l2d or global to --families)")
            stop = getattr(r.certification, "stopped_by", None)
            if stop and stop != "alpha":  # a routing rule (tracec.rules) ended the walk
                detail = (f": the rule {stop} failed at the first step tested (each hypothesis "
                          f"at delta/(1+m) = {r.certification.delta_each:.3g})")
            reasons.append(f"{r.family}: no threshold certified TA >= {chosen.alpha:g}{detail}")
    reasons.extend(gate.reasons)
    reasons.append(refusal_line(ctx.X, ctx.y, ctx.seed, chosen.alpha, ctx.delta,
                                chosen.winner.coverage if chosen.winner else 0.0))
    best = highest_passing_alpha(ctx, chosen.delta_per_family)
    return Refusal(reasons=reasons, best_ta_full_coverage=dec(chosen.full_coverage_ta),
                   highest_passing_alpha=None if best is None else dec(best),
                   blocking_labels=blocking_labels(heldout, labels))


def _level(r, chosen: AlphaResult) -> str:
    """The level the first step was tested at: delta, or delta/(1+m) when routing rules'
    floors split it (tracec.rules)."""
    each = getattr(r.certification, "delta_each", None)
    if each and each < chosen.delta_per_family:
        return f"delta/(1+m) {each:.3g}"
    return f"delta {chosen.delta_per_family:g}"


def _tool_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "tracec": __version__}
    for dist in _TOOLS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def explain(manifest: dict, artifacts: Optional[dict] = None) -> str:
    p, sh, cal = manifest["policy"], manifest["shadow"], manifest["calibration"]
    head = (f"alpha={p['alpha']} delta={p['delta']}: family {p['family']} ({p['model_name']}), "
            f"tau={p['tau']}; calibration coverage {cal['coverage']} TA {cal['ta']} "
            f"(lower {cal['ta_lower']}); shadow coverage {sh['coverage']} TA {sh['ta']} "
            f"(lower {sh['ta_lower']}, upper {sh['ta_upper']}).")
    ood = p.get("ood")
    if ood:
        head += (f" OOD gate: {ood['n_prototypes']} prototypes, cosine >= {ood['threshold']} "
                 f"(fit on train, quantile {ood['quantile']}).")
    rules = rules_lines(manifest.get("rules"))
    if rules:
        head += " Rules: " + "; ".join(rules) + "."
    if p["gate"] == "open":
        return f"Gate OPEN. {head}"
    ref = manifest["refusal"] or {}
    lines = [f"Gate CLOSED: the bundle defers every request to the LLM. {head}"]
    lines += [f"  - {r}" for r in ref.get("reasons", [])]
    lines.append(f"  best TA at full coverage: {ref.get('best_ta_full_coverage')}; highest alpha "
                 f"that would pass at this delta: {ref.get('highest_passing_alpha') or 'none'}")
    summary = ((artifacts or {}).get("artifacts/refusal.json") or {}).get("summary")
    if summary:
        lines.append(f"  {summary}")
    elif ref.get("blocking_labels"):
        lines.append("  labels holding coverage back: " + ", ".join(ref["blocking_labels"]))
    return "\n".join(lines)
