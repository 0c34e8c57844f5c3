"""The plug-in API: the only module applications import from CityHub.

An application is a :class:`HubApp` subclass with a :class:`Manifest`, published under the
entry-point group ``cityhub.apps``. Everything it needs from the hub is re-exported here: the
registry, errors, events and the outbox, the database base classes and request dependencies.
"""

from __future__ import annotations

from cityhub.bus import Event, enqueue, first_delivery
from cityhub.hub.tenancy.events import TenantCreated, TenantUpdated
from cityhub.kit.db import (
    ALL_TENANTS,
    Base,
    JSONType,
    TenantOwned,
    Timestamped,
    current_tenant,
    scope_to_tenant,
)
from cityhub.kit.errors import (
    AlreadyExists,
    BadRequestData,
    Conflict,
    Forbidden,
    HubError,
    InvalidRequest,
    NotFound,
    UnprocessableEntity,
)
from cityhub.kit.time import isoformat, utcnow
from cityhub.kit.web import TENANT_HEADER, DbSession, RequestTenant
from cityhub.plugins import cases, casestats, entities
from cityhub.plugins.entities import EntitiesChanged, EntitySession
from cityhub.plugins.indicators import Indicator, TaskArea
from cityhub.plugins.lifecycle import AppContext, AppStatus, EventCounts, HubApp, Platform, TenantInfo
from cityhub.plugins.loader import ENTRY_POINT_GROUP, AppRunner, Discovered, discover
from cityhub.plugins.manifest import AppSettings, Manifest
from cityhub.plugins.registry import (
    AppRegistry,
    CaseAction,
    CaseType,
    DuplicateRegistration,
    EntityType,
    IndicatorValue,
    Registry,
    RegistryClosed,
    RuleTemplate,
)

__all__ = [
    "ALL_TENANTS",
    "ENTRY_POINT_GROUP",
    "TENANT_HEADER",
    "AlreadyExists",
    "AppContext",
    "AppRegistry",
    "AppRunner",
    "AppSettings",
    "AppStatus",
    "BadRequestData",
    "Base",
    "CaseAction",
    "CaseType",
    "Conflict",
    "DbSession",
    "Discovered",
    "DuplicateRegistration",
    "EntitiesChanged",
    "EntitySession",
    "EntityType",
    "Event",
    "EventCounts",
    "Forbidden",
    "HubApp",
    "HubError",
    "Indicator",
    "IndicatorValue",
    "InvalidRequest",
    "JSONType",
    "Manifest",
    "NotFound",
    "Platform",
    "Registry",
    "RegistryClosed",
    "RequestTenant",
    "RuleTemplate",
    "TaskArea",
    "TenantCreated",
    "TenantInfo",
    "TenantOwned",
    "TenantUpdated",
    "Timestamped",
    "UnprocessableEntity",
    "cases",
    "casestats",
    "current_tenant",
    "discover",
    "enqueue",
    "entities",
    "first_delivery",
    "isoformat",
    "scope_to_tenant",
    "utcnow",
]
