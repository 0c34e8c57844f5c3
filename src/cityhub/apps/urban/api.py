"""``/api/v1/urban``: the component inventory, the centres' queues, grid statistics, the
department evaluation and the monthly report, in the request's tenant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from cityhub.apps.urban import components, report, service
from cityhub.apps.urban.schemas import (
    ComponentCaseIn,
    ComponentIn,
    ComponentPatch,
    ComponentRead,
    ImportReport,
)
from cityhub.plugins import BadRequestData, DbSession, NotFound, RequestTenant, cases, casestats, entities

Limit = Annotated[int, Query(ge=1, le=1000)]


def build_router(weights: Sequence[float]) -> APIRouter:
    router = APIRouter(tags=["urban"])
    # the component inventory is UrbanComponent entities: read and changed by dataset, as in the broker
    reading = [Depends(entities.reads_types(components.ENTITY_TYPE))]
    writing = [Depends(entities.writes_types(components.ENTITY_TYPE))]

    def chosen_weights(given: str | None) -> tuple[float, ...]:
        return tuple(weights) if given is None else casestats.parse_weights(given)

    # -- components ---------------------------------------------------------------------------------

    @router.get(
        "/components",
        response_model=list[ComponentRead],
        summary="The component inventory",
        dependencies=reading,
    )
    async def list_components(
        session: DbSession,
        tenant: RequestTenant,
        state: str | None = None,
        category: str | None = None,
        division: str | None = None,
        limit: Limit = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        found = await components.listing(
            session, tenant, state=state, category=category, division=division, limit=limit, offset=offset
        )
        return [c.read() for c in found]

    @router.post(
        "/components/import",
        response_model=ImportReport,
        summary="Import components (CSV or GeoJSON)",
        dependencies=writing,
    )
    async def import_components(
        request: Request, session: DbSession, tenant: RequestTenant
    ) -> dict[str, Any]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind in ("text/csv", "application/csv"):
            rows = components.rows_of(await request.body(), "csv")
        elif kind in ("application/json", "application/geo+json"):
            rows = components.rows_of(await request.body(), "geojson")
        else:
            raise BadRequestData("send text/csv or application/geo+json")
        return await components.import_rows(session, tenant, rows)

    @router.get(
        "/components/{code}", response_model=ComponentRead, summary="One component", dependencies=reading
    )
    async def get_component(session: DbSession, tenant: RequestTenant, code: str) -> dict[str, Any]:
        return (await components.get(session, tenant, code)).read()

    @router.put(
        "/components/{code}",
        response_model=ComponentRead,
        summary="Create or replace a component",
        dependencies=writing,
    )
    async def put_component(
        session: DbSession, tenant: RequestTenant, code: str, body: ComponentIn, response: Response
    ) -> dict[str, Any]:
        checker = await components.Checker.load(session)
        component = await checker.check(session, {"code": code, **body.model_dump()})
        try:
            kept = await components.get(session, tenant, code)
            component.active_case, component.state_before_case = kept.active_case, kept.state_before_case
            response.status_code = 200
        except NotFound:
            response.status_code = 201
        await components.save(session, tenant, [component])
        return component.read()

    @router.patch(
        "/components/{code}", response_model=ComponentRead, summary="Change a component", dependencies=writing
    )
    async def patch_component(
        session: DbSession, tenant: RequestTenant, code: str, body: ComponentPatch
    ) -> dict[str, Any]:
        kept = await components.get(session, tenant, code)
        data = kept.read() | body.model_dump(exclude_unset=True)
        checker = await components.Checker.load(session)
        component = await checker.check(session, data)
        component.active_case, component.state_before_case = kept.active_case, kept.state_before_case
        await components.save(session, tenant, [component])
        return component.read()

    @router.delete("/components/{code}", status_code=204, summary="Delete a component", dependencies=writing)
    async def delete_component(session: DbSession, tenant: RequestTenant, code: str) -> Response:
        await components.remove(session, tenant, code)
        return Response(status_code=204)

    @router.post(
        "/components/{code}/cases",
        status_code=201,
        summary="Open a case about a component (damaged while open)",
    )
    async def component_case(
        session: DbSession, tenant: RequestTenant, code: str, body: ComponentCaseIn
    ) -> dict[str, Any]:
        component = await components.get(session, tenant, code)
        case = await cases.open_case(
            session,
            tenant=tenant,
            case_type=service.CASE_TYPE,
            category_code=component.category,
            title=body.title or f"{component.name} {component.code}",
            description=body.description,
            location={"type": "Point", "coordinates": [component.lon, component.lat]},
            urgency=body.urgency,
            source=body.source,
            source_ref=components.entity_id(code),
            reporter=body.reporter,
        )
        if case.state not in casestats.closed_states(session, case.case_type):
            await components.case_opened(session, tenant, case.id, components.entity_id(code))
        return {"case": case.id, "state": case.state, "duplicate_of": case.duplicate_of, "component": code}

    # -- the centres --------------------------------------------------------------------------------

    @router.get("/queues", summary="The supervision and command centres' queues")
    async def queues(session: DbSession, tenant: RequestTenant, limit: Limit = 50) -> dict[str, Any]:
        return {"tenant": tenant, **await service.queues(session, limit=limit)}

    @router.get("/statistics/grid", summary="Cases per grid cell and category; hot spots")
    async def grid_statistics(
        session: DbSession,
        tenant: RequestTenant,
        period: Annotated[str | None, Query(description="A month YYYY-MM")] = None,
        start: Annotated[datetime | None, Query(alias="from")] = None,
        end: Annotated[datetime | None, Query(alias="to")] = None,
        top: Annotated[int, Query(ge=1, le=100)] = 10,
    ) -> dict[str, Any]:
        start, end = await service.period_bounds(session, period, start, end)
        return await service.grid_statistics(session, start, end, top=top)

    @router.get("/evaluation", summary="Department evaluation with the app's weights")
    async def evaluation(
        session: DbSession,
        tenant: RequestTenant,
        period: Annotated[str | None, Query(description="A month YYYY-MM")] = None,
        start: Annotated[datetime | None, Query(alias="from")] = None,
        end: Annotated[datetime | None, Query(alias="to")] = None,
        weights: str | None = None,
    ) -> dict[str, Any]:
        start, end = await service.period_bounds(session, period, start, end)
        chosen = chosen_weights(weights)
        return {
            "start": start,
            "end": end,
            "weights": dict(zip(casestats.WEIGHT_NAMES, chosen, strict=True)),
            "departments": await service.evaluation(session, start, end, chosen),
        }

    @router.get(
        "/reports/{period}",
        summary="Monthly report: HTML (zh-CN) or CSV (?format=csv)",
        response_class=Response,
        responses={200: {"content": {"text/html": {}, "text/csv": {}}}},
    )
    async def monthly_report(
        session: DbSession,
        tenant: RequestTenant,
        period: str,
        format: Annotated[str, Query(pattern="^(html|csv)$")] = "html",
        weights: str | None = None,
    ) -> Response:
        data = await service.monthly(session, tenant, period, chosen_weights(weights))
        if format == "csv":
            return Response(
                report.csv_text(data).encode("utf-8"),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="urban-report-{tenant}-{period}.csv"'},
            )
        return Response(report.html(data), media_type="text/html; charset=utf-8")

    return router
