"""The service's OpenAPI 3.1 document (served at /openapi.json; checked into schemas/)."""

from __future__ import annotations

__all__ = ["OPENAPI"]

_ERROR = {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {
    "error": {"type": "object", "required": ["status", "code", "message", "field"],
              "additionalProperties": False, "properties": {
                  "status": {"type": "integer"}, "code": {"type": "string"},
                  "message": {"type": "string"}, "field": {"type": ["string", "null"]}}}}}
_VECTOR = {"type": "array", "items": {"type": "number"}}
_DECISION = {"type": "object", "additionalProperties": False,
             "required": ["request_id", "label", "handled", "score", "reason", "audit", "surrogate_label",
                          "truncated"],
             "properties": {
                 "request_id": {"type": "string"}, "label": {"type": ["string", "null"]},
                 "handled": {"type": "boolean"}, "score": {"type": "number"},
                 "reason": {"type": "string", "enum": ["handled", "below_tau", "out_of_distribution",
                                                      "rule:never_handle", "empty", "invalid_text", "gate_closed",
                                                      "live_gate_closed"]},
                 "truncated": {"type": "boolean", "description": "text cut at the embedder's maximum length"},
                 "audit": {"type": "boolean", "description": "ask the LLM too and POST /v1/feedback"},
                 "surrogate_label": {"type": "string"}}}


def _body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _answers(ok: dict, *errors: int) -> dict:
    out = {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}}}
    for code in errors:
        out[str(code)] = {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
    return out


_ROUTE_IN = {"type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
             "properties": {"text": {"type": "string"}, "texts": {"type": "array", "items": {"type": "string"}},
                            "embedding": _VECTOR, "embeddings": {"type": "array", "items": _VECTOR}}}
_FEEDBACK_ITEM = {"type": "object", "additionalProperties": False, "required": ["request_id", "teacher"],
                  "properties": {"request_id": {"type": "string"}, "teacher": {"type": "string"}}}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "tracec-runtime serve", "version": "1"},
    "paths": {
        "/v1/route": {"post": {"summary": "Route text(s) or embedding(s)", "requestBody": _body(_ROUTE_IN),
                               "responses": _answers({"type": "object", "properties": {
                                   "decisions": {"type": "array", "items": _DECISION},
                                   "bundle": {"type": "string"}}}, 400, 413, 422, 503)}},
        "/predict": {"post": {"summary": "TRACER-compatible single prediction",
                              "requestBody": _body({"type": "object", "required": ["embedding"],
                                                    "additionalProperties": False,
                                                    "properties": {"embedding": _VECTOR}}),
                              "responses": _answers({"type": "object"}, 400, 413, 422, 503)}},
        "/predict_batch": {"post": {"summary": "TRACER-compatible batch prediction",
                                    "requestBody": _body({"type": "object", "required": ["embeddings"],
                                                          "additionalProperties": False,
                                                          "properties": {"embeddings": {"type": "array", "items": _VECTOR}}}),
                                    "responses": _answers({"type": "object"}, 400, 413, 422, 503)}},
        "/v1/feedback": {"post": {"summary": "The teacher's label for routed request(s)",
                                  "requestBody": _body({"oneOf": [_FEEDBACK_ITEM, {
                                      "type": "object", "additionalProperties": False, "required": ["feedback"],
                                      "properties": {"feedback": {"type": "array", "items": _FEEDBACK_ITEM}}}]}),
                                  "responses": _answers({"type": "object"}, 400, 413, 422, 503)}},
        "/healthz": {"get": {"summary": "Process up", "responses": _answers({"type": "object"})}},
        "/readyz": {"get": {"summary": "Bundle verified; gate state, live bound, drift",
                            "responses": _answers({"type": "object"}, 503)}},
        "/metrics": {"get": {"summary": "Prometheus text format",
                             "responses": {"200": {"description": "OK", "content": {"text/plain": {}}}}}},
        "/v1/admin/reload": {"post": {"summary": "Verify and swap in the bundle (only with --admin-token-file)",
                                      "responses": _answers({"type": "object"}, 401, 409)}},
    },
}


def document_bytes() -> bytes:
    """The checked-in form (``schemas/serve.openapi.json``): sorted keys, 2-space indent."""
    import json

    return (json.dumps(OPENAPI, indent=2, sort_keys=True) + "\n").encode("utf-8")


if __name__ == "__main__":  # python -m tracec_runtime.serve.openapi > schemas/serve.openapi.json
    import sys

    sys.stdout.buffer.write(document_bytes())
