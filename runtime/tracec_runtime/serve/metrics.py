"""Prometheus text exposition (format 0.0.4), standard library only.

Names follow Prometheus conventions: ``tracec_`` prefix, ``_total`` on
counters, units in names (``_seconds``).  Counters only ever grow, so a fleet's
counts add up (``tracec-runtime watch`` sums them across replicas).
"""

from __future__ import annotations

import bisect
import threading
from typing import Iterable

__all__ = ["Registry", "parse_text"]

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: tuple) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs) + "}"


class Registry:
    def __init__(self):
        self._lock = threading.Lock()
        self._help: dict[str, tuple[str, str]] = {}
        self._values: dict[str, dict[tuple, float]] = {}
        self._hist: dict[str, dict[tuple, list]] = {}

    def declare(self, name: str, kind: str, help_text: str) -> None:
        self._help[name] = (kind, help_text)
        (self._hist if kind == "histogram" else self._values).setdefault(name, {})

    def inc(self, name: str, amount: float = 1.0, **labels) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[name][key] = float(value)

    def clear(self, name: str) -> None:
        with self._lock:
            self._values[name].clear()

    def observe(self, name: str, value: float, **labels) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            h = self._hist[name].get(key)
            if h is None:
                h = self._hist[name][key] = [[0] * len(LATENCY_BUCKETS), 0, 0.0]
            i = bisect.bisect_left(LATENCY_BUCKETS, value)
            if i < len(LATENCY_BUCKETS):
                h[0][i] += 1
            h[1] += 1
            h[2] += value

    def get(self, name: str, **labels) -> float:
        return self._values[name].get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name in sorted(self._help):
                kind, text = self._help[name]
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                if kind == "histogram":
                    for key, (buckets, count, total) in sorted(self._hist[name].items()):
                        running = 0
                        for le, c in zip(LATENCY_BUCKETS, buckets):
                            running += c
                            lines.append(f"{name}_bucket{_labels(key + (('le', repr(le)),))} {running}")
                        lines.append(f"{name}_bucket{_labels(key + (('le', '+Inf'),))} {count}")
                        lines.append(f"{name}_sum{_labels(key)} {total!r}")
                        lines.append(f"{name}_count{_labels(key)} {count}")
                else:
                    for key, value in sorted(self._values[name].items()):
                        shown = int(value) if float(value).is_integer() else repr(value)
                        lines.append(f"{name}{_labels(key)} {shown}")
        return "\n".join(lines) + "\n"


def parse_text(text: str) -> Iterable[tuple[str, dict[str, str], float]]:
    """Samples of a text exposition: ``(name, labels, value)`` (enough for our own output)."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, labels = head, {}
        if "{" in head:
            name, rest = head.split("{", 1)
            body = rest[:-1]
            for part in _split_labels(body):
                k, _, v = part.partition("=")
                labels[k] = v[1:-1].replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        try:
            yield name, labels, float(value)
        except ValueError:
            continue


def _split_labels(body: str) -> list[str]:
    parts, cur, quoted, esc = [], [], False, False
    for ch in body:
        if esc:
            cur.append(ch)
            esc = False
        elif ch == "\\":
            cur.append(ch)
            esc = True
        elif ch == '"':
            cur.append(ch)
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur))
    return parts
