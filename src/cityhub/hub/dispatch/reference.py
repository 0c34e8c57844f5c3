"""The tables cases are decided by: the tenant's setup (calendar), categories, grid cells and the
routing table. Functions take the session (scoped to the tenant) first and never commit."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any

import shapely
from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.dispatch.calendar import DEFAULT_CALENDAR, WorkingCalendar
from cityhub.hub.dispatch.models import DispatchCategory, DispatchGridCell, DispatchRoute, DispatchSetup
from cityhub.hub.dispatch.workflow import STAGES
from cityhub.kit.db import current_tenant
from cityhub.kit.errors import AlreadyExists, BadRequestData, NotFound
from cityhub.kit.geo import InvalidGeometry, parse_geometry
from cityhub.kit.time import utcnow
from cityhub.systems.security.models import Department

URGENCIES = ("normal", "urgent")
#: The longest time limit: 200 working days of 7.5 hours.
MAX_MINUTES = 90_000
KINDS = ("component", "event")


def _tenant(session: AsyncSession) -> str:
    tenant = current_tenant(session)
    assert tenant is not None, "dispatch sessions are scoped to a tenant"
    return tenant


def default_categories() -> list[dict[str, Any]]:
    """The category table the hub ships (components 部件 and events 事件)."""
    text = resources.files("cityhub.hub.dispatch").joinpath("data/categories.json").read_text("utf-8")
    rows: list[dict[str, Any]] = json.loads(text)
    return rows


async def ensure_setup(session: AsyncSession) -> DispatchSetup:
    """The tenant's setup row; made on first use with the default calendar and the shipped
    categories (once: categories removed later are not brought back)."""
    tenant = _tenant(session)
    setup = await session.get(DispatchSetup, tenant)
    if setup is None:
        setup = DispatchSetup(tenant_code=tenant, calendar=dict(DEFAULT_CALENDAR), categories_seeded=False)
        session.add(setup)
    if not setup.categories_seeded:
        existing = set(await session.scalars(select(DispatchCategory.code)))
        for row in default_categories():
            if row["code"] not in existing:
                session.add(DispatchCategory(**row))
        setup.categories_seeded = True
    await session.flush()
    return setup


async def working_calendar(session: AsyncSession) -> WorkingCalendar:
    return WorkingCalendar.from_data((await ensure_setup(session)).calendar)


async def set_calendar(session: AsyncSession, data: dict[str, Any]) -> DispatchSetup:
    WorkingCalendar.from_data(data)  # refuses a bad one with 400
    setup = await ensure_setup(session)
    setup.calendar = DEFAULT_CALENDAR | data
    setup.updated_at = utcnow()
    await session.flush()
    return setup


# -- categories -------------------------------------------------------------------------------------


def check_limits(limits: dict[str, Any]) -> dict[str, dict[str, int]]:
    """``{urgency: {stage: working minutes}}``; unknown urgencies or stages, or non-positive
    minutes, are refused."""
    checked: dict[str, dict[str, int]] = {}
    for urgency, stages in limits.items():
        if urgency not in URGENCIES:
            raise BadRequestData(f"limits: unknown urgency {urgency!r}; use {', '.join(URGENCIES)}")
        if not isinstance(stages, dict):
            raise BadRequestData(f"limits.{urgency}: an object of stage → working minutes")
        for stage, minutes in stages.items():
            if stage not in STAGES:
                raise BadRequestData(f"limits.{urgency}: unknown stage {stage!r}; use {', '.join(STAGES)}")
            if not isinstance(minutes, int) or isinstance(minutes, bool) or not 0 < minutes <= MAX_MINUTES:
                raise BadRequestData(
                    f"limits.{urgency}.{stage}: a number of working minutes from 1 to {MAX_MINUTES}"
                )
        checked[urgency] = dict(stages)
    return checked


async def list_categories(session: AsyncSession, *, kind: str | None = None) -> list[DispatchCategory]:
    await ensure_setup(session)
    statement = select(DispatchCategory).order_by(DispatchCategory.code)
    if kind is not None:
        statement = statement.where(DispatchCategory.kind == kind)
    return list(await session.scalars(statement))


async def find_category(session: AsyncSession, code: str) -> DispatchCategory | None:
    await ensure_setup(session)
    return (await session.scalars(select(DispatchCategory).where(DispatchCategory.code == code))).first()


async def get_category(session: AsyncSession, code: str) -> DispatchCategory:
    found = await find_category(session, code)
    if found is None:
        raise NotFound(f"no category {code}")
    return found


async def create_category(session: AsyncSession, data: dict[str, Any]) -> DispatchCategory:
    if await find_category(session, data["code"]) is not None:
        raise AlreadyExists(f"category {data['code']} exists already")
    data = data | {"limits": check_limits(data.get("limits") or {})}
    category = DispatchCategory(**data)
    session.add(category)
    await session.flush()
    return category


async def update_category(session: AsyncSession, code: str, changes: dict[str, Any]) -> DispatchCategory:
    category = await get_category(session, code)
    if "limits" in changes:
        changes = changes | {"limits": check_limits(changes["limits"] or {})}
    for name, value in changes.items():
        setattr(category, name, value)
    await session.flush()
    return category


async def delete_category(session: AsyncSession, code: str) -> None:
    await session.delete(await get_category(session, code))


def limit_minutes(category: DispatchCategory | None, urgency: str, stage: str) -> int | None:
    if category is None:
        return None
    minutes = category.limits.get(urgency, {}).get(stage)
    if minutes is None and urgency != "normal":
        minutes = category.limits.get("normal", {}).get(stage)
    return int(minutes) if minutes is not None else None


# -- grid cells -------------------------------------------------------------------------------------


@dataclass
class Imported:
    created: int = 0
    updated: int = 0


async def import_grid_cells(session: AsyncSession, collection: Any) -> Imported:
    """Create or replace grid cells from a GeoJSON FeatureCollection whose features are Polygons
    or MultiPolygons with properties ``code`` and ``district`` (a GB/T 2260 code), ``name``
    optional. Nothing is written when one feature is wrong."""
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise BadRequestData("a GeoJSON FeatureCollection is expected")
    features = collection.get("features")
    if not isinstance(features, list) or not features:
        raise BadRequestData("the FeatureCollection has no features")
    rows: dict[str, dict[str, Any]] = {}
    for index, feature in enumerate(features):
        where = f"features[{index}]"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise BadRequestData(f"{where}: not a GeoJSON Feature")
        properties = feature.get("properties") or {}
        if not isinstance(properties, dict):
            raise BadRequestData(f"{where}: properties must be an object")
        code, district = properties.get("code"), properties.get("district")
        if not isinstance(code, str) or not 1 <= len(code) <= 32:
            raise BadRequestData(f"{where}: properties.code, a text of 1 to 32 characters, is missing")
        if not (isinstance(district, str) and len(district) == 6 and district.isdigit()):
            raise BadRequestData(f"{where}: properties.district must be a six-digit GB/T 2260 code")
        if code in rows:
            raise BadRequestData(f"{where}: code {code} appears twice")
        try:
            geometry = parse_geometry(feature.get("geometry"), check_topology=True)
        except InvalidGeometry as error:
            raise BadRequestData(f"{where}.geometry: {error.detail}") from None
        if geometry.type not in ("Polygon", "MultiPolygon"):
            raise BadRequestData(f"{where}.geometry: a Polygon or MultiPolygon, not a {geometry.type}")
        name = properties.get("name")
        rows[code] = {
            "code": code,
            "district_code": district,
            "name": str(name)[:100] if name is not None else None,
            "geometry": geometry.geojson,
            "min_lon": geometry.bbox[0],
            "min_lat": geometry.bbox[1],
            "max_lon": geometry.bbox[2],
            "max_lat": geometry.bbox[3],
            "span": max(geometry.bbox[2] - geometry.bbox[0], geometry.bbox[3] - geometry.bbox[1]),
        }
    existing = {
        cell.code: cell
        for cell in await session.scalars(
            select(DispatchGridCell).where(DispatchGridCell.code.in_(list(rows)))
        )
    }
    outcome = Imported()
    for code, row in rows.items():
        cell = existing.get(code)
        if cell is None:
            session.add(DispatchGridCell(**row))
            outcome.created += 1
        else:
            for name, value in row.items():
                setattr(cell, name, value)
            outcome.updated += 1
    await session.flush()
    return outcome


async def list_grid_cells(
    session: AsyncSession, *, district: str | None, limit: int | None, offset: int
) -> tuple[list[DispatchGridCell], int]:
    statement = select(DispatchGridCell)
    if district is not None:
        statement = statement.where(DispatchGridCell.district_code == district)
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(statement.order_by(DispatchGridCell.code).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def get_grid_cell(session: AsyncSession, code: str) -> DispatchGridCell:
    found = (await session.scalars(select(DispatchGridCell).where(DispatchGridCell.code == code))).first()
    if found is None:
        raise NotFound(f"no grid cell {code}")
    return found


async def delete_grid_cell(session: AsyncSession, code: str) -> None:
    await session.delete(await get_grid_cell(session, code))


async def locate(session: AsyncSession, lon: float, lat: float) -> DispatchGridCell | None:
    """The grid cell holding the point: the index on the cells' bounding boxes finds the few
    candidates (see :class:`DispatchGridCell`), an exact point-in-polygon test decides (a point
    on a shared edge goes to the cell with the smallest code)."""
    cell = DispatchGridCell
    span = select(func.max(cell.span)).scalar_subquery()  # one statement: the subquery runs once
    candidates = await session.scalars(
        select(cell)
        .where(
            cell.min_lon.between(lon - span, lon),
            cell.min_lat.between(lat - span, lat),
            cell.max_lon >= lon,
            cell.max_lat >= lat,
        )
        .order_by(cell.code)
    )
    point = shapely.Point(lon, lat)
    for candidate in candidates:
        if shapely.intersects(shapely.geometry.shape(candidate.geometry), point):
            return candidate
    return None


# -- routing ----------------------------------------------------------------------------------------


async def department_exists(session: AsyncSession, tenant: str, code: str) -> bool:
    found = await session.scalars(
        select(Department.id).where(Department.tenant_code == tenant, Department.code == code)
    )
    return found.first() is not None


async def create_route(session: AsyncSession, data: dict[str, Any]) -> DispatchRoute:
    tenant = _tenant(session)
    data = dict(data)
    data["department_tenant"] = data.get("department_tenant") or tenant
    if not await department_exists(session, data["department_tenant"], data["department_code"]):
        raise BadRequestData(f"no department {data['department_code']} in tenant {data['department_tenant']}")
    if data.get("category_code") is not None and await find_category(session, data["category_code"]) is None:
        raise BadRequestData(f"no category {data['category_code']}")
    if data.get("grid_code") is not None:
        try:
            cell = await get_grid_cell(session, data["grid_code"])
        except NotFound as error:
            raise BadRequestData(error.detail) from None
        if data.get("district_code") not in (None, cell.district_code):
            raise BadRequestData(f"grid cell {cell.code} lies in district {cell.district_code}")
        data["district_code"] = cell.district_code
    same = select(DispatchRoute).where(
        *(
            getattr(DispatchRoute, name).is_(None)
            if data.get(name) is None
            else getattr(DispatchRoute, name) == data[name]
            for name in ("category_code", "district_code", "grid_code")
        )
    )
    if (await session.scalars(same)).first() is not None:
        raise AlreadyExists("a route for this category, district and grid cell exists already")
    route = DispatchRoute(**data)
    session.add(route)
    await session.flush()
    return route


async def list_routes(session: AsyncSession) -> list[DispatchRoute]:
    statement = select(DispatchRoute).order_by(
        DispatchRoute.category_code, DispatchRoute.district_code, DispatchRoute.grid_code
    )
    return list(await session.scalars(statement))


async def delete_route(session: AsyncSession, route_id: str) -> None:
    try:
        key = uuid.UUID(route_id)
    except ValueError:
        raise NotFound(f"no route {route_id}") from None
    deleted = await session.execute(delete(DispatchRoute).where(DispatchRoute.id == key))
    if not getattr(deleted, "rowcount", 0):
        raise NotFound(f"no route {route_id}")


@dataclass(frozen=True)
class Routed:
    department_tenant: str
    department_code: str
    rule: str  # which rule decided: grid, district, category, category-default, district-default


async def route(
    session: AsyncSession, category: DispatchCategory | None, cell: DispatchGridCell | None
) -> Routed | None:
    """The responsible department, most specific rule first: the category in the case's grid
    cell, in its district, anywhere; the category's default department code (the district's
    department of that code, else the case's tenant's); then the district's own department
    (属地管理: a route with no category)."""
    tenant = _tenant(session)
    relevant: ColumnElement[bool] = DispatchRoute.category_code.is_(None)
    if category is not None:
        relevant = or_(relevant, DispatchRoute.category_code == category.code)
    routes = list(await session.scalars(select(DispatchRoute).where(relevant)))
    district = cell.district_code if cell is not None else None
    grid = cell.code if cell is not None else None
    if category is not None:
        for rule, wanted in (
            ("grid", (category.code, district, grid)),
            ("district", (category.code, district, None)),
            ("category", (category.code, None, None)),
        ):
            if rule != "category" and cell is None:
                continue
            for line in routes:
                if (line.category_code, line.district_code, line.grid_code) == wanted:
                    return Routed(line.department_tenant, line.department_code, rule)
        code = category.default_department
        for owner in (district, tenant) if district is not None else (tenant,):
            if code is not None and await department_exists(session, owner, code):
                return Routed(owner, code, "category-default")
    if cell is not None:
        for line in routes:
            if line.category_code is None and line.grid_code is None and line.district_code == district:
                return Routed(line.department_tenant, line.department_code, "district-default")
    return None
