"""Issue 13: the split follows the trace count (--split auto), and the refusal's "highest alpha
that would pass" is computed by the procedure that was tested (tracec.frontier.certify_alpha)."""

from __future__ import annotations

import numpy as np
import pytest

from tracec.candidates import train_pool
from tracec.config import FAMILIES
from tracec.errors import ParameterError
from tracec.frontier import Context, certify_alpha, highest_passing_alpha
from tracec.policy import Refitter, make_primary, score_shipped
from tracec.splits import auto_fractions, check_fractions, parse_fractions, split_rows


@pytest.mark.parametrize("n,cal", [(100, 0.30), (1600, 0.30), (10_003, 0.299910), (15_000, 0.2),
                                   (20_000, 0.15), (1_000_000, 0.15)])
def test_auto_fractions_give_calibration_about_3000_rows_within_15_to_30_percent(n, cal):
    fr = auto_fractions(n)
    assert check_fractions(fr) == fr and fr[1] == 0.15 and fr[3] == 0.10
    assert fr[2] == pytest.approx(cal, abs=1e-6)
    assert split_rows(1600, 0, auto_fractions(1600)).counts() == {
        "train": 720, "validation": 240, "calibration": 480, "shadow": 160}


def test_split_text_auto_and_explicit():
    assert parse_fractions("auto") is None and parse_fractions(" AUTO ") is None
    assert parse_fractions("0.55,0.15,0.15,0.15") == (0.55, 0.15, 0.15, 0.15)
    with pytest.raises(ParameterError, match="must be four"):
        parse_fractions("0.5,0.5")


def _context(n: int = 1600, seed: int = 0) -> Context:
    """A small real pipeline up to certification: 3 noisy Gaussian classes, 16 dimensions."""
    rng = np.random.default_rng(seed)
    y_all = rng.integers(0, 3, n)
    X_all = (rng.normal(size=(n, 16)) + 1.2 * np.eye(3, 16)[y_all]).astype(np.float32)
    splits = split_rows(n, seed, auto_fractions(n))
    X = {k: X_all[v] for k, v in splits.__dict__.items()}
    y = {k: y_all[v] for k, v in splits.__dict__.items()}
    pool = train_pool(X["train"], y["train"], X["validation"], y["validation"], seed=seed)[:2]
    primary = make_primary(pool[0], X["validation"], y["validation"], seed)
    ship = Refitter(np.concatenate([X["train"], X["validation"]]),
                    np.concatenate([y["train"], y["validation"]]), X["validation"], 3, 5_000_000,
                    lambda _m: None)
    scored = score_shipped(primary, ship(primary), 16, {k: X[k] for k in ("validation", "calibration")})
    return Context(pool, primary, scored, X, y, FAMILIES, 0.05, 100, seed, 16, lambda _m: None,
                   5_000_000, ship)


def test_highest_passing_alpha_is_where_the_tested_procedure_passes():
    ctx = _context()
    best = highest_passing_alpha(ctx, 0.05)
    assert best is not None and 0.5 <= best < 0.995
    assert certify_alpha(ctx, best).winner is not None
    for above in np.arange(best + 0.005, 0.9951, 0.005):   # nothing above it passes
        assert certify_alpha(ctx, round(float(above), 6)).winner is None
