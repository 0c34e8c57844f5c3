"""``/api/v1/cases`` (cases, transitions, history, comments, attachments) and ``/api/v1/dispatch``
(case types, categories, grid cells, routes, calendar, evaluation), in the request's tenant
(``NGSILD-Tenant``, a GB/T 2260 code; the hub's default without it)."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, Response, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.dispatch import attachments, evaluation, reference, service, workflow
from cityhub.hub.dispatch.casetypes import CaseType
from cityhub.hub.dispatch.models import DispatchAttachment, DispatchCase, DispatchGridCell, DispatchRoute
from cityhub.hub.dispatch.schemas import (
    ActionRead,
    AttachmentRead,
    CalendarIn,
    CalendarRead,
    CaseCreate,
    CasePage,
    CaseRead,
    CaseTypeRead,
    CaseUpdate,
    CategoryIn,
    CategoryRead,
    CategoryUpdate,
    CommentIn,
    CommentRead,
    Evaluation,
    GridCellPage,
    GridCellRead,
    GridImported,
    HistoryRead,
    RouteIn,
    RouteRead,
    TransitionIn,
    has_nul,
)
from cityhub.hub.dispatch.views import read_case
from cityhub.kit.errors import BadRequestData, NotFound
from cityhub.kit.web import DbSession, RequestTenant
from cityhub.systems.security.models import Department


async def _plain_text(request: Request) -> None:
    """Paths and queries with a NUL character are refused: PostgreSQL cannot compare with one."""
    if has_nul(dict(request.query_params)) or has_nul(dict(request.path_params)):
        raise BadRequestData("a path or query parameter holds a NUL character")


cases = APIRouter(prefix="/api/v1/cases", tags=["dispatch"], dependencies=[Depends(_plain_text)])
dispatch = APIRouter(prefix="/api/v1/dispatch", tags=["dispatch"], dependencies=[Depends(_plain_text)])
ROUTERS = (cases, dispatch)

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31)]


def actor_of(request: Request, given: str | None) -> str:
    """The caller as access control knows it; without access control, the name given, or
    ``anonymous``."""
    principal = getattr(request.state, "principal", None)
    username = getattr(principal, "username", None)
    if isinstance(username, str):
        return username
    return given or "anonymous"


async def _department_of(request: Request, session: AsyncSession) -> tuple[str, str] | None:
    """(tenant, code) of the caller's department, when access control knows one."""
    department_id = getattr(getattr(request.state, "principal", None), "department_id", None)
    if not isinstance(department_id, uuid.UUID):
        return None
    department = await session.get(Department, department_id)
    return (department.tenant_code, department.code) if department is not None else None


# -- cases ------------------------------------------------------------------------------------------


@cases.post("", response_model=CaseRead, status_code=status.HTTP_201_CREATED, summary="Open a case")
async def create_case(
    request: Request, session: DbSession, tenant: RequestTenant, body: CaseCreate, response: Response
) -> CaseRead:
    case = await service.open_case(
        session,
        tenant=tenant,
        case_type=body.case_type,
        category_code=body.category,
        title=body.title,
        description=body.description,
        location=body.location,
        urgency=body.urgency,
        source=body.source,
        source_ref=body.source_ref,
        reporter=actor_of(request, body.reporter) if body.reporter is None else body.reporter,
    )
    response.headers["Location"] = f"{cases.prefix}/{case.id}"
    return read_case(session, case)


@cases.get("", response_model=CasePage, summary="Cases, filtered and paged")
async def list_cases(
    session: DbSession,
    tenant: RequestTenant,
    state: str | None = None,
    category: str | None = None,
    department: str | None = None,
    district: str | None = None,
    grid_cell: str | None = None,
    overdue: bool | None = None,
    triage: Annotated[bool | None, Query(description="true: the triage queue")] = None,
    case_type: str | None = None,
    duplicate_of: str | None = None,
    is_open: Annotated[
        bool | None,
        Query(alias="open", description="true: not closed, cancelled or merged; false: the others"),
    ] = None,
    opened_after: Annotated[
        datetime | None, Query(description="Opened at or after (ISO 8601 with offset).")
    ] = None,
    opened_before: Annotated[
        datetime | None, Query(description="Opened before (ISO 8601 with offset).")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> CasePage:
    for moment in (opened_after, opened_before):
        if moment is not None and moment.tzinfo is None:
            raise BadRequestData("opened_after and opened_before need a time zone offset (or Z)")
    where = service.CaseFilter(
        state,
        category,
        department,
        district,
        grid_cell,
        overdue,
        triage,
        case_type,
        duplicate_of,
        is_open,
        opened_after,
        opened_before,
    )
    rows, total = await service.list_cases(session, where, limit=limit, offset=offset)
    return CasePage(items=[read_case(session, c) for c in rows], total=total, limit=limit, offset=offset)


@cases.get("/{case_id}", response_model=CaseRead, summary="One case")
async def get_case(session: DbSession, tenant: RequestTenant, case_id: str) -> CaseRead:
    return read_case(session, await service.get_case(session, case_id))


@cases.patch("/{case_id}", response_model=CaseRead, summary="Correct an open case (routes it again)")
async def correct_case(
    request: Request, session: DbSession, tenant: RequestTenant, case_id: str, body: CaseUpdate
) -> CaseRead:
    given = body.model_dump(exclude_unset=True)
    actor = actor_of(request, given.pop("actor", None))
    if "category" in given:
        given["category_code"] = given.pop("category")
    if any(given.get(name, "") is None for name in ("category_code", "title", "urgency")):
        raise BadRequestData("category, title and urgency cannot be null")
    return read_case(session, await service.correct_case(session, case_id, actor=actor, changes=given))


@cases.post(
    "/{case_id}/transitions",
    response_model=CaseRead,
    summary="Take an action on a case",
    responses={409: {"description": "The action is not allowed now; the body lists the allowed ones."}},
)
async def take_action(
    request: Request, session: DbSession, tenant: RequestTenant, case_id: str, body: TransitionIn
) -> CaseRead:
    case = await service.transition(
        session,
        case_id,
        body.action,
        actor=actor_of(request, body.actor),
        note=body.note,
        department=body.department,
        department_tenant=body.department_tenant,
        extend_minutes=body.extend_minutes,
        acting_department=await _department_of(request, session),
    )
    return read_case(session, case)


@cases.get("/{case_id}/history", response_model=list[HistoryRead], summary="Who did what when")
async def case_history(session: DbSession, tenant: RequestTenant, case_id: str) -> list[HistoryRead]:
    rows = await service.history(session, await service.get_case(session, case_id))
    return [
        HistoryRead(
            at=r.at,
            actor=r.actor,
            action=r.action,
            from_state=r.from_state,
            to_state=r.to_state,
            note=r.note,
            data=r.data,
        )
        for r in rows
    ]


@cases.post("/{case_id}/comments", response_model=CommentRead, status_code=status.HTTP_201_CREATED)
async def add_comment(
    request: Request, session: DbSession, tenant: RequestTenant, case_id: str, body: CommentIn
) -> CommentRead:
    case = await service.get_case(session, case_id)
    comment = await service.add_comment(session, case, author=actor_of(request, body.author), body=body.body)
    return CommentRead(
        id=str(comment.id), author=comment.author, body=comment.body, created_at=comment.created_at
    )


@cases.get("/{case_id}/comments", response_model=list[CommentRead])
async def list_comments(session: DbSession, tenant: RequestTenant, case_id: str) -> list[CommentRead]:
    rows = await service.list_comments(session, await service.get_case(session, case_id))
    return [CommentRead(id=str(c.id), author=c.author, body=c.body, created_at=c.created_at) for c in rows]


def _attachment(case: DispatchCase, item: DispatchAttachment) -> AttachmentRead:
    return AttachmentRead(
        id=str(item.id),
        filename=item.filename,
        content_type=item.content_type,
        size=item.size,
        sha256=item.sha256,
        taken_at=item.taken_at,
        uploader=item.uploader,
        created_at=item.created_at,
        url=f"{cases.prefix}/{case.id}/attachments/{item.id}",
    )


def _data_dir(request: Request) -> Path:
    return Path(request.app.state.hub.settings.data_dir)


@cases.post(
    "/{case_id}/attachments",
    response_model=AttachmentRead,
    status_code=status.HTTP_201_CREATED,
    summary="Attach a photo (multipart: file, taken_at)",
    responses={413: {"description": "Too large"}, 415: {"description": "Not an accepted image type"}},
)
async def add_attachment(
    request: Request,
    session: DbSession,
    tenant: RequestTenant,
    case_id: str,
    file: Annotated[UploadFile, File(description="The photo: JPEG, PNG, WebP or GIF.")],
    taken_at: Annotated[datetime | None, Form(description="When the photo was taken (ISO 8601).")] = None,
    uploader: Annotated[str | None, Form(max_length=100)] = None,
) -> AttachmentRead:
    case = await service.get_case(session, case_id)
    if has_nul([uploader, file.filename]):
        raise BadRequestData("uploader and file name cannot hold NUL characters")
    if taken_at is not None and taken_at.tzinfo is None:
        raise BadRequestData("taken_at needs a time zone offset (or Z)")
    limit = request.app.state.hub.settings.dispatch_attachment_max_bytes
    content = await file.read(limit + 1)
    item = await attachments.add_attachment(
        session,
        case,
        content=content,
        filename=file.filename or "photo",
        declared_type=file.content_type,
        taken_at=taken_at,
        uploader=actor_of(request, uploader),
        data_dir=_data_dir(request),
        max_bytes=limit,
    )
    return _attachment(case, item)


@cases.get("/{case_id}/attachments", response_model=list[AttachmentRead])
async def list_attachments(session: DbSession, tenant: RequestTenant, case_id: str) -> list[AttachmentRead]:
    case = await service.get_case(session, case_id)
    return [_attachment(case, item) for item in await attachments.list_attachments(session, case)]


@cases.get(
    "/{case_id}/attachments/{attachment_id}",
    response_class=FileResponse,
    summary="Download an attachment",
)
async def download_attachment(
    request: Request, session: DbSession, tenant: RequestTenant, case_id: str, attachment_id: str
) -> FileResponse:
    case = await service.get_case(session, case_id)
    item = await attachments.get_attachment(session, case, attachment_id)
    return FileResponse(
        attachments.path_of(item, _data_dir(request)), media_type=item.content_type, filename=item.filename
    )


# -- case types -------------------------------------------------------------------------------------


def _case_type(kind: CaseType) -> CaseTypeRead:
    return CaseTypeRead(
        key=kind.key,
        app=kind.app,
        title_zh=kind.title_zh,
        title_en=kind.title_en,
        initial=kind.initial,
        states=kind.states,
        terminal=list(kind.terminal),
        stages=dict(kind.stages),
        state_titles={state: list(titles) for state, titles in kind.state_titles.items()},
        actions=[
            ActionRead(
                name=a.name,
                sources=list(a.sources),
                target=a.target,
                title_zh=a.title_zh,
                title_en=a.title_en,
                needs_reason=a.needs_reason,
                actors=list(a.actors),
                effect=a.effect,
            )
            for a in kind.all_actions()
        ],
    )


@dispatch.get("/case-types", response_model=list[CaseTypeRead], summary="The case workflows")
async def list_case_types(session: DbSession, tenant: RequestTenant) -> list[CaseTypeRead]:
    return [_case_type(kind) for _, kind in sorted(workflow.case_types(session).items())]


# -- categories -------------------------------------------------------------------------------------


@dispatch.get("/categories", response_model=list[CategoryRead], summary="Component and event categories")
async def list_categories(
    session: DbSession,
    tenant: RequestTenant,
    kind: Annotated[str | None, Query(pattern="^(component|event)$")] = None,
) -> list[CategoryRead]:
    return [CategoryRead.model_validate(c) for c in await reference.list_categories(session, kind=kind)]


@dispatch.post("/categories", response_model=CategoryRead, status_code=status.HTTP_201_CREATED)
async def create_category(session: DbSession, tenant: RequestTenant, body: CategoryIn) -> CategoryRead:
    return CategoryRead.model_validate(await reference.create_category(session, body.model_dump()))


@dispatch.get("/categories/{code}", response_model=CategoryRead)
async def get_category(session: DbSession, tenant: RequestTenant, code: str) -> CategoryRead:
    return CategoryRead.model_validate(await reference.get_category(session, code))


@dispatch.patch("/categories/{code}", response_model=CategoryRead)
async def update_category(
    session: DbSession, tenant: RequestTenant, code: str, body: CategoryUpdate
) -> CategoryRead:
    changes = body.model_dump(exclude_unset=True)
    if any(changes.get(name, "") is None for name in ("name_zh", "name_en", "limits", "active")):
        raise BadRequestData("name_zh, name_en, limits and active cannot be null; default_department can")
    return CategoryRead.model_validate(await reference.update_category(session, code, changes))


@dispatch.delete("/categories/{code}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_category(session: DbSession, tenant: RequestTenant, code: str) -> Response:
    await reference.delete_category(session, code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- grid cells -------------------------------------------------------------------------------------


def _cell(cell: DispatchGridCell) -> GridCellRead:
    return GridCellRead(code=cell.code, district=cell.district_code, name=cell.name, geometry=cell.geometry)


@dispatch.post(
    "/grid-cells",
    response_model=GridImported,
    summary="Import grid cells from a GeoJSON FeatureCollection (properties: code, district, name)",
)
async def import_grid_cells(
    session: DbSession, tenant: RequestTenant, body: Annotated[dict[str, Any], Body()]
) -> GridImported:
    if has_nul(body):
        raise BadRequestData("the grid cells cannot hold NUL characters")
    outcome = await reference.import_grid_cells(session, body)
    return GridImported(created=outcome.created, updated=outcome.updated)


@dispatch.get("/grid-cells", response_model=GridCellPage)
async def list_grid_cells(
    session: DbSession,
    tenant: RequestTenant,
    district: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> GridCellPage:
    rows, total = await reference.list_grid_cells(session, district=district, limit=limit, offset=offset)
    return GridCellPage(items=[_cell(c) for c in rows], total=total)


@dispatch.get(
    "/grid-cells.geojson",
    summary="Every grid cell as a GeoJSON FeatureCollection (for maps; the import's own shape)",
)
async def grid_cells_geojson(
    session: DbSession, tenant: RequestTenant, district: str | None = None
) -> dict[str, Any]:
    rows, _ = await reference.list_grid_cells(session, district=district, limit=None, offset=0)
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": cell.code,
                "properties": {"code": cell.code, "district": cell.district_code, "name": cell.name},
                "geometry": cell.geometry,
            }
            for cell in rows
        ],
    }


@dispatch.get("/grid-cells/locate", response_model=GridCellRead, summary="The grid cell holding a point")
async def locate(
    session: DbSession,
    tenant: RequestTenant,
    lon: Annotated[float, Query(ge=-180, le=180)],
    lat: Annotated[float, Query(ge=-90, le=90)],
) -> GridCellRead:
    cell = await reference.locate(session, lon, lat)
    if cell is None:
        raise NotFound(f"no grid cell holds ({lon}, {lat})")
    return _cell(cell)


@dispatch.get("/grid-cells/{code}", response_model=GridCellRead)
async def get_grid_cell(session: DbSession, tenant: RequestTenant, code: str) -> GridCellRead:
    return _cell(await reference.get_grid_cell(session, code))


@dispatch.delete("/grid-cells/{code}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_grid_cell(session: DbSession, tenant: RequestTenant, code: str) -> Response:
    await reference.delete_grid_cell(session, code)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- routes -----------------------------------------------------------------------------------------


def _route(line: DispatchRoute) -> RouteRead:
    return RouteRead(
        id=str(line.id),
        category=line.category_code,
        district=line.district_code,
        grid_cell=line.grid_code,
        department=line.department_code,
        department_tenant=line.department_tenant,
    )


@dispatch.get("/routes", response_model=list[RouteRead], summary="The routing table")
async def list_routes(session: DbSession, tenant: RequestTenant) -> list[RouteRead]:
    return [_route(line) for line in await reference.list_routes(session)]


@dispatch.post("/routes", response_model=RouteRead, status_code=status.HTTP_201_CREATED)
async def create_route(session: DbSession, tenant: RequestTenant, body: RouteIn) -> RouteRead:
    line = await reference.create_route(
        session,
        {
            "category_code": body.category,
            "district_code": body.district,
            "grid_code": body.grid_cell,
            "department_code": body.department,
            "department_tenant": body.department_tenant,
        },
    )
    return _route(line)


@dispatch.delete("/routes/{route_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_route(session: DbSession, tenant: RequestTenant, route_id: str) -> Response:
    await reference.delete_route(session, route_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- calendar ---------------------------------------------------------------------------------------


@dispatch.get("/calendar", response_model=CalendarRead, summary="The working-hours calendar")
async def get_calendar(session: DbSession, tenant: RequestTenant) -> CalendarRead:
    return CalendarRead.model_validate((await reference.ensure_setup(session)).calendar)


@dispatch.put("/calendar", response_model=CalendarRead, summary="Replace the working-hours calendar")
async def put_calendar(session: DbSession, tenant: RequestTenant, body: CalendarIn) -> CalendarRead:
    setup = await reference.set_calendar(session, body.model_dump())
    return CalendarRead.model_validate(setup.calendar)


# -- evaluation -------------------------------------------------------------------------------------


@dispatch.get("/evaluation", response_model=Evaluation, summary="Department evaluation over a period")
async def get_evaluation(
    session: DbSession,
    tenant: RequestTenant,
    period: Annotated[str | None, Query(description="A month YYYY-MM, in the calendar's time zone.")] = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    department: str | None = None,
    weights: Annotated[
        str | None, Query(description="Five weights: handling, on-time, rework, overdue, extension.")
    ] = None,
) -> Evaluation:
    if period is not None:
        if start is not None or end is not None:
            raise BadRequestData("give period, or from and to, not both")
        calendar = await reference.working_calendar(session)
        start, end = evaluation.month_bounds(period, calendar.zone)
    elif start is None or end is None:
        raise BadRequestData("give period=YYYY-MM, or from and to")
    if start.tzinfo is None or end.tzinfo is None:
        raise BadRequestData("from and to need a time zone offset (or Z)")
    chosen = evaluation.parse_weights(weights)
    scores = await evaluation.evaluate(session, start, end, weights=chosen, department=department)
    return Evaluation(
        start=start,
        end=end,
        weights=dict(zip(evaluation.WEIGHT_NAMES, chosen, strict=True)),
        departments=scores,
    )
