"""``tracec-runtime watch URL [URL ...]``: the live bound over a fleet's summed counters.

Each replica exports ``tracec_audit_outcomes_total{outcome="agree"|"disagree"}``
and ``tracec_bundle_info{digest, alpha, delta}``.  The confidence sequence
depends on the counts only, so the pooled bound is the bound of the summed
counts; replicas serving different bundles are refused (their audits are not
about the same policy).  Exit 0 while the pooled gate is open, 1 when the
evidence says live TA < alpha, 3 when a replica cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from typing import Optional

from tracec_runtime.serve.metrics import parse_text
from tracec_runtime.watch import pooled

__all__ = ["main", "scrape"]


def scrape(url: str, timeout: float = 5.0) -> dict:
    target = url.rstrip("/") + "/metrics"
    with urllib.request.urlopen(target, timeout=timeout) as resp:  # noqa: S310 (operator's URL)
        text = resp.read(16 * 1024 * 1024).decode("utf-8")
    out = {"url": url, "agree": 0, "disagree": 0, "digest": None, "alpha": None, "delta": None}
    for name, labels, value in parse_text(text):
        if name == "tracec_audit_outcomes_total" and labels.get("outcome") in ("agree", "disagree"):
            out[labels["outcome"]] += int(value)
        elif name == "tracec_bundle_info" and value == 1:
            out["digest"], out["alpha"], out["delta"] = labels.get("digest"), labels.get("alpha"), labels.get("delta")
    return out


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="tracec-runtime watch", description=__doc__.splitlines()[0])
    p.add_argument("urls", nargs="+", help="replica base URLs, e.g. http://127.0.0.1:8080")
    p.add_argument("--json", action="store_true", dest="as_json")
    args = p.parse_args(argv)
    try:
        replicas = [scrape(u) for u in args.urls]
    except (OSError, ValueError) as exc:
        return _out(args.as_json, {"ok": False, "error": f"cannot read a replica's metrics: {exc}"}, 3)
    digests = {r["digest"] for r in replicas}
    if len(digests) != 1 or None in digests:
        return _out(args.as_json, {"ok": False, "replicas": replicas,
                                   "error": "replicas serve different (or no) bundles: "
                                            "their audits cannot be pooled"}, 3)
    agree = sum(r["agree"] for r in replicas)
    disagree = sum(r["disagree"] for r in replicas)
    alpha, delta = float(replicas[0]["alpha"]), float(replicas[0]["delta"])
    iv, gate_open = pooled(agree, disagree, alpha, delta)
    doc = {"ok": True, "replicas": replicas, "agree": agree, "disagree": disagree, "alpha": alpha,
           "delta": delta, "ta_lower": iv.lower, "ta_upper": iv.upper, "gate_open": gate_open}
    return _out(args.as_json, doc, 0 if gate_open else 1)


def _out(as_json: bool, doc: dict, code: int) -> int:
    if as_json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    elif doc.get("ok"):
        print(f"{doc['agree'] + doc['disagree']} audits over {len(doc['replicas'])} replica(s): "
              f"live TA in [{doc['ta_lower']:.4f}, {doc['ta_upper']:.4f}] (anytime-valid, "
              f"delta {doc['delta']:g}); gate {'OPEN' if doc['gate_open'] else 'CLOSED'} at alpha "
              f"{doc['alpha']:g}")
    else:
        print(f"error: {doc['error']}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
