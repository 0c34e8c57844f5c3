"""Context source registrations (ETSI GS CIM 009 v1.8, clauses 5.2.9 and 5.9): create, retrieve,
update, delete, and discovery (query). Forwarding requests to the registered sources is not done:
the broker keeps and answers the registrations, so clients can find the sources themselves.

A registration is kept as the client wrote it, with the @context it was written in; discovery
reads its entity types and attribute names with that context.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from cityhub.hub.broker import events, ngsi, service
from cityhub.hub.broker.context import ActiveContext
from cityhub.hub.broker.history import parse_time_query
from cityhub.hub.broker.http import (
    Broker,
    BrokerRequest,
    check_params,
    context_as_given,
    created,
    page_headers,
    page_size,
    replace_members,
    reworded,
    reworded_selectors,
)
from cityhub.hub.broker.models import BrokerRegistration
from cityhub.hub.broker.q import parse_q, parse_type_selection
from cityhub.kit.errors import AlreadyExists, BadRequestData, InvalidRequest, NotFound
from cityhub.kit.geo import Geometry, GeoRel, geometry_from_query, parse_geometry, parse_georel
from cityhub.kit.ids import new_id
from cityhub.kit.time import parse_datetime, utcnow

router = APIRouter(prefix="/csourceRegistrations")

MODES = frozenset({"inclusive", "exclusive", "redirect", "auxiliary"})
READ_ONLY = frozenset(
    {"status", "timesSent", "timesFailed", "lastSuccess", "lastFailure", "createdAt", "modifiedAt"}
)
GEO_MEMBERS = ("location", "observationSpace", "operationSpace")
QUERY_PARAMS = frozenset(
    {
        "id",
        "type",
        "idPattern",
        "attrs",
        "q",
        "csf",
        "georel",
        "geometry",
        "coordinates",
        "geoproperty",
        "timeproperty",
        "timerel",
        "timeAt",
        "endTimeAt",
        "limit",
        "offset",
        "count",
        "options",
    }
)


def _interval(value: Any, what: str) -> None:
    if not isinstance(value, dict) or "startAt" not in value:
        raise BadRequestData(f"{what} must be an object with startAt (and optionally endAt)")
    try:
        start = parse_datetime(value["startAt"])
        end = parse_datetime(value["endAt"]) if "endAt" in value else None
    except (TypeError, ValueError):
        raise BadRequestData(f"{what}: startAt and endAt must be date-times") from None
    if end is not None and end <= start:
        raise BadRequestData(f"{what}: endAt must be after startAt")


def validate(body: dict[str, Any]) -> None:
    """Refuse with a 400 anything that is not a valid registration (clause 5.2.9)."""
    if body.get("type") != "ContextSourceRegistration":
        raise BadRequestData('a registration must have "type": "ContextSourceRegistration"')
    read_only = set(body) & READ_ONLY
    if read_only:
        raise BadRequestData(f"{', '.join(sorted(read_only))} cannot be set by a client")
    if "id" in body:
        ngsi.require_uri(body["id"], "registration id")
    information = body.get("information")
    if not isinstance(information, list) or not information:
        raise BadRequestData("information must be a non-empty list of RegistrationInfo objects")
    for info in information:
        if not isinstance(info, dict) or not (set(info) & {"entities", "propertyNames", "relationshipNames"}):
            raise BadRequestData("each RegistrationInfo names entities, propertyNames or relationshipNames")
        for selector in info.get("entities", []):
            if not isinstance(selector, dict) or not isinstance(selector.get("type"), str):
                raise BadRequestData("each EntityInfo is an object with a type")
            for name in parse_type_selection(selector["type"]).names:
                ngsi.check_name(name, "entity type")
            if "id" in selector:
                ngsi.require_uri(selector["id"], "EntityInfo id")
            if "idPattern" in selector:
                try:
                    re.compile(str(selector["idPattern"]))
                except re.error:
                    raise BadRequestData(
                        f"idPattern {selector['idPattern']!r} is not a regular expression"
                    ) from None
        for member in ("propertyNames", "relationshipNames"):
            names = info.get(member, [])
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise BadRequestData(f"{member} must be a list of names")
            for name in names:
                ngsi.check_name(name, member)
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or not ngsi.is_uri(endpoint):
        raise BadRequestData("endpoint must be the URI of the context source")
    for member in ("observationInterval", "managementInterval"):
        if member in body:
            _interval(body[member], member)
    for member in GEO_MEMBERS:
        if member in body:
            parse_geometry(body[member])
    if "expiresAt" in body:
        try:
            expires = parse_datetime(body["expiresAt"])
        except (TypeError, ValueError):
            raise BadRequestData(f"expiresAt must be a date-time, not {body['expiresAt']!r}") from None
        if expires <= utcnow():
            raise BadRequestData("expiresAt must be in the future")
    if "mode" in body and body["mode"] not in MODES:
        raise BadRequestData(f"mode must be one of {', '.join(sorted(MODES))}")
    if "operations" in body and not (
        isinstance(body["operations"], list) and all(isinstance(o, str) for o in body["operations"])
    ):
        raise BadRequestData("operations must be a list of operation names")


def show(row: BrokerRegistration, written: ActiveContext, shown: ActiveContext) -> dict[str, Any]:
    """The registration as given, its names as a client using ``shown`` reads them."""
    return present(row.data, written, shown)


def present(data: dict[str, Any], written: ActiveContext, shown: ActiveContext) -> dict[str, Any]:
    """A registration's members (as stored, written in ``written``) as a client using ``shown``
    reads them, with its mode and, once it is past its expiresAt, its status."""
    data = dict(data)
    data["information"] = [
        info
        | {
            key: (reworded_selectors if key == "entities" else reworded)(value, written, shown)
            for key, value in info.items()
            if key in ("entities", "propertyNames", "relationshipNames")
        }
        for info in data["information"]
    ]
    data.setdefault("mode", "inclusive")
    if "expiresAt" in data and parse_datetime(data["expiresAt"]) <= utcnow():
        data["status"] = "expired"
    return data


async def _load(broker: BrokerRequest, registration_id: str) -> BrokerRegistration:
    ngsi.require_uri(registration_id, "registration id")
    row = await broker.session.get(BrokerRegistration, (broker.tenant, registration_id))
    if row is None:
        raise NotFound(f"context source registration {registration_id} does not exist")
    return row


def snapshot(row: BrokerRegistration) -> dict[str, Any]:
    """The registration as a change event carries it: its members and its @context."""
    return {"data": row.data, "context": row.context}


def _fill(row: BrokerRegistration, data: dict[str, Any]) -> None:
    row.data = data
    row.expires_at = parse_datetime(data["expiresAt"]) if "expiresAt" in data else None
    row.modified_at = utcnow()


@router.post("", status_code=201, summary="Register a context source")
@router.post("/", status_code=201, include_in_schema=False)
async def create_registration(broker: Broker) -> Response:
    body = await broker.body()
    if not isinstance(body, dict):
        raise InvalidRequest("a registration must be a JSON object")
    context = await context_as_given(broker, body)
    validate(body)
    data = {key: value for key, value in body.items() if key != "@context"}
    data.setdefault("id", f"urn:ngsi-ld:ContextSourceRegistration:{new_id()}")
    await broker.write_tenant()
    if await broker.session.get(BrokerRegistration, (broker.tenant, data["id"])) is not None:
        raise AlreadyExists(f"context source registration {data['id']} already exists")
    row = BrokerRegistration(registration_id=data["id"], context=context)
    _fill(row, data)
    broker.session.add(row)
    events.record_registration(broker.session, row.registration_id, None, snapshot(row))
    return created(broker, f"/ngsi-ld/v1/csourceRegistrations/{data['id']}")


@router.get("/{registration_id}", summary="Retrieve a context source registration")
async def retrieve_registration(broker: Broker, registration_id: str) -> Response:
    await broker.read_tenant()
    row = await _load(broker, registration_id)
    ctx = await broker.context()
    return broker.render(show(row, await broker.contexts.resolve(row.context), ctx), ctx)


@router.patch("/{registration_id}", status_code=204, summary="Update a context source registration")
async def update_registration(broker: Broker, registration_id: str) -> Response:
    await broker.read_tenant()
    body = await broker.body(merge_patch=True)
    if not isinstance(body, dict) or not (set(body) - {"@context"}):
        raise BadRequestData("a registration fragment must be a non-empty JSON object")
    row = await _load(broker, registration_id)
    if body.get("id", row.registration_id) != row.registration_id:
        raise BadRequestData("the id in the fragment differs from the id in the path")
    context = await context_as_given(broker, body)
    data = replace_members(row.data, body)
    validate(data)
    before = snapshot(row)
    if context is not None:
        row.context = context
    _fill(row, data)
    events.record_registration(broker.session, row.registration_id, before, snapshot(row))
    return Response(status_code=204)


@router.delete("/{registration_id}", status_code=204, summary="Delete a context source registration")
async def delete_registration(broker: Broker, registration_id: str) -> Response:
    await broker.read_tenant()
    row = await _load(broker, registration_id)
    await broker.session.delete(row)
    events.record_registration(broker.session, row.registration_id, snapshot(row), None)
    return Response(status_code=204)


def offers(info: dict[str, Any], wanted: set[str], expand: Any) -> bool:
    """Whether a RegistrationInfo provides any of the ``wanted`` attributes (expanded names); one
    that names no attributes provides them all."""
    names = {expand(n) for n in (*info.get("propertyNames", []), *info.get("relationshipNames", []))}
    return not names or bool(names & wanted)


class Discovery:
    """What a registration query asks for, with names expanded in the request's @context."""

    def __init__(
        self,
        types: set[str] | None,
        attrs: set[str] | None,
        ids: set[str] | None,
        pattern: re.Pattern[str] | None,
        georel: GeoRel | None,
        geometry: Geometry | None,
    ) -> None:
        self.types, self.attrs, self.ids, self.pattern = types, attrs, ids, pattern
        self.georel, self.geometry = georel, geometry

    def matches(self, data: dict[str, Any], expand: Any) -> bool:
        if self.georel is not None and self.geometry is not None:
            location = data.get("location")
            if location is None or not self.georel.matches(self.geometry, parse_geometry(location)):
                return False
        return any(self._info(info, expand) for info in data["information"])

    def _info(self, info: dict[str, Any], expand: Any) -> bool:
        selectors = info.get("entities", [])
        if selectors and not any(self._selector(s, expand) for s in selectors):
            return False
        return self.attrs is None or offers(info, self.attrs, expand)

    def _selector(self, selector: dict[str, Any], expand: Any) -> bool:
        if self.types is not None:
            selection = parse_type_selection(selector["type"])
            if not {expand(n) for n in selection.names} & self.types:
                return False
        if self.ids is not None:
            if "id" in selector and selector["id"] not in self.ids:
                return False
            if "idPattern" in selector and not any(re.search(selector["idPattern"], i) for i in self.ids):
                return False
        return self.pattern is None or "id" not in selector or bool(self.pattern.search(selector["id"]))


@router.get("", summary="Discover context source registrations")
@router.get("/", include_in_schema=False)
async def query_registrations(
    broker: Broker,
    id: str | None = None,  # NGSI-LD names its parameters so
    type: str | None = None,
    idPattern: str | None = None,
    attrs: str | None = None,
    q: str | None = None,
    georel: str | None = None,
    geometry: str | None = None,
    coordinates: str | None = None,
    timerel: str | None = None,
    timeAt: str | None = None,
    endTimeAt: str | None = None,
    timeproperty: str | None = None,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int, Query()] = 0,
    count: bool = False,
) -> Response:
    check_params(broker.request, QUERY_PARAMS)
    if not any((type, attrs, id, idPattern, q, georel)):
        raise BadRequestData("give at least one of type, attrs, id, idPattern, q or a geo-query")
    page = page_size(limit, offset, count)
    ctx = await broker.context()
    if id:
        for item in id.split(","):
            ngsi.require_uri(item.strip(), "entity id")
    if q:
        parse_q(q)
    if timerel or timeAt or endTimeAt:
        parse_time_query(timerel, timeAt, endTimeAt, timeproperty or "observedAt", None)
    pattern = None
    if idPattern:
        try:
            pattern = re.compile(idPattern)
        except re.error:
            raise BadRequestData(f"idPattern {idPattern!r} is not a regular expression") from None
    geo_rel = geo_shape = None
    if georel or geometry or coordinates:
        if not (georel and geometry and coordinates):
            raise BadRequestData("a geo-query needs georel, geometry and coordinates together")
        geo_rel, geo_shape = parse_georel(georel), geometry_from_query(geometry, coordinates)
    selection = parse_type_selection(type) if type else None
    discovery = Discovery(
        types={ctx.expand(n) for n in selection.names} if selection else None,
        attrs={ctx.expand(n.strip()) for n in attrs.split(",") if n.strip()} if attrs else None,
        ids={i.strip() for i in id.split(",")} if id else None,
        pattern=pattern,
        georel=geo_rel,
        geometry=geo_shape,
    )
    found = []
    if not broker.tenant_given or await service.tenant_exists(broker.session, broker.tenant):
        rows = await broker.session.scalars(
            select(BrokerRegistration).order_by(
                BrokerRegistration.created_at, BrokerRegistration.registration_id
            )
        )
        for row in rows:
            own = await broker.contexts.resolve(row.context)
            if discovery.matches(row.data, own.expand):
                found.append(show(row, own, ctx))
    headers = page_headers(broker.request, page, offset, len(found), count)
    return broker.render(found[offset : offset + page], ctx, headers=headers)
