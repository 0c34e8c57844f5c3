"""Cases: opening (routing, triage, duplicates), corrections, transitions, history, comments.

Functions take the session first (scoped to the case's tenant) and never commit; events leave
after the commit through the outbox. Every change of a case is one history row and one write of
its NGSI-LD entity (type ``CityCase``) through the broker's write path, in the same transaction.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, not_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.bus import enqueue
from cityhub.hub.dispatch import reference, workflow
from cityhub.hub.dispatch.calendar import WorkingCalendar
from cityhub.hub.dispatch.casetypes import CaseAction, CaseType
from cityhub.hub.dispatch.entity import write_entities
from cityhub.hub.dispatch.events import CaseOpened, CaseTransitioned
from cityhub.hub.dispatch.models import (
    DispatchCase,
    DispatchCaseEvent,
    DispatchCategory,
    DispatchComment,
)
from cityhub.kit.db import current_tenant, locked, scope_to_tenant, take_write_lock
from cityhub.kit.errors import BadRequestData, Conflict, Forbidden, NotFound
from cityhub.kit.geo import haversine_m
from cityhub.kit.time import isoformat, utcnow

#: ``session.info`` key: the hub's :class:`Options` for this workflow.
OPTIONS_KEY = "cityhub.dispatch"
URGENCIES = reference.URGENCIES
SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class Options:
    duplicate_radius_m: float = 50.0
    duplicate_window: timedelta = timedelta(hours=24)


def options(session: AsyncSession) -> Options:
    found = session.info.get(OPTIONS_KEY)
    return found if isinstance(found, Options) else Options()


def _tenant(session: AsyncSession) -> str:
    tenant = current_tenant(session)
    assert tenant is not None, "dispatch sessions are scoped to a tenant"
    return tenant


# -- history ----------------------------------------------------------------------------------------


def record_history(
    session: AsyncSession,
    case: DispatchCase,
    *,
    actor: str,
    action: str,
    from_state: str | None,
    to_state: str | None,
    note: str | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    session.add(
        DispatchCaseEvent(
            case_id=case.id,
            at=at or utcnow(),
            actor=actor,
            action=action,
            from_state=from_state,
            to_state=to_state,
            note=note,
            data=data,
        )
    )


# -- time limits ------------------------------------------------------------------------------------


def _start_stage(
    case: DispatchCase,
    case_type: CaseType,
    category: DispatchCategory | None,
    calendar: WorkingCalendar,
    now: datetime,
    *,
    restart: bool = False,
) -> None:
    """Start the clock of the stage the case's state counts against (unless it is the stage
    already running and ``restart`` is false); a state of no stage stops the clock."""
    stage = case_type.stages.get(case.state)
    if stage is None:
        case.stage, case.stage_started_at, case.due_at, case.overdue = None, None, None, False
        case.escalated_at = None
        return
    if stage == case.stage and not restart:
        return
    case.stage, case.stage_started_at, case.overdue, case.escalated_at = stage, now, False, None
    minutes = reference.limit_minutes(category, case.urgency, stage)
    case.due_at = calendar.add(now, minutes) if minutes is not None else None


# -- opening ----------------------------------------------------------------------------------------


def _point(location: Mapping[str, Any] | None) -> tuple[float, float] | None:
    if location is None:
        return None
    coordinates = location.get("coordinates") if isinstance(location, Mapping) else None
    if (
        location.get("type") != "Point"
        or not isinstance(coordinates, list | tuple)
        or len(coordinates) != 2
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coordinates)
    ):
        raise BadRequestData("location must be a GeoJSON Point [longitude, latitude]")
    lon, lat = float(coordinates[0]), float(coordinates[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90) or not (math.isfinite(lon) and math.isfinite(lat)):
        raise BadRequestData("location: longitude within ±180 and latitude within ±90")
    return lon, lat


async def _serialize_reports(session: AsyncSession, category_code: str) -> None:
    """Reports of one category in one tenant are opened one transaction at a time, so two reports
    of the same thing arriving together are linked rather than both opened: on PostgreSQL an
    advisory lock held until commit; on SQLite the database's write lock, taken before the
    duplicate check reads (reads before a transaction's first write see every commit, so without
    it concurrent reports all find nothing)."""
    if session.get_bind().dialect.name != "postgresql":
        await take_write_lock(session, DispatchCase)
        return
    digest = hashlib.blake2b(f"dispatch:{_tenant(session)}:{category_code}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


async def _duplicate_target(
    session: AsyncSession, category_code: str, point: tuple[float, float], now: datetime
) -> DispatchCase | None:
    """The nearest open case of the same category within the radius, opened in the window."""
    chosen = options(session)
    lon, lat = point
    dlat = chosen.duplicate_radius_m / 111_000 * 1.01
    dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
    rows = await session.scalars(
        select(DispatchCase).where(
            DispatchCase.category_code == category_code,
            DispatchCase.created_at >= now - chosen.duplicate_window,
            DispatchCase.duplicate_of.is_(None),
            DispatchCase.lon.between(lon - dlon, lon + dlon),
            DispatchCase.lat.between(lat - dlat, lat + dlat),
        )
    )
    types = workflow.case_types(session)
    best: tuple[float, DispatchCase] | None = None
    for row in rows:
        known = types.get(row.case_type)
        if known is None or not workflow.is_open(known, row.state):
            continue
        assert row.lon is not None
        assert row.lat is not None
        distance = haversine_m(lon, lat, row.lon, row.lat)
        if distance <= chosen.duplicate_radius_m and (best is None or distance < best[0]):
            best = (distance, row)
    return best[1] if best is not None else None


async def _route_case(
    session: AsyncSession, case: DispatchCase, category: DispatchCategory | None
) -> reference.Routed | None:
    """Locate the case's grid cell and district and choose its department, or put it in the
    triage queue saying why."""
    point = (case.lon, case.lat) if case.lon is not None and case.lat is not None else None
    cell = await reference.locate(session, *point) if point else None
    reasons = []
    if category is None:
        reasons.append(f"unknown category {case.category_code}")
    if point is not None and cell is None:
        reasons.append("outside every grid cell")
    routed = await reference.route(session, category, cell) if not reasons else None
    if not reasons and routed is None:
        reasons.append("no department found" if point else "no location and no route for the category")
    case.grid_code = cell.code if cell else None
    case.district_code = cell.district_code if cell else None
    case.department_tenant = routed.department_tenant if routed else None
    case.department_code = routed.department_code if routed else None
    case.triage = bool(reasons)
    case.triage_reason = "; ".join(reasons)[:200] if reasons else None
    return routed


async def open_case(
    session: AsyncSession,
    *,
    tenant: str,
    case_type: str,
    category_code: str,
    title: str,
    description: str,
    location: Mapping[str, Any] | None,
    urgency: str,
    source: str,
    source_ref: str | None,
    reporter: str | None = None,
) -> DispatchCase:
    """Open a case: locate its grid cell and district, route it to the responsible department,
    start its first stage's clock. A case of an unknown category, outside every grid cell or with
    no department found waits in the triage queue; a report of the same category within the
    duplicate radius of an open case of the last 24 hours is kept, linked to that case
    (``duplicate_of``), in the final state ``merged``."""
    scoped = current_tenant(session)
    if scoped not in (None, tenant):
        raise ValueError(f"a case of tenant {tenant} opened in a session of tenant {scoped}")
    scope_to_tenant(session, tenant)
    try:
        return await _open_case(
            session,
            case_type=case_type,
            category_code=category_code,
            title=title,
            description=description,
            location=location,
            urgency=urgency,
            source=source,
            source_ref=source_ref,
            reporter=reporter,
        )
    finally:
        scope_to_tenant(session, scoped)


async def _open_case(
    session: AsyncSession,
    *,
    case_type: str,
    category_code: str,
    title: str,
    description: str,
    location: Mapping[str, Any] | None,
    urgency: str,
    source: str,
    source_ref: str | None,
    reporter: str | None,
) -> DispatchCase:
    kind = workflow.case_type(session, case_type)
    if urgency not in URGENCIES:
        raise BadRequestData(f"urgency must be one of {', '.join(URGENCIES)}")
    if not title.strip():
        raise BadRequestData("a case needs a title")
    point = _point(location)
    now = utcnow()
    actor = reporter or source
    category = await reference.find_category(session, category_code)
    if category is not None and not category.active:
        category = None
    case = DispatchCase(
        id=uuid.uuid4(),
        case_type=kind.key,
        state=kind.initial,
        title=title.strip()[:200],
        description=description,
        category_code=category_code,
        urgency=urgency,
        source=source,
        source_ref=source_ref,
        reporter=reporter,
        lon=point[0] if point else None,
        lat=point[1] if point else None,
        created_at=now,
        updated_at=now,
    )
    original = None
    if point and category:
        await _serialize_reports(session, category_code)
        original = await _duplicate_target(session, category_code, point, now)
    if original is not None:
        case.state = workflow.MERGED
        case.duplicate_of = original.id
        case.department_tenant, case.department_code = original.department_tenant, original.department_code
        case.grid_code, case.district_code = original.grid_code, original.district_code
        session.add(case)
        await session.flush()
        original.duplicates += 1
        original.updated_at = now
        record_history(
            session,
            case,
            actor=actor,
            action="open",
            from_state=None,
            to_state=case.state,
            at=now,
            note=f"duplicate of {original.id}",
            data={"duplicate_of": str(original.id)},
        )
        record_history(
            session,
            original,
            actor=actor,
            action="link_duplicate",
            from_state=original.state,
            to_state=original.state,
            at=now,
            data={"duplicate": str(case.id)},
        )
        await write_entities(session, [case, original])
        _announce_opened(session, case)
        return case
    routed = await _route_case(session, case, category)
    _start_stage(case, kind, category, await reference.working_calendar(session), now)
    session.add(case)
    await session.flush()
    record_history(
        session,
        case,
        actor=actor,
        action="open",
        from_state=None,
        to_state=case.state,
        at=now,
        note=case.triage_reason,
        data={
            "department": case.department_code,
            "department_tenant": case.department_tenant,
            "rule": routed.rule if routed else None,
            "grid_cell": case.grid_code,
            "district": case.district_code,
            "triage": case.triage,
        },
    )
    await write_entities(session, [case])
    _announce_opened(session, case)
    return case


def _announce_opened(session: AsyncSession, case: DispatchCase) -> None:
    enqueue(
        session,
        CaseOpened(
            tenant=case.tenant_code or _tenant(session),
            case_id=str(case.id),
            case_type=case.case_type,
            category=case.category_code,
            state=case.state,
            department=case.department_code,
            triage=case.triage,
            duplicate_of=str(case.duplicate_of) if case.duplicate_of else None,
            source=case.source,
            source_ref=case.source_ref,
        ),
    )


# -- correcting -------------------------------------------------------------------------------------

#: What a correction may change.
CORRECTABLE = ("category_code", "location", "urgency", "title", "description")


async def correct_case(
    session: AsyncSession, case_id: str | uuid.UUID, *, actor: str, changes: Mapping[str, Any]
) -> DispatchCase:
    """Correct an open case: its category, location, urgency, title or description. Until the
    case is dispatched, a new category or location routes it again (which may take it out of the
    triage queue, or put it in); a new category or urgency recomputes the running stage's due
    time from the stage's start."""
    case = await get_case(session, case_id, for_update=True)
    kind = workflow.case_type(session, case.case_type)
    if not workflow.is_open(kind, case.state):
        raise Conflict(f"case {case.id} is {case.state}: it can no longer be corrected", state=case.state)
    unknown = set(changes) - set(CORRECTABLE)
    if unknown:
        raise BadRequestData(f"cannot change {', '.join(sorted(unknown))}; only {', '.join(CORRECTABLE)}")
    recorded: dict[str, Any] = {}
    if "urgency" in changes and changes["urgency"] not in URGENCIES:
        raise BadRequestData(f"urgency must be one of {', '.join(URGENCIES)}")
    for name in ("title", "description", "urgency", "category_code"):
        if name in changes and changes[name] is not None and changes[name] != getattr(case, name):
            if name == "title" and not str(changes[name]).strip():
                raise BadRequestData("a case needs a title")
            recorded[name] = {"from": getattr(case, name), "to": changes[name]}
            setattr(case, name, changes[name])
    if "location" in changes:
        point = _point(changes["location"])
        old = [case.lon, case.lat] if case.lon is not None else None
        new = list(point) if point else None
        if new != old:
            recorded["location"] = {"from": old, "to": new}
            case.lon, case.lat = point if point else (None, None)
    if not recorded:
        return case
    now = utcnow()
    category = await reference.find_category(session, case.category_code)
    if category is not None and not category.active:
        category = None
    if case.dispatched_at is None and ({"category_code", "location"} & set(recorded)):
        routed = await _route_case(session, case, category)
        recorded["routing"] = {
            "department": case.department_code,
            "department_tenant": case.department_tenant,
            "rule": routed.rule if routed else None,
            "triage": case.triage,
        }
    running = case.stage is not None and kind.stages.get(case.state) == case.stage  # not while suspended
    if {"category_code", "urgency"} & set(recorded) and running:
        assert case.stage is not None
        minutes = reference.limit_minutes(category, case.urgency, case.stage)
        start = case.stage_started_at or now
        calendar = await reference.working_calendar(session)
        case.due_at = calendar.add(start, minutes) if minutes is not None else None
        case.overdue = case.due_at is not None and case.due_at < now and case.overdue
    case.updated_at = now
    record_history(
        session,
        case,
        actor=actor,
        action="correct",
        from_state=case.state,
        to_state=case.state,
        data=recorded,
        at=now,
        note=case.triage_reason,
    )
    await session.flush()
    await write_entities(session, [case])
    return case


# -- reading ----------------------------------------------------------------------------------------


async def get_case(
    session: AsyncSession, case_id: str | uuid.UUID, *, for_update: bool = False
) -> DispatchCase:
    """The case; 404 if there is none. ``for_update``: the caller decides from its state and
    changes it, so it is locked until the commit and a second such caller is judged on the state
    the first left (``kit.db.locked``)."""
    try:
        key = case_id if isinstance(case_id, uuid.UUID) else uuid.UUID(case_id)
    except ValueError:
        raise NotFound(f"no case {case_id}") from None
    statement = select(DispatchCase).where(DispatchCase.id == key)
    if for_update:
        statement = await locked(session, DispatchCase, statement)
    found = (await session.scalars(statement)).first()
    if found is None:
        raise NotFound(f"no case {case_id}")
    return found


@dataclass
class CaseFilter:
    state: str | None = None
    category: str | None = None
    department: str | None = None
    district: str | None = None
    grid: str | None = None
    overdue: bool | None = None
    triage: bool | None = None
    case_type: str | None = None
    duplicate_of: str | None = None
    #: True: cases not in a terminal state of their type (nor merged); False: the others
    is_open: bool | None = None
    opened_after: datetime | None = None
    opened_before: datetime | None = None


def _open_condition(types: Mapping[str, CaseType]) -> ColumnElement[bool]:
    """Cases in no terminal state of their type (a case of an unknown type counts as open)."""
    closed = [
        and_(DispatchCase.case_type == key, DispatchCase.state.in_(kind.terminal))
        for key, kind in types.items()
        if kind.terminal
    ]
    return and_(DispatchCase.state != workflow.MERGED, not_(or_(false(), *closed)))


def _filtered(where: CaseFilter, types: Mapping[str, CaseType]) -> Select[Any]:
    statement = select(DispatchCase)
    for column, value in (
        (DispatchCase.state, where.state),
        (DispatchCase.category_code, where.category),
        (DispatchCase.department_code, where.department),
        (DispatchCase.district_code, where.district),
        (DispatchCase.grid_code, where.grid),
        (DispatchCase.overdue, where.overdue),
        (DispatchCase.triage, where.triage),
        (DispatchCase.case_type, where.case_type),
    ):
        if value is not None:
            statement = statement.where(column == value)
    is_open = True if where.triage else where.is_open  # the queue: cases still waiting for a person
    if is_open is not None:
        condition = _open_condition(types)
        statement = statement.where(condition if is_open else not_(condition))
    if where.opened_after is not None:
        statement = statement.where(DispatchCase.created_at >= where.opened_after)
    if where.opened_before is not None:
        statement = statement.where(DispatchCase.created_at < where.opened_before)
    if where.duplicate_of is not None:
        try:
            statement = statement.where(DispatchCase.duplicate_of == uuid.UUID(where.duplicate_of))
        except ValueError:
            raise BadRequestData(f"duplicate_of: {where.duplicate_of!r} is not a case id") from None
    return statement


async def list_cases(
    session: AsyncSession, where: CaseFilter, *, limit: int, offset: int
) -> tuple[list[DispatchCase], int]:
    statement = _filtered(where, workflow.case_types(session))
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(
        statement.order_by(DispatchCase.created_at.desc(), DispatchCase.id).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


async def history(session: AsyncSession, case: DispatchCase) -> list[DispatchCaseEvent]:
    rows = await session.scalars(
        select(DispatchCaseEvent)
        .where(DispatchCaseEvent.case_id == case.id)
        .order_by(DispatchCaseEvent.at, DispatchCaseEvent.id)
    )
    return sorted(rows, key=lambda row: row.at)


# -- transitions ------------------------------------------------------------------------------------


def allowed_actions(case: DispatchCase, case_type: CaseType) -> list[CaseAction]:
    if case.state == workflow.MERGED:
        return []
    return case_type.allowed(case.state)


def _refuse(case: DispatchCase, case_type: CaseType, action: str) -> Conflict:
    allowed = allowed_actions(case, case_type)
    if case.state == workflow.MERGED:
        detail = f"case {case.id} is a duplicate of {case.duplicate_of}: act on that case"
    else:
        names = ", ".join(f"{a.name} (→ {a.target})" for a in allowed) or "none, the case is closed"
        detail = f"{action!r} is not allowed in state {case.state!r}; allowed: {names}"
    return Conflict(
        detail,
        state=case.state,
        allowed_actions=[a.name for a in allowed],
        allowed_states=list(dict.fromkeys(a.target for a in allowed)),
    )


async def _resolve_department(
    session: AsyncSession, case: DispatchCase, code: str, tenant: str | None
) -> tuple[str, str]:
    owners = [tenant] if tenant else [t for t in (case.district_code, _tenant(session)) if t]
    for owner in owners:
        if await reference.department_exists(session, owner, code):
            return owner, code
    raise BadRequestData(f"no department {code} in tenant {' or '.join(owners)}")


async def transition(
    session: AsyncSession,
    case_id: str | uuid.UUID,
    action: str,
    *,
    actor: str,
    note: str | None = None,
    department: str | None = None,
    department_tenant: str | None = None,
    extend_minutes: int | None = None,
    acting_department: tuple[str, str] | None = None,
) -> DispatchCase:
    """Take ``action`` on the case. An action the case's state does not allow is a 409 naming the
    allowed ones; a note is required where the action needs a reason.

    ``acting_department`` (tenant, code) is the caller's department when the caller belongs to
    one: such a caller takes only actions open to departments, and only on its own cases (403);
    the supervision and command centres' staff belong to none and take every action."""
    case = await get_case(session, case_id, for_update=True)
    kind = workflow.case_type(session, case.case_type)
    chosen = next((a for a in allowed_actions(case, kind) if a.name == action), None)
    if chosen is None:
        raise _refuse(case, kind, action)
    if acting_department is not None:
        if chosen.actors and "department" not in chosen.actors:
            raise Forbidden(f"{action} is taken by the {' or '.join(chosen.actors)} centre, not a department")
        if (case.department_tenant, case.department_code) != acting_department:
            raise Forbidden(f"case {case.id} is not a case of department {acting_department[1]}")
    if chosen.needs_reason and not (note and note.strip()):
        raise BadRequestData(f"{action} needs a reason: give a note")
    if extend_minutes is not None and chosen.effect != "extend":
        raise BadRequestData("extend_minutes is only for an action that grants an extension")
    if department is not None and chosen.effect != "dispatch":
        raise BadRequestData("department is only for an action that dispatches")
    now = utcnow()
    calendar = await reference.working_calendar(session)
    category = await reference.find_category(session, case.category_code)
    data: dict[str, Any] = {}
    source = case.state
    effect = chosen.effect
    if effect == "dispatch":
        if department is not None:
            case.department_tenant, case.department_code = await _resolve_department(
                session, case, department, department_tenant
            )
        if case.department_code is None:
            raise BadRequestData("no department is responsible yet: name one with 'department'")
        case.dispatched_at = case.dispatched_at or now
        if case.triage:
            data["triage_resolved"] = case.triage_reason
        case.triage, case.triage_reason = False, None
        data["department"] = case.department_code
        data["department_tenant"] = case.department_tenant
    elif effect == "handled":
        case.handled_at = now
        if case.due_at is not None and now > case.due_at and case.stage == "handling":
            case.handling_overdue = True
    elif effect == "rework":
        case.reworks += 1
    elif effect == "close":
        case.closed_at = now
    case.state = chosen.target
    if effect == "suspend":
        case.remaining_minutes = round(calendar.between(now, case.due_at)) if case.due_at else None
        case.due_at = None
    elif effect == "resume":
        case.due_at = (
            calendar.add(now, case.remaining_minutes) if case.remaining_minutes is not None else None
        )
        case.remaining_minutes = None
    elif effect == "extend":
        minutes = extend_minutes
        if minutes is None and case.stage is not None:
            minutes = reference.limit_minutes(category, case.urgency, case.stage)
        if minutes is None or minutes <= 0:
            raise BadRequestData("give extend_minutes: the stage has no time limit to extend by")
        case.due_at = calendar.add(max(case.due_at or now, now), minutes)
        case.overdue, case.escalated_at = False, None
        case.extensions += 1
        data["extend_minutes"] = minutes
        data["due_at"] = isoformat(case.due_at)
    else:
        _start_stage(case, kind, category, calendar, now, restart=effect == "rework")
    case.updated_at = now
    record_history(
        session,
        case,
        actor=actor,
        action=action,
        from_state=source,
        to_state=case.state,
        note=note,
        data=data or None,
        at=now,
    )
    await session.flush()
    await write_entities(session, [case])
    enqueue(
        session,
        CaseTransitioned(
            tenant=case.tenant_code,
            case_id=str(case.id),
            action=action,
            from_state=source,
            to_state=case.state,
            department=case.department_code,
            actor=actor,
        ),
    )
    return case


# -- comments ---------------------------------------------------------------------------------------


async def add_comment(
    session: AsyncSession, case: DispatchCase, *, author: str, body: str
) -> DispatchComment:
    if not body.strip():
        raise BadRequestData("a comment needs a body")
    comment = DispatchComment(case_id=case.id, author=author, body=body, created_at=utcnow())
    session.add(comment)
    record_history(
        session,
        case,
        actor=author,
        action="comment",
        from_state=case.state,
        to_state=case.state,
        note=body[:500],
    )
    await session.flush()
    return comment


async def list_comments(session: AsyncSession, case: DispatchCase) -> list[DispatchComment]:
    rows = await session.scalars(
        select(DispatchComment).where(DispatchComment.case_id == case.id).order_by(DispatchComment.created_at)
    )
    return list(rows)
