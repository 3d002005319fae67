"""``tracec-runtime`` (also ``python -m tracec_runtime``): verify a bundle, route embeddings.

For a deployer who installed only the runtime (numpy, onnxruntime, PyNaCl): argparse, no
compiler.  The exit codes and the ``--json`` error document are defined here, once, and the
compiler's ``tracec`` command line uses the same ones (docs/architecture.md, "Exit codes"):

0 ok / gate open / valid, 1 gate refused or bundle invalid, 2 usage, 3 bad input,
4 internal error, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Optional

from tracec_runtime.errors import RouteInputError, Terminated, TracecError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_SIGINT, EXIT_SIGTERM = 130, 143

#: Attributes of typed errors copied into the ``--json`` error document when present.
ERROR_FIELDS = ("path", "line", "field", "row", "bundle", "problems", "name", "owner",
                "expected", "got", "explanation")


class UsageError(Exception):
    """A command-line usage error (exit 2)."""

    exit_code = EXIT_USAGE


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return repr(value)


def error_document(exc: BaseException, exit_code: int, message: Optional[str] = None,
                   type_name: Optional[str] = None) -> dict:
    """``{"ok": false, "error": {type, exit_code, message, <structured fields>}}``."""
    error: dict[str, Any] = {"type": type_name or type(exc).__name__, "exit_code": exit_code,
                             "message": message if message is not None else str(exc)}
    for name in ERROR_FIELDS:
        if name in vars(exc):
            error[name] = _json_safe(vars(exc)[name])
    return {"ok": False, "error": error}


def print_json(doc: dict) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False), flush=True)


def write_traceback(exc: BaseException, prog: str) -> Path:
    """Write ``exc``'s traceback to a new file under the temp directory; return its path."""
    fd, name = tempfile.mkstemp(prefix=f"{prog}-traceback-", suffix=".txt")
    with open(fd, "w", encoding="utf-8") as f:
        f.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return Path(name)


def report_failure(exc: BaseException, *, as_json: bool, debug: bool, prog: str) -> int:
    """Turn any exception into its exit code: one line (or the diagnostics) on stderr, and the
    error document on stdout with ``--json``.  Unexpected exceptions are internal errors (4):
    their traceback goes to a file (``--debug`` prints it too)."""
    message = None
    if isinstance(exc, KeyboardInterrupt):
        code, message, type_name = EXIT_SIGINT, "interrupted (SIGINT)", "Interrupted"
        line = "interrupted: nothing was written"
    elif isinstance(exc, Terminated):
        code, message, type_name = EXIT_SIGTERM, "terminated (SIGTERM)", "Terminated"
        line = "terminated: nothing was written"
    elif isinstance(exc, (TracecError, UsageError)):
        code, type_name = int(exc.exit_code), None
        detail = exc.diagnostics() if isinstance(exc, TracecError) else str(exc)
        line = f"{'usage' if isinstance(exc, UsageError) else 'error'}: {detail}"
    else:
        code, type_name = EXIT_INTERNAL, None
        where = write_traceback(exc, prog)
        message = f"internal error: {type(exc).__name__}: {exc}"
        line = f"{message} (traceback written to {where}; rerun with --debug to print it)"
        if debug:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(line, file=sys.stderr, flush=True)
    if as_json:
        print_json(error_document(exc, code, message, type_name))
    return code


def _raise_terminated(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Terminated(signum)


# ------------------------------------------------------------------------- commands


def _verify(args) -> tuple[dict, str, int]:
    from tracec_runtime.verify import verify_bundle

    v = verify_bundle(args.bundle, public_key=args.public_key, allow_unsigned=args.allow_unsigned)
    policy = v.manifest["policy"]
    doc = {"ok": True, "bundle": str(args.bundle), "valid": True, "signed": v.signed,
           "files": sorted(v.files), "gate": policy["gate"], "alpha": policy["alpha"],
           "tau": policy["tau"]}
    text = (f"OK: {args.bundle} ({len(v.files)} files, "
            f"{'signature valid' if v.signed else 'UNSIGNED'}; gate {policy['gate']})")
    return doc, text, EXIT_OK


def _route(args) -> tuple[dict, str, int]:
    import numpy as np

    from tracec_runtime.router import Router

    router = Router.load(args.bundle, args.public_key, allow_unsigned=args.allow_unsigned)
    try:
        X = np.load(args.embeddings, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise RouteInputError(f"{args.embeddings}: expected a readable .npy array of embeddings "
                              f"(float, rows x {router.dimension}); {exc}") from None
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.floating):
        raise RouteInputError(f"{args.embeddings}: expected a 2-D float array "
                              f"(rows x {router.dimension}); found shape {X.shape}, dtype {X.dtype}")
    batch = router.route_batch(X.astype(np.float32, copy=False))
    decisions = decision_rows(batch, router.labels)
    n, handled = len(decisions), int(np.sum(batch.handled))
    summary = {"rows": n, "handled": handled, "coverage": f"{handled / n:.4f}" if n else "0",
               "gate": router.manifest["policy"]["gate"]}
    doc = {"ok": True, "bundle": str(args.bundle), "summary": summary, "decisions": decisions}
    return doc, ", ".join(f"{k} {v}" for k, v in summary.items()), EXIT_OK


def decision_rows(batch, labels: list) -> list[dict]:
    """One ``{"row", "label", "handled", "surrogate_label", "score", "flag"}`` per routed row
    (``label`` is None when deferred); the ``decisions`` of both CLIs' route documents."""
    flags = getattr(batch, "flags", ()) or (None,) * len(batch)
    return [{"row": i, "label": labels[int(k)] if h else None, "handled": bool(h),
             "surrogate_label": labels[int(k)], "score": format(float(s), ".6g"), "flag": f}
            for i, (k, h, s, f) in enumerate(zip(batch.label_index, batch.handled, batch.score,
                                                 flags))]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print and exit 2 itself
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from tracec_runtime import __version__

    parser = _Parser(prog="tracec-runtime", description="Verify a tracec bundle; route embeddings. "
                     "Also: `tracec-runtime serve BUNDLE` (the HTTP service, extra [serve]) and "
                     "`tracec-runtime watch URL...` (the live bound over replicas).")
    parser.add_argument("--version", action="version", version=f"tracec-runtime {__version__}")
    parser.add_argument("--debug", action="store_true", help="print tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, fn, help_ in (("verify", _verify, "verify a bundle's signature and every digest"),
                            ("route", _route, "route a .npy of embeddings through a bundle")):
        p = sub.add_parser(name, help=help_)
        p.set_defaults(run=fn)
        p.add_argument("bundle", type=Path)
        if name == "route":
            p.add_argument("--embeddings", required=True, type=Path, help="rows x dimension .npy")
        p.add_argument("--public-key", type=Path, help="the deployer's NAME.pub")
        p.add_argument("--allow-unsigned", action="store_true",
                       help="UNSAFE: accept a bundle without a signature (digests still checked)")
        p.add_argument("--json", dest="as_json", action="store_true",
                       help="print one JSON document on stdout (also on failure)")
        p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


#: Subcommands with their own argument parsers (the service, the fleet watch): delegated whole.
DELEGATED = {"serve": ("tracec_runtime.serve.main", "main"),
             "watch": ("tracec_runtime.serve.watch_cmd", "main")}


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:  # `tracec-runtime serve BUNDLE ...` (extra [serve])
        import importlib

        module, fn = DELEGATED[argv[0]]
        return getattr(importlib.import_module(module), fn)(argv[1:])
    as_json, debug = "--json" in argv, "--debug" in argv
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        args = build_parser().parse_args(argv)
        if args.public_key is None and not args.allow_unsigned:
            raise UsageError(f"tracec-runtime {args.command}: pass --public-key NAME.pub, or "
                             f"--allow-unsigned to skip the signature check")
        doc, text, code = args.run(args)
        print_json(doc) if args.as_json else print(text, flush=True)
        return code
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    except BaseException as exc:  # noqa: BLE001 - the one place errors become exit codes
        return report_failure(exc, as_json=as_json, debug=debug, prog="tracec-runtime")
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
