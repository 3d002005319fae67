"""PNG figures of the results (matplotlib, Agg backend).  Each function returns the file it
wrote, or None when its section has nothing to draw."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"tracec": "#1f77b4", "tracer": "#d62728", "baseline": "#7f7f7f", "oracle": "#2ca02c"}


def _f(x) -> float:
    return math.nan if x is None else float(x)


def coverage_plot(quality: dict, path: Path) -> Path | None:
    tasks = quality.get("tasks", {})
    if not tasks:
        return None
    alphas = [float(a) for a in quality["alphas"]]
    keys = [format(a, "g") for a in alphas]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.2), sharey=True, squeeze=False)
    for ax, (name, task) in zip(axes[0], tasks.items()):
        tracer = task["tracer"].get("alphas", {}) if isinstance(task["tracer"], dict) else {}
        base = task["baseline"].get("alphas", {}) if isinstance(task["baseline"], dict) else {}
        series = {
            "tracec": [_f(task["tracec"]["alphas"].get(k, {}).get("coverage")) for k in keys],
            "tracer": [_f(tracer.get(k, {}).get("coverage")) for k in keys],
            "baseline": [_f(base.get(k, {}).get("coverage")) for k in keys],
            "oracle": [_f(task["tracec"]["alphas"].get(k, {}).get("oracle_limit")) for k in keys],
        }
        labels = {"tracec": "tracec", "tracer": "TRACER", "baseline": "LR hindsight",
                  "oracle": "oracle limit"}
        for s, ys in series.items():
            ax.plot(alphas, ys, marker="o", color=COLORS[s], label=labels[s],
                    linestyle="--" if s in ("baseline", "oracle") else "-")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("alpha (target TA)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test coverage")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def validity_plot(validity: dict | None, path: Path) -> Path | None:
    if not validity or not any(s["runs"] for s in validity["tracec"].values()):
        return None
    keys = list(validity["tracec"])
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for i, system in enumerate(("tracec", "tracer")):
            tas = [_f(r["teacher_agreement"]) for r in validity[system].get(key, {}).get("per_run", [])]
            tas = [t for t in tas if not math.isnan(t)]
            ax.scatter(tas, [i + 0.1 * ((j % 7) - 3) / 3 for j in range(len(tas))], s=12,
                       color=COLORS[system], alpha=0.7, label=f"{'TRACER' if i else 'tracec'} ({len(tas)})")
        ax.axvline(float(key), color="black", linestyle=":", label=f"alpha {key}")
        ax.set_yticks([0, 1], ["tracec", "TRACER"])
        ax.set_ylim(-0.6, 1.6)
        ax.set_xlabel("test TA on handled rows, per re-split")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def flywheel_plot(flywheel: dict | None, path: Path) -> Path | None:
    if not flywheel:
        return None
    days = [r["day"] for r in flywheel["rows"]]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for system, label in (("tracec", "tracec"), ("tracer", "TRACER")):
        ax.plot(days, [_f(r[system].get("coverage")) for r in flywheel["rows"]], marker="o",
                color=COLORS[system], label=f"{label} coverage")
        ax.plot(days, [_f(r[system].get("teacher_agreement")) for r in flywheel["rows"]], marker="x",
                linestyle="--", color=COLORS[system], label=f"{label} TA")
    ax.axhline(flywheel["alpha"], color="black", linestyle=":", linewidth=1)
    ax.set_xlabel("day")
    ax.set_xticks(days)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def latency_plot(runtime: dict | None, path: Path) -> Path | None:
    rows = {k: r for k, r in (runtime or {}).items() if isinstance(r, dict) and "p50" in r}
    if not rows:
        return None
    names = {"tracec": "tracec", "tracer": "TRACER\n(OOD gate)", "tracer_no_ood": "TRACER\n(no OOD)"}
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    xs = [names.get(k, k) for k in rows]
    colors = [COLORS["tracec"] if k == "tracec" else COLORS["tracer"] for k in rows]
    bars = a.bar(xs, [r["p50"] for r in rows.values()], color=colors)
    a.bar_label(bars, fmt="%.0f", fontsize=8)
    a.set_yscale("log")
    a.set_ylabel("single decision p50 (us, log)")
    bars = b.bar(xs, [r["batch_decisions_per_s"] for r in rows.values()], color=colors)
    b.bar_label(bars, labels=[f"{r['batch_decisions_per_s']:,.0f}" for r in rows.values()], fontsize=8)
    b.set_yscale("log")
    b.set_ylabel("batch decisions/s, 1 thread (log)")
    for ax in (a, b):
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def all_plots(results: dict, img_dir: Path) -> list[Path]:
    made = [coverage_plot(results.get("quality") or {}, img_dir / "bench_coverage.png"),
            validity_plot(results.get("validity"), img_dir / "bench_validity.png"),
            flywheel_plot(results.get("flywheel"), img_dir / "bench_flywheel.png"),
            latency_plot(results.get("runtime"), img_dir / "bench_runtime.png")]
    return [p for p in made if p is not None]
