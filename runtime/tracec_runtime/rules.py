"""Routing rules the runtime enforces: ``manifest.rules.never_handle`` (compile --rules).

Applied by the router after either engine (onnxruntime graph or numpy fast path), so both
defer exactly the same rows.  ``min_alpha`` and ``max_handled_share`` need nothing at run
time: they were certified into the one ``policy.tau`` (docs/rules.md).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from tracec_runtime.errors import UnsupportedFormatError

__all__ = ["RULE_NEVER", "never_mask", "apply_never"]

RULE_NEVER = "rule:never_handle"  # the Decision flag (and reason) of a never_handle deferral


def never_mask(manifest: dict, labels: tuple, where: str) -> Optional[np.ndarray]:
    """bool per label index from ``manifest.rules.never_handle``; None without such a rule
    (bundles before rules have no ``rules`` field).  Unknown labels: UnsupportedFormatError."""
    rules = manifest.get("rules")
    if rules is None:
        return None
    names = rules.get("never_handle") if isinstance(rules, dict) else None
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise UnsupportedFormatError(f"{where}: field 'rules.never_handle' must be a list of "
                                     f"strings; found {names!r:.80}")
    unknown = sorted(set(names) - set(labels))
    if unknown:
        raise UnsupportedFormatError(f"{where}: field 'rules.never_handle' names {unknown[0]!r}, "
                                     f"not one of the bundle's labels")
    if not names:
        return None
    mask = np.zeros(len(labels), dtype=bool)
    mask[[labels.index(x) for x in names]] = True
    return mask


def apply_never(never: Optional[np.ndarray], label: np.ndarray, handled: np.ndarray,
                flags: Sequence) -> tuple[np.ndarray, tuple]:
    """``(handled, flags)`` with rows whose label is never handled deferred and flagged
    ``rule:never_handle`` (``flags``: per-row flags, or empty for none)."""
    if never is None:
        return handled, tuple(flags)
    ruled = handled & never[label]
    if not ruled.any():
        return handled, tuple(flags)
    old = flags if flags else (None,) * len(ruled)
    return handled & ~ruled, tuple(RULE_NEVER if r else f for r, f in zip(ruled.tolist(), old))
