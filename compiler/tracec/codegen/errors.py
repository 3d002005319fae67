"""Codegen errors: one place, subclasses of the one hierarchy (``tracec.errors``)."""

from __future__ import annotations

from tracec.errors import BundleVerificationError, InputError, TracecError

__all__ = ["CodegenError", "UnsupportedStageError", "CodegenInputError",
           "CodegenVerificationError"]


class CodegenError(TracecError):
    """Code could not be generated for a verified bundle.  Exit code 4."""

    exit_code = 4


class UnsupportedStageError(CodegenError):
    """The policy holds a stage (or a node of one) no emitter knows.

    Raised instead of emitting code that would silently ignore a stage.  Exit 1:
    the bundle is valid, the generator refuses it.
    """

    exit_code = 1

    def __init__(self, where: str, expected: str, found: object):
        self.where, self.expected, self.found = where, expected, found
        super().__init__(f"codegen: {where} must be {expected}; found {found!r}. No code "
                         f"was written: a generated policy never ignores a stage.")


class CodegenInputError(InputError):
    """A codegen parameter (language, output directory) is invalid.  Exit code 3."""


class CodegenVerificationError(BundleVerificationError):
    """A generated source directory does not match its signed statement.  Exit code 1."""
