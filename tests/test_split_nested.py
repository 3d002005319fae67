"""The split is nested across growing trace sets: a row keeps its split when traces are added
(same seed), and which split a row lands in depends on its input text and the seed only."""

from __future__ import annotations

import numpy as np

from tracec.splits import SPLIT_NAMES, auto_fractions, row_keys, split_rows


def _texts(n: int, start: int = 0) -> list[str]:
    return [f"customer message number {i}" for i in range(start, start + n)]


def _assignment(splits) -> dict[int, str]:
    return {int(i): name for name in SPLIT_NAMES for i in getattr(splits, name)}


def _kept_share(n_day1: int, n_day2: int, inputs: bool) -> float:
    texts = _texts(n_day2)
    fr = auto_fractions(n_day1)
    day1 = split_rows(n_day1, 7, fr, inputs=texts[:n_day1] if inputs else None)
    day2 = split_rows(n_day2, 7, fr, inputs=texts if inputs else None)
    a1, a2 = _assignment(day1), _assignment(day2)
    return float(np.mean([a1[i] == a2[i] for i in range(n_day1)]))


def test_adding_traces_keeps_almost_every_row_in_its_split():
    kept = _kept_share(2000, 4000, inputs=True)
    assert kept >= 0.95, kept
    # the seeded permutation reshuffles: about the sum of squared fractions keep their split
    assert _kept_share(2000, 4000, inputs=False) < 0.5


def test_split_is_a_function_of_the_text_and_seed_with_exact_counts():
    texts = _texts(1600)
    a = split_rows(1600, 3, auto_fractions(1600), inputs=texts)
    assert a.counts() == {"train": 720, "validation": 240, "calibration": 480, "shadow": 160}
    # the rows' order in the file does not matter: the same texts land in the same splits
    perm = np.random.default_rng(0).permutation(1600)
    b = split_rows(1600, 3, auto_fractions(1600), inputs=[texts[i] for i in perm])
    by_text_a = {texts[i]: s for i, s in _assignment(a).items()}
    by_text_b = {texts[perm[i]]: s for i, s in _assignment(b).items()}
    assert by_text_a == by_text_b
    c = split_rows(1600, 4, auto_fractions(1600), inputs=texts)   # another seed, another split
    assert not np.array_equal(a.calibration, c.calibration)


def test_duplicate_inputs_sit_together_so_at_most_one_straddles_each_cut():
    texts = [f"t{i % 400}" for i in range(1600)]                  # every text four times
    splits = split_rows(1600, 0, auto_fractions(1600), inputs=texts)
    homes: dict[str, set[str]] = {}
    for i, name in _assignment(splits).items():
        homes.setdefault(texts[i], set()).add(name)
    straddling = sum(len(h) > 1 for h in homes.values())
    assert straddling <= 3                                        # three cuts


def test_keys_are_keyed_by_seed_and_certifiable_rows_still_calibrate():
    texts = _texts(1000)
    assert not np.array_equal(row_keys(texts, 0), row_keys(texts, 1))
    assert np.array_equal(row_keys(texts, 5), row_keys(list(texts), 5))
    mask = np.zeros(1000, dtype=bool)
    mask[::2] = True
    s = split_rows(1000, 0, auto_fractions(1000), certifiable=mask, inputs=texts)
    assert mask[s.calibration].all() and mask[s.shadow].all()
    assert not mask[s.train].any() and not mask[s.validation].any()
