"""Identity logic: users, departments, role grants, logins and tokens.

Functions take the session first and never commit. Logins return an outcome instead of raising,
so the endpoint can commit what a failed attempt changed (the failure count, a lockout) and still
answer 401.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.tenancy.models import Tenant
from cityhub.kit.errors import AlreadyExists, BadRequestData, Forbidden, HubError, NotFound, Unauthorized
from cityhub.kit.ids import new_id
from cityhub.kit.time import utcnow
from cityhub.systems.security import audit, credentials
from cityhub.systems.security.models import Department, RefreshToken, RoleGrant, User
from cityhub.systems.security.policy import ROLES, Permission, Principal, covers
from cityhub.systems.security.schemas import (
    DepartmentCreate,
    TokenResponse,
    UserCreate,
    UserUpdate,
)


@dataclass(frozen=True)
class TokenPolicy:
    key: str
    access_ttl: int
    refresh_ttl: int
    lockout_threshold: int
    lockout_minutes: int
    password_min_length: int


def invalid_grant(detail: str = "invalid credentials, or the account is locked or disabled") -> Unauthorized:
    return Unauthorized(detail, error="invalid_grant")


@dataclass
class LoginOutcome:
    """What a token request came to: tokens, or the error to answer and the events it raises."""

    tokens: TokenResponse | None = None
    error: HubError | None = None
    user: User | None = None
    events: list[str] = field(default_factory=list)


# --- users and departments ------------------------------------------------------------------


async def user_by_name(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(User.username == username))


async def load_principal(session: AsyncSession, user_id: uuid.UUID) -> tuple[User, list[RoleGrant]] | None:
    user = await session.get(User, user_id)
    if user is None:
        return None
    grants = (await session.scalars(select(RoleGrant).where(RoleGrant.user_id == user_id))).all()
    return user, list(grants)


async def grants_of(session: AsyncSession, user_id: uuid.UUID) -> list[RoleGrant]:
    rows = await session.scalars(
        select(RoleGrant).where(RoleGrant.user_id == user_id).order_by(RoleGrant.tenant_code, RoleGrant.role)
    )
    return list(rows.all())


async def _require_tenant(session: AsyncSession, code: str) -> None:
    if await session.get(Tenant, code) is None:
        raise BadRequestData(f"tenant {code} does not exist")


async def create_user(
    session: AsyncSession,
    data: UserCreate,
    *,
    tenant: str,
    actor: str,
    min_length: int,
    platform_admin: bool = False,
) -> User:
    await _require_tenant(session, tenant)
    credentials.check_password_policy(data.password, username=data.username, min_length=min_length)
    if await user_by_name(session, data.username) is not None:
        raise AlreadyExists(f"user name {data.username!r} is taken")
    if data.department_id is not None:
        await get_department(session, data.department_id, tenant=tenant)
    user = User(
        id=new_id(),
        username=data.username,
        display_name=data.display_name,
        kind=data.kind,
        tenant_code=tenant,
        department_id=data.department_id,
        password_hash=credentials.hash_password(data.password),
        password_changed_at=utcnow(),
        active=True,
        platform_admin=platform_admin,
        failed_logins=0,
        totp_enabled=False,
    )
    session.add(user)
    await session.flush()
    await audit.append(
        session,
        "security.user_created",
        actor=actor,
        tenant_code=tenant,
        detail={"user": data.username, "kind": data.kind, "platform_admin": platform_admin},
    )
    for role in data.roles:
        await _add_grant(session, user, role, tenant, actor=actor)
    return user


async def get_user(session: AsyncSession, user_id: uuid.UUID, *, tenant: str) -> User:
    """A user whose home is ``tenant``; any other user is not found (whether it exists elsewhere
    is not told)."""
    user = await session.get(User, user_id)
    if user is None or user.tenant_code != tenant:
        raise NotFound(f"no user {user_id} in tenant {tenant}")
    return user


async def list_users(
    session: AsyncSession, *, tenant: str, limit: int, offset: int
) -> tuple[Sequence[User], int]:
    query = select(User).where(User.tenant_code == tenant)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(User.username).limit(limit).offset(offset))
    return rows.all(), int(total or 0)


async def update_user(session: AsyncSession, user: User, data: UserUpdate, *, actor: str) -> User:
    changes = data.model_dump(exclude_unset=True)
    if "active" in changes and changes["active"] is None:
        raise BadRequestData("active cannot be null")
    if changes.get("department_id") is not None:
        await get_department(session, changes["department_id"], tenant=user.tenant_code)
    unlock = changes.pop("unlock", None)
    if unlock:
        user.failed_logins = 0
        user.locked_until = None
    for key, value in changes.items():
        setattr(user, key, value)
    if changes.get("active") is False:
        await revoke_all_tokens(session, user, actor=actor, reason="user disabled")
    await session.flush()
    await audit.append(
        session,
        "security.user_updated",
        actor=actor,
        tenant_code=user.tenant_code,
        detail={"user": user.username, "changes": sorted(changes) + (["unlock"] if unlock else [])},
    )
    return user


async def _add_grant(session: AsyncSession, user: User, role: str, tenant: str, *, actor: str) -> RoleGrant:
    if role not in ROLES:
        raise BadRequestData(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    existing = await session.scalar(
        select(RoleGrant).where(
            RoleGrant.user_id == user.id, RoleGrant.tenant_code == tenant, RoleGrant.role == role
        )
    )
    if existing is not None:
        return existing
    grant = RoleGrant(id=new_id(), user_id=user.id, tenant_code=tenant, role=role, granted_by=actor)
    session.add(grant)
    await session.flush()
    await audit.append(
        session,
        "security.role_granted",
        actor=actor,
        tenant_code=tenant,
        detail={"user": user.username, "role": role},
    )
    return grant


async def grant_role(
    session: AsyncSession, principal: Principal, user: User, role: str, tenant: str, *, cascade: bool
) -> RoleGrant:
    """Give ``user`` ``role`` in ``tenant``; the granter must manage users there, and a grant may
    not reach beyond the user's own home (a county user never gets a role in the city)."""
    await _require_tenant(session, tenant)
    if not principal.can(Permission.USERS_MANAGE, tenant, cascade=cascade):
        raise Forbidden(f"you may not grant roles in tenant {tenant}")
    if not covers(user.tenant_code, tenant, cascade=True):
        raise BadRequestData(f"{user.username} belongs to {user.tenant_code}; roles may not reach {tenant}")
    if user.kind == "client" and role == "admin":
        raise BadRequestData("system clients cannot be administrators")
    return await _add_grant(session, user, role, tenant, actor=principal.username)


async def revoke_role(
    session: AsyncSession, principal: Principal, user: User, role: str, tenant: str, *, cascade: bool
) -> None:
    if not principal.can(Permission.USERS_MANAGE, tenant, cascade=cascade):
        raise Forbidden(f"you may not change roles in tenant {tenant}")
    grant = await session.scalar(
        select(RoleGrant).where(
            RoleGrant.user_id == user.id, RoleGrant.tenant_code == tenant, RoleGrant.role == role
        )
    )
    if grant is None:
        raise NotFound(f"{user.username} holds no role {role} in {tenant}")
    await session.delete(grant)
    await session.flush()
    await audit.append(
        session,
        "security.role_revoked",
        actor=principal.username,
        tenant_code=tenant,
        detail={"user": user.username, "role": role},
    )


async def revoke_all_tokens(session: AsyncSession, user: User, *, actor: str, reason: str) -> None:
    """Refuse every access token issued so far and revoke every refresh token."""
    now = utcnow()
    user.tokens_valid_after = now
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    await audit.append(
        session,
        "security.tokens_revoked",
        actor=actor,
        tenant_code=user.tenant_code,
        detail={"user": user.username, "reason": reason},
    )


async def create_department(
    session: AsyncSession, data: DepartmentCreate, *, tenant: str, actor: str
) -> Department:
    await _require_tenant(session, tenant)
    exists = await session.scalar(
        select(Department.id).where(Department.tenant_code == tenant, Department.code == data.code)
    )
    if exists is not None:
        raise AlreadyExists(f"department {data.code} already exists in {tenant}")
    department = Department(
        id=new_id(), tenant_code=tenant, code=data.code, name=data.name, name_en=data.name_en
    )
    session.add(department)
    await session.flush()
    await audit.append(
        session, "security.department_created", actor=actor, tenant_code=tenant, detail={"code": data.code}
    )
    return department


async def get_department(session: AsyncSession, department_id: uuid.UUID, *, tenant: str) -> Department:
    department = await session.get(Department, department_id)
    if department is None or department.tenant_code != tenant:
        raise BadRequestData(f"no department {department_id} in tenant {tenant}")
    return department


async def list_departments(session: AsyncSession, *, tenant: str) -> Sequence[Department]:
    rows = await session.scalars(
        select(Department).where(Department.tenant_code == tenant).order_by(Department.code)
    )
    return rows.all()


# --- passwords and the second factor --------------------------------------------------------


async def change_password(
    session: AsyncSession, user: User, current: str, new: str, *, min_length: int
) -> None:
    if not credentials.verify_password(user.password_hash, current):
        raise BadRequestData("the current password is wrong")
    credentials.check_password_policy(new, username=user.username, min_length=min_length)
    if credentials.verify_password(user.password_hash, new):
        raise BadRequestData("the new password must differ from the current one")
    user.password_hash = credentials.hash_password(new)
    user.password_changed_at = utcnow()
    await revoke_all_tokens(session, user, actor=user.username, reason="password changed")


async def start_totp(session: AsyncSession, user: User) -> str:
    """A new secret, kept until confirmed with a code from it; an enabled factor is replaced only
    through :func:`confirm_totp` as well."""
    secret = credentials.new_totp_secret()
    user.totp_secret = secret
    user.totp_enabled = False
    user.totp_last_step = None
    await session.flush()
    return secret


async def confirm_totp(session: AsyncSession, user: User, code: str) -> None:
    if user.totp_secret is None:
        raise BadRequestData("start enrolment first (POST /api/v1/auth/totp/enroll)")
    step = credentials.totp_step(user.totp_secret, code, last_step=user.totp_last_step)
    if step is None:
        raise BadRequestData("the code does not match; check the authenticator's clock")
    user.totp_enabled = True
    user.totp_last_step = step
    await session.flush()
    await audit.append(
        session, "security.totp_enabled", actor=user.username, tenant_code=user.tenant_code, detail={}
    )


# --- logins and tokens ----------------------------------------------------------------------


async def _issue(
    session: AsyncSession,
    policy: TokenPolicy,
    user: User,
    *,
    mfa: bool,
    family: uuid.UUID | None,
    with_refresh: bool,
) -> TokenResponse:
    refresh = None
    if with_refresh:
        family = family or new_id()
        refresh, digest = credentials.new_refresh_token()
        session.add(
            RefreshToken(
                id=new_id(),
                token_hash=digest,
                user_id=user.id,
                family_id=family,
                mfa=mfa,
                issued_at=utcnow(),
                expires_at=utcnow() + timedelta(seconds=policy.refresh_ttl),
            )
        )
    access, _ = credentials.issue_access_token(
        policy.key, user_id=user.id, username=user.username, ttl=policy.access_ttl, family_id=family, mfa=mfa
    )
    return TokenResponse(access_token=access, expires_in=policy.access_ttl, refresh_token=refresh, mfa=mfa)


async def _fail(
    session: AsyncSession, policy: TokenPolicy, user: User, *, source: str | None, reason: str
) -> LoginOutcome:
    outcome = LoginOutcome(error=invalid_grant(), user=user, events=["login_failed"])
    user.failed_logins += 1
    if user.failed_logins >= policy.lockout_threshold:
        user.locked_until = utcnow() + timedelta(minutes=policy.lockout_minutes)
        user.failed_logins = 0
        outcome.events.append("account_locked")
    await session.flush()
    await audit.append(
        session,
        "auth.login_failed",
        actor=user.username,
        tenant_code=user.tenant_code,
        source=source,
        detail={"reason": reason, "locked": user.locked_until is not None and user.locked_until > utcnow()},
    )
    return outcome


async def login(
    session: AsyncSession,
    policy: TokenPolicy,
    *,
    username: str,
    secret: str,
    kind: str,
    totp: str | None,
    source: str | None,
) -> LoginOutcome:
    """The password grant (``kind`` person) and the client-credentials grant (``kind`` client)."""
    user = await user_by_name(session, username)
    if user is None or user.kind != kind:
        credentials.verify_password(None, secret)  # the same work as for a real user
        await audit.append(
            session,
            "auth.login_failed",
            actor=username[:64] or "?",
            source=source,
            detail={"reason": "unknown user"},
        )
        return LoginOutcome(error=invalid_grant(), events=["login_failed"])
    now = utcnow()
    if user.locked_until is not None and user.locked_until > now:
        credentials.verify_password(None, secret)
        await audit.append(
            session,
            "auth.login_failed",
            actor=user.username,
            tenant_code=user.tenant_code,
            source=source,
            detail={"reason": "locked"},
        )
        return LoginOutcome(error=invalid_grant(), user=user, events=["login_failed"])
    if not credentials.verify_password(user.password_hash, secret):
        return await _fail(session, policy, user, source=source, reason="wrong password")
    if not user.active:
        return await _fail(session, policy, user, source=source, reason="disabled")
    mfa = False
    if user.totp_enabled and user.totp_secret is not None:
        if not totp:
            return LoginOutcome(
                error=Unauthorized(
                    "this account needs its one-time code: send it as the totp form field",
                    error="invalid_grant",
                    mfa_required=True,
                ),
                user=user,
            )
        step = credentials.totp_step(user.totp_secret, totp, last_step=user.totp_last_step)
        if step is None:
            return await _fail(session, policy, user, source=source, reason="wrong one-time code")
        user.totp_last_step = step
        mfa = True
    if credentials.needs_rehash(user.password_hash):
        user.password_hash = credentials.hash_password(secret)
    had_failures = user.failed_logins > 0
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    tokens = await _issue(session, policy, user, mfa=mfa, family=None, with_refresh=kind == "person")
    await session.flush()
    await audit.append(
        session,
        "auth.login",
        actor=user.username,
        tenant_code=user.tenant_code,
        source=source,
        detail={"grant": "password" if kind == "person" else "client_credentials", "mfa": mfa},
    )
    return LoginOutcome(
        tokens=tokens, user=user, events=["login_succeeded_after_failures"] if had_failures else []
    )


async def refresh(
    session: AsyncSession, policy: TokenPolicy, *, token: str, source: str | None
) -> LoginOutcome:
    """Rotate a refresh token. A revoked one presented again is taken as stolen: its whole family
    is revoked, so neither the thief nor the owner can go on with it."""
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == credentials.token_digest(token))
    )
    if row is None:
        return LoginOutcome(error=invalid_grant("the refresh token is not valid"), events=["token_invalid"])
    user = await session.get(User, row.user_id)
    assert user is not None  # the foreign key cascades
    now = utcnow()
    if row.revoked_at is not None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == row.family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        await audit.append(
            session,
            "auth.refresh_reuse",
            actor=user.username,
            tenant_code=user.tenant_code,
            source=source,
            detail={"family": str(row.family_id)},
        )
        return LoginOutcome(
            error=invalid_grant("the refresh token was revoked"), user=user, events=["refresh_token_reuse"]
        )
    if row.expires_at <= now:
        return LoginOutcome(error=invalid_grant("the refresh token has expired"), user=user)
    if not user.active or (user.locked_until is not None and user.locked_until > now):
        return LoginOutcome(error=invalid_grant(), user=user)
    row.revoked_at = now
    tokens = await _issue(session, policy, user, mfa=row.mfa, family=row.family_id, with_refresh=True)
    await session.flush()
    return LoginOutcome(tokens=tokens, user=user)


async def revoke_refresh(session: AsyncSession, user_id: uuid.UUID, token: str) -> None:
    """RFC 7009: revoke the caller's refresh token (its family); an unknown token is no error."""
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == credentials.token_digest(token))
    )
    if row is None or row.user_id != user_id:
        return
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == row.family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
