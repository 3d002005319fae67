"""The HTTP layer (Starlette): endpoints, limits, one error shape, metrics per request.

Routing on embeddings runs inline (microseconds); text requests go through
the micro-batcher into a worker thread.  Nothing a client sends reaches the
router unvalidated, and every failure is rendered as
``{"error": {"status", "code", "message", "field"}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from typing import Awaitable, Callable, Optional, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tracec_runtime.errors import TracecError
from tracec_runtime.serve.batcher import MicroBatcher
from tracec_runtime.serve.bodies import (Limits, RequestError, parse_feedback, parse_json,
                                         parse_predict, parse_route)
from tracec_runtime.serve.openapi import OPENAPI
from tracec_runtime.serve.service import Service

__all__ = ["create_app"]

log = logging.getLogger("tracec.serve")


async def _within(awaitable, seconds: float):
    """``await`` with a deadline; ``asyncio.timeout`` (3.11+) creates no extra task per request."""
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


def _json(doc: dict, status: int = 200) -> Response:
    return Response(json.dumps(doc, separators=(",", ":"), allow_nan=False), status,
                    media_type="application/json")


async def _body(request: Request, limits: Limits, timeout: float) -> dict:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, "bad_request", "Content-Length must be a decimal integer")
        if int(declared) > limits.max_body_bytes:
            raise RequestError(413, "body_too_large", f"request body is {declared} bytes; "
                               f"at most {limits.max_body_bytes}")

    async def read() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise RequestError(413, "body_too_large",
                                   f"request body exceeds {limits.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        raw = await _within(read(), timeout)
    except asyncio.TimeoutError:
        raise RequestError(408, "request_timeout", f"request body not received within {timeout:g} s") from None
    return parse_json(raw, limits)


def create_app(service: Service, limits: Limits = Limits(), *, admin_token: Optional[str] = None,
               request_timeout: float = 10.0, batcher: Optional[MicroBatcher] = None,
               on_startup: Sequence[Callable[[], Awaitable[None]]] = (),
               on_shutdown: Sequence[Callable[[], None]] = ()) -> Starlette:
    batcher = batcher or MicroBatcher()
    metrics = service.metrics

    def endpoint(name: str):
        def wrap(fn):
            async def handler(request: Request) -> Response:
                start = time.perf_counter()
                try:
                    response = await _within(fn(request), request_timeout)
                except RequestError as exc:
                    response = _json(exc.document(), exc.status)
                except asyncio.TimeoutError:
                    response = _json(RequestError(503, "timeout", f"request not served within "
                                                  f"{request_timeout:g} s").document(), 503)
                except ClientDisconnect:  # the client went away mid-body: nobody to answer
                    response = Response(status_code=400)
                except TracecError as exc:  # typed runtime errors: the input, as the router saw it
                    response = _json(RequestError(422, "route_input", str(exc)).document(), 422)
                except Exception:  # never crash the process on a request
                    log.exception("internal error on %s", name)
                    response = _json(RequestError(500, "internal", "internal error (logged)").document(), 500)
                metrics.inc("tracec_requests_total", endpoint=name, status=str(response.status_code))
                metrics.observe("tracec_request_duration_seconds", time.perf_counter() - start,
                                endpoint=name)
                return response
            return handler
        return wrap

    async def _routed(req) -> list[dict]:
        if req.kind == "text":
            cur = service.current()
            fn = getattr(cur.router, "route_texts", None)
            if fn is None:
                return service.route(req)[1]
            view = await batcher.submit(fn, req.texts)
            return service.route(req, texts_fn=lambda _texts: view)[1]
        return service.route(req)[1]

    @endpoint("route")
    async def route(request: Request) -> Response:
        doc = await _body(request, limits, request_timeout)
        req = parse_route(doc, service.current().router.dimension, limits)
        decisions = await _routed(req)
        return _json({"decisions": decisions, "bundle": service.current().digest})

    def _predict(batch: bool):
        async def predict(request: Request) -> Response:
            doc = await _body(request, limits, request_timeout)
            req = parse_predict(doc, service.current().router.dimension, limits, batch)
            ds = service.route(req)[1]
            shaped = [{"label": d["surrogate_label"] if d["handled"] else None,
                       "decision": "handled" if d["handled"] else "deferred",
                       "accept_score": d["score"], "stage": "surrogate" if d["handled"] else "teacher",
                       "request_id": d["request_id"], "audit": d["audit"]} for d in ds]
            if not batch:
                return _json(shaped[0])
            return _json({"labels": [s["label"] for s in shaped],
                          "decisions": [s["decision"] for s in shaped],
                          "handled": [d["handled"] for d in ds],
                          "accept_scores": [s["accept_score"] for s in shaped],
                          "request_ids": [d["request_id"] for d in ds]})
        return predict

    @endpoint("feedback")
    async def feedback(request: Request) -> Response:
        doc = await _body(request, limits, request_timeout)
        results = service.feedback(parse_feedback(doc, limits))
        return _json({"results": results, "live": service.status().get("live")})

    @endpoint("healthz")
    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    @endpoint("readyz")
    async def readyz(request: Request) -> Response:
        st = service.status()
        return _json(st, 200 if st["ready"] else 503)

    @endpoint("metrics")
    async def metrics_ep(request: Request) -> Response:
        service.refresh_gauges()
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @endpoint("openapi")
    async def openapi(request: Request) -> Response:
        return _json(OPENAPI)

    @endpoint("reload")
    async def reload(request: Request) -> Response:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {admin_token}".encode()):
            raise RequestError(401, "unauthorized", "admin endpoints need 'Authorization: Bearer <token>'")
        ok, message = await asyncio.get_running_loop().run_in_executor(None, service.reload)
        if not ok:
            raise RequestError(409, "reload_refused", f"new bundle refused, old one keeps serving: {message}")
        return _json({"reloaded": True, "bundle": message})

    routes = [Route("/v1/route", route, methods=["POST"]),
              Route("/predict", endpoint("predict")(_predict(False)), methods=["POST"]),
              Route("/predict_batch", endpoint("predict_batch")(_predict(True)), methods=["POST"]),
              Route("/v1/feedback", feedback, methods=["POST"]),
              Route("/healthz", healthz, methods=["GET"]),
              Route("/readyz", readyz, methods=["GET"]),
              Route("/metrics", metrics_ep, methods=["GET"]),
              Route("/openapi.json", openapi, methods=["GET"])]
    if admin_token:
        routes.append(Route("/v1/admin/reload", reload, methods=["POST"]))

    async def http_error(request: Request, exc: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _json(RequestError(exc.status_code, code, str(exc.detail)).document(), exc.status_code)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        for hook in on_startup:
            await hook()
        yield
        await batcher.close()
        for hook in on_shutdown:  # after in-flight requests finished: flush logs
            hook()

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error},
                     lifespan=lifespan)
