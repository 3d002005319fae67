"""Cross-fitting against the split, by simulation on real embeddings (issue 13).

The question: can every trace inform both training and calibration?  Cross-fitting
scores each trace with a model fit on the other folds (out-of-fold), certifies a
threshold on all of those scores, and then deploys a model fit on every trace.  The
deployed model is not the one whose scores were tested, so the finite-sample guarantee
of docs/guarantee.md does not cover it; this measures what happens instead.

Population: every SICK row (train, val and test; gold as teacher).  Each replicate draws
``n`` traces from it; the other rows are the traffic the policy is judged on.  Both
procedures hold out the same 10 % (the shadow split's share), use one model (scaler +
logistic regression, C = 0.05: the pool's first candidate), the top-1 probability as the
score and the same fixed sequence (calibration.fixed_sequence, steps every 5 % of
coverage, walked from the most confident down):

* **split**: fit on 60 % of the traces, certify on 30 %: tracec's auto split at this size;
* **cross-fit**: 5 folds over the 90 %; certify on all out-of-fold scores; deploy the model
  fit on the whole 90 % with the certified threshold.

    PYTHONPATH=compiler:runtime:. OMP_NUM_THREADS=1 python -m benchmarks.crossfit_sim \\
        --data ../shared/data --reps 200 --n 2000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.data import EMB_SUFFIX, read_embeddings, read_rows
from tracec.calibration import fixed_sequence

SPLITS = ("train", "val", "test")
STEPS = np.round(np.arange(0.05, 1.0001, 0.05), 2)   # coverage levels, most confident first


def load_sick(root: Path) -> tuple[np.ndarray, np.ndarray]:
    X, y = [], []
    for split in SPLITS:
        _texts, teacher, _gold = read_rows(root / "sick" / f"{split}.jsonl", "label")
        X.append(read_embeddings(root / "sick" / f"{split}{EMB_SUFFIX}", len(teacher)))
        y += teacher
    return np.concatenate(X).astype(np.float32), np.asarray(y, dtype=object)


def fit(X: np.ndarray, y: np.ndarray):
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=500)).fit(X, y)


def score(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba = model.predict_proba(X)
    return proba.max(axis=1), model.classes_[proba.argmax(axis=1)]


def certify(scores: np.ndarray, agree: np.ndarray, alpha: float, delta: float):
    """The threshold the fixed sequence certifies on (scores, agree), or None."""
    taus = np.quantile(scores, 1.0 - STEPS, method="higher")
    handled = scores[None, :] >= taus[:, None]
    cert = fixed_sequence(handled.sum(1), (handled & agree[None, :]).sum(1), len(scores),
                          taus, alpha, delta)
    return None if cert.tau is None else float(cert.tau)


def judge(model, tau, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(coverage, TA) of the deployed policy on the traffic rows; (0, nan) if refused."""
    if tau is None:
        return 0.0, float("nan")
    s, pred = score(model, X)
    handled = s >= np.float32(tau)
    return float(handled.mean()), float((pred[handled] == y[handled]).mean()) if handled.any() else 1.0


def replicate(X, y, n, alphas, delta, rng) -> dict:
    order = rng.permutation(len(y))
    traces, traffic = order[:n], order[n:]
    usable = traces[: int(round(0.9 * n))]                # 10 % held back (the shadow share)
    n_train = int(round(0.6 * n))
    split_model = fit(X[usable[:n_train]], y[usable[:n_train]])
    cal = usable[n_train:]
    s_cal, p_cal = score(split_model, X[cal])
    folds = np.array_split(usable, 5)
    oof_s, oof_agree = [], []
    for k, fold in enumerate(folds):
        rest = np.concatenate([f for j, f in enumerate(folds) if j != k])
        s, p = score(fit(X[rest], y[rest]), X[fold])
        oof_s.append(s)
        oof_agree.append(p == y[fold])
    oof_s, oof_agree = np.concatenate(oof_s), np.concatenate(oof_agree)
    full_model = fit(X[usable], y[usable])
    out = {}
    for a in alphas:
        out[f"split@{a}"] = judge(split_model, certify(s_cal, p_cal == y[cal], a, delta),
                                  X[traffic], y[traffic])
        out[f"crossfit@{a}"] = judge(full_model, certify(oof_s, oof_agree, a, delta),
                                     X[traffic], y[traffic])
    return out


def summarise(runs: list[dict], alphas, delta) -> list[dict]:
    rows = []
    for a in alphas:
        for proc in ("split", "crossfit"):
            cov = np.array([r[f"{proc}@{a}"][0] for r in runs])
            ta = np.array([r[f"{proc}@{a}"][1] for r in runs])
            certified = cov > 0
            rows.append({"alpha": a, "procedure": proc, "reps": len(runs),
                         "certified_share": float(certified.mean()),
                         "mean_coverage": float(cov.mean()),
                         "violation_rate": float((certified & (ta < a)).mean()),
                         "delta": delta})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--alphas", default="0.75,0.8,0.85")
    ap.add_argument("--delta", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    alphas = [float(a) for a in args.alphas.split(",")]
    X, y = load_sick(args.data)
    rng = np.random.default_rng(args.seed)
    runs = []
    for r in range(args.reps):
        runs.append(replicate(X, y, args.n, alphas, args.delta, rng))
        if (r + 1) % 25 == 0:
            print(f"{r + 1}/{args.reps} replicates", file=sys.stderr, flush=True)
    doc = {"n": args.n, "population_rows": len(y), "seed": args.seed,
           "rows": summarise(runs, alphas, args.delta)}
    text = json.dumps(doc, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
