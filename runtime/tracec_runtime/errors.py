"""One error hierarchy for tracec and its runtime.

Every error carries an ``exit_code`` and renders ``diagnostics()``: a short,
human-readable explanation of what was expected, what was found and where.
The compiler's errors (``tracec.errors``) subclass these, and the CLI maps
them to exit codes in exactly one place.
"""

from __future__ import annotations


class Terminated(BaseException):
    """The process got SIGTERM.  A BaseException, like KeyboardInterrupt: not an error to
    handle; cleanup (``finally``, staging removal) runs, and the CLIs exit 143."""

    def __init__(self, signum: int = 15):
        self.signum = signum
        super().__init__(f"terminated by signal {signum}")


class TracecError(Exception):
    """Base class of every error tracec raises on purpose."""

    exit_code = 4

    def diagnostics(self) -> str:
        return str(self)


# --------------------------------------------------------------------------
# Bundle verification: fail closed.  Raised before any model is constructed.
# --------------------------------------------------------------------------


class BundleVerificationError(TracecError):
    """The bundle could not be verified; nothing from it was loaded."""

    exit_code = 1


class BundleIntegrityError(BundleVerificationError):
    """Files on disk differ from the signed statement (diff-style ``problems``)."""

    def __init__(self, bundle: str, problems: list[str]):
        self.bundle = bundle
        self.problems = list(problems)
        super().__init__(f"bundle {bundle!r} failed integrity verification: "
                         + "; ".join(self.problems))

    def diagnostics(self) -> str:
        lines = [f"bundle {self.bundle!r} failed integrity verification: "
                 f"{len(self.problems)} problem(s)"] + [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class FileTooLargeError(BundleVerificationError):
    """A bundle file is larger than its signed size or the loader's cap; it was not read."""

    def __init__(self, name: str, limit: int, size: int, grew: bool = False):
        self.name, self.limit, self.size = name, limit, size
        found = (f"it grew past {limit} bytes while being read" if grew
                 else f"found {size} bytes (by stat, before reading)")
        super().__init__(f"{name}: expected at most {limit} bytes; {found}")


class UnsafePathError(BundleVerificationError):
    """A path in the bundle escapes the bundle directory or is a link."""


class SignatureError(BundleVerificationError):
    """The envelope signature is missing, malformed or does not verify."""


class UnsignedBundleError(SignatureError):
    """The bundle carries no signature and the caller did not opt into unsafe loading."""


class UnsupportedFormatError(BundleVerificationError):
    """The bundle's format version or media type is not one this runtime understands."""


class ModelContractError(BundleVerificationError):
    """``model.onnx`` does not obey the graph contract (inputs, outputs, dtypes, label range)."""


class EmbedderFingerprintError(BundleVerificationError):
    """The bundle's embedder computes different canary embeddings here than at compile time."""


class KeyFileError(TracecError):
    """A key file is unreadable or is not an Ed25519 JWK."""

    exit_code = 3


# --------------------------------------------------------------------------
# Serving.
# --------------------------------------------------------------------------


class RouteInputError(TracecError, ValueError):
    """An embedding given to the router has the wrong shape, dtype or non-finite values."""

    exit_code = 3


class EngineError(TracecError, ValueError):
    """``Router.load(engine=...)`` got something other than auto, onnxruntime or numpy."""

    exit_code = 3


class TextRoutingUnavailableError(EngineError):
    """``route_text`` on an embedding-in bundle (it carries no embedder)."""


class GraphRunError(EngineError):
    """The verified graph failed while running (an onnxruntime error, e.g. an allocation)."""

    exit_code = 1


class EngineUnavailableError(EngineError):
    """``engine="numpy"`` on a bundle without a fast path verified identical to the graph."""
