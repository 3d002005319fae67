"""Options shared by every command that reads a trace file (compile, embed, route, scan).

``trace_options`` adds ``--format``, ``--input-field``, ``--teacher-field`` and
``--batch-output`` and hands the command one ``trace_options`` dict: the keyword
arguments of ``tracec.load_traces``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import click

from tracec.formats import CHOICES


def trace_options(fn):
    @functools.wraps(fn)
    def wrapper(*args, trace_format, input_field, teacher_field, batch_output, **kwargs):
        options = {"format": trace_format, "input_field": input_field,
                   "teacher_field": teacher_field,
                   "batch_output": tuple(batch_output) if batch_output else None}
        return fn(*args, trace_options=options, **kwargs)

    decorators = [
        click.option("--format", "trace_format", type=click.Choice(CHOICES), default="auto",
                     show_default=True, help="Trace file format (docs/traces.md); auto sniffs "
                                             "the first record."),
        click.option("--input-field", metavar="PATH",
                     help="Dotted path to the input text in each row, e.g. request.text "
                          "(a JSON string on the way is parsed)."),
        click.option("--teacher-field", metavar="PATH",
                     help="Dotted path to the teacher label, e.g. teacher.label for a JSON "
                          "completion {\"label\": ...}."),
        click.option("--batch-output", multiple=True, metavar="FILE",
                     type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
                     help="openai-batch: the Batch output file (repeat for the error file) "
                          "joined on custom_id with the input file given as traces."),
    ]
    for decorate in reversed(decorators):
        wrapper = decorate(wrapper)
    return wrapper


def embedding_options(fn):
    """``--embeddings``, ``--embedder-id`` and ``--embedder`` (compile, scan)."""
    fn = click.option("--embedder", default="minilm-int8", show_default=True,
                      type=click.Choice(["minilm-int8", "sentence-transformers"]),
                      help="Text embedder: int8 ONNX (a text-in bundle carrying it) or "
                           "sentence-transformers (extra tracec[embed-st]; embedding-in bundle).")(fn)
    fn = click.option("--embedder-id", help="Name of the model that produced --embeddings "
                                            "(required with it; recorded).")(fn)
    return click.option("--embeddings", type=click.Path(path_type=Path, dir_okay=False),
                        help="Row-aligned .npy embeddings (default: compute with "
                             "all-MiniLM-L6-v2, cached).")(fn)
