"""Deterministic train / validation / calibration / shadow split.

Rows are assigned by one seeded permutation, not stratified and not
re-balanced: calibration and shadow keep the production label mix, and every
split is an exchangeable sample of the traces, which is what the calibration
guarantee (docs/guarantee.md) assumes.  When only some rows are a known-rate sample
of traffic (a decision log: ``Traces.certifiable``), calibration and shadow are drawn
from those rows only and every other row goes to train / validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracec.errors import InputError, ParameterError

SPLIT_NAMES = ("train", "validation", "calibration", "shadow")
DEFAULT_FRACTIONS = (0.55, 0.15, 0.15, 0.15)   # the fixed split before "auto" (--split)
AUTO_CALIBRATION_ROWS = 3000                    # calibration rows "auto" aims for


def auto_fractions(n_rows: int) -> tuple[float, ...]:
    """The default split, from the number of traces only (never their labels).

    Calibration takes the share that gives it about 3,000 rows, between 15 % and 30 %;
    validation 15 %, shadow 10 %, training the rest.  On small trace sets the certified
    coverage is limited by the calibration split's size (a step of n rows must show TA about
    alpha + 1.65 sqrt(alpha (1 - alpha) / n)), not by training rows: measured in
    docs/benchmarks.md ("Certify more from fewer traces").
    """
    cal = round(min(0.30, max(0.15, AUTO_CALIBRATION_ROWS / max(int(n_rows), 1))), 6)
    return (round(1.0 - 0.15 - cal - 0.10, 6), 0.15, cal, 0.10)


@dataclass(frozen=True)
class Splits:
    train: np.ndarray
    validation: np.ndarray
    calibration: np.ndarray
    shadow: np.ndarray

    def counts(self) -> dict[str, int]:
        return {name: int(len(getattr(self, name))) for name in SPLIT_NAMES}


def parse_fractions(text: str):
    """Parse ``"0.55,0.15,0.15,0.15"`` (positive, summing to 1), or ``"auto"`` (None:
    ``auto_fractions`` of the trace count)."""
    if text.strip().lower() == "auto":
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ParameterError("split", "compile", "four comma-separated fractions", text) from None
    return check_fractions(values)


def check_fractions(values: tuple[float, ...]) -> tuple[float, ...]:
    if len(values) != 4 or any(not (0 < v < 1) for v in values) or abs(sum(values) - 1) > 1e-9:
        raise ParameterError("split", "compile",
                             "four fractions in (0, 1) summing to 1 (train,validation,calibration,shadow)",
                             ",".join(f"{v:g}" for v in values))
    return values


def split_rows(n_rows: int, seed: int, fractions=DEFAULT_FRACTIONS, certifiable=None) -> Splits:
    """Split ``range(n_rows)`` into four disjoint, sorted index arrays.

    ``certifiable`` (a boolean per row, or None for all): calibration and shadow take all the
    certifiable rows, in the ratio of their fractions; train and validation the others."""
    fractions = check_fractions(tuple(fractions))
    if certifiable is not None:
        return _masked(n_rows, seed, fractions, np.asarray(certifiable, dtype=bool))
    counts = [int(np.floor(f * n_rows)) for f in fractions[1:]]
    n_train = n_rows - sum(counts)
    if min(counts + [n_train]) < 20:
        raise InputError(f"traces: expected at least 20 rows in every split; with {n_rows} rows and "
                         f"fractions {fractions} a split would have {min(counts + [n_train])}. "
                         "Collect more traces.")
    order = np.random.default_rng(seed).permutation(n_rows)
    bounds = np.cumsum([n_train] + counts)
    parts = np.split(order, bounds[:-1])
    return Splits(*(np.sort(p).astype(np.int64) for p in parts))


def _masked(n_rows: int, seed: int, fractions: tuple[float, ...], mask: np.ndarray) -> Splits:
    if mask.shape != (n_rows,):
        raise InputError(f"traces: expected a certifiable flag per row ({n_rows}), found {mask.shape}")
    rng = np.random.default_rng(seed)
    groups = []
    for rows, (a, b), names in ((np.flatnonzero(~mask), fractions[:2], "train/validation (training-only"),
                                (np.flatnonzero(mask), fractions[2:], "calibration/shadow (certifiable")):
        order = rows[rng.permutation(len(rows))]
        first = len(rows) - int(np.floor(b / (a + b) * len(rows)))
        if min(first, len(rows) - first) < 20:
            raise InputError(f"traces: expected at least 20 rows in every split; {names} rows: "
                             f"{len(rows)}) give {min(first, len(rows) - first)}. Collect more "
                             "traces (certifiable rows are the uniformly sampled requests: raise "
                             "the service's --audit-rate).")
        groups += [order[:first], order[first:]]
    return Splits(*(np.sort(p).astype(np.int64) for p in groups))
