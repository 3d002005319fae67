"""Deterministic train / validation / calibration / shadow split.

Rows are ordered by a keyed hash of their input text (BLAKE2b keyed with the seed; ties, i.e.
duplicate inputs, by row index) and cut into exact counts, not stratified and not re-balanced:
calibration and shadow keep the production label mix, and every split is an exchangeable
sample of the traces' distinct inputs, which is what the calibration guarantee
(docs/guarantee.md) assumes.  The key depends on a row's text and the seed only, so the split
is nested: when traces are added (same seed, same fractions) a row keeps its split, except
the few rows next to a cut that moves.  Without texts (``inputs=None``) the rows are ordered
by one seeded permutation (the split before the keyed hash; nothing in the compile uses it).
When only some rows are a known-rate sample of traffic (a decision log:
``Traces.certifiable``), calibration and shadow are drawn from those rows only and every
other row goes to train / validation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from tracec.errors import InputError, ParameterError

SPLIT_NAMES = ("train", "validation", "calibration", "shadow")
DEFAULT_FRACTIONS = (0.55, 0.15, 0.15, 0.15)   # the fixed split before "auto" (--split)
AUTO_CALIBRATION_ROWS = 3000                    # calibration rows "auto" aims for
SPLIT_METHOD = "blake2b-keyed-input-order"      # the manifest's counts.method


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


def row_keys(inputs, seed: int) -> np.ndarray:
    """Per row: the first 8 bytes of BLAKE2b(input text, key=seed) as an unsigned integer.
    A function of the text and the seed only (never the teacher label): equal texts, equal keys."""
    key = int(seed).to_bytes(16, "little", signed=True)
    return np.array([int.from_bytes(hashlib.blake2b(str(t).encode("utf-8"), digest_size=8,
                                                    key=key).digest(), "big") for t in inputs],
                    dtype=np.uint64)


def _order(rows: np.ndarray, keys, rng) -> np.ndarray:
    """``rows`` in split order: by key then index (``keys``), else by one seeded permutation."""
    if keys is None:
        return rows[rng.permutation(len(rows))]
    return rows[np.lexsort((rows, keys[rows]))]


def split_rows(n_rows: int, seed: int, fractions=DEFAULT_FRACTIONS, certifiable=None,
               inputs=None) -> Splits:
    """Split ``range(n_rows)`` into four disjoint, sorted index arrays.

    ``inputs`` (the input text per row): order rows by ``row_keys`` (nested across growing
    trace sets); None: by one seeded permutation.  ``certifiable`` (a boolean per row, or None
    for all): calibration and shadow take all the certifiable rows, in the ratio of their
    fractions; train and validation the others."""
    fractions = check_fractions(tuple(fractions))
    keys = None if inputs is None else row_keys(inputs, seed)
    if keys is not None and keys.shape != (n_rows,):
        raise InputError(f"traces: expected an input text per row ({n_rows}), found {keys.shape[0]}")
    if certifiable is not None:
        return _masked(n_rows, seed, fractions, np.asarray(certifiable, dtype=bool), keys)
    counts = [int(np.floor(f * n_rows)) for f in fractions[1:]]
    n_train = n_rows - sum(counts)
    if min(counts + [n_train]) < 20:
        raise InputError(f"traces: expected at least 20 rows in every split; with {n_rows} rows and "
                         f"fractions {fractions} a split would have {min(counts + [n_train])}. "
                         "Collect more traces.")
    order = _order(np.arange(n_rows), keys, np.random.default_rng(seed))
    bounds = np.cumsum([n_train] + counts)
    parts = np.split(order, bounds[:-1])
    return Splits(*(np.sort(p).astype(np.int64) for p in parts))


def _masked(n_rows: int, seed: int, fractions: tuple[float, ...], mask: np.ndarray,
            keys=None) -> Splits:
    if mask.shape != (n_rows,):
        raise InputError(f"traces: expected a certifiable flag per row ({n_rows}), found {mask.shape}")
    rng = np.random.default_rng(seed)
    groups = []
    for rows, (a, b), names in ((np.flatnonzero(~mask), fractions[:2], "train/validation (training-only"),
                                (np.flatnonzero(mask), fractions[2:], "calibration/shadow (certifiable")):
        order = _order(rows, keys, rng)
        first = len(rows) - int(np.floor(b / (a + b) * len(rows)))
        if min(first, len(rows) - first) < 20:
            raise InputError(f"traces: expected at least 20 rows in every split; {names} rows: "
                             f"{len(rows)}) give {min(first, len(rows) - first)}. Collect more "
                             "traces (certifiable rows are the uniformly sampled requests: raise "
                             "the service's --audit-rate).")
        groups += [order[:first], order[first:]]
    return Splits(*(np.sort(p).astype(np.int64) for p in groups))
