"""The Python API: ``tracec.compile`` (``tracec.load_traces`` is ``tracec.loader.load_traces``).

    import tracec
    result = tracec.compile("traces.jsonl", out="bundle", alpha=0.9,
                            embeddings="X.npy", signing_key="me.key")
    result.gate_open, result.manifest["policy"]["tau"]

Everything the CLI's ``compile`` does goes through ``compile`` (the CLI only parses flags),
so the errors are the same typed ones (``tracec.errors``) with the same exit codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Callable, Optional, Union

from tracec.errors import ParameterError

PathLike = Union[str, Path]
#: The keyword options of ``compile``: CompileConfig fields, same names.
OPTIONS = ("seed", "include_trees", "families", "fractions", "size_budget_bytes", "min_accept",
           "min_coverage", "previous", "previous_public_key", "no_examples", "teacher_cost_per_1k",
           "daily_volume", "force", "embedder_id", "embedder", "ood_quantile", "cache_dir", "format", "input_field",
           "teacher_field", "batch_output", "rules")
_PATHS = ("previous", "previous_public_key", "cache_dir")


def compile(traces: Any, *, out: PathLike, alpha: Union[float, str, Sequence[float]] = 0.9,
            delta: float = 0.05, embeddings: Any = None, signing_key: Optional[PathLike] = None,
            progress: Optional[Callable[[str], None]] = None, **options: Any):
    """Compile traces into a bundle at ``out``; returns ``tracec.pipeline.CompileResult``.

    ``traces``: a path, or an iterable of mappings (read with ``format``, ``input_field``,
    ``teacher_field``, ``batch_output``); ``embeddings``: a ``.npy`` path, a 2-D float array,
    or None (computed); ``alpha``: a float, a comma list or a sequence (the first is shipped,
    all go into ``frontier.json``).  ``options`` are ``CompileConfig`` fields (``OPTIONS``);
    an unknown one raises ``ParameterError``.  A closed gate is a result, not an error:
    check ``result.gate_open``.
    """
    from tracec.config import CompileConfig
    from tracec.pipeline import compile_bundle

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ParameterError(unknown[0], "compile", f"one of the options {', '.join(OPTIONS)}",
                             options[unknown[0]])
    fields = {k: _path(v, k) if k in _PATHS and v is not None else v for k, v in options.items()}
    if "families" in fields:
        fields["families"] = _families(fields["families"])
    if "fractions" in fields:
        fields["fractions"] = _fractions(fields["fractions"])
    if fields.get("rules") is not None:  # a rules file path (.json/.yaml), or a mapping
        from tracec.rules import as_rules
        fields["rules"] = as_rules(fields["rules"])
    if isinstance(traces, (str, Path)):
        traces = _path(traces, "traces")  # else records (or loaded Traces): read by the load stage
    config = CompileConfig(traces=traces, out=_path(out, "out"), embeddings=_embeddings(embeddings),
                           alphas=_alphas(alpha), delta=delta,
                           signing_key=None if signing_key is None else _path(signing_key, "signing_key"),
                           **fields)
    return compile_bundle(config, progress=progress)


def _path(value: Any, name: str) -> Path:
    if isinstance(value, Path):
        return value
    if isinstance(value, str) and value:
        return Path(value)
    raise ParameterError(name, "compile", "a path (str or Path)", value)


def _embeddings(value: Any) -> Any:
    if value is None or isinstance(value, (str, Path)):
        return None if value is None else _path(value, "embeddings")
    import numpy as np

    if isinstance(value, np.ndarray):
        return value
    raise ParameterError("embeddings", "compile", "a .npy path (str or Path), a 2-D float numpy "
                         "array, or None", type(value).__name__)


def _alphas(value: Any) -> tuple[float, ...]:
    from tracec.config import parse_alphas

    if isinstance(value, str):
        return parse_alphas(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        values = tuple(value)
        if values and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in values):
            return tuple(float(a) for a in values)
    raise ParameterError("alpha", "compile", "a float in (0, 1), a comma-separated string or a "
                         "sequence of floats", value)


def _families(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(f.strip() for f in value.split(",") if f.strip())
    if isinstance(value, Iterable) and all(isinstance(f, str) for f in value):
        return tuple(value)
    raise ParameterError("families", "compile", "a comma-separated string or a sequence of "
                         "family names", value)


def _fractions(value: Any) -> Optional[tuple[float, ...]]:
    from tracec.splits import check_fractions, parse_fractions

    if value is None or isinstance(value, str):  # None or "auto": splits.auto_fractions
        return None if value is None else parse_fractions(value)
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ParameterError("split", "compile", "four fractions train,validation,calibration,"
                             "shadow", value) from None
    return check_fractions(values)

