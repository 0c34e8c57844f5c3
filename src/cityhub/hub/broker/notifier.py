"""Notifications: from entity changes on the bus to HTTP and MQTT subscribers.

Two stages, so that a slow or dead subscriber never slows down a writer or another subscriber:

1. **Matching** (:meth:`Notifier.on_changes`, a shared bus consumer): each :class:`EntitiesChanged`
   event is matched against the tenant's subscriptions; for every subscription it concerns, one
   notification is rendered, as of the change, and queued as a ``broker_notification`` row. The
   event's receipt is written in the same transaction, so a redelivered event queues nothing twice.
   With NATS the consumer is shared: each event is matched by one hub process.
2. **Delivery** (:meth:`Notifier.deliver_due`, a loop in every hub process): due rows are claimed
   with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), sent concurrently with a timeout, then
   deleted, or retried later with a doubling delay until the attempts run out. Rows of one
   subscription claimed together go out as one notification (:func:`merged`), so under load a
   subscriber gets fewer, larger notifications instead of a growing queue. A process that dies
   while sending leaves rows whose lease ends, and another process (or this one after restart)
   sends them. Subscriptions with ``timeInterval`` are run from the same loop.

A subscription's status counters (timesSent, timesFailed, lastNotification, lastSuccess,
lastFailure) are updated with each attempt.

A subscription made by a caller the data catalog restricts keeps to that caller's department's
access as it is at each change, not as it was when the subscription was made
(:meth:`Notifier.access_of`, once per department and event): changes of entity types the
department may no longer read are not notified, and of types it reads in part only the attributes
it may see are shown, matched and counted as changed.

Subscriptions to context source registrations (``csource_notify``) go the same way: each
:class:`RegistrationsChanged` event is matched against them (:meth:`Notifier.on_registrations`)
and their notifications are queued, delivered and counted like the others. The answer to a new or
changed csource subscription (the registrations that match it then) is a run of the periodic loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import aiomqtt
import orjson
from sqlalchemy import Table, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.bus.inbox import first_delivery
from cityhub.hub.broker import ngsi, protection, service, sharing, views
from cityhub.hub.broker.context import ActiveContext, ContextStore, link_header
from cityhub.hub.broker.csource_notify import (
    NEWLY_MATCHING,
    NO_LONGER_MATCHING,
    UPDATED,
    CsourceCompiled,
    compile_csource_subscription,
)
from cityhub.hub.broker.delivery import DeliveryError, Endpoints
from cityhub.hub.broker.events import EntitiesChanged, RegistrationsChanged
from cityhub.hub.broker.http import FORMATS, GEO_JSON, JSON, JSON_LD
from cityhub.hub.broker.models import (
    ENTITIES,
    REGISTRATIONS,
    BrokerNotification,
    BrokerRegistration,
    BrokerSubscription,
)
from cityhub.hub.broker.ngsi import Context
from cityhub.hub.broker.q import QExpr, ScopeExpr, parse_q, parse_scope_q
from cityhub.hub.broker.subscriptions import DEFAULT_TRIGGERS, Selector, status
from cityhub.hub.broker.subscriptions import selectors as parse_selectors
from cityhub.kit.db import UTCDateTime, scope_to_tenant
from cityhub.kit.errors import HubError
from cityhub.kit.geo import (
    Geometry,
    GeoRel,
    parse_geometry,
    parse_georel,
    query_geometry,
)
from cityhub.kit.ids import new_id
from cityhub.kit.time import isoformat, parse_datetime, utcnow
from cityhub.kit.web import TENANT_HEADER

log = logging.getLogger(__name__)

CONSUMER = "broker-notify"
#: entities whose selection by the subscriptions is kept, per tenant
SELECTION_CACHE = 200_000
_Selected = tuple[str, tuple[str, ...]]  # an entity's id and types
_Index = tuple[dict[str, list[int]], list[int]]  # subscriptions by the types they name; the others
NULL = "urn:ngsi-ld:null"


_SUBSCRIPTIONS: Table = BrokerSubscription.__table__  # type: ignore[assignment]
#: One statement, executed for many subscriptions at once, that adds a batch's outcomes.
_COUNT = (
    _SUBSCRIPTIONS.update()
    .where(
        _SUBSCRIPTIONS.c.tenant_code == bindparam("b_tenant"),
        _SUBSCRIPTIONS.c.subscription_id == bindparam("b_subscription"),
    )
    .values(
        times_sent=_SUBSCRIPTIONS.c.times_sent + bindparam("b_sent"),
        times_failed=_SUBSCRIPTIONS.c.times_failed + bindparam("b_failed"),
        last_notification=bindparam("b_now"),
        last_success=func.coalesce(
            bindparam("b_success", type_=UTCDateTime()), _SUBSCRIPTIONS.c.last_success
        ),
        last_failure=func.coalesce(
            bindparam("b_failure", type_=UTCDateTime()), _SUBSCRIPTIONS.c.last_failure
        ),
        last_error=bindparam("b_error"),
    )
)


def _counts(key: tuple[str, str], count: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "b_tenant": key[0],
        "b_subscription": key[1],
        "b_sent": count["sent"],
        "b_failed": count["failed"],
        "b_now": now,
        "b_success": now if count["sent"] > count["failed"] else None,
        "b_failure": now if count["failed"] else None,
        "b_error": count["error"],
    }


class Target(Protocol):
    """What queueing a notification needs of a compiled subscription of either kind."""

    row: BrokerSubscription
    accept: str
    endpoint: dict[str, Any]
    context_value: Any
    context_url: str


@dataclass
class Compiled:
    """A subscription ready to match: names expanded, q parsed, the view it renders with."""

    row: BrokerSubscription
    ctx: ActiveContext
    selectors: list[Selector]
    watched: set[str] | None
    triggers: set[str]
    q: QExpr | None
    scope: ScopeExpr | None
    georel: GeoRel | None
    geometry: Geometry | None
    geoproperty: str
    view: views.View
    attributes: set[str] | None
    show_changes: bool
    accept: str
    endpoint: dict[str, Any]
    context_value: Any
    context_url: str
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        #: each selector as (id, idPattern's search, expanded type) when all name one type (the
        #: usual case): tested without the general type expression
        self.simple: list[tuple[str | None, Callable[[str], object] | None, str]] | None = None
        if self.selectors and all(isinstance(s.types.tree, str) for s in self.selectors):
            self.simple = [
                (s.entity_id, s.pattern.search if s.pattern else None, self.ctx.expand(s.types.tree))
                for s in self.selectors
            ]

    def selects(self, entity_id: str, types: Sequence[str]) -> bool:
        if not self.selectors:
            return True
        if self.simple is not None:
            for wanted_id, search, wanted_type in self.simple:
                if (
                    wanted_type in types
                    and (wanted_id is None or wanted_id == entity_id)
                    and (search is None or search(entity_id))
                ):
                    return True
            return False
        present = set(types)
        for selector in self.selectors:
            if selector.entity_id is not None and selector.entity_id != entity_id:
                continue
            if selector.pattern is not None and not selector.pattern.search(entity_id):
                continue
            if selector.types.matches(present, self.ctx.expand):
                return True
        return False

    def triggered(self, change: dict[str, Any]) -> bool:
        op = change["op"]
        watched = self.watched
        if op == "create" and "entityCreated" in self.triggers:
            return True
        if op == "delete" and "entityDeleted" in self.triggers:
            return True
        touched: list[str] = []
        if "attributeCreated" in self.triggers:
            touched += change["created"]
        if "attributeUpdated" in self.triggers:
            touched += change["updated"]
        if "attributeDeleted" in self.triggers:
            touched += change["deleted"]
        if watched is not None:
            touched = [name for name in touched if name in watched]
        if touched:
            return True
        if op == "update" and "entityUpdated" in self.triggers:
            every = [*change["created"], *change["updated"], *change["deleted"]]
            return watched is None or any(name in watched for name in every)
        return False

    def matches(self, entity: dict[str, Any]) -> bool:
        # a subscriber has no clearance: its q sees no classified attribute (no probing by q)
        if self.q is not None and not self.q.evaluate(
            protection.for_subscribers().comparable(entity), self.ctx.expand
        ):
            return False
        if self.scope is not None and not self.scope.evaluate(entity.get("scope", [])):
            return False
        if self.georel is not None and self.geometry is not None:
            return any(
                instance.get("type") == "GeoProperty"
                and self.georel.matches(self.geometry, parse_geometry(instance["value"]))
                for instance in entity["attrs"].get(self.geoproperty, ())
            )
        return True


async def compile_subscription(row: BrokerSubscription, contexts: ContextStore) -> Compiled:
    data = row.data
    ctx = await contexts.resolve(row.context)
    notification = data["notification"]
    selectors = parse_selectors(data)
    geo = data.get("geoQ")
    georel = geometry = None
    geoproperty = service.LOCATION
    if geo:
        georel = parse_georel(geo["georel"])
        coordinates = geo["coordinates"]
        geometry = query_geometry(geo["geometry"], coordinates)
        if geo.get("geoproperty"):
            geoproperty = ctx.expand(geo["geoproperty"])
    attributes = (
        {ctx.expand(name) for name in notification["attributes"]} if "attributes" in notification else None
    )
    # Notifications are compacted with jsonldContext when the subscription names one.
    shown = await contexts.resolve(data["jsonldContext"]) if "jsonldContext" in data else ctx
    pick = notification.get("pick")
    omit = notification.get("omit")
    view = views.View(
        shown,
        fmt=FORMATS[notification.get("format", "normalized")],
        sys_attrs=bool(notification.get("sysAttrs")),
        languages=views.parse_languages(data.get("lang") or notification.get("lang")),
        pick=views.parse_projection(_joined(pick), "pick") if pick else None,
        omit=views.parse_projection(_joined(omit), "omit") if omit else None,
        attrs=attributes,
        join=notification.get("join"),
        join_level=notification.get("joinLevel", 1),
        disclosure=protection.for_subscribers(),
    )
    endpoint = notification["endpoint"]
    return Compiled(
        row=row,
        ctx=ctx,
        selectors=selectors,
        watched={ctx.expand(name) for name in data["watchedAttributes"]}
        if "watchedAttributes" in data
        else None,
        triggers=set(data.get("notificationTrigger", DEFAULT_TRIGGERS)),
        q=parse_q(data["q"]) if "q" in data else None,
        scope=parse_scope_q(data["scopeQ"]) if "scopeQ" in data else None,
        georel=georel,
        geometry=geometry,
        geoproperty=geoproperty,
        view=view,
        attributes=attributes,
        show_changes=bool(notification.get("showChanges")),
        accept=endpoint.get("accept", JSON),
        endpoint=endpoint,
        context_value=shown.value if shown.value is not None else shown.urls[0],
        context_url=shown.urls[0],
        data=data,
    )


def _joined(value: Any) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)


def _null_instance(
    instance: dict[str, Any], previous: bool, fmt: str, ctx: Context, *, entity_gone: bool = False
) -> Any:
    """A deleted attribute as notified: its content is ``urn:ngsi-ld:null`` (a LanguageProperty's
    ``{"@none": …}`` when only the attribute went), with the old content when ``previous``."""
    if fmt == "keyValues":
        return NULL
    kind = instance.get("type", "Property")
    key = ngsi.content_key(kind)
    shown: dict[str, Any] = {"type": kind}
    if previous:
        shown[_previous(key)] = _content(instance, key, ctx)
    shown[key] = {"@none": NULL} if kind == "LanguageProperty" and not entity_gone else NULL
    return shown


def _previous(key: str) -> str:
    return "previous" + key[0].upper() + key[1:]


def _content(instance: dict[str, Any], key: str, ctx: Context) -> Any:
    """An instance's content as shown: vocab values are IRIs, compacted like names."""
    value = instance.get(key)
    if key == "vocab":
        return [ctx.compact(v) for v in value] if isinstance(value, list) else ctx.compact(str(value))
    return value


class _Matching(Protocol):
    row: BrokerSubscription


C = TypeVar("C", bound=_Matching)


class Notifier:
    """Matches changes to subscriptions, queues notifications and delivers them."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        contexts: ContextStore,
        *,
        default_tenant: str,
        timeout: float = 5.0,
        attempts: int = 5,
        poll_interval: float = 1.0,
        lease: float = 60.0,
        batch_size: int = 2000,
        concurrency: int = 8,
        first_retry: float = 1.0,
        merge_limit: int = 1000,
        department_access: sharing.DepartmentAccess | None = None,
    ) -> None:
        self.sessions = sessions
        self.contexts = contexts
        self.default_tenant = default_tenant
        self.timeout = timeout
        self.attempts = attempts
        self.poll_interval = poll_interval
        self.lease = timedelta(seconds=lease)
        self.batch_size = batch_size
        self.first_retry = first_retry
        self.merge_limit = merge_limit
        self.department_access = department_access
        self._limit = asyncio.Semaphore(concurrency)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: Endpoints | None = None
        self._stopping = False
        self._busy: set[tuple[str, str]] = set()  # subscriptions with a delivery under way here
        self._claimed: set[uuid.UUID] = set()  # rows leased here and not settled yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: list[tuple[list[BrokerNotification], str | None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._compiled: dict[tuple[str, str], tuple[datetime, Compiled]] = {}
        self._compiled_csource: dict[tuple[str, str], tuple[datetime, CsourceCompiled]] = {}
        #: per tenant: its subscriptions' versions, and which of them select an (id, types)
        self._selections: dict[str, tuple[tuple[Any, ...], _Index, dict[_Selected, tuple[int, ...]]]] = {}
        self.sent = 0
        self.failed = 0

    # -- stage 1: matching ---------------------------------------------------------------------

    async def _subscriptions(self, session: AsyncSession, tenant: str) -> list[Compiled]:
        return await self._active(session, tenant, ENTITIES, self._compiled, compile_subscription)

    async def _active(
        self,
        session: AsyncSession,
        tenant: str,
        kind: str,
        cache: dict[tuple[str, str], tuple[datetime, C]],
        compile_row: Callable[[BrokerSubscription, ContextStore], Awaitable[C]],
    ) -> list[C]:
        """The tenant's active subscriptions of ``kind`` that notify on change, compiled once per
        version (``modifiedAt``) and kept in ``cache``."""
        rows = await session.scalars(
            select(BrokerSubscription).where(
                BrokerSubscription.tenant_code == tenant,
                BrokerSubscription.kind == kind,
                BrokerSubscription.active.is_(True),
                BrokerSubscription.time_interval.is_(None),
            )
        )
        found = []
        for row in rows:
            if status(row) != "active":
                continue
            key = (tenant, row.subscription_id)
            cached = cache.get(key)
            if cached is None or cached[0] != row.modified_at:
                try:
                    cached = (row.modified_at, await compile_row(row, self.contexts))
                except HubError as error:  # e.g. its @context cannot be fetched now
                    log.warning("subscription %s cannot be used now: %s", row.subscription_id, error.detail)
                    continue
                cache[key] = cached
            cached[1].row = row
            found.append(cached[1])
        return found

    async def on_changes(self, event: EntitiesChanged) -> None:
        tenant = event.tenant or self.default_tenant
        queued = False
        # Subscriptions first: a tenant without any (the common case for bulk writes) costs one
        # read, outside any transaction (one round trip, not BEGIN, the read and COMMIT), and no
        # receipt. A change is never matched by a subscription made after it, so a redelivery
        # that finds subscriptions now has nothing to send either.
        async with self.sessions() as session:
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            if not await self._subscriptions(session, tenant):
                return
        async with self.sessions() as session, session.begin():
            subscriptions = await self._subscriptions(session, tenant)
            if not subscriptions or not await first_delivery(session, CONSUMER, event):
                return
            scope_to_tenant(session, tenant)
            now = utcnow()
            subscriptions.sort(key=lambda sub: sub.row.subscription_id)  # the same order each time
            selected = self._selection(tenant, subscriptions)
            open_ = [
                sub.row.throttled_until is None or sub.row.throttled_until <= now for sub in subscriptions
            ]
            accesses: dict[uuid.UUID | None, sharing.TypeAccess | None] = {}
            concerned: dict[int, list[dict[str, Any]]] = {}
            for change in event.changes:
                at: datetime | None = None
                for index in selected(change["id"], change["types"]):
                    sub = subscriptions[index]
                    if not open_[index]:
                        continue
                    access = await self.access_of(session, sub.row, accesses)
                    seen = sharing.seen_change(access, change)
                    if seen is None:
                        continue
                    if at is None:
                        at = parse_datetime(change["at"])
                    if self._concerns(sub, at, seen):
                        concerned.setdefault(index, []).append(seen)
            for index, items in sorted(concerned.items()):
                sub = subscriptions[index]
                access = await self.access_of(session, sub.row, accesses)
                sharing.attach(session, access)  # linked entities (join) keep to it too
                data = await self._render(session, sub, items)
                self._queue(session, sub, tenant, data)
                queued = True
                if sub.row.throttling:
                    sub.row.throttled_until = now + timedelta(seconds=sub.row.throttling)
        if queued:
            self.wake()

    def _selection(
        self, tenant: str, subscriptions: list[Compiled]
    ) -> Callable[[str, Sequence[str]], tuple[int, ...]]:
        """Which of ``subscriptions`` (their positions) select an entity by its id and types.

        Entities are written again and again (a sensor's readings), so the answer is kept per id
        and types while the tenant's subscriptions stay the same: testing every subscription's
        type and idPattern against every change made matching grow with their product."""
        signature = tuple((sub.row.subscription_id, sub.row.modified_at) for sub in subscriptions)
        kept = self._selections.get(tenant)
        if kept is None or kept[0] != signature or len(kept[2]) >= SELECTION_CACHE:
            # an entity not seen yet is tested only against the subscriptions that name one of
            # its types, and those whose selection is more than type names
            by_type: dict[str, list[int]] = {}
            general: list[int] = []
            for index, sub in enumerate(subscriptions):
                if sub.simple is None:
                    general.append(index)
                    continue
                for name in {wanted for _, _, wanted in sub.simple}:
                    by_type.setdefault(name, []).append(index)
            kept = (signature, (by_type, general), {})
            self._selections[tenant] = kept
        (by_type, general), cache = kept[1], kept[2]

        def selected(entity_id: str, types: Sequence[str]) -> tuple[int, ...]:
            key = (entity_id, tuple(types))
            found = cache.get(key)
            if found is None:
                candidates = set(general)
                for name in types:
                    candidates.update(by_type.get(name, ()))
                found = tuple(i for i in sorted(candidates) if subscriptions[i].selects(entity_id, types))
                cache[key] = found
            return found

        return selected

    async def access_of(
        self,
        session: AsyncSession,
        row: BrokerSubscription,
        known: dict[uuid.UUID | None, sharing.TypeAccess | None],
    ) -> sharing.TypeAccess | None:
        """The current access of the department a restricted subscription acts for, in the
        session's tenant (None: the subscription is not restricted); ``known`` keeps what one
        event has looked up already."""
        if not row.restricted or self.department_access is None:
            return None
        if row.department_id not in known:
            known[row.department_id] = await self.department_access(session, row.department_id)
        return known[row.department_id]

    def _concerns(self, sub: Compiled, at: datetime, change: dict[str, Any]) -> bool:
        """Whether a change of an entity ``sub`` selects concerns it."""
        if at < sub.row.created_at:
            return False  # made before the subscription, matched after it: not its business
        if not sub.triggered(change):
            return False
        return sub.matches(_subject(change))

    async def _render(self, session: AsyncSession, sub: Compiled, changes: list[dict[str, Any]]) -> list[Any]:
        async def fetch(ids: Sequence[str]) -> dict[str, dict[str, Any]]:
            return await service.get_entities(session, list(ids))

        data: list[Any] = []
        for change in changes:
            if change["op"] == "delete":
                data.append(self._deleted(sub, change))
                continue
            entity = change["entity"]
            shown, *linked = await views.render_all([entity], sub.view, fetch)  # join=flat: linked after
            fmt = sub.view.fmt
            if "attributeDeleted" in sub.triggers:
                for name in change["deleted"]:
                    if sub.attributes is None or name in sub.attributes:
                        (instance,) = protection.for_subscribers().instances(
                            entity["id"], entity["type"], name, change["previous"][name][:1]
                        )
                        shown[sub.view.ctx.compact(name)] = _null_instance(
                            instance, sub.show_changes, fmt, sub.view.ctx
                        )
            if sub.show_changes and fmt != "keyValues":
                for name in change["updated"]:
                    term = sub.view.ctx.compact(name)
                    previous = protection.for_subscribers().instances(
                        entity["id"], entity["type"], name, change["previous"][name]
                    )
                    if isinstance(shown.get(term), dict) and len(previous) == 1:
                        key = ngsi.content_key(previous[0].get("type", "Property"))
                        if key in previous[0]:
                            shown[term][_previous(key)] = _content(previous[0], key, sub.view.ctx)
            if sub.accept == GEO_JSON:
                shown = views.feature(shown, entity, sub.view.geometry_property)
                linked = []  # a FeatureCollection holds the notified entities only
            data.append(shown)
            data.extend(item for item in linked if item.get("id") not in {d.get("id") for d in data})
        if sub.accept == GEO_JSON:
            return [{"type": "FeatureCollection", "features": data}]
        return data

    def _deleted(self, sub: Compiled, change: dict[str, Any]) -> dict[str, Any]:
        ctx = sub.view.ctx
        before = change["before"] or {"type": change["types"]}
        types = [ctx.compact(t) for t in before["type"]]
        shown: dict[str, Any] = {"id": change["id"], "type": types[0] if len(types) == 1 else types}
        if sub.view.sys_attrs:
            shown["createdAt"] = before.get("createdAt")
            shown["modifiedAt"] = before.get("modifiedAt")
        shown["deletedAt"] = change["at"]
        if sub.show_changes or sub.attributes is not None:
            for name, instances in change["previous"].items():
                if sub.attributes is None or name in sub.attributes:
                    masked = protection.for_subscribers().instances(
                        change["id"], before["type"], name, instances
                    )
                    shown[ctx.compact(name)] = _null_instance(
                        masked[0], sub.show_changes, sub.view.fmt, ctx, entity_gone=True
                    )
        return shown

    def _queue(
        self,
        session: AsyncSession,
        sub: Target,
        tenant: str,
        data: list[Any],
        *,
        trigger_reason: str | None = None,
    ) -> None:
        """Queue one notification; with ``trigger_reason`` a csourceNotification (clause 5.3.2)."""
        body: dict[str, Any] = {
            "id": f"urn:ngsi-ld:Notification:{new_id()}",
            "type": "Notification" if trigger_reason is None else "ContextSourceNotification",
            "subscriptionId": sub.row.subscription_id,
            "notifiedAt": isoformat(utcnow()),
            "data": data[0] if sub.accept == GEO_JSON else data,
        }
        if trigger_reason is not None:
            body["triggerReason"] = trigger_reason
        headers = {"Content-Type": sub.accept}
        if sub.accept == JSON_LD:  # each entity is a JSON-LD document of its own too
            body["@context"] = sub.context_value
            body["data"] = [
                item | {"@context": sub.context_value} if isinstance(item, dict) else item for item in data
            ]
        else:
            headers["Link"] = link_header(sub.context_url)
        if tenant != self.default_tenant:
            headers[TENANT_HEADER] = tenant
        for pair in sub.endpoint.get("receiverInfo", []):
            headers[pair["key"]] = pair["value"]
        session.sync_session.add(
            BrokerNotification(
                tenant_code=tenant,
                subscription_id=sub.row.subscription_id,
                endpoint=sub.endpoint,
                headers=headers,
                body=body,
                attempts=0,
            )
        )

    # -- csource subscriptions -----------------------------------------------------------------

    async def _csource_subscriptions(self, session: AsyncSession, tenant: str) -> list[CsourceCompiled]:
        return await self._active(
            session, tenant, REGISTRATIONS, self._compiled_csource, compile_csource_subscription
        )

    async def on_registrations(self, event: RegistrationsChanged) -> None:
        """Queue a notification per csource subscription and trigger reason for the registrations
        of ``event`` that match it now, matched it before, or both."""
        tenant = event.tenant or self.default_tenant
        queued = False
        async with self.sessions() as session, session.begin():
            subscriptions = await self._csource_subscriptions(session, tenant)  # first: see on_changes
            if not subscriptions or not await first_delivery(session, CONSUMER, event):
                return
            now = utcnow()
            changes = []
            for change in event.changes:
                states = {}
                for side in ("before", "after"):
                    state = change[side]
                    if state is not None:
                        states[side] = (state["data"], await self.contexts.resolve(state["context"]))
                changes.append((parse_datetime(change["at"]), states))
            for sub in subscriptions:
                if sub.row.throttled_until is not None and sub.row.throttled_until > now:
                    continue
                by_reason: dict[str, list[Any]] = {}
                for at, states in changes:
                    if at < sub.row.created_at:
                        continue  # made before the subscription: its first answer had it
                    reason, shown = self._csource_change(sub, states)
                    if reason is not None:
                        by_reason.setdefault(reason, []).append(shown)
                for reason, data in by_reason.items():
                    self._queue(session, sub, tenant, data, trigger_reason=reason)
                    queued = True
                if by_reason and sub.row.throttling:
                    sub.row.throttled_until = now + timedelta(seconds=sub.row.throttling)
        if queued:
            self.wake()

    @staticmethod
    def _csource_change(
        sub: CsourceCompiled, states: dict[str, tuple[dict[str, Any], ActiveContext]]
    ) -> tuple[str | None, Any]:
        """Why a change of one registration concerns ``sub`` (None: it does not), and the
        registration as notified: as it is now, or as it was when it was deleted."""
        before = sub.relevant(*states["before"]) if "before" in states else None
        if "after" in states:
            after = sub.relevant(*states["after"])
            if after is not None:
                reason = UPDATED if before is not None else NEWLY_MATCHING
                return reason, sub.render(*states["after"], after)
            if before is not None:
                return NO_LONGER_MATCHING, sub.render(*states["after"], None)
            return None, None
        if before is not None:
            return NO_LONGER_MATCHING, sub.render(*states["before"], before)
        return None, None

    async def _run_csource(self, row: BrokerSubscription) -> bool:
        """Queue the registrations that match a csource subscription now: its answer when it was
        made or changed (the registrations written since come with their own notifications), or
        a timeInterval run (all of them). True if something was queued."""
        try:
            sub = await compile_csource_subscription(row, self.contexts)
        except HubError as error:
            log.warning("subscription %s cannot be used now: %s", row.subscription_id, error.detail)
            return False
        async with self.sessions() as session, session.begin():
            scope_to_tenant(session, row.tenant_code)
            query = select(BrokerRegistration).order_by(
                BrokerRegistration.created_at, BrokerRegistration.registration_id
            )
            if not row.time_interval:
                query = query.where(BrokerRegistration.modified_at <= row.modified_at)
            data = []
            for registration in await session.scalars(query):
                written = await self.contexts.resolve(registration.context)
                infos = sub.relevant(registration.data, written)
                if infos is not None:
                    data.append(sub.render(registration.data, written, infos))
            if not data:
                return False
            self._queue(session, sub, row.tenant_code, data, trigger_reason=NEWLY_MATCHING)
        return True

    # -- stage 2: delivery ---------------------------------------------------------------------

    def wake(self) -> None:
        self._wakeup.set()

    async def start(self) -> None:
        self._client = Endpoints(timeout=self.timeout)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="broker-notifier")

    async def stop(self) -> None:
        # Python 3.11's wait_for can swallow a cancel that races a wake-up: the flag ends the loop.
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._flusher is not None:
            await self._flusher
        await self._flush()
        await self._release()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.run_periodic()
                while await self.deliver_due() >= self.batch_size:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notification delivery failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.poll_interval)
            self._wakeup.clear()

    async def deliver_due(self) -> int:
        """Claim the notifications that are due and start sending them; returns how many.

        Each subscription's notifications go out in order, one at a time, in a task of their own,
        so a subscriber that hangs holds up only itself. Its later notifications are not claimed
        while one of its deliveries is under way in this process."""
        now = utcnow()
        async with self.sessions() as session, session.begin():
            query = (
                select(BrokerNotification)
                .where(
                    BrokerNotification.due_at <= now,
                    or_(BrokerNotification.lease_until.is_(None), BrokerNotification.lease_until < now),
                )
                .order_by(BrokerNotification.due_at, BrokerNotification.id)
                .limit(self.batch_size)
            )
            busy = {subscription for _, subscription in self._busy}
            if busy:
                query = query.where(BrokerNotification.subscription_id.not_in(busy))
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = list(await session.scalars(query))
            session.expunge_all()
            if rows:
                lease = now + self.lease
                await session.execute(
                    update(BrokerNotification)
                    .where(BrokerNotification.id.in_([row.id for row in rows]))
                    .values(lease_until=lease),
                    execution_options={"synchronize_session": False},
                )
        groups: dict[tuple[str, str], list[BrokerNotification]] = {}
        for row in rows:
            groups.setdefault((row.tenant_code, row.subscription_id), []).append(row)
        for key, items in groups.items():
            self._busy.add(key)
            self._claimed.update(row.id for row in items)
            task = asyncio.create_task(self._deliver(key, items), name=f"notify {key[1]}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(rows)

    async def _deliver(self, key: tuple[str, str], rows: list[BrokerNotification]) -> None:
        cancelled = False
        try:
            owed = [row for row in rows if not row.attempts or await self._still_owed(row)]
            # (a retried row whose subscription was deleted or changed while it waited is not owed)
            for group in merged(owed, self.merge_limit):
                async with self._limit:
                    error = await self.send(group[0].endpoint, group[0].headers, _body(group))
                await self._settle(group, error)
        except asyncio.CancelledError:
            cancelled = True  # stopping: the rows stay claimed, and stop() gives their leases up
            raise
        except Exception:
            log.exception("delivery for subscription %s failed; its rows wait for their lease", key[1])
        finally:
            if not cancelled:
                self._claimed.difference_update(row.id for row in rows)
            self._busy.discard(key)
            self.wake()

    async def _still_owed(self, row: BrokerNotification) -> bool:
        async with self.sessions() as session:
            return await session.get(BrokerNotification, row.id) is not None

    async def send(
        self, endpoint: dict[str, Any], headers: dict[str, str], body: dict[str, Any]
    ) -> str | None:
        uri = endpoint["uri"]
        try:
            if uri.startswith(("mqtt://", "mqtts://")):
                await self._send_mqtt(endpoint, headers, body)
                return None
            assert self._client is not None, "the notifier is not started"
            status_code = await self._client.post(uri, orjson.dumps(body), headers)
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except (DeliveryError, aiomqtt.MqttError, OSError) as error:
            return f"{type(error).__name__}: {error}"[:500] or type(error).__name__
        if status_code >= 300:
            return f"HTTP {status_code} from {uri}"
        return None

    async def _send_mqtt(
        self, endpoint: dict[str, Any], headers: dict[str, str], body: dict[str, Any]
    ) -> None:
        """MQTT notifications carry the HTTP headers as ``metadata`` next to the ``body``."""
        uri = urlsplit(endpoint["uri"])
        info = {pair["key"]: pair["value"] for pair in endpoint.get("notifierInfo", [])}
        qos = int(info.get("MQTT-QoS", "0"))
        version = (
            aiomqtt.ProtocolVersion.V5
            if info.get("MQTT-Version") == "mqtt5.0"
            else aiomqtt.ProtocolVersion.V311
        )
        payload = orjson.dumps({"metadata": headers, "body": body})
        async with (
            asyncio.timeout(self.timeout),
            aiomqtt.Client(
                uri.hostname or "localhost",
                port=uri.port or (8883 if uri.scheme == "mqtts" else 1883),
                username=unquote(uri.username) if uri.username else None,
                password=unquote(uri.password) if uri.password else None,
                protocol=version,
                tls_params=aiomqtt.TLSParameters() if uri.scheme == "mqtts" else None,
            ) as client,
        ):
            await client.publish(uri.path.lstrip("/"), payload, qos=qos)

    async def _settle(self, rows: list[BrokerNotification], error: str | None) -> None:
        """Record the outcome of one notification (``rows`` merged into it) without waiting for
        it to be written: one flusher writes all the outcomes that came in meanwhile in one
        transaction. Until then the rows keep their lease, so nobody sends them again; should the
        process die first, they are sent again after the lease (delivery is at least once)."""
        self._claimed.difference_update(row.id for row in rows)
        self._outcomes.append((rows, error))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="notification-outcomes")

    async def _release(self) -> None:
        """Give up the leases of the rows claimed here whose delivery a stop cut short, so that
        the next process sends them at once instead of after the lease (a row may then arrive
        twice, if its request was already out: delivery is at least once)."""
        claimed, self._claimed = self._claimed, set()
        if not claimed:
            return
        try:
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(BrokerNotification)
                    .where(BrokerNotification.id.in_(claimed))
                    .values(lease_until=None),
                    execution_options={"synchronize_session": False},
                )
        except Exception:
            log.exception(
                "could not give up %d notification lease(s); they wait for them to end", len(claimed)
            )

    async def settled(self) -> None:
        """Wait until the outcomes already known here are written: a client reading a
        subscription right after its endpoint answered then sees that delivery counted."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                async with self.sessions() as session, session.begin():
                    await self._write_outcomes(session, batch)
            except Exception:
                log.exception("could not record %d notification outcome(s); they are sent again", len(batch))

    async def _write_outcomes(
        self, session: AsyncSession, batch: list[tuple[list[BrokerNotification], str | None]]
    ) -> None:
        """Rows sent are deleted; rows refused wait for their next attempt. The subscription's
        counters count notifications (requests), however many queued rows each one carried."""
        now = utcnow()
        done: list[uuid.UUID] = []
        counters: dict[tuple[str, str], dict[str, Any]] = {}
        for rows, error in batch:
            key = (rows[0].tenant_code, rows[0].subscription_id)
            count = counters.setdefault(key, {"sent": 0, "failed": 0, "error": None})
            count["sent"] += 1
            count["error"] = error
            if error is None:
                self.sent += 1
                done.extend(row.id for row in rows)
                continue
            self.failed += 1
            count["failed"] += 1
            for row in rows:
                attempts = row.attempts + 1
                if attempts >= self.attempts:
                    log.warning(
                        "notification %s for subscription %s dropped after %d attempts: %s",
                        row.body.get("id"),
                        row.subscription_id,
                        attempts,
                        error,
                    )
                    done.append(row.id)
                    continue
                delay = self.first_retry * 2 ** (attempts - 1)
                await session.execute(
                    update(BrokerNotification)
                    .where(BrokerNotification.id == row.id)
                    .values(
                        attempts=attempts,
                        due_at=now + timedelta(seconds=delay),
                        lease_until=None,
                        last_error=error,
                    )
                )
        if done:
            await session.execute(delete(BrokerNotification).where(BrokerNotification.id.in_(done)))
        if counters:
            await session.execute(_COUNT, [_counts(key, count, now) for key, count in counters.items()])

    # -- periodic subscriptions ----------------------------------------------------------------

    async def run_periodic(self) -> int:
        """Queue a notification with the matching entities for each timeInterval subscription due,
        and with the matching registrations for each csource subscription due (timeInterval, or
        just made or changed). The run is claimed first (its next run moved on), so two processes
        never both run it."""
        now = utcnow()
        async with self.sessions() as session, session.begin():
            query = select(BrokerSubscription).where(
                BrokerSubscription.next_run_at.is_not(None), BrokerSubscription.next_run_at <= now
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            due = list(await session.scalars(query))
            for row in due:
                # A csource subscription without timeInterval runs once, to answer its creation.
                row.next_run_at = now + timedelta(seconds=row.time_interval) if row.time_interval else None
            await session.flush()  # the lease (or next run) is written; the rows stay usable after
            session.expunge_all()
        queued = 0
        for row in due:
            if status(row) != "active":
                continue
            if row.kind == REGISTRATIONS:
                queued += int(await self._run_csource(row))
                continue
            try:
                sub = await compile_subscription(row, self.contexts)
            except HubError as error:
                log.warning("subscription %s cannot be used now: %s", row.subscription_id, error.detail)
                continue
            async with self.sessions() as session, session.begin():
                scope_to_tenant(session, row.tenant_code)
                sharing.attach(session, await self.access_of(session, row, {}))
                try:
                    entities = await self._matching(session, sub)
                except HubError:  # every type it names is no longer readable by its department
                    continue
                if not entities:
                    continue
                changes = [
                    {"op": "update", "id": e["id"], "entity": e, "updated": [], "deleted": []}
                    for e in entities
                ]
                self._queue(session, sub, row.tenant_code, await self._render(session, sub, changes))
                queued += 1
        if queued:
            self.wake()
        return queued

    async def _matching(self, session: AsyncSession, sub: Compiled) -> list[dict[str, Any]]:
        query = service.EntityQuery(matches=sub.matches)
        names = {name for selector in sub.selectors for name in selector.types.names}
        if names:
            query.types = [sub.ctx.expand(name) for name in names]
        found, _ = await service.query_entities(session, query, limit=10_000, offset=0)
        return [e for e in found if sub.selects(e["id"], e["type"])]


def _mergeable(row: BrokerNotification) -> bool:
    body = row.body
    return body.get("type") == "Notification" and isinstance(body.get("data"), list)


def merged(rows: list[BrokerNotification], limit: int) -> list[list[BrokerNotification]]:
    """Queued notifications of one subscription, in order, grouped into the notifications to send.

    Under load several are queued for a subscription while its previous one is on the way; they
    go out as one notification whose ``data`` holds all their entities (NGSI-LD lets a
    notification carry several), up to ``limit`` entities, so the rate of requests a subscriber
    gets, and their cost here, stop growing with the rate of changes. Only consecutive rows for
    the same endpoint with the same headers merge; a GeoJSON FeatureCollection or a
    ContextSourceNotification (with its triggerReason) goes alone."""
    groups: list[list[BrokerNotification]] = []
    size = 0
    for row in rows:
        last = groups[-1] if groups else None
        if (
            last is not None
            and _mergeable(row)
            and _mergeable(last[0])
            and size + len(row.body["data"]) <= limit
            and row.endpoint == last[0].endpoint
            and row.headers == last[0].headers
        ):
            last.append(row)
            size += len(row.body["data"])
            continue
        groups.append([row])
        size = len(row.body["data"]) if _mergeable(row) else 0
    return groups


def _body(rows: list[BrokerNotification]) -> dict[str, Any]:
    """The notification sent for ``rows``: the first one's, with the entities of all of them, in
    order (an entity changed twice is there twice, as it would be in two notifications), and
    the time of the last."""
    if len(rows) == 1:
        return rows[0].body
    data = [item for row in rows for item in row.body["data"]]
    return rows[0].body | {"notifiedAt": rows[-1].body["notifiedAt"], "data": data}


def _subject(change: dict[str, Any]) -> dict[str, Any]:
    """The entity a change is judged on: as it is now, or as it was when deleted."""
    if change["entity"] is not None:
        entity: dict[str, Any] = change["entity"]
        return entity
    return {
        **(change["before"] or {"id": change["id"], "type": change["types"]}),
        "attrs": change["previous"],
    }
