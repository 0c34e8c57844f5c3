"""Subscriptions (ETSI GS CIM 009 v1.8, clauses 5.8 and 5.2.12): create, retrieve, query, update,
delete. Delivery is ``notifier``'s.

Subscriptions to context source registrations (clause 5.11, ``csource_subscriptions``) are the same
resource of another kind, kept in the same table: the handlers here take the kind, and each API
finds only subscriptions of its own kind.

A subscription is kept as the client wrote it (its names as given) together with the @context it
was written in, which is the context its names, ``q`` and notifications are read with. An update
replaces the top-level members it names, so a fragment with a ``notification`` must give the whole
notification again; the result is validated as a whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Response
from sqlalchemy import delete, func, select

from cityhub.hub.broker import ngsi, sharing, views
from cityhub.hub.broker.context import ActiveContext
from cityhub.hub.broker.history import parse_time_query
from cityhub.hub.broker.http import (
    FORMATS,
    GEO_JSON,
    JSON,
    JSON_LD,
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
from cityhub.hub.broker.models import ENTITIES, REGISTRATIONS, BrokerNotification, BrokerSubscription
from cityhub.hub.broker.q import TypeSelection, parse_q, parse_scope_q, parse_type_selection
from cityhub.kit.errors import (
    AlreadyExists,
    BadRequestData,
    Forbidden,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
)
from cityhub.kit.geo import parse_georel, query_geometry
from cityhub.kit.ids import new_id
from cityhub.kit.time import isoformat, parse_datetime, utcnow

router = APIRouter()

TRIGGERS = frozenset(
    {
        "entityCreated",
        "entityUpdated",
        "entityDeleted",
        "attributeCreated",
        "attributeUpdated",
        "attributeDeleted",
    }
)
DEFAULT_TRIGGERS = ("attributeCreated", "attributeUpdated")
SCHEMES = frozenset({"http", "https", "mqtt", "mqtts"})
#: Members the broker keeps itself; a client may not set them.
READ_ONLY = frozenset(
    {"status", "createdAt", "modifiedAt", "timesSent", "timesFailed", "lastNotification", "lastFailure"}
)
KNOWN = frozenset(
    {
        "id",
        "type",
        "subscriptionName",
        "description",
        "entities",
        "watchedAttributes",
        "notificationTrigger",
        "timeInterval",
        "q",
        "geoQ",
        "csf",
        "isActive",
        "notification",
        "expiresAt",
        "throttling",
        "temporalQ",
        "scopeQ",
        "lang",
        "jsonldContext",
        "datasetId",
    }
)
#: What a subscription to context source registrations may hold (clause 5.2.12 as 5.11 reads it):
#: no notificationTrigger, scopeQ, lang, datasetId or csf, which concern entities.
CSOURCE_KNOWN = KNOWN - {"notificationTrigger", "scopeQ", "lang", "datasetId", "csf"}
#: Paths of the two kinds, for Location headers.
PATHS = {ENTITIES: "subscriptions", REGISTRATIONS: "csourceSubscriptions"}
NOTIFICATION_KEYS = frozenset(
    {
        "attributes",
        "sysAttrs",
        "format",
        "endpoint",
        "showChanges",
        "pick",
        "omit",
        "join",
        "joinLevel",
        "lang",
        "status",
        "timesSent",
        "timesFailed",
        "lastNotification",
        "lastFailure",
        "lastSuccess",
    }
)


def _names(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BadRequestData(f"{what} must be a non-empty list of names")
    for name in value:
        ngsi.check_name(name, what)
    return value


def _number(value: Any, what: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequestData(f"{what} must be a number")
    if value < 0 or (positive and value == 0):
        raise BadRequestData(f"{what} must be {'greater than' if positive else 'at least'} 0")
    return float(value)


def _selectors(value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise BadRequestData("entities must be a non-empty list of entity selectors")
    for selector in value:
        if not isinstance(selector, dict) or not isinstance(selector.get("type"), str):
            raise BadRequestData("each entity selector is an object with a type")
        selection = parse_type_selection(selector["type"])
        for name in selection.names:
            ngsi.check_name(name, "entity type")
        if "id" in selector:
            ngsi.require_uri(selector["id"], "entity selector id")
        if "idPattern" in selector:
            pattern = selector["idPattern"]
            try:
                re.compile(pattern if isinstance(pattern, str) else "(")
            except re.error:
                raise BadRequestData(f"idPattern {pattern!r} is not a regular expression") from None


def _geo_q(value: Any) -> None:
    if not isinstance(value, dict):
        raise BadRequestData("geoQ must be an object")
    georel, geometry, coordinates = value.get("georel"), value.get("geometry"), value.get("coordinates")
    if not (georel and geometry and coordinates is not None):
        raise BadRequestData("geoQ needs georel, geometry and coordinates")
    parse_georel(georel)
    query_geometry(geometry, coordinates)
    if "geoproperty" in value:
        ngsi.check_name(value["geoproperty"], "geoproperty")


def _endpoint(value: Any) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("uri"), str):
        raise BadRequestData("notification.endpoint must be an object with a uri")
    uri = urlsplit(value["uri"])
    if uri.scheme not in SCHEMES or not uri.hostname:
        raise BadRequestData(
            f"notification.endpoint.uri must be an http(s) or mqtt(s) URL, not {value['uri']!r}"
        )
    accept = value.get("accept", JSON)
    if accept not in (JSON, JSON_LD, GEO_JSON):
        raise BadRequestData(f"notification.endpoint.accept must be {JSON}, {JSON_LD} or {GEO_JSON}")
    for member in ("receiverInfo", "notifierInfo"):
        pairs = value.get(member, [])
        if not isinstance(pairs, list) or not all(
            isinstance(p, dict) and isinstance(p.get("key"), str) and isinstance(p.get("value"), str)
            for p in pairs
        ):
            raise BadRequestData(f"notification.endpoint.{member} must be a list of key/value pairs")
    qos = {p["key"]: p["value"] for p in value.get("notifierInfo", [])}.get("MQTT-QoS")
    if qos is not None and qos not in ("0", "1", "2"):
        raise BadRequestData("MQTT-QoS must be 0, 1 or 2")


def _projection(value: Any, what: str) -> views.Projection:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    if not isinstance(value, str):
        raise BadRequestData(f"notification.{what} must be a string or a list of names")
    return views.parse_projection(value, what)


@dataclass
class Selector:
    """One member of a subscription's ``entities``, ready to test an entity (or a registration's
    entity information) against."""

    types: TypeSelection
    entity_id: str | None
    pattern: re.Pattern[str] | None


def selectors(data: dict[str, Any]) -> list[Selector]:
    """The subscription's ``entities`` (already validated), parsed."""
    found = []
    for selector in data.get("entities", []):
        pattern = selector.get("idPattern")
        found.append(
            Selector(
                parse_type_selection(selector["type"]),
                selector.get("id"),
                re.compile(pattern) if pattern else None,
            )
        )
    return found


#: The NotificationParams of a csource subscription: registrations are notified whole, so the
#: members that pick attributes or shape entities (attributes, sysAttrs, pick, omit, ...) do not apply.
CSOURCE_NOTIFICATION_KEYS = frozenset(
    {
        "endpoint",
        "format",
        "status",
        "timesSent",
        "timesFailed",
        "lastNotification",
        "lastFailure",
        "lastSuccess",
    }
)


def _notification(value: Any, kind: str) -> None:
    if not isinstance(value, dict):
        raise BadRequestData("notification must be an object")
    allowed = NOTIFICATION_KEYS if kind == ENTITIES else CSOURCE_NOTIFICATION_KEYS
    unknown = set(value) - allowed - {"endpoint"}
    if unknown:
        raise BadRequestData(
            f"unknown notification member(s){'' if kind == ENTITIES else ' for a csource subscription'}: "
            f"{', '.join(sorted(unknown))}"
        )
    _endpoint(value.get("endpoint"))
    if kind == REGISTRATIONS and value["endpoint"].get("accept", JSON) == GEO_JSON:
        raise BadRequestData(f"csource notifications are {JSON} or {JSON_LD}, not {GEO_JSON}")
    if "attributes" in value:
        _names(value["attributes"], "notification.attributes")
    if "format" in value and value["format"] not in FORMATS:
        raise BadRequestData("notification.format must be normalized, concise or keyValues")
    for flag in ("sysAttrs", "showChanges"):
        if flag in value and not isinstance(value[flag], bool):
            raise BadRequestData(f"notification.{flag} must be true or false")
    pick = _projection(value["pick"], "pick") if "pick" in value else None
    omit = _projection(value["omit"], "omit") if "omit" in value else None
    if (pick is not None or omit is not None) and "attributes" in value:
        raise BadRequestData("notification.attributes cannot be combined with pick or omit")
    if pick is not None and omit is not None and set(pick) & set(omit):
        raise BadRequestData("a member is both picked and omitted")
    if value.get("join") not in (None, "inline", "flat", "@none"):
        raise BadRequestData("notification.join must be inline, flat or @none")


def _temporal_q(value: Any) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("timerel"), str):
        raise BadRequestData("temporalQ must be an object with timerel and timeAt")
    unknown = set(value) - {"timerel", "timeAt", "endTimeAt", "timeproperty"}
    if unknown:
        raise BadRequestData(f"unknown temporalQ member(s): {', '.join(sorted(unknown))}")
    query = parse_time_query(
        value["timerel"], value.get("timeAt"), value.get("endTimeAt"), value.get("timeproperty"), None
    )
    if query.timeproperty == "deletedAt":
        raise BadRequestData("temporalQ.timeproperty must be observedAt, createdAt or modifiedAt")


def validate(body: dict[str, Any], kind: str = ENTITIES) -> None:
    """Refuse with a 400 anything that is not a valid subscription (clause 5.2.12) of ``kind``."""
    if body.get("type") != "Subscription":
        raise BadRequestData('a subscription must have "type": "Subscription"')
    given = set(body) - {"@context"}
    read_only = given & READ_ONLY
    if read_only:
        raise BadRequestData(f"{', '.join(sorted(read_only))} cannot be set by a client")
    unknown = given - (KNOWN if kind == ENTITIES else CSOURCE_KNOWN)
    if unknown:
        what = "subscription" if kind == ENTITIES else "csource subscription"
        raise BadRequestData(f"unknown {what} member(s): {', '.join(sorted(unknown))}")
    if "id" in body:
        ngsi.require_uri(body["id"], "subscription id")
    if "entities" in body:
        _selectors(body["entities"])
    if "watchedAttributes" in body:
        _names(body["watchedAttributes"], "watchedAttributes")
    if "entities" not in body and "watchedAttributes" not in body:
        raise BadRequestData("a subscription needs entities or watchedAttributes")
    if "notificationTrigger" in body:
        triggers = body["notificationTrigger"]
        if not isinstance(triggers, list) or not triggers or not set(triggers) <= TRIGGERS:
            raise BadRequestData(
                f"notificationTrigger must be a non-empty list of {', '.join(sorted(TRIGGERS))}"
            )
    if "timeInterval" in body:
        _number(body["timeInterval"], "timeInterval", positive=True)
        if "watchedAttributes" in body or "throttling" in body:
            raise BadRequestData("timeInterval excludes watchedAttributes and throttling")
    if "throttling" in body:
        _number(body["throttling"], "throttling", positive=False)
    for member, parse in (("q", parse_q), ("scopeQ", parse_scope_q)):
        if member in body:
            if not isinstance(body[member], str):
                raise BadRequestData(f"{member} must be a string")
            parse(body[member])
    if "geoQ" in body:
        _geo_q(body["geoQ"])
    if kind == REGISTRATIONS and "temporalQ" in body:
        _temporal_q(body["temporalQ"])
    if "isActive" in body and not isinstance(body["isActive"], bool):
        raise BadRequestData("isActive must be true or false")
    if "expiresAt" in body:
        expires = _datetime(body["expiresAt"], "expiresAt")
        if expires <= utcnow():
            raise BadRequestData("expiresAt must be in the future")
    if "jsonldContext" in body:
        ngsi.require_uri(body["jsonldContext"], "jsonldContext")
    if "notification" not in body:
        raise BadRequestData("a subscription needs a notification")
    _notification(body["notification"], kind)


def _datetime(value: Any, what: str) -> datetime:
    try:
        return parse_datetime(value)
    except (TypeError, ValueError):
        raise BadRequestData(f"{what} must be a date-time, not {value!r}") from None


def _apply(row: BrokerSubscription, data: dict[str, Any]) -> None:
    """Fill the columns delivery reads from the subscription's members."""
    row.data = data
    row.active = data.get("isActive", True)
    row.expires_at = _datetime(data["expiresAt"], "expiresAt") if "expiresAt" in data else None
    row.throttling = float(data["throttling"]) if data.get("throttling") else None
    interval = data.get("timeInterval")
    if interval != row.time_interval:
        row.next_run_at = utcnow() if interval else None
    row.time_interval = float(interval) if interval else None
    row.modified_at = utcnow()
    if row.kind == REGISTRATIONS:
        # Every create and update is answered with the registrations that match now (clause
        # 5.11.7): the notifier's next run sends them.
        row.next_run_at = row.modified_at


def status(row: BrokerSubscription) -> str:
    if row.expires_at is not None and row.expires_at <= utcnow():
        return "expired"
    return "active" if row.active else "paused"


def show(
    row: BrokerSubscription, written: ActiveContext, shown: ActiveContext, *, sys_attrs: bool = False
) -> dict[str, Any]:
    """The subscription as given, with its status, its names as a client using ``shown`` reads them."""
    data = dict(row.data)
    if "entities" in data:
        data["entities"] = reworded_selectors(data["entities"], written, shown)
    if "watchedAttributes" in data:
        data["watchedAttributes"] = reworded(data["watchedAttributes"], written, shown)
    if row.kind == ENTITIES:
        data.setdefault("notificationTrigger", list(DEFAULT_TRIGGERS))
    data["status"] = status(row)
    notification = dict(data["notification"])
    if "attributes" in notification:
        notification["attributes"] = reworded(notification["attributes"], written, shown)
    if row.times_sent:
        notification["timesSent"] = row.times_sent
    if row.times_failed:
        notification["timesFailed"] = row.times_failed
    if row.last_notification is not None:
        notification["lastNotification"] = isoformat(row.last_notification)
        notification["status"] = "failed" if row.last_error else "ok"
    if row.last_success is not None:
        notification["lastSuccess"] = isoformat(row.last_success)
    if row.last_failure is not None:
        notification["lastFailure"] = isoformat(row.last_failure)
    data["notification"] = notification
    if sys_attrs:
        data["createdAt"] = isoformat(row.created_at)
        data["modifiedAt"] = isoformat(row.modified_at)
    return data


async def _load(broker: BrokerRequest, subscription_id: str, kind: str) -> BrokerSubscription:
    ngsi.require_uri(subscription_id, "subscription id")
    row = await broker.session.get(BrokerSubscription, (broker.tenant, subscription_id))
    if row is None or row.kind != kind:
        what = "subscription" if kind == ENTITIES else "csource subscription"
        raise NotFound(f"{what} {subscription_id} does not exist")
    return row


async def _check_context(broker: BrokerRequest, data: dict[str, Any]) -> None:
    """A jsonldContext that cannot be fetched now is refused (503) rather than failing later."""
    if "jsonldContext" in data:
        await broker.contexts.resolve(data["jsonldContext"])


async def _require_readable(broker: BrokerRequest, data: dict[str, Any], context: Any, kind: str) -> None:
    """A subscription may watch only entity types its author may read (``sharing``): when some
    types are hidden from the author, it must name its entity types, none of them hidden. Checked
    when it is created or changed."""
    access = sharing.of(broker.session)
    if access is None or not access.hidden or kind != ENTITIES:
        return
    selectors = data.get("entities") or []
    if not selectors or any(not isinstance(s, dict) or "type" not in s for s in selectors):
        raise Forbidden("some entity types are not shared with you: a subscription must name its types")
    ctx = await broker.contexts.resolve(context)
    names = {ctx.expand(name) for s in selectors for name in parse_type_selection(str(s["type"])).names}
    replace(access, writing=False).require_visible(names, "a subscription's entity type")


def _act_for(broker: BrokerRequest, row: BrokerSubscription) -> None:
    """Record whose access the subscription's notifications keep to: the department of a caller
    the data catalog restricts (judged again at each notification, so an approval that ends or a
    dataset that stops being shared stops what it opened); nobody's for an administrator or with
    access control off."""
    access = sharing.of(broker.session)
    row.restricted = access is not None
    row.department_id = access.department if access is not None else None


async def create(broker: BrokerRequest, kind: str) -> Response:
    body = await broker.body()
    if not isinstance(body, dict):
        raise InvalidRequest("a subscription must be a JSON object")
    context = await context_as_given(broker, body)
    validate(body, kind)
    await _check_context(broker, body)
    data = {key: value for key, value in body.items() if key != "@context"}
    data.setdefault("id", f"urn:ngsi-ld:Subscription:{new_id()}")
    await _require_readable(broker, data, context, kind)
    await broker.write_tenant()
    if await broker.session.get(BrokerSubscription, (broker.tenant, data["id"])) is not None:
        raise AlreadyExists(f"subscription {data['id']} already exists")
    row = BrokerSubscription(
        subscription_id=data["id"], kind=kind, context=context, times_sent=0, times_failed=0
    )
    _apply(row, data)
    _act_for(broker, row)
    broker.session.add(row)
    broker.contexts.implicit(context, str(broker.request.base_url))
    return created(broker, f"/ngsi-ld/v1/{PATHS[kind]}/{data['id']}")


async def _shown(
    broker: BrokerRequest, row: BrokerSubscription, ctx: ActiveContext, options: str | None
) -> dict[str, Any]:
    """A subscription as shown to a reader. One written with an array or object @context names
    it as ``jsonldContext``: the ImplicitlyCreated context that stands for it."""
    shown = show(
        row, await broker.contexts.resolve(row.context), ctx, sys_attrs="sysAttrs" in (options or "")
    )
    implicit = broker.contexts.implicit(row.context, str(broker.request.base_url))
    if implicit is not None:
        shown.setdefault("jsonldContext", implicit.url)
    return shown


async def _settled(broker: BrokerRequest) -> None:
    """Deliveries this process finished count before the subscription is read (its notifier
    records outcomes in batches, just after the endpoint answered)."""
    await broker.request.app.state.hub.notifier.settled()


async def retrieve(broker: BrokerRequest, subscription_id: str, options: str | None, kind: str) -> Response:
    await broker.read_tenant()
    await _settled(broker)
    row = await _load(broker, subscription_id, kind)
    ctx = await broker.context()
    return broker.render(await _shown(broker, row, ctx, options), ctx)


async def query(
    broker: BrokerRequest, limit: int | None, offset: int, count: bool, options: str | None, kind: str
) -> Response:
    check_params(broker.request, frozenset({"limit", "offset", "count", "options"}))
    page = page_size(limit, offset, count)
    await _settled(broker)
    ctx = await broker.context()
    of_kind = BrokerSubscription.kind == kind
    total = int(
        await broker.session.scalar(select(func.count()).select_from(BrokerSubscription).where(of_kind)) or 0
    )
    rows = await broker.session.scalars(
        select(BrokerSubscription)
        .where(of_kind)
        .order_by(BrokerSubscription.created_at, BrokerSubscription.subscription_id)
        .offset(offset)
        .limit(page)
    )
    shown = [await _shown(broker, row, ctx, options) for row in rows]
    return broker.render(shown, ctx, headers=page_headers(broker.request, page, offset, total, count))


async def update(broker: BrokerRequest, subscription_id: str, kind: str) -> Response:
    await broker.read_tenant()
    body = await broker.body(merge_patch=True)
    if not isinstance(body, dict) or not (set(body) - {"@context"}):
        raise BadRequestData("a subscription fragment must be a non-empty JSON object")
    row = await _load(broker, subscription_id, kind)
    if body.get("id", row.subscription_id) != row.subscription_id:
        raise BadRequestData("the id in the fragment differs from the id in the path")
    if "type" in body and body["type"] != "Subscription":
        raise BadRequestData('a subscription fragment may only give "type": "Subscription"')
    context = await context_as_given(broker, body)
    data = replace_members(row.data, body)
    data.setdefault("type", "Subscription")
    validate(data, kind)
    await _check_context(broker, data)
    await _require_readable(broker, data, context if context is not None else row.context, kind)
    if context is not None:
        row.context = context
    _apply(row, data)
    _act_for(broker, row)
    return Response(status_code=204)


async def remove(broker: BrokerRequest, subscription_id: str, kind: str) -> Response:
    await broker.read_tenant()
    row = await _load(broker, subscription_id, kind)
    await broker.session.execute(
        delete(BrokerNotification).where(
            BrokerNotification.tenant_code == broker.tenant,
            BrokerNotification.subscription_id == row.subscription_id,
        )
    )
    await broker.session.delete(row)
    return Response(status_code=204)


@router.post("/subscriptions", status_code=201, summary="Create a subscription")
@router.post("/subscriptions/", status_code=201, include_in_schema=False)
async def create_subscription(broker: Broker) -> Response:
    return await create(broker, ENTITIES)


@router.get("/subscriptions/{subscription_id}", summary="Retrieve a subscription")
async def retrieve_subscription(broker: Broker, subscription_id: str, options: str | None = None) -> Response:
    return await retrieve(broker, subscription_id, options, ENTITIES)


@router.get("/subscriptions", summary="Query subscriptions")
@router.get("/subscriptions/", include_in_schema=False)
async def query_subscriptions(
    broker: Broker,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int, Query()] = 0,
    count: bool = False,
    options: str | None = None,
) -> Response:
    return await query(broker, limit, offset, count, options, ENTITIES)


@router.patch("/subscriptions/{subscription_id}", status_code=204, summary="Update a subscription")
async def update_subscription(broker: Broker, subscription_id: str) -> Response:
    return await update(broker, subscription_id, ENTITIES)


@router.delete("/subscriptions/{subscription_id}", status_code=204, summary="Delete a subscription")
async def delete_subscription(broker: Broker, subscription_id: str) -> Response:
    return await remove(broker, subscription_id, ENTITIES)


@router.api_route("/subscriptions/", methods=["PATCH", "DELETE"], include_in_schema=False)
async def missing_subscription_id() -> Response:
    raise MethodNotAllowed("PATCH and DELETE need a subscription id: /subscriptions/{subscriptionId}")
