"""Open311 GeoReport v2 under ``/open311/v2``: citizens and third-party apps report problems and
follow them.

A service is a case category of the tenant (``jurisdiction_id``, a GB/T 2260 code; the hub's
default tenant without it) that is active and not closed to citizens. A posted request opens a case
(``source="citizen"``) through :func:`service.open_case`, so it is routed, triaged or linked to a
nearby open case of its category like any other; its ``service_request_id`` is the case's id, and a
linked duplicate answers with the status of the case doing the work. What the reporter sends about
themselves (e-mail, phone, names, device and account ids) is kept in ``open311_report`` and never
leaves through this API.

Errors use Open311's own format, ``[{"code": 400, "description": "…"}]`` (``<errors>`` in XML),
with the same HTTP status.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from xml.etree import ElementTree

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cityhub.hub.dispatch import reference, service, workflow
from cityhub.hub.dispatch.models import DispatchCase, DispatchCaseEvent, DispatchCategory
from cityhub.hub.dispatch.open311_models import Open311Report, Open311Service
from cityhub.hub.dispatch.open311_schemas import ServiceAttribute, ServiceSettingIn, ServiceSettingRead
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.errors import HubError, NotFound
from cityhub.kit.time import ensure_utc, isoformat, utcnow
from cityhub.kit.web import DbSession, RequestTenant
from cityhub.systems.security.models import Department
from cityhub.systems.security.ratelimit import MemoryRateLimiter, RateLimiter

PREFIX = "/open311/v2"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-21T00:00:00Z"
CITIZEN = "citizen"
#: Without dates, GET requests covers this many days back; it never answers more than MAX_REQUESTS.
DEFAULT_DAYS = 90
MAX_REQUESTS = 1000
#: History rows that are no public status note: the opening, comments (staff talk), system marks.
_NOT_NOTES = ("open", "comment", "overdue", "link_duplicate")
_PERSONAL = ("email", "phone", "first_name", "last_name", "device_id", "account_id")
_FIELD_MAX = {
    "email": 200,
    "phone": 50,
    "first_name": 100,
    "last_name": 100,
    "device_id": 200,
    "account_id": 200,
    "address_string": 300,
    "media_url": 1000,
    "description": 4000,
}

router = APIRouter(prefix=PREFIX, tags=["open311"])
#: The tenant's staff choose which categories citizens see and what they are asked.
settings_router = APIRouter(prefix="/api/v1/open311", tags=["open311"])
ROUTERS = (router, settings_router)


class Open311Error(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


# -- answers ----------------------------------------------------------------------------------------

_XML_ITEMS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}


def _xml_value(parent: ElementTree.Element, name: str, value: Any) -> None:
    element = ElementTree.SubElement(parent, name)
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _xml_value(element, key, inner)
    elif isinstance(value, list):
        for inner in value:
            _xml_value(element, _XML_ITEMS.get(name, "item"), inner)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)


def to_xml(root: str, content: Any) -> bytes:
    """A GeoReport XML document: lists become one element per item, named as the spec names them."""
    element = ElementTree.Element(root)
    if isinstance(content, list):
        for item in content:
            _xml_value(element, _XML_ITEMS.get(root, "item"), item)
    else:
        for key, value in content.items():
            _xml_value(element, key, value)
    body: bytes = ElementTree.tostring(element, encoding="utf-8")
    return b'<?xml version="1.0" encoding="utf-8"?>' + body


def _answer(content: Any, fmt: str, root: str, status_code: int = 200) -> Response:
    if fmt == "xml":
        return Response(to_xml(root, content), status_code, media_type="text/xml; charset=utf-8")
    body = json.dumps(content, ensure_ascii=False).encode()
    return Response(body, status_code, media_type="application/json")


def _error(code: int, description: str, fmt: str) -> Response:
    return _answer([{"code": code, "description": description}], fmt, "errors", code)


def _format(fmt: str) -> str:
    if fmt not in ("json", "xml"):
        raise Open311Error(404, f"format {fmt!r} is not offered: use .json or .xml")
    return fmt


async def _guarded(session: AsyncSession, fmt: str, work: Callable[[str], Awaitable[Response]]) -> Response:
    """Run ``work`` and answer any refusal in Open311's error format, nothing written."""
    shown = fmt if fmt in ("json", "xml") else "json"
    try:
        return await work(_format(fmt))
    except Open311Error as error:
        await session.rollback()
        return _error(error.code, error.description, shown)
    except HubError as error:
        await session.rollback()
        return _error(error.status, str(error), shown)


async def _jurisdiction(request: Request, session: AsyncSession, given: str | None) -> str:
    code = (given or "").strip() or request.app.state.default_tenant
    if not (len(code) == 6 and code.isdigit()):
        raise Open311Error(400, f"jurisdiction_id {code!r} is not a six-digit GB/T 2260 division code")
    try:
        await request.app.state.tenant_resolver(session, code)
    except HubError:
        raise Open311Error(404, f"jurisdiction_id {code} is not served here") from None
    scope_to_tenant(session, code)
    return code


# -- services ---------------------------------------------------------------------------------------


async def _settings(session: AsyncSession) -> dict[str, Open311Service]:
    return {row.category_code: row for row in await session.scalars(select(Open311Service))}


def _offered(category: DispatchCategory, setting: Open311Service | None) -> bool:
    return category.active and (setting is None or setting.public)


def _service(category: DispatchCategory, setting: Open311Service | None) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "service_name": category.name_zh,
        "description": (setting.description if setting and setting.description else None)
        or f"{category.major_name_zh} · {category.name_zh} ({category.name_en})",
        "metadata": bool(setting and setting.attributes),
        "type": "realtime",
        "keywords": setting.keywords if setting and setting.keywords else category.name_en,
        "group": category.major_name_zh,
    }


async def _find_service(session: AsyncSession, code: str) -> tuple[DispatchCategory, Open311Service | None]:
    category = await reference.find_category(session, code)
    setting = (await _settings(session)).get(code)
    if category is None or not _offered(category, setting):
        raise Open311Error(404, f"service_code {code!r} is not a service of this jurisdiction")
    return category, setting


# -- requests ---------------------------------------------------------------------------------------


def _closed_states(session: AsyncSession) -> set[str]:
    """States in which a case's work is over: terminal ones and those a close or cancel leads to."""
    found: set[str] = set()
    for kind in workflow.case_types(session).values():
        found.update(kind.terminal)
        found.update(a.target for a in kind.all_actions() if a.effect in ("close", "cancel"))
    found.discard(workflow.MERGED)
    return found


async def _notes(session: AsyncSession, case_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The latest public note of each case: a note given with one of its actions."""
    keys = list(set(case_ids))
    if not keys:
        return {}
    rows = await session.scalars(
        select(DispatchCaseEvent)
        .where(
            DispatchCaseEvent.case_id.in_(keys),
            DispatchCaseEvent.note.is_not(None),
            DispatchCaseEvent.action.not_in(_NOT_NOTES),
        )
        .order_by(DispatchCaseEvent.at)
    )
    latest: dict[uuid.UUID, str] = {}
    for row in rows:
        assert row.note is not None
        latest[row.case_id] = row.note
    return latest


async def _agencies(session: AsyncSession, cases: Iterable[DispatchCase]) -> dict[tuple[str, str], str]:
    pairs = {(c.department_tenant, c.department_code) for c in cases if c.department_code}
    if not pairs:
        return {}
    rows = await session.scalars(select(Department).where(Department.code.in_({code for _, code in pairs})))
    return {(d.tenant_code, d.code): d.name for d in rows if (d.tenant_code, d.code) in pairs}


async def _requests(
    session: AsyncSession, rows: Sequence[tuple[DispatchCase, DispatchCase | None, Open311Report | None]]
) -> list[dict[str, Any]]:
    closed = _closed_states(session)
    working = [original or case for case, original, _ in rows]
    notes = await _notes(session, (c.id for c in working))
    agencies = await _agencies(session, working)
    names = {c.code: c.name_zh for c in await reference.list_categories(session)}
    answer = []
    for (case, original, report), work in zip(rows, working, strict=True):
        is_closed = work.state in closed
        item: dict[str, Any] = {
            "service_request_id": str(case.id),
            "status": "closed" if is_closed else "open",
            "status_notes": notes.get(work.id),
            "service_name": names.get(case.category_code),
            "service_code": case.category_code,
            "description": case.description,
            "agency_responsible": agencies.get((work.department_tenant or "", work.department_code or ""))
            or work.department_code,
            "service_notice": (
                f"与 {original.id} 合并处理 / handled with request {original.id}" if original else None
            ),
            "requested_datetime": isoformat(case.created_at),
            "updated_datetime": isoformat(max(case.updated_at, work.updated_at)),
            "expected_datetime": isoformat(work.due_at) if work.due_at and not is_closed else None,
            "address": report.address_string if report else None,
            "address_id": None,
            "zipcode": None,
            "lat": case.lat,
            "long": case.lon,
            "media_url": report.media_url if report else None,
        }
        if original is not None:
            item["duplicate_of"] = str(original.id)
        answer.append(item)
    return answer


def _query_datetime(name: str, text: str | None) -> datetime | None:
    if text is None or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(
            400, f"{name}: {text!r} is not a w3c date-time (2026-11-21T08:00:00+08:00)"
        ) from None
    if value.tzinfo is None:
        raise Open311Error(400, f"{name}: give a time zone offset or Z")
    return ensure_utc(value)


async def _search(request: Request, session: AsyncSession) -> list[dict[str, Any]]:
    params = request.query_params
    original = aliased(DispatchCase)
    statement = (
        select(DispatchCase, original, Open311Report)
        .outerjoin(original, DispatchCase.duplicate_of == original.id)
        .outerjoin(Open311Report, Open311Report.case_id == DispatchCase.id)
        .where(DispatchCase.source == CITIZEN)
    )
    ids_text = params.get("service_request_id")
    if ids_text:
        try:
            ids = [uuid.UUID(part.strip()) for part in ids_text.split(",") if part.strip()]
        except ValueError:
            raise Open311Error(400, "service_request_id: a comma-separated list of request ids") from None
        statement = statement.where(DispatchCase.id.in_(ids))
    else:
        codes = [c.strip() for c in (params.get("service_code") or "").split(",") if c.strip()]
        if codes:
            statement = statement.where(DispatchCase.category_code.in_(codes))
        start = _query_datetime("start_date", params.get("start_date"))
        end = _query_datetime("end_date", params.get("end_date"))
        if start is not None and end is not None and end < start:
            raise Open311Error(400, "end_date comes before start_date")
        if start is None and end is None:
            start = utcnow() - timedelta(days=DEFAULT_DAYS)
        if start is not None:
            statement = statement.where(DispatchCase.created_at >= start)
        if end is not None:
            statement = statement.where(DispatchCase.created_at <= end)
        wanted = {s.strip().lower() for s in (params.get("status") or "").split(",") if s.strip()}
        if not wanted <= {"open", "closed"}:
            raise Open311Error(400, "status: open, closed or both (open,closed)")
        if len(wanted) == 1:
            closed = sorted(_closed_states(session))
            # a linked duplicate is as open as the case doing the work
            state = func.coalesce(original.state, DispatchCase.state)
            statement = statement.where(state.in_(closed) if "closed" in wanted else state.not_in(closed))
    statement = statement.order_by(DispatchCase.created_at.desc(), DispatchCase.id).limit(MAX_REQUESTS)
    rows = [(row[0], row[1], row[2]) for row in (await session.execute(statement)).all()]
    return await _requests(session, rows)


# -- posting ----------------------------------------------------------------------------------------


async def _body(request: Request) -> tuple[dict[str, str], dict[str, Any]]:
    """The posted fields and the attribute answers, from a form (as the spec says) or JSON."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: dict[str, str] = {}
    answers: dict[str, Any] = {}
    if kind == "application/json":
        try:
            data = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise Open311Error(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise Open311Error(400, "the JSON body must be an object")
        for key, value in data.items():
            if key in ("attribute", "attributes") and isinstance(value, dict):
                answers.update(value)
            elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
                fields[key] = str(value)
            elif value is not None:
                raise Open311Error(400, f"{key}: a string or a number")
        return fields, answers
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form()
        except Exception:  # a malformed multipart body is the client's fault
            raise Open311Error(400, "the form body cannot be read") from None
        for key, value in form.multi_items():
            if not isinstance(value, str):
                raise Open311Error(400, f"{key}: files are not accepted; give media_url")
            if key.startswith("attribute[") and key.endswith("]"):
                code = key[len("attribute[") : -1]
                if code in answers:
                    existing = answers[code]
                    answers[code] = [*existing, value] if isinstance(existing, list) else [existing, value]
                else:
                    answers[code] = value
            else:
                fields[key] = value
        return fields, answers
    raise Open311Error(400, "post the request form-encoded (application/x-www-form-urlencoded) or as JSON")


def _check_answers(attributes: list[dict[str, Any]], answers: dict[str, Any]) -> dict[str, Any]:
    questions = {a["code"]: ServiceAttribute.model_validate(a) for a in attributes}
    unknown = sorted(set(answers) - set(questions))
    if unknown:
        raise Open311Error(400, f"attribute[{unknown[0]}] is not a question of this service")
    checked: dict[str, Any] = {}
    for code, question in questions.items():
        given = answers.get(code)
        if given in (None, "", []):
            if question.required:
                raise Open311Error(400, f"attribute[{code}] is required: {question.description}")
            continue
        keys = {v.key for v in question.values}
        values = given if isinstance(given, list) else [given]
        if question.datatype in ("singlevaluelist", "multivaluelist"):
            if question.datatype == "singlevaluelist" and len(values) != 1:
                raise Open311Error(400, f"attribute[{code}]: one value")
            wrong = [v for v in values if str(v) not in keys]
            if wrong:
                raise Open311Error(
                    400, f"attribute[{code}]: {wrong[0]!r} is none of {', '.join(sorted(keys))}"
                )
            checked[code] = (
                [str(v) for v in values] if question.datatype == "multivaluelist" else str(values[0])
            )
        elif question.datatype == "number":
            try:
                number = float(str(given))
            except ValueError:
                raise Open311Error(400, f"attribute[{code}]: a number") from None
            if not math.isfinite(number):
                raise Open311Error(400, f"attribute[{code}]: a number")
            checked[code] = number
        elif question.datatype == "datetime":
            checked[code] = isoformat(_query_datetime(f"attribute[{code}]", str(given)) or utcnow())
        else:
            checked[code] = str(given)[:2000]
    return checked


def _location(fields: dict[str, str]) -> dict[str, Any] | None:
    lat, lon = fields.get("lat"), fields.get("long")
    if lat is None and lon is None:
        if not (fields.get("address_string") or fields.get("address_id")):
            raise Open311Error(400, "give lat and long, or address_string or address_id")
        return None
    if lat is None or lon is None:
        raise Open311Error(400, "give both lat and long")
    try:
        latitude, longitude = float(lat), float(lon)
    except ValueError:
        raise Open311Error(400, "lat and long must be decimal degrees (WGS84)") from None
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        raise Open311Error(400, "lat and long must be finite numbers")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise Open311Error(400, "lat within ±90 and long within ±180")
    return {"type": "Point", "coordinates": [longitude, latitude]}


async def _limit(request: Request, source: str | None) -> None:
    limit = request.app.state.hub.settings.open311_posts_per_minute
    if limit <= 0:
        return
    security = getattr(request.app.state, "security", None)
    limiter: RateLimiter | None = security.limiter if security is not None else None
    if limiter is None:
        limiter = getattr(request.app.state, "open311_limiter", None)
        if limiter is None:
            limiter = request.app.state.open311_limiter = MemoryRateLimiter()
    try:
        count = await limiter.hit(f"open311:{source}")
    except Exception:  # the limiter being down must not stop citizens' reports
        return
    if count > limit:
        raise Open311Error(
            429, f"more than {limit} requests from this address in a minute; try again shortly"
        )


async def _post(request: Request, session: AsyncSession, fmt: str) -> Response:
    fields, answers = await _body(request)
    settings = request.app.state.hub.settings
    keys = settings.open311_api_keys
    if keys and fields.get("api_key") not in keys:
        raise Open311Error(403, "api_key is missing or not a registered Open311 client key")
    source = request.client.host if request.client else None
    await _limit(request, source)
    tenant = await _jurisdiction(request, session, fields.get("jurisdiction_id"))
    for name, longest in _FIELD_MAX.items():
        if len(fields.get(name) or "") > longest:
            raise Open311Error(400, f"{name}: at most {longest} characters")
    code = (fields.get("service_code") or "").strip()
    if not code:
        raise Open311Error(400, "service_code is required")
    category, setting = await _find_service(session, code)
    attributes = _check_answers(list(setting.attributes or []) if setting else [], answers)
    location = _location(fields)
    description = (fields.get("description") or "").strip()
    address = (fields.get("address_string") or "").strip() or None
    title = f"{category.name_zh}: {address}" if address else category.name_zh
    case = await service.open_case(
        session,
        tenant=tenant,
        case_type=settings.open311_case_type,
        category_code=category.code,
        title=title,
        description=description,
        location=location,
        urgency="normal",
        source=CITIZEN,
        source_ref=None,
    )
    session.add(
        Open311Report(
            case_id=case.id,
            service_code=category.code,
            address_string=address,
            media_url=(fields.get("media_url") or "").strip() or None,
            attributes=attributes or None,
            source_address=source,
            **{name: (fields.get(name) or "").strip() or None for name in _PERSONAL},
        )
    )
    await session.flush()
    notice = None
    if case.duplicate_of is not None:
        original = case.duplicate_of
        notice = f"已与正在处理的 {original} 合并 / linked to request {original}, already in hand"
    answer = [{"service_request_id": str(case.id), "service_notice": notice, "account_id": None}]
    return _answer(answer, fmt, "service_requests", status.HTTP_201_CREATED)


# -- routes -----------------------------------------------------------------------------------------


@router.get("/discovery.{fmt}", summary="Open311 discovery")
async def discovery(request: Request, session: DbSession, fmt: str) -> Response:
    async def work(chosen: str) -> Response:
        base = str(request.base_url).rstrip("/") + PREFIX
        content = {
            "changeset": CHANGESET,
            "contact": "城市运行管理服务平台 / city operation management service",
            "key_service": "api_key: see the operator; needed only where the city requires it",
            "endpoints": [
                {
                    "specification": SPECIFICATION,
                    "url": base,
                    "changeset": CHANGESET,
                    "type": "production",
                    "formats": ["application/json", "text/xml"],
                }
            ],
        }
        return _answer(content, chosen, "discovery")

    return await _guarded(session, fmt, work)


@router.get("/services.{fmt}", summary="Open311 service list: the categories open to citizens")
async def list_services(request: Request, session: DbSession, fmt: str) -> Response:
    async def work(chosen: str) -> Response:
        await _jurisdiction(request, session, request.query_params.get("jurisdiction_id"))
        settings = await _settings(session)
        offered = [
            _service(c, settings.get(c.code))
            for c in await reference.list_categories(session)
            if _offered(c, settings.get(c.code))
        ]
        return _answer(offered, chosen, "services")

    return await _guarded(session, fmt, work)


@router.get("/services/{code}.{fmt}", summary="Open311 service definition (its questions)")
async def service_definition(request: Request, session: DbSession, code: str, fmt: str) -> Response:
    async def work(chosen: str) -> Response:
        await _jurisdiction(request, session, request.query_params.get("jurisdiction_id"))
        category, setting = await _find_service(session, code)
        content = {
            "service_code": category.code,
            "attributes": list(setting.attributes or []) if setting else [],
        }
        return _answer(content, chosen, "service_definition")

    return await _guarded(session, fmt, work)


@router.get("/requests.{fmt}", summary="Open311 service requests, filtered")
async def list_requests(request: Request, session: DbSession, fmt: str) -> Response:
    async def work(chosen: str) -> Response:
        await _jurisdiction(request, session, request.query_params.get("jurisdiction_id"))
        return _answer(await _search(request, session), chosen, "service_requests")

    return await _guarded(session, fmt, work)


@router.post("/requests.{fmt}", summary="Open311: post a service request", status_code=201)
async def post_request(request: Request, session: DbSession, fmt: str) -> Response:
    return await _guarded(session, fmt, lambda chosen: _post(request, session, chosen))


@router.get("/requests/{request_id}.{fmt}", summary="Open311: one service request")
async def get_request(request: Request, session: DbSession, request_id: str, fmt: str) -> Response:
    async def work(chosen: str) -> Response:
        await _jurisdiction(request, session, request.query_params.get("jurisdiction_id"))
        try:
            key = uuid.UUID(request_id)
        except ValueError:
            raise Open311Error(404, f"no service request {request_id}") from None
        original = aliased(DispatchCase)
        row = (
            await session.execute(
                select(DispatchCase, original, Open311Report)
                .outerjoin(original, DispatchCase.duplicate_of == original.id)
                .outerjoin(Open311Report, Open311Report.case_id == DispatchCase.id)
                .where(DispatchCase.id == key, DispatchCase.source == CITIZEN)
            )
        ).first()
        if row is None:
            raise Open311Error(404, f"no service request {request_id}")
        return _answer(await _requests(session, [(row[0], row[1], row[2])]), chosen, "service_requests")

    return await _guarded(session, fmt, work)


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def unknown(rest: str) -> Response:
    shown = "xml" if rest.endswith(".xml") else "json"
    return _error(404, f"no Open311 resource {PREFIX}/{rest}", shown)


# -- the staff's settings ---------------------------------------------------------------------------


def _setting_read(code: str, row: Open311Service | None) -> ServiceSettingRead:
    return ServiceSettingRead(
        service_code=code,
        public=row.public if row else True,
        description=row.description if row else None,
        keywords=row.keywords if row else None,
        attributes=[ServiceAttribute.model_validate(a) for a in (row.attributes or [])] if row else [],
    )


@settings_router.get("/services", response_model=list[ServiceSettingRead], summary="How categories appear")
async def list_service_settings(session: DbSession, tenant: RequestTenant) -> list[ServiceSettingRead]:
    settings = await _settings(session)
    return [_setting_read(c.code, settings.get(c.code)) for c in await reference.list_categories(session)]


@settings_router.put(
    "/services/{code}", response_model=ServiceSettingRead, summary="Set how a category appears"
)
async def put_service_setting(
    session: DbSession, tenant: RequestTenant, code: str, body: ServiceSettingIn
) -> ServiceSettingRead:
    await reference.get_category(session, code)
    row = (await _settings(session)).get(code)
    if row is None:
        row = Open311Service(category_code=code)
        session.add(row)
    row.public = body.public
    row.description = body.description
    row.keywords = body.keywords
    row.attributes = [a.model_dump() for a in body.attributes] or None
    row.updated_at = utcnow()
    await session.flush()
    return _setting_read(code, row)


@settings_router.delete(
    "/services/{code}", status_code=204, summary="Back to the default (offered when active)"
)
async def delete_service_setting(session: DbSession, tenant: RequestTenant, code: str) -> Response:
    row = (await _settings(session)).get(code)
    if row is None:
        raise NotFound(f"category {code} has no Open311 setting")
    await session.delete(row)
    return Response(status_code=204)
