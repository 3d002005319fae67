"""Loading traces: a source (file, ``-``, ``.gz``, or in-memory mappings) through a format.

    source -> lines -> objects (``traces._parse_line``, the one place bytes become objects)
           -> format rows (``tracec.formats``: views, or Skip counted by reason)
           -> field paths (``--input-field`` / ``--teacher-field``) -> ``traces._validate``

Embeddings pair with the rows kept, in order (skipped rows have no embedding row).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import chain
from pathlib import Path
from typing import Any, Optional, Union

from tracec import formats, sources
from tracec.errors import ParameterError, TraceFileError
from tracec.traces import ALIASES, TraceRecord, Traces, _parse_line, _validate

Source = Union[str, Path, Iterable[Mapping[str, Any]]]
RECORDS = "<records>"


def load_traces(source: Source, *, format: str = "auto", input_field: Optional[str] = None,
                teacher_field: Optional[str] = None,
                batch_output: Union[Source, list, tuple, None] = None, min_classes: int = 2,
                require_teacher: bool = True) -> Traces:
    """Read traces from a path (``.jsonl``, ``.jsonl.gz``, ``-`` for stdin) or an iterable of
    mappings, in one of ``formats.CHOICES``; raise ``TraceFileError`` at the first problem.

    ``input_field`` / ``teacher_field`` are dotted paths into each row's view (see
    docs/traces.md).  ``batch_output`` is the OpenAI Batch output file(s) for ``openai-batch``.
    ``min_classes`` distinct teacher labels are required (2 to compile; a caller that only
    evaluates a bundle may pass 1); ``require_teacher=False`` reads rows without one.
    """
    if format not in formats.CHOICES:
        raise ParameterError("format", "load_traces", f"one of {', '.join(formats.CHOICES)}", format)
    name, sha256, objects = _objects(source)
    first = next(objects, None)
    if first is None:
        raise TraceFileError(name, None, "no trace records: expected at least one record, found none")
    fmt = formats.sniff(first[1]) if format == "auto" else format
    rows_of, join = _rows_function(name, fmt, batch_output)
    records: list[TraceRecord] = []
    skipped: Counter = Counter()
    for lineno, obj in chain([first], objects):
        try:
            for row in (join.rows(obj, lineno) if isinstance(join, formats.decision_log.Reader)
                        else rows_of(obj)):
                if isinstance(row, formats.Skip):
                    skipped[row.reason] += 1
                else:
                    records.append(_validate_mapped(name, lineno, row, input_field, teacher_field,
                                                    require_teacher))
        except formats.FormatError as e:
            raise _error(name, lineno, e) from None
        except TraceFileError as e:
            raise _hinted(e, fmt, obj, format) from None
    sampling = join.finish(skipped) if isinstance(join, formats.decision_log.Reader) else None
    if isinstance(join, formats.openai_batch.Join) and join.orphans():
        skipped[formats.openai_batch.ORPHAN] += join.orphans()
    if not records:
        kinds = "; ".join(f"{n:,} {reason}" for reason, n in sorted(skipped.items()))
        raise TraceFileError(name, None, f"no trace records: expected {fmt} rows with an input and "
                                         f"a teacher label, found none" + (f" (skipped: {kinds})"
                                                                             if kinds else ""))
    teachers = tuple(r.teacher for r in records)
    classes = sorted({t for t in teachers if t is not None})
    if require_teacher and len(classes) < min_classes:
        found = f"a single teacher class {classes[0]!r}: nothing to learn" if len(classes) == 1 \
            else f"{len(classes)} teacher classes"
        raise TraceFileError(name, None, f"{found} (expected at least {min_classes} distinct "
                                         f"teacher labels, found {len(classes)} in "
                                         f"{len(records):,} records)", "teacher")
    return Traces(
        path=name,
        inputs=tuple(r.input for r in records),
        teachers=teachers,
        labels=tuple(r.label for r in records),
        ids=tuple(r.id for r in records),
        timestamps=tuple(r.timestamp for r in records),
        sha256=sha256,
        format=fmt,
        skipped=dict(sorted(skipped.items())),
        certifiable=None if sampling is None else join.certifiable,
        sampling=sampling,
        decisions=None if sampling is None else tuple(join.decisions),
    )


def _objects(source: Source):
    """(display name, digest of the bytes or None, iterator of (1-based line, object))."""
    if isinstance(source, (str, Path)):
        name, data, lines = sources.read_lines(source)
        return name, hashlib.sha256(data).hexdigest(), \
            ((i, _parse_line(name, i, raw)) for i, raw in enumerate(lines, start=1))
    if isinstance(source, (bytes, Mapping)) or not isinstance(source, Iterable):
        raise ParameterError("traces", "load_traces", "a path (str or Path) or an iterable of "
                             "mappings", type(source).__name__)
    return RECORDS, None, ((i, _mapping(i, obj)) for i, obj in enumerate(source, start=1))


def _mapping(i: int, obj: Any) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise TraceFileError(RECORDS, i, f"expected a mapping (a JSON object), found "
                                         f"{type(obj).__name__}")
    return dict(obj)


def _rows_function(name: str, fmt: str, batch_output):
    if fmt == formats.decision_log.NAME and batch_output is None:
        reader = formats.decision_log.Reader()  # joins decisions with their feedback
        return reader.rows, reader
    if fmt != formats.openai_batch.NAME:
        if batch_output is not None:
            raise ParameterError("batch_output", "load_traces", "given only with the openai-batch "
                                 "format", f"batch_output with format {fmt!r}")
        return formats.FORMATS[fmt].rows, None
    if batch_output is None:
        raise TraceFileError(name, None, "an OpenAI Batch input file needs its results: pass the "
                                         "output file with --batch-output FILE (Python: "
                                         "batch_output=...)")
    outputs = batch_output if isinstance(batch_output, (list, tuple)) and batch_output and \
        isinstance(batch_output[0], (str, Path)) else [batch_output]
    results = []
    for out in outputs:
        out_name, _, objects = _objects(out)
        results.extend((out_name, lineno, obj) for lineno, obj in objects)
    try:
        join = formats.openai_batch.Join(results)
    except formats.openai_batch.LocatedFormatError as e:
        raise _error(e.path, e.line, e) from None
    return join.rows, join


def _hinted(e: TraceFileError, fmt: str, obj: dict, asked: str) -> TraceFileError:
    """A jsonl row that looks like another format says so (the likely mistake)."""
    other = formats.sniff(obj)
    if fmt != formats.jsonl.NAME or other == fmt:
        return e
    how = "--format auto sniffed jsonl from the first record" if asked == "auto" else "--format jsonl"
    return TraceFileError(e.path, e.line, f"{e.message} (this record looks like {other}, but {how}: "
                                          f"pass --format {other})", e.field)


def _error(name: str, lineno: int, e: formats.FormatError) -> TraceFileError:
    return TraceFileError(name, lineno, e.message, e.field)


def _validate_mapped(name: str, lineno: int, view: dict[str, Any], input_field: Optional[str],
                     teacher_field: Optional[str], require_teacher: bool) -> TraceRecord:
    """Apply ``--input-field`` / ``--teacher-field`` to a row's view, then validate it."""
    paths = {k: p for k, p in (("input", input_field), ("teacher", teacher_field)) if p}
    if not paths:
        return _validate(name, lineno, view, require_teacher)
    obj = dict(view)
    for canonical, path in paths.items():
        for key in (canonical, *ALIASES[canonical]):
            obj.pop(key, None)
        obj[canonical] = formats.resolve(view, path)
    try:
        return _validate(name, lineno, obj, require_teacher)
    except TraceFileError as e:
        if e.field not in paths:
            raise
        raise TraceFileError(name, lineno, f"{e.message} (read from {paths[e.field]!r})",
                             e.field) from None


def describe_read(traces: Traces) -> str:
    """``NAME (format F): N rows[; skipped M: k reason, ...]`` for narration on stderr."""
    text = f"{traces.path} (format {traces.format}): {traces.n:,} rows"
    if traces.skipped:
        total = sum(traces.skipped.values())
        text += f"; skipped {total:,}: " + ", ".join(f"{n:,} {reason}"
                                                    for reason, n in traces.skipped.items())
    if traces.sampling is not None:
        s = traces.sampling
        text += (f"; certifiable {s['certifiable']:,} (uniform sample at rate {s['sample_rate']:g}), "
                 f"training-only {s['training_only']:,}")
        if s["sampled_without_label"]:
            text += (f"; WARNING {s['sampled_without_label']:,} sampled decisions have no teacher "
                     "label (post every deferred and audited label)")
    return text
