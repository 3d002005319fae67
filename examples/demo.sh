#!/usr/bin/env bash
# The demo behind `make demo`: compile the project's own example traces into a signed
# bundle, verify it, route held-out rows through the runtime, and print coverage, TA and
# a cost projection.  Offline, and text in: the bundle carries its int8 all-MiniLM-L6-v2
# embedder, so the held-out text is routed by the runtime with no embeddings file anywhere.
set -euo pipefail
OUT="${1:-out}"
HERE="$(cd "$(dirname "$0")" && pwd)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRACEC_CACHE_DIR="${TRACEC_CACHE_DIR:-$OUT/cache}"
mkdir -p "$OUT"

[ -f "$OUT/demo.key" ] || tracec keygen --out "$OUT/demo" >/dev/null
echo "== compile (alpha 0.90, frontier over 0.80..0.95)" >&2
tracec compile "$HERE/traces.jsonl" --out "$OUT/bundle" --alpha 0.9,0.8,0.85,0.95 \
  --signing-key "$OUT/demo.key" --teacher-cost-per-1k 2.50 --daily-volume 50000 --force
echo "== verify" >&2
tracec verify "$OUT/bundle" --public-key "$OUT/demo.pub"
echo "== route held-out text through the runtime (it embeds with the bundle's own embedder)" >&2
tracec route "$OUT/bundle" --traces "$HERE/holdout.jsonl" \
  --public-key "$OUT/demo.pub" --json > "$OUT/holdout-routing.json"
tracec report "$OUT/bundle" --public-key "$OUT/demo.pub" --out "$OUT/report.html" >/dev/null
python - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
s = json.load(open(f"{out}/holdout-routing.json"))["summary"]
m = json.load(open(f"{out}/bundle/manifest.json"))
cost = json.load(open(f"{out}/bundle/artifacts/cost.json"))
cal = m["calibration"]
print(f"certified at alpha {m['policy']['alpha']} (delta {m['policy']['delta']}): family {m['policy']['family']}, "
      f"calibration coverage {cal['coverage']}, TA {cal['ta']}, lower bound {cal['ta_lower']} "
      f"(margin {float(cal['ta_lower']) - float(m['policy']['alpha']):+.3f})")
print(f"held-out rows: {s['rows']}  coverage: {s['coverage']}  TA on handled: {s['ta_handled']}"
      f"  (manifest shadow coverage {m['shadow']['coverage']}, TA {m['shadow']['ta']}, alpha {m['policy']['alpha']})")
if "accuracy_end_to_end" in s:
    print(f"end-to-end accuracy vs gold: {s['accuracy_end_to_end']} (teacher alone {s['accuracy_teacher_only']})")
w, wo = cost.get("with_bundle") or {}, cost.get("without_bundle") or {}
print(f"cost projection at {cost.get('daily_volume')} requests/day, {cost.get('teacher_cost_per_1k')} per 1k LLM calls: "
      f"LLM calls/day {wo.get('llm_calls_per_day')} -> {w.get('llm_calls_per_day')}, "
      f"cost/day {wo.get('cost_per_day')} -> {w.get('cost_per_day')}, savings/year {w.get('savings_per_year')}")
if s.get("ta_interval"):
    print(f"held-out TA interval {s['ta_interval'][0]}..{s['ta_interval'][1]} vs alpha {s['alpha']}"
          f"{' (BELOW alpha)' if s['ta_below_alpha'] else ''}")
print(f"report: {out}/report.html")
PY
