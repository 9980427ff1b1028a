"""Direct access to the served model's index over HTTP: upsert, get and delete points by id (pipeline/store/points.py)
in the collection the model searches, so a served answer can use a point as soon as it is written.

A model carries a private copy of its index per worker (pipeline/serving/snapshot.py): with several workers, or on
restart, points written here are not shared; serve one worker, or a model whose settings name a Qdrant server
(store.url), when you manage the index this way.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import StoreError
from pipeline.serving.model_calls import ApiError
from pipeline.serving.served import ServedModel
from pipeline.store.points import PointRecord, delete_points, get_points, upsert_points

MAX_POINTS = 1000  # per request


def _index(served: ServedModel) -> tuple[Any, Any]:
    store, settings = getattr(served.python_model, "store", None), getattr(served.python_model, "settings", None)
    if store is None or settings is None:
        raise ApiError(404, "no_index", "This model has no index to access.")
    return store, settings


def _ids(body: Any) -> list[str]:
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, (str, int)) for i in ids):
        raise ApiError(400, "invalid_request", 'The body must be {"ids": ["id", ...]} with at least one id.',
                       param="ids")
    if len(ids) > MAX_POINTS:
        raise ApiError(400, "invalid_request", f"At most {MAX_POINTS} ids per request.", param="ids")
    return [str(i) for i in ids]


def upsert(served: ServedModel, body: Any) -> dict[str, Any]:
    """`{"points": [{"id", "text", "metadata"?, "vector"?}, ...]}`; texts without a vector are embedded with the
    model's embedder, which the collection records."""
    points = body.get("points") if isinstance(body, dict) else None
    if not isinstance(points, list) or not points:
        raise ApiError(400, "invalid_request", 'The body must be {"points": [{"id": ..., "text": ...}, ...]}.',
                       param="points")
    if len(points) > MAX_POINTS:
        raise ApiError(400, "invalid_request", f"At most {MAX_POINTS} points per request.", param="points")
    store, settings = _index(served)
    try:
        records = [PointRecord.from_mapping(point, f"points[{n}]") for n, point in enumerate(points)]
        embedder = None
        if any(record.vector is None for record in records):
            from pipeline.retrieval.embed import load_embedder

            embedder = load_embedder(settings.embedder, settings.embedder_dtype)
        written = upsert_points(store, settings.collection, records, embedder=embedder,
                                embedder_name=settings.embedder if embedder is not None else None)
    except StoreError as exc:
        raise ApiError(400, "invalid_points", str(exc), param="points") from None
    return {"upserted": written, "collection": settings.collection}


def get(served: ServedModel, body: Any) -> dict[str, Any]:
    store, settings = _index(served)
    ids = _ids(body)
    found = get_points(store, settings.collection, ids)
    return {"points": [found[i] for i in ids if i in found], "missing": [i for i in ids if i not in found]}


def delete(served: ServedModel, body: Any) -> dict[str, Any]:
    store, settings = _index(served)
    ids = _ids(body)
    deleted = delete_points(store, settings.collection, ids)
    return {"deleted": deleted, "missing": [i for i in ids if i not in set(deleted)]}
