"""Commands to devices: street-light dimming, message signs, valves.

A device's provisioning declares its commands; its entity gets, per command ``<c>``, the attributes
``<c>`` (what to send), ``<c>_status`` and ``<c>_info`` (the device's answer). Changing ``<c>`` on
the entity through the NGSI-LD API (``PATCH /ngsi-ld/v1/entities/{id}/attrs/<c>``) sends the command:
this module consumes the broker's change events after commit, records the command (PENDING) and
sends it, over MQTT on ``/<apikey>/<device_id>/cmd`` or by HTTP POST to the device's ``endpoint``.

A device with transport HTTP and no ``endpoint`` cannot be pushed to: it *polls*, as with FIWARE's
IoT Agents. Its commands stay PENDING until it asks for them (``getCmd=1`` on ``/iot/d`` or
``/iot/json``, with or without measures); the answer carries them (UltraLight
``<device_id>@<command>|<value>`` lines, or one JSON object ``{"<command>": <value>, ...}``) and
they become DELIVERED. The device answers later with ``<device_id>@<command>|<result>`` on
``POST /iot/d`` (or ``{"<command>": <result>}`` on ``POST /iot/json/commands``).

Statuses: PENDING (recorded, not yet taken by a transport), DELIVERED (the MQTT broker acknowledged
it, or the polling device collected it), OK or ERROR (the device's answer: on
``/<apikey>/<device_id>/cmdexe`` for MQTT, the HTTP response for HTTP push, a later request for
HTTP polling), EXPIRED (no answer within ``CITYHUB_INGEST_COMMAND_TTL``). A result is an error
when it is an object with an ``error`` member (JSON) or text starting with ``ERROR`` (UltraLight).
PENDING commands (the MQTT broker was away) are sent again until they expire.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import String, cast, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.bus import Event
from cityhub.bus.inbox import first_delivery
from cityhub.hub.broker.events import EntitiesChanged
from cityhub.hub.ingest import measures, profiles, service, ul
from cityhub.hub.ingest.gateway import Gateway, sniff
from cityhub.hub.ingest.measures import Profile, Rejected
from cityhub.hub.ingest.models import IngestCommand, IngestDevice, IngestServiceGroup
from cityhub.hub.ingest.mqtt import MqttGateway
from cityhub.hub.ingest.tasks import Letter
from cityhub.kit.db import ALL_TENANTS, scope_to_tenant
from cityhub.kit.periodic import Periodic
from cityhub.kit.time import utcnow

log = logging.getLogger(__name__)

CONSUMER = "ingest-commands"
#: How long the set of provisioned command names is trusted before it is read again.
NAMES_TTL = 5.0


def polls(profile: Profile) -> bool:
    """Whether the device collects its commands itself (HTTP, no endpoint to push them to)."""
    return profile.transport == "HTTP" and not profile.endpoint


def outcome(result: Any) -> tuple[str, Any]:
    """(status, info) of a device's answer."""
    if isinstance(result, dict) and "error" in result:
        return "ERROR", result["error"]
    if isinstance(result, str) and result.upper().startswith("ERROR"):
        return "ERROR", result
    return "OK", result


class Commands:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        gateway: Gateway,
        *,
        ttl: float,
        http_timeout: float,
    ) -> None:
        self.sessions = sessions
        self.gateway = gateway
        self.ttl = ttl
        self.http_timeout = http_timeout
        self.mqtt: MqttGateway | None = None
        self._names: set[str] = set()
        self._names_until = 0.0
        self._sending: set[str] = set()
        self._sweeper = Periodic("command sweep", min(5.0, max(ttl / 4, 0.2)), self.sweep)
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._http = httpx.AsyncClient(timeout=self.http_timeout)
        self._sweeper.start()

    async def stop(self) -> None:
        await self._sweeper.stop()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def forget(self) -> None:
        self._names_until = 0.0

    async def _command_iris(self) -> set[str]:
        if time.monotonic() < self._names_until:
            return self._names
        everywhere = {ALL_TENANTS: True}
        lists: list[list[Any]] = []
        async with self.sessions() as session:
            for model in (IngestDevice, IngestServiceGroup):
                declared = cast(model.commands, String) != "[]"  # only rows with commands
                statement = select(model.commands).where(declared).execution_options(**everywhere)
                lists += list(await session.scalars(statement))
        self._names = {self.gateway.expand(item["name"]) for items in lists for item in items}
        self._names_until = time.monotonic() + NAMES_TTL
        return self._names

    # -- sending ------------------------------------------------------------------------------------

    async def on_changes(self, event: Event) -> None:
        """The bus consumer: commands written on device entities are sent."""
        assert isinstance(event, EntitiesChanged)
        iris = await self._command_iris()
        wanted: dict[str, dict[str, Any]] = {}
        for change in event.changes:
            if change["op"] != "update" or change["entity"] is None:
                continue
            for iri in (*change["updated"], *change["created"]):
                if iri in iris:
                    instances = change["entity"]["attrs"].get(iri) or [{}]
                    wanted.setdefault(change["id"], {})[iri] = instances[0].get("value")
        if not wanted:
            return
        sent: list[tuple[IngestCommand, Profile]] = []
        async with self.sessions() as session, session.begin():
            if not await first_delivery(session, CONSUMER, event):
                return
            scope_to_tenant(session, event.tenant)
            for device in await service.devices_of_entities(session, list(wanted)):
                profile = await self._profile(session, device)
                for name in profile.commands:
                    iri = self.gateway.expand(name)
                    if iri not in wanted[device.entity_name]:
                        continue
                    command = IngestCommand(
                        device_id=device.device_id,
                        name=name,
                        value=wanted[device.entity_name][iri],
                        status="PENDING",
                        expires_at=utcnow() + timedelta(seconds=self.ttl),
                    )
                    session.add(command)
                    await session.flush()
                    await service.set_command_status(session, command, "PENDING", "", self.gateway.expand)
                    sent.append((command, profile))
        for command, profile in sent:
            await self._send(command, profile)

    async def _profile(self, session: AsyncSession, device: IngestDevice) -> Profile:
        group = None
        if device.apikey is not None:
            group = await session.scalar(
                select(IngestServiceGroup)
                .where(IngestServiceGroup.apikey == device.apikey)
                .execution_options(**{ALL_TENANTS: True})
            )
        return profiles.profile_of(device, group, device.apikey or "")

    async def _send(self, command: IngestCommand, profile: Profile) -> None:
        if command.id in self._sending or polls(profile):
            return  # a polling device collects it (see collect)
        self._sending.add(command.id)
        try:
            if profile.endpoint and profile.transport != "MQTT":
                status, info = await self._push(command, profile)
            else:
                status, info = await self._publish(command, profile)
            if status != "PENDING":
                await self._set(command.tenant_code, command.id, status, info, only_from=("PENDING",))
        finally:
            self._sending.discard(command.id)

    def _payload(self, command: IngestCommand, profile: Profile) -> tuple[bytes, str]:
        if profile.protocol == "JSON":
            return orjson.dumps({command.name: command.value}), "application/json"
        return ul.format_command(profile.device_id, command.name, command.value).encode(), "text/plain"

    async def _publish(self, command: IngestCommand, profile: Profile) -> tuple[str, Any]:
        if self.mqtt is None:
            return "ERROR", "the device has no HTTP endpoint and the hub has no MQTT broker"
        payload, _ = self._payload(command, profile)
        topic = f"/{profile.apikey}/{profile.device_id}/cmd"
        if await self.mqtt.publish(topic, payload):
            return "DELIVERED", ""
        return "PENDING", ""

    async def _push(self, command: IngestCommand, profile: Profile) -> tuple[str, Any]:
        assert self._http is not None
        assert profile.endpoint is not None
        payload, media = self._payload(command, profile)
        try:
            response = await self._http.post(
                profile.endpoint, content=payload, headers={"content-type": media}
            )
        except httpx.HTTPError as error:
            return "ERROR", f"{type(error).__name__}: {error}"
        if response.status_code >= 300:
            return "ERROR", f"the device answered {response.status_code}: {response.text[:500]}"
        try:
            return outcome(self._result(command.name, response.content, profile.protocol))
        except Rejected as error:
            return "ERROR", error.detail

    @staticmethod
    def _result(name: str, payload: bytes, fmt: str | None) -> Any:
        kind = (fmt or sniff(payload)).upper()
        if kind == "JSON":
            try:
                body = orjson.loads(payload) if payload.strip() else {}
            except orjson.JSONDecodeError:
                raise Rejected(measures.INVALID_PAYLOAD, "the command result is not valid JSON") from None
            if not isinstance(body, dict) or name not in body:
                raise Rejected(measures.INVALID_PAYLOAD, f"the command result has no member {name!r}")
            return body[name]
        try:
            _, answered, result = ul.parse_command_result(payload.decode("utf-8", errors="replace"))
        except ul.ULError as error:
            raise Rejected(measures.INVALID_PAYLOAD, str(error)) from None
        if answered != name:
            raise Rejected(measures.UNKNOWN_COMMAND, f"the result is for {answered!r}, not {name!r}")
        return result

    async def _set(
        self, tenant: str, command_id: str, status: str, info: Any, *, only_from: tuple[str, ...]
    ) -> bool:
        async with self.sessions() as session, session.begin():
            scope_to_tenant(session, tenant)
            command = await session.get(IngestCommand, command_id)
            if command is None or command.status not in only_from:
                return False
            await service.set_command_status(session, command, status, info, self.gateway.expand)
        return True

    # -- polling ------------------------------------------------------------------------------------

    async def collect(self, profile: Profile) -> tuple[bytes, str]:
        """The device's PENDING commands, oldest first, as the answer to its poll (body, media
        type); they become DELIVERED. In JSON, a command pending twice goes out once now and once
        at the next poll."""
        if profile.provisional:
            return (b"{}", "application/json") if profile.protocol == "JSON" else (b"", "text/plain")
        now = utcnow()
        async with self.sessions() as session, session.begin():
            scope_to_tenant(session, profile.tenant)
            pending = list(
                await session.scalars(
                    select(IngestCommand)
                    .where(
                        IngestCommand.device_id == profile.device_id,
                        IngestCommand.status == "PENDING",
                        IngestCommand.expires_at > now,
                    )
                    .order_by(IngestCommand.created_at, IngestCommand.id)
                    .with_for_update(skip_locked=True)
                )
            )
            if profile.protocol == "JSON":
                taken: dict[str, IngestCommand] = {}
                for command in pending:
                    taken.setdefault(command.name, command)
                pending = list(taken.values())
            for command in pending:
                await service.set_command_status(session, command, "DELIVERED", "", self.gateway.expand)
        if profile.protocol == "JSON":
            return orjson.dumps({c.name: c.value for c in pending}), "application/json"
        lines = [ul.format_command(profile.device_id, c.name, c.value) for c in pending]
        return "\n".join(lines).encode(), "text/plain"

    # -- results ------------------------------------------------------------------------------------

    async def result(
        self,
        apikey: str,
        device_id: str,
        payload: bytes,
        fmt: str | None,
        source: str,
        *,
        transport: str = "mqtt",
        tenant: str | None = None,
    ) -> Letter | None:
        """A device's answer (on ``cmdexe`` for MQTT, by a later request for a polling HTTP
        device); None when recorded, else the dead letter it became."""
        profile: Profile | None = None
        try:
            profile = await self.gateway.profile(apikey, device_id)
            kind = fmt or profile.protocol or sniff(payload)
            if kind.upper() == "JSON":
                try:
                    body = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    raise Rejected(measures.INVALID_PAYLOAD, "the command result is not valid JSON") from None
                if not isinstance(body, dict) or len(body) != 1:
                    raise Rejected(measures.INVALID_PAYLOAD, "a JSON command result is {<command>: <result>}")
                ((name, result),) = body.items()
            else:
                try:
                    answered_by, name, result = ul.parse_command_result(
                        payload.decode("utf-8", errors="replace")
                    )
                except ul.ULError as error:
                    raise Rejected(measures.INVALID_PAYLOAD, str(error)) from None
                if answered_by != device_id:
                    raise Rejected(measures.INVALID_PAYLOAD, f"the result names device {answered_by!r}")
            status, info = outcome(result)
            async with self.sessions() as session, session.begin():
                scope_to_tenant(session, profile.tenant)
                command = await service.open_command(session, device_id, name)
                if command is None:
                    raise Rejected(measures.UNKNOWN_COMMAND, f"no command {name!r} is waiting for an answer")
                await service.set_command_status(session, command, status, info, self.gateway.expand)
        except Rejected as error:
            letter = await self.gateway.reject(
                error,
                tenant=profile.tenant if profile else error.tenant or tenant,
                transport=transport,
                payload=payload,
                apikey=apikey,
                device_id=device_id,
                source=source,
            )
            return letter
        return None

    # -- expiry and resending -----------------------------------------------------------------------

    async def sweep(self) -> None:
        """Expire commands past their time; send PENDING ones again."""
        now = utcnow()
        async with self.sessions() as session:
            waiting = list(
                await session.scalars(
                    select(IngestCommand)
                    .where(IngestCommand.status.in_(("PENDING", "DELIVERED")))
                    .execution_options(**{ALL_TENANTS: True})
                )
            )
        for command in waiting:
            if command.expires_at <= now:
                await self._set(
                    command.tenant_code,
                    command.id,
                    "EXPIRED",
                    "no answer in time",
                    only_from=("PENDING", "DELIVERED"),
                )
            elif command.status == "PENDING" and command.id not in self._sending:
                async with self.sessions() as session:
                    scope_to_tenant(session, command.tenant_code)
                    device = await session.get(IngestDevice, (command.tenant_code, command.device_id))
                    profile = await self._profile(session, device) if device is not None else None
                if profile is not None:
                    await self._send(command, profile)
