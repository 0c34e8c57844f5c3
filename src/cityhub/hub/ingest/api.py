"""HTTP endpoints of the device gateway.

``/iot/...`` speaks as FIWARE's IoT Agents do: provisioning of service groups and devices
(``/iot/services``, ``/iot/devices``) with the ``fiware-service`` header naming the tenant (the
broker tenant that ``NGSILD-Tenant`` names; the hub's default tenant without one) and
``fiware-servicepath`` the service path (the entities' NGSI-LD scope), and the southbound
transports for devices: ``POST /iot/json?k=<apikey>&i=<device_id>`` (JSON) and
``POST /iot/d?k=…&i=…`` (UltraLight 2.0), with ``getCmd=1`` (also by ``GET``) for devices that
poll for their commands, and their command results.

``/api/v1/ingest/...`` is CityHub's own: dead letters and their counts, commands, data models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from cityhub.hub.broker.ngsi import expand_scopes
from cityhub.hub.ingest import health, letters, measures, service
from cityhub.hub.ingest.commands import Commands
from cityhub.hub.ingest.gateway import Gateway
from cityhub.hub.ingest.schemas import (
    CommandOut,
    DeadLetterCount,
    DeadLetterCounts,
    DeadLetterList,
    DeadLetterOut,
    DeviceList,
    DeviceOut,
    DevicesIn,
    DeviceUpdate,
    HealthByDistrict,
    HealthByGroup,
    HealthCount,
    NetworkHealth,
    ServiceGroupList,
    ServiceGroupsIn,
    ServiceGroupUpdate,
)
from cityhub.hub.ingest.tasks import Letter
from cityhub.hub.tenancy import service as tenancy
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.errors import (
    BadRequestData,
    Forbidden,
    HubError,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
)
from cityhub.kit.time import utcnow
from cityhub.kit.web import TENANT_HEADER, DbSession, on_event_loop

SERVICE_HEADER = "fiware-service"
SERVICE_PATH_HEADER = "fiware-servicepath"
ANY_PATH = ("/*", "/#")

router = APIRouter(tags=["Device ingestion"])


#: The paths whose routes take :class:`IotRequest` and so read their tenant with :func:`iot_tenant`
#: (provisioning, ingest administration, network coverage); the security guard checks permissions
#: in the tenant read the same way.
FIWARE_TENANT_PATHS = ("/iot/", "/api/v1/ingest/", "/api/v1/infrastructure/")


def iot_tenant(header: Callable[[str], str | None], default: str) -> str:
    """The tenant FIWARE's IoT Agent API names: ``fiware-service``, else ``NGSILD-Tenant``, else
    the hub's default."""
    return header(SERVICE_HEADER) or header(TENANT_HEADER) or default


class IotRequest:
    """The tenant (``fiware-service``, or ``NGSILD-Tenant``, or the default) and service path of a
    request; the session is scoped to the tenant."""

    def __init__(self, request: Request, session: DbSession) -> None:
        headers = request.headers
        tenant = iot_tenant(headers.get, request.app.state.default_tenant)
        if not tenant or len(tenant) > 64 or not tenant.isprintable() or "/" in tenant:
            raise BadRequestData(f"service {tenant!r} is not a valid tenant name")
        path = headers.get(SERVICE_PATH_HEADER) or "/"
        self.path_given = SERVICE_PATH_HEADER in headers and path not in ANY_PATH
        if path not in ANY_PATH and path != "/":
            try:
                expand_scopes(path)
            except HubError:
                raise BadRequestData(f"service path {path!r} must read /district/area") from None
        self.tenant = tenant
        self.service_path = "/" if path in ANY_PATH else path
        self.session = session
        self.gateway: Gateway = request.app.state.hub.ingest
        scope_to_tenant(session, tenant)

    @property
    def path_filter(self) -> str | None:
        return self.service_path if self.path_given else None


Iot = Annotated[IotRequest, Depends(on_event_loop(IotRequest))]


# -- provisioning -----------------------------------------------------------------------------------


@router.post("/iot/services", status_code=201, summary="Provision service groups")
async def create_services(iot: Iot, body: ServiceGroupsIn) -> Response:
    await service.create_groups(iot.session, iot.service_path, body.services)
    iot.gateway.forget()
    service.provisioning_changed(iot.session, iot.tenant)
    return Response(status_code=201)


@router.get("/iot/services", summary="List service groups", response_model=ServiceGroupList)
async def list_services(
    iot: Iot, limit: Annotated[int, Query(ge=1, le=1000)] = 20, offset: Annotated[int, Query(ge=0)] = 0
) -> ServiceGroupList:
    rows, total = await service.list_groups(iot.session, iot.path_filter, limit=limit, offset=offset)
    return ServiceGroupList(count=total, services=[service.group_out(row) for row in rows])


@router.put("/iot/services", status_code=204, summary="Update a service group")
async def update_service(
    iot: Iot, body: ServiceGroupUpdate, apikey: str, resource: str | None = None
) -> Response:
    await service.update_group(iot.session, apikey, resource, body)
    iot.gateway.forget()
    service.provisioning_changed(iot.session, iot.tenant)
    return Response(status_code=204)


@router.delete("/iot/services", status_code=204, summary="Remove a service group")
async def delete_service(iot: Iot, apikey: str, resource: str | None = None) -> Response:
    await service.delete_group(iot.session, apikey, resource)
    iot.gateway.forget()
    service.provisioning_changed(iot.session, iot.tenant)
    return Response(status_code=204)


@router.post("/iot/devices", status_code=201, summary="Provision devices")
async def create_devices(iot: Iot, body: DevicesIn) -> Response:
    await service.create_devices(iot.session, iot.service_path, body.devices, iot.gateway.expand)
    iot.gateway.forget()
    service.provisioning_changed(iot.session, iot.tenant)
    return Response(status_code=201)


@router.get("/iot/devices", summary="List devices", response_model=DeviceList)
async def list_devices(
    iot: Iot, limit: Annotated[int, Query(ge=1, le=1000)] = 20, offset: Annotated[int, Query(ge=0)] = 0
) -> DeviceList:
    rows, total = await service.list_devices(iot.session, iot.path_filter, limit=limit, offset=offset)
    return DeviceList(count=total, devices=[service.device_out(row) for row in rows])


@router.get("/iot/devices/{device_id}", summary="Read a device", response_model=DeviceOut)
async def get_device(iot: Iot, device_id: str) -> DeviceOut:
    return service.device_out(await service.get_device(iot.session, device_id))


@router.put("/iot/devices/{device_id}", status_code=204, summary="Update a device")
async def update_device(iot: Iot, device_id: str, body: DeviceUpdate) -> Response:
    await service.update_device(iot.session, device_id, body, iot.gateway.expand)
    iot.gateway.forget()
    service.provisioning_changed(iot.session, iot.tenant)
    return Response(status_code=204)


@router.delete("/iot/devices/{device_id}", status_code=204, summary="Remove a device")
async def delete_device(iot: Iot, device_id: str) -> Response:
    await service.delete_device(iot.session, device_id)
    iot.gateway.forget()
    service.provisioning_changed(iot.session, iot.tenant)
    return Response(status_code=204)


# -- southbound HTTP transports ---------------------------------------------------------------------


_ERRORS: dict[str, type[HubError]] = {
    measures.UNKNOWN_APIKEY: NotFound,
    measures.UNKNOWN_DEVICE: NotFound,
    measures.UNKNOWN_COMMAND: NotFound,
    measures.INVALID_PAYLOAD: BadRequestData,
    measures.VALIDATION_FAILED: BadRequestData,
    measures.RATE_LIMITED: TooManyRequests,
    measures.TOO_LARGE: PayloadTooLarge,
    measures.WRITE_FAILED: HubError,
    measures.APIKEY_DISABLED: Forbidden,
}


def refusal(letter: Letter) -> HubError:
    """The answer to a device whose message became ``letter``."""
    return _ERRORS[letter.reason](letter.detail, reason=letter.reason, deadLetter=letter.id)


def _commands(request: Request) -> Commands:
    commands: Commands = request.app.state.hub.commands
    return commands


async def _measure(
    request: Request,
    fmt: str,
    k: str | None,
    i: str | None,
    *,
    payload: bytes | None = None,
    get_cmd: str | None = None,
) -> Response:
    """Measures (``payload``; none for a bare poll), then, when the device asks (``getCmd=1``),
    its pending commands in the answer."""
    gateway: Gateway = request.app.state.hub.ingest
    if payload is None:
        payload = await request.body()
    tenant = request.headers.get(SERVICE_HEADER)
    source = f"{request.method} {request.url.path}"
    polling = get_cmd == "1"
    if not k or not i:
        missing = measures.Rejected(measures.INVALID_PAYLOAD, "the query needs k=<apikey> and i=<device_id>")
        outcome = gateway.reject(
            missing, tenant=tenant, transport="http", payload=payload, apikey=k, device_id=i, source=source
        )
    elif fmt == "UL" and _is_result(payload, i):
        letter = await _commands(request).result(k, i, payload, "UL", source, transport="http", tenant=tenant)
        if letter is not None:
            raise refusal(letter)
        return Response(status_code=200)
    elif not payload.strip() and polling:
        try:
            profile = await gateway.profile(k, i)
        except measures.Rejected as error:
            outcome = gateway.reject(
                error,
                tenant=error.tenant or tenant,
                transport="http",
                payload=payload,
                apikey=k,
                device_id=i,
                source=source,
            )
        else:
            body, media = await _commands(request).collect(replace(profile, protocol=fmt))
            return Response(content=body, media_type=media)
    else:
        outcome = await gateway.receive("http", k, i, payload, fmt=fmt, source=source, tenant=tenant)
    letter = await outcome
    if letter is not None:
        raise refusal(letter)
    if polling:
        assert k is not None
        assert i is not None
        profile = await gateway.profile(k, i)
        body, media = await _commands(request).collect(replace(profile, protocol=fmt))
        return Response(content=body, media_type=media)
    return Response(status_code=200)


def _is_result(payload: bytes, device_id: str) -> bool:
    """An UltraLight command result (``<device_id>@<command>|<result>``), not measures."""
    head = payload.lstrip()[: len(device_id) + 1]
    return head == f"{device_id}@".encode()


@router.post("/iot/json", summary="Measures from a device, as JSON")
async def json_measures(
    request: Request, k: str | None = None, i: str | None = None, getCmd: str | None = None
) -> Response:
    """The body is one object of measures (``{"t": 23.4, "h": 40}``, with an optional
    ``TimeInstant``), or an array of them. With ``getCmd=1`` the answer holds the device's
    pending commands, ``{"<command>": <value>, ...}``."""
    return await _measure(request, "JSON", k, i, get_cmd=getCmd)


@router.get("/iot/json", summary="A device polls for its commands (JSON)")
async def json_poll(
    request: Request, k: str | None = None, i: str | None = None, getCmd: str | None = None
) -> Response:
    """``getCmd=1``: the device's pending commands, ``{"<command>": <value>, ...}`` (``{}``
    when none); they become DELIVERED."""
    if getCmd != "1":
        raise BadRequestData("a GET from a device needs getCmd=1")
    return await _measure(request, "JSON", k, i, payload=b"", get_cmd=getCmd)


@router.post("/iot/json/commands", summary="A device's command result, as JSON")
async def json_command_result(request: Request, k: str | None = None, i: str | None = None) -> Response:
    """The body is ``{"<command>": <result>}``; the command becomes OK, or ERROR when the result
    is an object with an ``error`` member."""
    payload = await request.body()
    source = f"{request.method} {request.url.path}"
    tenant = request.headers.get(SERVICE_HEADER)
    if not k or not i:
        gateway: Gateway = request.app.state.hub.ingest
        missing = measures.Rejected(measures.INVALID_PAYLOAD, "the query needs k=<apikey> and i=<device_id>")
        letter = await gateway.reject(
            missing, tenant=tenant, transport="http", payload=payload, apikey=k, device_id=i, source=source
        )
    else:
        letter = await _commands(request).result(
            k, i, payload, "JSON", source, transport="http", tenant=tenant
        )
    if letter is not None:
        raise refusal(letter)
    return Response(status_code=200)


@router.post("/iot/d", summary="Measures from a device, as UltraLight 2.0")
async def ul_measures(
    request: Request, k: str | None = None, i: str | None = None, getCmd: str | None = None
) -> Response:
    """The body is UltraLight 2.0: ``t|23.4|h|40``, several groups separated by ``#`` or line
    breaks, each optionally after its timestamp. A body ``<device_id>@<command>|<result>`` is a
    command's result. With ``getCmd=1`` the answer holds the device's pending commands, one
    ``<device_id>@<command>|<value>`` a line."""
    return await _measure(request, "UL", k, i, get_cmd=getCmd)


@router.get("/iot/d", summary="Measures or a poll for commands from a device, UltraLight 2.0")
async def ul_poll(
    request: Request,
    k: str | None = None,
    i: str | None = None,
    d: str | None = None,
    getCmd: str | None = None,
) -> Response:
    """``d=<UltraLight measures>`` and/or ``getCmd=1`` (the device's pending commands, one
    ``<device_id>@<command>|<value>`` a line; empty when none; they become DELIVERED)."""
    if not d and getCmd != "1":
        raise BadRequestData("a GET from a device needs d=<measures> or getCmd=1")
    return await _measure(request, "UL", k, i, payload=(d or "").encode(), get_cmd=getCmd)


# -- CityHub's own ----------------------------------------------------------------------------------


@router.get("/api/v1/ingest/dead-letters", summary="Refused device messages", response_model=DeadLetterList)
async def dead_letters(
    iot: Iot,
    device_id: str | None = None,
    reason: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DeadLetterList:
    if reason is not None and reason not in measures.REASONS:
        raise BadRequestData(f"reason must be one of {', '.join(measures.REASONS)}")
    rows, total = await letters.list_dead_letters(
        iot.session, device_id=device_id, reason=reason, since=since, limit=limit, offset=offset
    )
    return DeadLetterList(
        count=total, deadLetters=[DeadLetterOut.model_validate(row, from_attributes=True) for row in rows]
    )


@router.get(
    "/api/v1/ingest/dead-letters/counts",
    summary="Refused device messages counted by device and reason",
    response_model=DeadLetterCounts,
)
async def dead_letter_counts(iot: Iot) -> DeadLetterCounts:
    rows = await letters.dead_letter_counts(iot.session)
    counts = [
        DeadLetterCount(device_id=device, reason=reason, count=count, last_received_at=last)
        for device, reason, count, last in rows
    ]
    return DeadLetterCounts(total=sum(c.count for c in counts), counts=counts)


@router.get(
    "/api/v1/ingest/devices/{device_id}/commands",
    summary="Commands sent to a device, newest first",
    response_model=list[CommandOut],
)
async def device_commands(
    iot: Iot, device_id: str, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[CommandOut]:
    await service.get_device(iot.session, device_id)
    rows = await service.list_commands(iot.session, device_id, limit=limit)
    return [CommandOut.model_validate(row, from_attributes=True) for row in rows]


@router.get(
    "/api/v1/ingest/health",
    summary="Sensing-network health: devices online, offline, unknown by type, district and service path",
    response_model=NetworkHealth,
)
async def network_health(iot: Iot, subtree: bool = False) -> NetworkHealth:
    """``subtree=true``: the devices of the tenant and of every tenant below it in the tenant
    registry (a city and its districts); each district's own devices count for it."""
    tenants = await tenancy.subtree(iot.session, iot.tenant) if subtree else None
    found = await health.summary(iot.session, utcnow(), iot.gateway.expand, tenants=tenants)

    def groups(tallies: dict[str, health.Tally]) -> list[HealthByGroup]:
        return [HealthByGroup(name=name, **tallies[name].as_dict()) for name in sorted(tallies)]

    return NetworkHealth(
        overall=HealthCount(**found.overall.as_dict()),
        byType=groups(found.by_type),
        byDistrict=[
            HealthByDistrict(
                name=code, title=found.district_names.get(code), **found.by_district[code].as_dict()
            )
            for code in sorted(found.by_district)
        ],
        outsideDistricts=HealthCount(**found.outside_districts.as_dict()),
        byServicePath=groups(found.by_service_path),
        lowBattery=sorted(found.low_battery),
    )


@router.get("/api/v1/ingest/models", summary="Data models measures are validated against")
async def data_models(request: Request) -> list[dict[str, Any]]:
    gateway: Gateway = request.app.state.hub.ingest
    return [model.schema() for model in gateway.models]
