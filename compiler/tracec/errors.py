"""Compiler errors: subclasses of the one hierarchy in ``tracec_runtime.errors``.

Wording follows scikit-learn's parameter validation: say which thing, what it
must be, and what was found instead.
"""

from __future__ import annotations

from tracec_runtime.errors import (  # re-exported: one hierarchy
    BundleIntegrityError,
    BundleVerificationError,
    KeyFileError,
    SignatureError,
    TracecError,
    UnsafePathError,
    UnsignedBundleError,
    UnsupportedFormatError,
)

__all__ = [
    "BundleIntegrityError", "BundleVerificationError", "KeyFileError", "SignatureError",
    "TracecError", "UnsafePathError", "UnsignedBundleError", "UnsupportedFormatError",
    "InputError", "TraceFileError", "EmbeddingError", "ParameterError", "ExportError",
    "GateRefused",
]


class InputError(TracecError):
    """Bad user input: traces, embeddings or parameters.  Exit code 3; nothing is written."""

    exit_code = 3


class TraceFileError(InputError):
    """A trace file is malformed.  Names the file, the 1-based line and the field."""

    def __init__(self, path: str, line: int | None, message: str, field: str | None = None):
        self.path, self.line, self.field, self.message = str(path), line, field, message
        where = self.path if line is None else f"{self.path}:{line}"
        if field is not None:
            where += f": field {field!r}"
        super().__init__(f"{where}: {message}")


class EmbeddingError(InputError):
    """Embeddings are unreadable, mis-shaped, non-finite or not row-aligned with the traces."""

    def __init__(self, path: str, message: str, row: int | None = None):
        self.path, self.row, self.message = str(path), row, message
        where = self.path if row is None else f"{self.path}: row {row}"
        super().__init__(f"{where}: {message}")


class ParameterError(InputError, ValueError):
    """A parameter is out of its domain.

    >>> str(ParameterError("alpha", "compile", "a float in (0, 1)", 1.5))
    "The 'alpha' parameter of compile must be a float in (0, 1). Got 1.5 instead."
    """

    def __init__(self, name: str, owner: str, expected: str, got: object):
        self.name, self.owner, self.expected, self.got = name, owner, expected, got
        super().__init__(f"The {name!r} parameter of {owner} must be {expected}. "
                         f"Got {got!r} instead.")


class ExportError(TracecError):
    """A candidate could not be exported to ONNX exactly or within the size budget."""

    exit_code = 4


class GateRefused(TracecError):
    """The parity gate refused the policy: the bundle is closed, everything defers."""

    exit_code = 1

    def __init__(self, explanation: str):
        self.explanation = explanation
        super().__init__(explanation)


class OutputError(InputError):
    """``--out`` cannot be written safely: in use by another compile, changed during the compile,
    not a bundle to replace, or a write failed (disk full, read-only).  Exit code 3: fix the
    destination and retry; nothing of the user's was touched and nothing is left behind."""

    def __init__(self, path: str, message: str):
        self.path, self.message = str(path), message
        super().__init__(f"--out {self.path}: {message}")


__all__ += ["OutputError"]


class ProvenanceError(TraceFileError):
    """A decision log does not come from the ``--previous`` bundle: none of its decisions carry
    that bundle's digest, or a logged decision differs from the bundle's replayed one (the log
    comes from another bundle or was altered).  Exit code 3, naming the file and line."""


__all__ += ["ProvenanceError"]
