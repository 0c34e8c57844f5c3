from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cityhub.kit.errors import ServiceUnavailable
from cityhub.kit.web import DbSession, ProblemResponse, RequestTenant

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database and bus reachable", response_model=None)
async def readyz(request: Request) -> JSONResponse:
    checks = await request.app.state.hub.platform.readiness()
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, value in checks.items() if value != "ok")
    error = ServiceUnavailable(f"not ready: {failing} unavailable", checks=checks)
    return ProblemResponse(error.to_problem(request.url.path), status_code=503)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    hub = request.app.state.hub
    await hub.refresh_gauges()
    return PlainTextResponse(generate_latest(hub.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/apps", tags=["applications"], summary="Installed applications and contributions")
async def list_apps(request: Request) -> list[dict[str, Any]]:
    hub = request.app.state.hub
    return [
        {
            "name": status.manifest.name,
            "version": status.manifest.version,
            "title_zh": status.manifest.title_zh,
            "title_en": status.manifest.title_en,
            "indicators": [indicator.value for indicator in status.manifest.indicators],
            "requires": list(status.manifest.requires),
            "state": status.state,
            "error": status.error,
            "contributes": hub.registry.contributions(status.manifest.name),
        }
        for status in hub.platform.apps()
    ]


@router.get(
    "/api/v1/indicators",
    tags=["applications"],
    summary="Evaluation indicators for the request's tenant, from the apps that provide them",
)
async def indicators(request: Request, session: DbSession, tenant: RequestTenant) -> dict[str, Any]:
    registry = request.app.state.hub.registry
    values = []
    for indicator, providers in registry.indicator_providers.items():
        for app, provider in providers:
            value = await provider(session, tenant)
            values.append(
                {
                    "indicator": indicator.value,
                    "task_area": indicator.area.value,
                    "title_zh": indicator.title_zh,
                    "title_en": indicator.title_en,
                    "app": app,
                    "value": value.value,
                    "unit": value.unit,
                    "label_zh": value.label_zh,
                    "label_en": value.label_en,
                }
            )
    return {"tenant": tenant, "indicators": values}
