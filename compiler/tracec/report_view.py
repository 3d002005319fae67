"""The report's view model: verified bundle JSON in, plain values for the template out.

Everything the template shows is normalised here, so a bundle with missing
or malformed optional documents still renders (with a visible warning), and
the template never has to guess at a field.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Optional

from pydantic import ValidationError

from tracec.artifacts.models import ARTIFACT_MODELS
from tracec.report_charts import frontier_chart, label_bars, num

UNSEEN = "(not a training label)"


# ---------------------------------------------------------------- filters


def pct(x: Any, digits: int = 1) -> str:
    v = num(x)
    return "—" if v is None else f"{v * 100:.{digits}f}%"


def count(x: Any) -> str:
    return f"{x:,}" if isinstance(x, int) and not isinstance(x, bool) else "—"


def money(x: Any) -> str:
    v = num(x)
    return "—" if v is None else f"{v:,.2f}"


def decimal(x: Any, digits: int = 3) -> str:
    v = num(x)
    return "—" if v is None else f"{v:.{digits}g}"


def fixed(x: Any, digits: int = 1) -> str:
    v = num(x)
    return "—" if v is None else f"{v:,.{digits}f}"


def points(x: Any) -> str:
    """A difference of two rates, in percentage points."""
    v = num(x)
    return "—" if v is None else f"{v * 100:.1f} pts"


def label(x: Any) -> str:
    return UNSEEN if x is None else str(x)


FILTERS = {"pct": pct, "count": count, "money": money, "decimal": decimal, "fixed": fixed,
           "points": points, "label": label}


# ---------------------------------------------------------------- control characters

#: C0/C1 controls (except tab and newline), DEL, and the Unicode line/paragraph separators.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def visible(text: str) -> str:
    """``text`` with each control character written as an escape (``a\\x00b``): autoescaping
    handles markup, not NUL bytes or terminal escapes, which must not reach the page raw."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                        else f"\\u{ord(m.group()):04x}", text)


def _visible_all(x: Any) -> Any:
    if isinstance(x, str):
        return visible(x)
    if isinstance(x, dict):
        return {_visible_all(k): _visible_all(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_visible_all(v) for v in x)
    return x


# ---------------------------------------------------------------- documents


def parse_documents(files: dict[str, bytes]) -> tuple[Optional[dict], dict[str, dict], list[str]]:
    """(frontier, {artifact short name: validated doc}, warnings) from the verified file bytes."""
    warnings = []
    frontier = None
    if "frontier.json" in files:
        frontier = _load(files["frontier.json"], "frontier.json", warnings)
        if frontier is not None and not isinstance(frontier.get("alphas"), list):
            warnings.append("frontier.json has no 'alphas' list: the coverage curve is not shown.")
    else:
        warnings.append("frontier.json is not in the bundle: the coverage curve is not shown.")
    artifacts = {}
    for name, (model, _schema) in ARTIFACT_MODELS.items():
        short = name.removeprefix("artifacts/").removesuffix(".json")
        if name not in files:
            warnings.append(f"{name} is not in the bundle: its section is empty.")
            continue
        doc = _load(files[name], name, warnings)
        if doc is None:
            continue
        try:
            artifacts[short] = model.model_validate(doc).model_dump(mode="json")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "(top level)"
            warnings.append(f"{name} does not match its schema at '{where}' "
                            f"({first.get('msg')}; {exc.error_count()} problem(s)): not shown.")
    return frontier, artifacts, warnings


def _load(data: bytes, name: str, warnings: list[str]) -> Optional[dict]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        warnings.append(f"{name} is not valid UTF-8 JSON ({exc}): not shown.")
        return None
    if not isinstance(doc, dict):
        warnings.append(f"{name} must hold a JSON object; found {type(doc).__name__}: not shown.")
        return None
    return doc


# ---------------------------------------------------------------- view


def _d(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _pick(x: Any, keys: tuple[str, ...]) -> dict:
    d = _d(x)
    return {k: d.get(k) for k in keys}


def _measured(name: str, m: Any) -> dict:
    keys = ("n_total", "n_handled", "coverage", "ta", "ta_lower", "ta_upper")
    out = {"split": name, **_pick(m, keys)}
    if out["n_handled"] == 0:  # TA of nothing is undefined: show a dash, not 0%
        out.update(ta=None, ta_lower=None, ta_upper=None)
    return out


def _previous_live(p: Any) -> list[dict]:
    """``compile --previous`` on a decision log: the previous bundle's live row (uniform sample;
    TA on its audited handled rows), beside this bundle's calibration and shadow."""
    p = _d(p)
    if not p:
        return []
    return [{**_measured("Previous bundle, live on the log (uniform sample)",
                         {"n_total": p.get("uniform"), "n_handled": p.get("handled"),
                          **_pick(p, ("coverage", "ta", "ta_lower", "ta_upper"))}),
             "id": "measured-previous"}]


def _delta_rows(deltas: Optional[dict]) -> list[dict]:
    """Per-label deltas plus a noise flag: |change| within two binomial standard errors."""
    out = []
    for r in (deltas or {}).get("per_label") or []:
        a, b = num(r.get("handled_rate_now")), num(r.get("handled_rate_previous"))
        na, nb = r.get("n_now"), r.get("n_previous")
        se = None
        if a is not None and b is not None and isinstance(na, int) and isinstance(nb, int) \
                and na > 0 and nb > 0:
            se = math.sqrt(a * (1 - a) / na + b * (1 - b) / nb)
        change = num(r.get("change"))
        noise = change is not None and se is not None and abs(change) <= 2 * se
        out.append({**r, "noise": noise, "two_se": None if se is None else 2 * se})
    return out


def _frontier_rows(frontier: Optional[dict]) -> list[dict]:
    rows = []
    for entry in (frontier or {}).get("alphas") or []:
        if not isinstance(entry, dict):
            continue
        for fam in entry.get("families") or []:
            if isinstance(fam, dict):
                rows.append({"alpha": entry.get("alpha"), "oracle_limit": entry.get("oracle_limit"),
                             "family": str(fam.get("family", "?")), "passed": fam.get("passed") is True,
                             "chosen": fam.get("family") == entry.get("chosen"),
                             "coverage": fam.get("coverage"), "ta": fam.get("ta"),
                             "ta_lower": fam.get("ta_lower"), "tau": fam.get("tau")})
    rows.sort(key=lambda r: (num(r["alpha"]) or 0.0, r["family"]))
    return rows


def _headline(gate_open: bool, policy: dict, shadow: dict, best: Any = None) -> str:
    if gate_open:
        return (f"This bundle answers {pct(shadow.get('coverage'))} of traffic locally. On the "
                f"untouched shadow split, the teacher agreed with {pct(shadow.get('ta'))} of those "
                f"answers (lower bound {pct(shadow.get('ta_lower'))}); the target was "
                f"{pct(policy.get('alpha'))} with confidence {pct(1 - (num(policy.get('delta')) or 0))}.")
    text = ("This bundle defers every input to the LLM: no routing policy both certified teacher "
            f"agreement of at least {pct(policy.get('alpha'))} (confidence "
            f"{pct(1 - (num(policy.get('delta')) or 0))}) and passed the shadow parity gate.")
    if best is not None:
        text += (f" Answering everything locally, the surrogate would agree with the teacher on "
                 f"only {pct(best)} of calibration rows.")
    return text


def build_view(manifest: dict, frontier: Optional[dict], artifacts: dict[str, dict], *,
               bundle_name: str, signature: str, signed: bool, warnings: list[str],
               verified_files: Optional[int] = None) -> dict:
    """The template's values; every string has its control characters escaped (``visible``)."""
    return _visible_all(_view(manifest, frontier, artifacts, bundle_name=bundle_name,
                              signature=signature, signed=signed, warnings=warnings,
                              verified_files=verified_files))


def _view(manifest: dict, frontier: Optional[dict], artifacts: dict[str, dict], *,
          bundle_name: str, signature: str, signed: bool, warnings: list[str],
          verified_files: Optional[int]) -> dict:
    policy, shadow = _d(manifest.get("policy")), _d(manifest.get("shadow"))
    gate_open = policy.get("gate") == "open"
    refusal = _d(manifest.get("refusal"))
    reasons = refusal.get("reasons") or shadow.get("reasons") or []
    per_label = manifest.get("per_label")
    if not per_label and "slices" in artifacts:
        per_label = [{"label": s["label"], "n": s["n"], "handled_rate": s["handled_rate"],
                      "ta": s["ta_handled"]} for s in artifacts["slices"]["by_label"] if s["n"]]
    alpha = num(policy.get("alpha"))
    files = _d(manifest.get("files"))
    return {
        "bundle_name": bundle_name, "signature": signature, "signed": signed,
        "verified_files": verified_files,
        "warnings": warnings, "gate_open": gate_open,
        "headline": _headline(gate_open, policy, shadow, refusal.get("best_ta_full_coverage")),
        "reasons": [str(r) for r in reasons] if isinstance(reasons, list) else [],
        "policy": {k: policy.get(k) for k in ("gate", "family", "alpha", "delta", "tau", "model_name")},
        "measured": [_measured("Calibration (certified)", manifest.get("calibration")),
                     _measured("Shadow (parity gate)", shadow),
                     *_previous_live(_d(manifest.get("sampling")).get("previous"))],
        "certificate": _pick(manifest.get("certificate"),
                             ("procedure", "delta_per_family", "families_tested", "steps_tested")),
        "labels_count": len(manifest.get("labels") or []),
        "embedder": _pick(manifest.get("embedder"), ("id", "dimension", "normalization")),
        "counts": _d(manifest.get("counts")),
        "sampling": _d(manifest.get("sampling")),
        "frontier_chart": frontier_chart(frontier, alpha if gate_open else None),
        "frontier_rows": _frontier_rows(frontier),
        "label_chart": label_bars(per_label, alpha),
        "a": artifacts, "delta_rows": _delta_rows(artifacts.get("deltas")),
        "files": sorted((str(k), _pick(v, ("sha256", "size"))) for k, v in files.items()),
        "tool_versions": sorted((str(k), str(v)) for k, v in _d(manifest.get("tool_versions")).items()),
        "config": sorted((str(k), str(v)) for k, v in _d(manifest.get("config")).items()),
        "seed": manifest.get("seed"), "fingerprint": manifest.get("config_fingerprint"),
        "inputs": _pick(manifest.get("inputs"), ("traces_sha256",)),
        "rules": rules_lines(manifest.get("rules")),
    }


def rules_lines(rules: Any) -> list[str]:
    """``manifest.rules`` (compile --rules) as short lines; empty without rules."""
    r = _d(rules)
    out = []
    if r.get("never_handle"):
        out.append("never handled (always deferred, rule:never_handle): "
                   + ", ".join(str(x) for x in r["never_handle"]))
    for label, a in sorted(_d(r.get("min_alpha")).items()):
        out.append(f"TA of handled rows predicted {label} >= {a} (class-conditional)")
    if r.get("max_handled_share") is not None:
        out.append(f"handled share capped at {r['max_handled_share']} (on calibration)")
    return out
