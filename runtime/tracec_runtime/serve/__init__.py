"""The routing service (``tracec-runtime[serve]``): HTTP over a verified bundle, watched live.

Imports the router, never the other way round; ``import tracec_runtime`` never
pulls the HTTP stack (Starlette, uvicorn), which only ``serve.app`` imports.
"""
