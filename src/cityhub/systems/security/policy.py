"""Who may do what where: roles, permissions, tenant scope and what each route requires.

Pure functions, no storage: :mod:`guard` feeds them the caller and the request.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from cityhub.systems.standards import divisions


class Permission(StrEnum):
    DATA_READ = "data:read"
    DATA_WRITE = "data:write"
    USERS_MANAGE = "users:manage"
    TENANTS_MANAGE = "tenants:manage"
    AUDIT_READ = "audit:read"
    SECURITY_READ = "security:read"
    SECURITY_MANAGE = "security:manage"
    OPS_READ = "ops:read"
    #: Clearance to see personal information unmasked (PIPL: 个人信息, 敏感个人信息).
    PERSONAL_READ = "personal:read"
    #: The data catalog: search it and apply for conditional datasets; register and change
    #: datasets and decide on requests (each further limited to the owner department).
    CATALOG_READ = "catalog:read"
    CATALOG_WRITE = "catalog:write"


#: Permissions a person may use only with a token obtained with the second factor (TOTP).
NEEDS_MFA = frozenset(
    {
        Permission.USERS_MANAGE,
        Permission.TENANTS_MANAGE,
        Permission.AUDIT_READ,
        Permission.SECURITY_MANAGE,
    }
)

ROLES: dict[str, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "security_officer": frozenset(
        {Permission.SECURITY_READ, Permission.SECURITY_MANAGE, Permission.AUDIT_READ, Permission.OPS_READ}
    ),
    "auditor": frozenset({Permission.AUDIT_READ, Permission.SECURITY_READ}),
    "operator": frozenset(
        {
            Permission.DATA_READ,
            Permission.DATA_WRITE,
            Permission.OPS_READ,
            Permission.CATALOG_READ,
            Permission.CATALOG_WRITE,
        }
    ),
    "viewer": frozenset({Permission.DATA_READ, Permission.CATALOG_READ}),
    #: Reads data with personal information unmasked; every such read is audited.
    "data_officer": frozenset({Permission.DATA_READ, Permission.PERSONAL_READ, Permission.CATALOG_READ}),
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as the guard knows it for one request."""

    user_id: uuid.UUID
    username: str
    kind: str  # person | client
    tenant_code: str
    department_id: uuid.UUID | None
    platform_admin: bool
    grants: tuple[tuple[str, str], ...]  # (tenant, role)
    mfa: bool
    token_id: str = field(default="", compare=False)

    def roles_in(self, tenant: str, *, cascade: bool) -> set[str]:
        return {role for held_in, role in self.grants if covers(held_in, tenant, cascade=cascade)}

    def can(self, permission: Permission, tenant: str | None, *, cascade: bool) -> bool:
        """Whether the caller holds ``permission`` in ``tenant`` (None: platform-wide)."""
        if permission in NEEDS_MFA and not self.mfa:
            return False
        if self.platform_admin:
            return self.mfa or self.kind == "client"
        if tenant is None:
            return False
        return any(permission in ROLES.get(role, ()) for role in self.roles_in(tenant, cascade=cascade))

    def tenants_with(self, permission: Permission, *, cascade: bool) -> list[str] | None:
        """Tenants where ``permission`` is held, as grant roots (None: every tenant)."""
        if permission in NEEDS_MFA and not self.mfa:
            return []
        if self.platform_admin:
            return None if (self.mfa or self.kind == "client") else []
        return sorted({t for t, role in self.grants if permission in ROLES.get(role, ())})


def covers(held_in: str, tenant: str, *, cascade: bool) -> bool:
    """A role held in ``held_in`` applies in ``tenant``: the same tenant, or (when ``cascade``, the
    policy that a city's users see its counties) a division below it. A county's role never
    reaches its city or its neighbours. Broker tenant names that are no division code are only
    covered by themselves."""
    if held_in == tenant:
        return True
    if not cascade or not divisions.is_valid_code(tenant) or not divisions.is_valid_code(held_in):
        return False
    return held_in in divisions.lineage(tenant)[:-1]


@dataclass(frozen=True)
class Requirement:
    permission: Permission | None  # None: any authenticated caller
    #: tenant: held in the request's tenant; anywhere: held in some tenant; platform: platform admins
    scope: str = "tenant"

    def met_by(self, principal: Principal, tenant: str, *, cascade: bool) -> bool:
        if self.permission is None:
            return True
        if self.scope == "tenant":
            return principal.can(self.permission, tenant, cascade=cascade)
        if self.scope == "platform":
            return principal.can(self.permission, None, cascade=cascade)
        return principal.tenants_with(self.permission, cascade=cascade) != []


PUBLIC = None
AUTHENTICATED = Requirement(None, scope="anywhere")
_PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/api/v1/auth/token", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
#: Device transports: the ingest gateway authenticates each message by its service group's API key
#: (``k``) and refuses, counts and keeps as a dead letter what an unknown key sends (measures, polls
#: for commands, command results).
DEVICE_PATHS = frozenset({"/iot/json", "/iot/d", "/iot/json/commands"})
#: Open311 GeoReport v2 is for citizens: reading and posting need no account (posts are limited per
#: source address and, where the city requires it, by a registered client key).
OPEN311_PREFIX = "/open311/"
_SELF_SERVICE = re.compile(r"^/api/v1/auth/(me|totp/enroll|totp/confirm|revoke|password)$")
#: POST endpoints that only read (NGSI-LD queries with a body; the environment app's calculators,
#: which store nothing).
_READ_POSTS = re.compile(
    r"^(/ngsi-ld/v1/(temporal/)?entityOperations/query"
    r"|/api/v1/environment/(aqi|water/class|noise/compliance|soil/compliance|sources/compliance"
    r"|energy/intensity)"
    r"|/api/v1/rules/([^/]+/)?dry-run)$"
)
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


#: Where the hub's APIs live. A request under none of them that no route answers is for the web
#: console (cityhub.hub.console); one under them that no route answers is a 404 problem.
API_PREFIXES = (
    "/api/",
    "/ngsi-ld/",
    "/iot/",
    "/metrics",
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/docs",
    "/redoc",
)


def console_shell(method: str, path: str) -> bool:
    """Whether a request no route answered is for the web console's shell (its page, scripts and
    client routes), which is public: it holds no data, and every call it makes to the APIs carries
    the user's token and meets :func:`requirement` like any other. Only GET and HEAD outside
    :data:`API_PREFIXES`; since it applies only where no route matched, it never opens a route."""
    return method in ("GET", "HEAD") and not path.startswith(API_PREFIXES)


def is_read(method: str, path: str) -> bool:
    return method in _READ_METHODS or (method == "POST" and _READ_POSTS.match(path) is not None)


def requirement(method: str, path: str) -> Requirement | None:
    """What a request needs; None for the few public endpoints (health, token, API description)."""
    if path in _PUBLIC_PATHS or path in DEVICE_PATHS or path.startswith(OPEN311_PREFIX):
        return PUBLIC
    if _SELF_SERVICE.match(path):
        return AUTHENTICATED
    read = is_read(method, path)
    if path == "/metrics":
        return Requirement(Permission.OPS_READ, scope="anywhere")
    if path.startswith("/api/v1/tenants"):
        return AUTHENTICATED if read else Requirement(Permission.TENANTS_MANAGE, scope="platform")
    if path == "/api/v1/audit/verify":
        return Requirement(Permission.AUDIT_READ, scope="platform")
    if path.startswith("/api/v1/security/blocked-sources") and not read:
        return Requirement(Permission.SECURITY_MANAGE, scope="platform")
    if path.startswith("/api/v1/audit"):
        return Requirement(Permission.AUDIT_READ)
    if path.startswith(("/api/v1/users", "/api/v1/departments")):
        return Requirement(Permission.USERS_MANAGE)
    if path.startswith("/api/v1/catalog"):
        # applying for a dataset is a reader's request; the owner department decides it
        applying = method == "POST" and path.rstrip("/") == "/api/v1/catalog/sharing-requests"
        return Requirement(Permission.CATALOG_READ if read or applying else Permission.CATALOG_WRITE)
    if path.startswith("/api/v1/security"):
        return Requirement(Permission.SECURITY_READ if read else Permission.SECURITY_MANAGE)
    return Requirement(Permission.DATA_READ if read else Permission.DATA_WRITE)
