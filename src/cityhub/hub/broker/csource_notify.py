"""What a csource subscription (clause 5.11) matches, and what its notifications carry.

A registration matches a subscription when one of its RegistrationInfo elements does (its
entities against the subscription's ``entities``, its propertyNames and relationshipNames against
``watchedAttributes``; an element without entities, or without names, covers them all) and the
registration as a whole passes the subscription's ``geoQ`` (on ``location``, or the member
``geoproperty`` names: ``observationSpace``, ``operationSpace``), ``temporalQ`` (``observedAt`` on
its ``observationInterval``, ``createdAt`` and ``modifiedAt`` on its ``managementInterval``) and
``q`` (on its own members, the csourceProperties, read as Properties).

A notification lists registrations, each with only the RegistrationInfo elements that matched,
their names as the subscription's @context (or its ``jsonldContext``) reads them, and says why
(``triggerReason``): ``newlyMatching`` (a registration that matches now and did not before, and
every registration in the answer to a new or changed subscription or a ``timeInterval`` run),
``updated`` (it matched before the change and still does) or ``noLongerMatching`` (it matched
before, and is deleted or no longer matches).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cityhub.hub.broker.context import ActiveContext, ContextStore
from cityhub.hub.broker.history import TimeQuery, parse_time_query
from cityhub.hub.broker.http import JSON
from cityhub.hub.broker.models import BrokerSubscription
from cityhub.hub.broker.q import QExpr, parse_q, parse_type_selection
from cityhub.hub.broker.registrations import offers, present
from cityhub.hub.broker.subscriptions import Selector
from cityhub.hub.broker.subscriptions import selectors as parse_selectors
from cityhub.kit.geo import (
    Geometry,
    GeoRel,
    parse_geometry,
    parse_georel,
    query_geometry,
)
from cityhub.kit.time import parse_datetime

NEWLY_MATCHING = "newlyMatching"
UPDATED = "updated"
NO_LONGER_MATCHING = "noLongerMatching"

#: The members every registration may have (clause 5.2.9); the others are its csourceProperties.
REGISTRATION_MEMBERS = frozenset(
    {
        "id",
        "type",
        "registrationName",
        "description",
        "information",
        "tenant",
        "observationInterval",
        "managementInterval",
        "location",
        "observationSpace",
        "operationSpace",
        "expiresAt",
        "endpoint",
        "contextSourceInfo",
        "scope",
        "mode",
        "operations",
        "refreshRate",
        "management",
        "status",
        "createdAt",
        "modifiedAt",
    }
)


@dataclass
class CsourceCompiled:
    """A csource subscription ready to match registrations."""

    row: BrokerSubscription
    ctx: ActiveContext
    shown: ActiveContext
    selectors: list[Selector]
    watched: set[str] | None
    q: QExpr | None
    georel: GeoRel | None
    geometry: Geometry | None
    geoproperty: str
    temporal: TimeQuery | None
    accept: str
    endpoint: dict[str, Any]
    context_value: Any
    context_url: str

    def relevant(self, data: dict[str, Any], written: ActiveContext) -> list[dict[str, Any]] | None:
        """The RegistrationInfo elements of a registration (``data``, written in ``written``) that
        this subscription matches; None when the registration does not match."""
        if self.georel is not None and self.geometry is not None:
            where = data.get(self.geoproperty)
            if not isinstance(where, dict) or not self.georel.matches(self.geometry, parse_geometry(where)):
                return None
        if self.temporal is not None and not self._in_time(data):
            return None
        if self.q is not None and not self.q.evaluate(_as_entity(data, written), self.ctx.expand):
            return None
        found = [info for info in data["information"] if self._info(info, written)]
        return found or None

    def _info(self, info: dict[str, Any], written: ActiveContext) -> bool:
        entities = info.get("entities")
        if (
            self.selectors
            and entities
            and not any(self._pair(selector, e, written) for selector in self.selectors for e in entities)
        ):
            return False
        return self.watched is None or offers(info, self.watched, written.expand)

    def _pair(self, selector: Selector, entity: dict[str, Any], written: ActiveContext) -> bool:
        types = {written.expand(name) for name in parse_type_selection(entity["type"]).names}
        if not selector.types.matches(types, self.ctx.expand):
            return False
        registered_id, registered_pattern = entity.get("id"), entity.get("idPattern")
        if selector.entity_id is not None:
            if registered_id is not None:
                return bool(registered_id == selector.entity_id)
            if registered_pattern is not None:
                return re.search(registered_pattern, selector.entity_id) is not None
        if selector.pattern is not None and registered_id is not None:
            return selector.pattern.search(registered_id) is not None
        return True  # a registration for any id of the type, or two patterns that may overlap

    def _in_time(self, data: dict[str, Any]) -> bool:
        query = self.temporal
        assert query is not None
        assert query.time_at is not None
        member = "observationInterval" if query.timeproperty == "observedAt" else "managementInterval"
        interval = data.get(member)
        if not isinstance(interval, dict) or "startAt" not in interval:
            return False
        start = parse_datetime(interval["startAt"])
        end: datetime | None = parse_datetime(interval["endAt"]) if "endAt" in interval else None
        if query.timerel == "before":
            return start < query.time_at
        if query.timerel == "after":
            return end is None or end > query.time_at
        assert query.end_time_at is not None  # between
        return start < query.end_time_at and (end is None or end > query.time_at)

    def render(
        self, data: dict[str, Any], written: ActiveContext, infos: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        """A registration as notified: with only ``infos`` as its information when given."""
        if infos is not None:
            data = data | {"information": infos}
        return present(data, written, self.shown)


def _as_entity(data: dict[str, Any], written: ActiveContext) -> dict[str, Any]:
    """A registration as ``q`` reads it: its csourceProperties as Properties."""
    return {
        "id": data.get("id"),
        "type": [],
        "attrs": {
            written.expand(name): [{"type": "Property", "value": value}]
            for name, value in data.items()
            if name not in REGISTRATION_MEMBERS
        },
    }


async def compile_csource_subscription(row: BrokerSubscription, contexts: ContextStore) -> CsourceCompiled:
    data = row.data
    ctx = await contexts.resolve(row.context)
    shown = await contexts.resolve(data["jsonldContext"]) if "jsonldContext" in data else ctx
    selectors = parse_selectors(data)
    georel = geometry = None
    geoproperty = "location"
    geo = data.get("geoQ")
    if geo:
        georel = parse_georel(geo["georel"])
        coordinates = geo["coordinates"]
        geometry = query_geometry(geo["geometry"], coordinates)
        geoproperty = geo.get("geoproperty") or "location"
    temporal_q = data.get("temporalQ")
    temporal = (
        parse_time_query(
            temporal_q["timerel"],
            temporal_q.get("timeAt"),
            temporal_q.get("endTimeAt"),
            temporal_q.get("timeproperty"),
            None,
        )
        if temporal_q
        else None
    )
    endpoint = data["notification"]["endpoint"]
    return CsourceCompiled(
        row=row,
        ctx=ctx,
        shown=shown,
        selectors=selectors,
        watched={ctx.expand(name) for name in data["watchedAttributes"]}
        if "watchedAttributes" in data
        else None,
        q=parse_q(data["q"]) if "q" in data else None,
        georel=georel,
        geometry=geometry,
        geoproperty=geoproperty,
        temporal=temporal,
        accept=endpoint.get("accept", JSON),
        endpoint=endpoint,
        context_value=shown.value if shown.value is not None else shown.urls[0],
        context_url=shown.urls[0],
    )
