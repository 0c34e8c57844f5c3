"""The component inventory 部件: city furniture and utilities, each an NGSI-LD entity
``urn:ngsi-ld:UrbanComponent:<code>`` of type ``UrbanComponent``.

A component code has 16 digits: the 6-digit GB/T 2260 division, the 2-digit major and 2-digit
minor class (the tenant's component category ``C<major><minor>``, GB/T 30428.2) and a 6-digit serial
number. A case about a component names it in ``source_ref``; while the case is open the component is
``damaged`` and points at it (``activeCase``), and it returns to the state it had when the case
closes (``intact`` after a repair).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.plugins import BadRequestData, NotFound, casestats, entities

ENTITY_TYPE = "UrbanComponent"
PREFIX = f"urn:ngsi-ld:{ENTITY_TYPE}:"
CASE_PREFIX = "urn:ngsi-ld:CityCase:"
#: (zh, en) of each state a component can be in.
STATES: dict[str, tuple[str, str]] = {
    "intact": ("完好", "intact"),
    "damaged": ("损坏", "damaged"),
    "lost": ("丢失", "lost"),
    "occupied": ("占用", "occupied"),
    "removed": ("拆除", "removed"),
}
_CODE = re.compile(r"^\d{16}$")
CSV_COLUMNS = ("code", "name", "lon", "lat", "department", "department_tenant", "state", "address")


def entity_id(code: str) -> str:
    return PREFIX + code


def code_of(entity_ref: str | None) -> str | None:
    if entity_ref and entity_ref.startswith(PREFIX):
        return entity_ref[len(PREFIX) :]
    return None


@dataclass
class Component:
    code: str
    name: str
    lon: float
    lat: float
    department: str | None = None
    department_tenant: str | None = None
    state: str = "intact"
    address: str | None = None
    active_case: str | None = None
    state_before_case: str | None = None

    @property
    def division(self) -> str:
        return self.code[:6]

    @property
    def category(self) -> str:
        return f"C{self.code[6:8]}{self.code[8:10]}"

    def read(self) -> dict[str, Any]:
        zh, en = STATES.get(self.state, (self.state, self.state))
        return {
            "code": self.code,
            "entity_id": entity_id(self.code),
            "name": self.name,
            "category": self.category,
            "division": self.division,
            "serial": self.code[10:],
            "location": {"type": "Point", "coordinates": [self.lon, self.lat]},
            "department": self.department,
            "department_tenant": self.department_tenant,
            "state": self.state,
            "state_title_zh": zh,
            "state_title_en": en,
            "address": self.address,
            "active_case": self.active_case,
        }


def _property(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def to_entity(component: Component) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": entity_id(component.code),
        "type": ENTITY_TYPE,
        "name": _property(component.name),
        "componentCode": _property(component.code),
        "category": _property(component.category),
        "division": _property(component.division),
        "state": _property(component.state),
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [component.lon, component.lat]},
        },
    }
    for name, value in (
        ("department", component.department),
        ("departmentTenant", component.department_tenant),
        ("address", component.address),
        ("stateBeforeCase", component.state_before_case),
    ):
        if value is not None:
            entity[name] = _property(value)
    if component.active_case is not None:
        entity["activeCase"] = {"type": "Relationship", "object": CASE_PREFIX + component.active_case}
    return entity


def _value(entity: dict[str, Any], name: str) -> Any:
    attribute = entity.get(name)
    if isinstance(attribute, list):  # several instances: the first
        attribute = attribute[0] if attribute else None
    if not isinstance(attribute, dict):
        return None
    if attribute.get("type") == "Relationship":
        return attribute.get("object")
    return attribute.get("value")


def from_entity(entity: dict[str, Any]) -> Component:
    point = _value(entity, "location") or {}
    lon, lat = (point.get("coordinates") or [0.0, 0.0])[:2]
    case_ref = _value(entity, "activeCase")
    return Component(
        code=str(_value(entity, "componentCode") or entity["id"][len(PREFIX) :]),
        name=str(_value(entity, "name") or ""),
        lon=float(lon),
        lat=float(lat),
        department=_value(entity, "department"),
        department_tenant=_value(entity, "departmentTenant"),
        state=str(_value(entity, "state") or "intact"),
        address=_value(entity, "address"),
        active_case=case_ref[len(CASE_PREFIX) :]
        if isinstance(case_ref, str) and case_ref.startswith(CASE_PREFIX)
        else None,
        state_before_case=_value(entity, "stateBeforeCase"),
    )


# -- checking ---------------------------------------------------------------------------------------


@dataclass
class Checker:
    """Checks components against what the tenant knows: divisions and component categories."""

    categories: set[str]
    divisions: dict[str, bool] = field(default_factory=dict)

    @classmethod
    async def load(cls, session: AsyncSession) -> Checker:
        return cls({c.code for c in await casestats.component_categories(session) if c.active})

    async def check(self, session: AsyncSession, data: dict[str, Any]) -> Component:
        """A component from loose input (an API body, a CSV row, a GeoJSON feature); raises
        BadRequestData naming the first thing wrong."""
        code = str(data.get("code") or "").strip()
        if not _CODE.match(code):
            raise BadRequestData(f"code {code!r}: 16 digits (division 6, major 2, minor 2, serial 6)")
        division = code[:6]
        if division not in self.divisions:
            self.divisions[division] = await casestats.is_known_division(session, division)
        if not self.divisions[division]:
            raise BadRequestData(f"code {code}: {division} is no division the hub knows (GB/T 2260)")
        category = f"C{code[6:8]}{code[8:10]}"
        if category not in self.categories:
            raise BadRequestData(
                f"code {code}: major class {code[6:8]}, minor class {code[8:10]} is no component category "
                f"of this tenant ({category})"
            )
        if code[10:] == "000000":
            raise BadRequestData(f"code {code}: the serial number starts at 000001")
        name = str(data.get("name") or "").strip()
        if not name or len(name) > 200:
            raise BadRequestData(f"code {code}: a name of 1 to 200 characters")
        lon, lat = _point(code, data)
        state = str(data.get("state") or "intact").strip()
        if state not in STATES:
            raise BadRequestData(f"code {code}: state {state!r} is none of {', '.join(STATES)}")
        department = str(data.get("department") or "").strip() or None
        department_tenant = str(data.get("department_tenant") or "").strip() or None
        if department_tenant is not None and not (
            len(department_tenant) == 6 and department_tenant.isdigit()
        ):
            raise BadRequestData(f"code {code}: department_tenant is a six-digit division code")
        address = str(data.get("address") or "").strip() or None
        return Component(code, name, lon, lat, department, department_tenant, state, address)


def _point(code: str, data: dict[str, Any]) -> tuple[float, float]:
    location = data.get("location")
    if isinstance(location, dict):
        coordinates = location.get("coordinates")
        if location.get("type") != "Point" or not isinstance(coordinates, list) or len(coordinates) != 2:
            raise BadRequestData(f"code {code}: location must be a GeoJSON Point")
        raw: tuple[Any, Any] = (coordinates[0], coordinates[1])
    else:
        raw = (data.get("lon"), data.get("lat"))
    try:
        lon, lat = float(raw[0]), float(raw[1])
    except (TypeError, ValueError):
        raise BadRequestData(f"code {code}: a location (lon, lat in decimal degrees)") from None
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise BadRequestData(f"code {code}: lon within ±180 and lat within ±90")
    return lon, lat


# -- storage ----------------------------------------------------------------------------------------


async def get(session: AsyncSession, tenant: str, code: str) -> Component:
    found = await entities.read_entity(session, tenant, entity_id(code))
    if found is None:
        raise NotFound(f"no component {code}")
    return from_entity(found)


async def save(session: AsyncSession, tenant: str, components: list[Component]) -> None:
    if components:
        await entities.write_entities(session, tenant, [to_entity(c) for c in components], replace=True)


async def listing(
    session: AsyncSession,
    tenant: str,
    *,
    state: str | None,
    category: str | None,
    division: str | None,
    limit: int,
    offset: int,
) -> list[Component]:
    terms = []
    for name, value in (("state", state), ("category", category), ("division", division)):
        if value is not None:
            if not re.match(r"^[A-Za-z0-9_]+$", value):
                raise BadRequestData(f"{name}: letters and digits only")
            terms.append(f'{name}=="{value}"')
    found = await entities.find_entities(
        session, tenant, type=ENTITY_TYPE, q=";".join(terms) or None, limit=limit, offset=offset
    )
    return [from_entity(e) for e in found]


async def remove(session: AsyncSession, tenant: str, code: str) -> None:
    await get(session, tenant, code)
    await entities.delete_entities(session, tenant, [entity_id(code)])


# -- import -----------------------------------------------------------------------------------------


def rows_of(content: bytes, kind: str) -> list[dict[str, Any]]:
    """Rows from a CSV file (a header line naming the columns) or a GeoJSON FeatureCollection of
    Points with the other fields in ``properties``."""
    if kind == "csv":
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadRequestData("the CSV file must be UTF-8") from None
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or "code" not in reader.fieldnames:
            raise BadRequestData(
                f"the CSV file needs a header line with the columns {', '.join(CSV_COLUMNS)}"
            )
        return [dict(row) for row in reader]
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        raise BadRequestData("the body is not valid JSON") from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise BadRequestData("a GeoJSON FeatureCollection of Point features")
    features = document.get("features")
    if not isinstance(features, list):
        raise BadRequestData("a GeoJSON FeatureCollection needs its features")
    rows: list[dict[str, Any]] = []
    for feature in features:
        if not isinstance(feature, dict):
            rows.append({})
            continue
        properties = feature.get("properties")
        rows.append(
            {**(properties if isinstance(properties, dict) else {}), "location": feature.get("geometry")}
        )
    return rows


async def import_rows(session: AsyncSession, tenant: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Write the valid rows (created or replaced), report each wrong one with its row number (the
    CSV data line or the feature, from 1)."""
    checker = await Checker.load(session)
    good: dict[str, Component] = {}
    errors = []
    for number, row in enumerate(rows, start=1):
        try:
            component = await checker.check(session, row)
        except BadRequestData as error:
            errors.append({"row": number, "code": str(row.get("code") or "") or None, "error": str(error)})
            continue
        if component.code in good:
            errors.append(
                {
                    "row": number,
                    "code": component.code,
                    "error": f"code {component.code} repeats an earlier row",
                }
            )
            continue
        good[component.code] = component
    existing = set()
    for code in good:
        stored = await entities.read_entity(session, tenant, entity_id(code))
        if stored is not None:
            existing.add(code)
            kept = from_entity(stored)
            good[code].active_case, good[code].state_before_case = kept.active_case, kept.state_before_case
    await save(session, tenant, list(good.values()))
    return {
        "created": len(good) - len(existing),
        "updated": len(existing),
        "rejected": len(errors),
        "errors": errors,
    }


# -- following cases --------------------------------------------------------------------------------


async def case_opened(session: AsyncSession, tenant: str, case_id: str, component_ref: str) -> bool:
    """A case about the component is open: damaged, pointing at the case. False when there is no
    such component or it already follows this case."""
    code = code_of(component_ref)
    if code is None:
        return False
    stored = await entities.read_entity(session, tenant, entity_id(code))
    if stored is None:
        return False
    component = from_entity(stored)
    if component.active_case == case_id:
        return False
    if component.active_case is None:
        component.state_before_case = component.state
    component.state = "damaged"
    component.active_case = case_id
    await save(session, tenant, [component])
    return True


async def case_ended(
    session: AsyncSession, tenant: str, case_id: str, component_ref: str, *, repaired: bool
) -> bool:
    """The case is over: back to ``intact`` after a repair, else to the state before the case."""
    code = code_of(component_ref)
    if code is None:
        return False
    stored = await entities.read_entity(session, tenant, entity_id(code))
    if stored is None:
        return False
    component = from_entity(stored)
    if component.active_case != case_id:
        return False
    component.state = "intact" if repaired else (component.state_before_case or "intact")
    component.active_case = None
    component.state_before_case = None
    await save(session, tenant, [component])
    return True
