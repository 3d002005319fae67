"""tracec-runtime: verify a tracec bundle, then route text or embeddings locally or defer."""

from tracec_runtime.errors import (
    BundleIntegrityError,
    BundleVerificationError,
    EmbedderFingerprintError,
    EngineError,
    EngineUnavailableError,
    FileTooLargeError,
    GraphRunError,
    KeyFileError,
    ModelContractError,
    RouteInputError,
    SignatureError,
    TextRoutingUnavailableError,
    TracecError,
    UnsafePathError,
    UnsignedBundleError,
    UnsupportedFormatError,
)

__version__ = "0.1.0"

__all__ = [
    "Router", "Decision", "BatchDecision", "verify_bundle",
    "BundleIntegrityError", "BundleVerificationError", "EmbedderFingerprintError", "EngineError",
    "EngineUnavailableError", "FileTooLargeError", "GraphRunError", "TextRoutingUnavailableError",
    "KeyFileError", "ModelContractError",
    "RouteInputError", "SignatureError",
    "TracecError", "UnsafePathError", "UnsignedBundleError", "UnsupportedFormatError",
]


def __getattr__(name):  # lazy: importing the package must stay cheap
    if name in ("Router", "Decision", "BatchDecision"):
        from tracec_runtime import router
        return getattr(router, name)
    if name == "verify_bundle":
        from tracec_runtime.verify import verify_bundle
        return verify_bundle
    raise AttributeError(name)
