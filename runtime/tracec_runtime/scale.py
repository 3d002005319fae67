"""Routing at scale on an existing engine (Dask, Spark, Ray): one verified router per worker.

The engine ships a *function* to its workers; each worker process verifies the
bundle once (signature, digests, sizes) the first time it needs it, keeps the
router, and routes whole partitions with ``route_batch`` / ``route_texts``::

    import dask.array as da
    from tracec_runtime.scale import route_block
    X = da.from_array(embeddings, chunks=(50_000, 384))
    labels = X.map_blocks(route_block, "bundle", "ci.pub", dtype="int64", drop_axis=1)

See docs/scaling.md for Spark ``mapInPandas`` and Ray ``map_batches``.  Nothing
here imports an engine: the functions take and return numpy arrays and lists.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Optional

import numpy as np

from tracec_runtime.router import Router

__all__ = ["cached_router", "route_block", "route_rows", "verifications"]

_LOCK = threading.Lock()
_ROUTERS: dict[tuple, Router] = {}
_VERIFIED = [0]


def _key(bundle: str, public_key: Any) -> tuple:
    key = public_key
    if isinstance(public_key, (str, os.PathLike)):
        key = ("path", os.path.abspath(os.fspath(public_key)))
    elif isinstance(public_key, dict):
        key = ("jwk",) + tuple(sorted(public_key.items()))
    return (os.path.abspath(os.fspath(bundle)), key, os.getpid())


def cached_router(bundle: str, public_key: Any, allow_unsigned: bool = False) -> Router:
    """This process's router for ``bundle``, verified on first use and kept."""
    key = _key(bundle, public_key) + (allow_unsigned,)
    router = _ROUTERS.get(key)
    if router is None:
        with _LOCK:
            router = _ROUTERS.get(key)
            if router is None:
                router = Router.load(bundle, public_key, allow_unsigned=allow_unsigned)
                _ROUTERS[key] = router
                _VERIFIED[0] += 1
    return router


def verifications() -> int:
    """How many times this process verified a bundle (tests: once per worker)."""
    return _VERIFIED[0]


def route_block(X: np.ndarray, bundle: str, public_key: Any, allow_unsigned: bool = False,
                handled_only: bool = True) -> np.ndarray:
    """Label index per row, ``-1`` where deferred (``handled_only``): a ``map_blocks`` kernel."""
    batch = cached_router(bundle, public_key, allow_unsigned).route_batch(np.asarray(X, np.float32))
    if not handled_only:
        return np.asarray(batch.label_index)
    return np.where(batch.handled, batch.label_index, -1).astype(np.int64)


def route_rows(rows: Any, bundle: str, public_key: Any, allow_unsigned: bool = False,
               kind: str = "embedding") -> dict[str, list]:
    """A partition (embeddings ``(N, D)`` or a list of texts) -> columns of decisions."""
    router = cached_router(bundle, public_key, allow_unsigned)
    if kind == "text":
        fn: Optional[Any] = getattr(router, "route_texts", None)
        if fn is None:
            raise TypeError("this runtime or bundle cannot route text; pass embeddings")
        batch = fn(list(rows))
    else:
        batch = router.route_batch(np.asarray(rows, np.float32))
    names = batch.label_names
    return {"label": batch.labels, "handled": batch.handled.tolist(),
            "score": batch.score.tolist(),
            "surrogate_label": [names[k] for k in batch.label_index.tolist()]}
