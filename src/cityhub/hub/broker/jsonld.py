"""``/jsonldContexts`` (ETSI GS CIM 009 v1.8, clause 5.13): the @context documents the broker holds.

``Hosted`` contexts are added by clients and served by the broker; ``Cached`` ones are copies of
remote contexts (fetched, preloaded from ``CITYHUB_BROKER_CONTEXTS``, and the core context). The
store lives in each hub process: hosted contexts are kept in memory, so after a restart, or on
another hub process, they must be added again.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import unquote

import orjson
from fastapi import APIRouter, Request, Response

from cityhub.hub.broker.context import ContextKind, ContextStore
from cityhub.hub.broker.http import JSON, check_params
from cityhub.kit.errors import BadRequestData, InvalidRequest, NotFound
from cityhub.kit.ids import new_id

router = APIRouter(prefix="/jsonldContexts")

KINDS = ("Hosted", "Cached", "ImplicitlyCreated")


def _store(request: Request) -> ContextStore:
    store: ContextStore = request.app.state.hub.contexts
    return store


def _flag(value: str | None, name: str) -> bool:
    if value in (None, "false"):
        return False
    if value == "true":
        return True
    raise BadRequestData(f"{name} must be true or false, not {value!r}")


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON, headers=headers)


@router.post("", status_code=201, summary="Add an @context")
@router.post("/", status_code=201, include_in_schema=False)
async def add_context(request: Request) -> Response:
    raw = await request.body()
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"the request body is not valid JSON: {error}") from None
    if not isinstance(document, dict) or "@context" not in document:
        raise InvalidRequest("a JSON-LD context document is a JSON object with an @context member")
    local_id = new_id().hex
    path = f"/ngsi-ld/v1/jsonldContexts/{local_id}"
    url = str(request.base_url).rstrip("/") + path
    _store(request).add(url, document, kind="Hosted", local_id=local_id)
    return Response(status_code=201, headers={"Location": path})


@router.get("", summary="List the @contexts held")
@router.get("/", include_in_schema=False)
async def list_contexts(request: Request, details: str | None = None, kind: str | None = None) -> Response:
    check_params(request, frozenset({"details", "kind"}))
    detailed = _flag(details, "details")
    if kind is not None and kind not in KINDS:
        raise BadRequestData(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    entries = _store(request).list(cast(ContextKind | None, kind))
    return _json([entry.details() if detailed else entry.url for entry in entries])


@router.get("/{context_id:path}", summary="Serve an @context")
async def serve_context(request: Request, context_id: str, details: str | None = None) -> Response:
    entry = _store(request).get(unquote(context_id))
    if _flag(details, "details"):
        return _json(entry.details())
    return _json(entry.document)


@router.delete("/{context_id:path}", status_code=204, summary="Delete or reload an @context")
async def delete_context(request: Request, context_id: str, reload: str | None = None) -> Response:
    store = _store(request)
    if _flag(reload, "reload"):
        try:
            await store.reload(unquote(context_id))
        except NotFound:  # reload names a context to fetch again: an unknown one is a bad request
            raise BadRequestData(f"no @context {unquote(context_id)} is held to reload") from None
    else:
        store.remove(unquote(context_id))
    return Response(status_code=204)
