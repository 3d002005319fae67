"""``tracec-runtime serve BUNDLE --public-key KEY``: the routing service's command line.

Binds 127.0.0.1 by default; any other address must be asked for with
``--host``.  SIGHUP (or ``POST /v1/admin/reload`` with ``--admin-token-file``)
verifies the bundle again and swaps it in only if it verifies; SIGTERM
stops accepting, finishes requests in flight, flushes the decision log.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Optional

__all__ = ["main", "build_parser"]

log = logging.getLogger("tracec.serve")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tracec-runtime serve", description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("--public-key", help="the deployer's NAME.pub (never read from the bundle)")
    p.add_argument("--allow-unsigned", action="store_true", help="UNSAFE: serve an unsigned bundle")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--audit-rate", type=float, default=0.02, help="share of handled requests marked audit")
    p.add_argument("--audit-seed", type=int, default=0)
    p.add_argument("--watch-delta", type=float, help="error of the live bound (default: the bundle's delta)")
    p.add_argument("--admin-token-file", help="enables /v1/admin/*; the file holds the bearer token")
    p.add_argument("--decision-log", help="write decisions and feedback as rotating JSONL here")
    p.add_argument("--decision-log-max-mb", type=float, default=64.0)
    p.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024)
    p.add_argument("--max-batch", type=int, default=1024)
    p.add_argument("--max-text-chars", type=int, default=20_000)
    p.add_argument("--request-timeout", type=float, default=10.0)
    p.add_argument("--batch-wait-ms", type=float, default=2.0, help="micro-batching wait for text requests")
    p.add_argument("--embed-calls", type=int, default=1,
                   help="text micro-batches embedded at once, each in its own worker thread (2 on an idle 2-core host)")
    p.add_argument("--log-level", default="info")
    return p


def _token(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    token = Path(path).read_text(encoding="utf-8").strip()
    if len(token) < 16:
        raise SystemExit(f"error: {path}: the admin token must be at least 16 characters")
    return token


def main(argv: Optional[list[str]] = None) -> int:
    try:
        import uvicorn  # noqa: F401  (the serve extra)
        import starlette  # noqa: F401
    except ImportError:
        print("error: the service needs the serve extra: pip install 'tracec-runtime[serve]'",
              file=sys.stderr)
        return 2
    import uvicorn

    from tracec_runtime.errors import TracecError
    from tracec_runtime.serve.app import create_app
    from tracec_runtime.serve.batcher import MicroBatcher
    from tracec_runtime.serve.bodies import Limits
    from tracec_runtime.serve.decision_log import DecisionLog
    from tracec_runtime.serve.service import Service

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.public_key is None and not args.allow_unsigned:
        print("error: pass --public-key NAME.pub, or --allow-unsigned to skip the signature check",
              file=sys.stderr)
        return 2
    dlog = DecisionLog(args.decision_log, int(args.decision_log_max_mb * 1e6)) if args.decision_log else None
    service = Service(args.bundle, args.public_key, allow_unsigned=args.allow_unsigned,
                      audit_rate=args.audit_rate, audit_seed=args.audit_seed,
                      watch_delta=args.watch_delta, decision_log=dlog)
    try:
        service.load()
    except TracecError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return exc.exit_code
    limits = Limits(args.max_body_bytes, args.max_batch, args.max_text_chars)
    async def on_startup() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, service.reload))
        log.info("serving %s (bundle %s) on http://%s:%d", args.bundle, service.loaded.digest,
                 args.host, args.port)

    app = create_app(service, limits, admin_token=_token(args.admin_token_file),
                     request_timeout=args.request_timeout,
                     batcher=MicroBatcher(max_wait_s=args.batch_wait_ms / 1000.0,
                                           max_inflight=args.embed_calls),
                     on_startup=[on_startup], on_shutdown=[dlog.close] if dlog else [])
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            access_log=False, timeout_graceful_shutdown=30, lifespan="on")
    uvicorn.Server(config).run()  # on SIGTERM uvicorn drains, then re-raises it: exit 143
    return 0


if __name__ == "__main__":
    sys.exit(main())
