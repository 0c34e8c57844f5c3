"""Telling channels about alerts, after commit: :class:`AlertNotice` events are consumed here (a
shared consumer: one hub process sends each). The consumer takes the notice and returns at once;
the sending runs in the background, so a slow receiver never holds up the bus. Every channel of
the alert is tried up to ``attempts`` times with a doubling pause, and each try is logged as an
:class:`AlertDelivery`.

Nothing taken is lost: the notice's receipt is committed together with one *owed* delivery row per
channel (``attempt`` 0), and the row goes only when that channel's tries are logged. A process
stopped cleanly finishes what it was sending; the owed rows of one that died are claimed by
:meth:`Channels.resend_owed` (every hub process runs it periodically) once they are older than any
live sending can take, and sent again. A receiver may then hear a notice twice, never not at all.

Channels: ``in-app`` (the alerts list and its event stream: nothing to send, logged as delivered),
``webhook:<url>`` (HTTP POST of the alert as JSON), ``mqtt:<topic>`` (published on the configured
MQTT broker), ``email:<address>`` (through the configured SMTP server).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import httpx
import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cityhub.bus import Event
from cityhub.bus.inbox import first_delivery
from cityhub.hub.rules import service
from cityhub.hub.rules.models import OWED, Alert, AlertDelivery
from cityhub.kit.db import ALL_TENANTS, scope_to_tenant
from cityhub.kit.time import isoformat, utcnow

log = logging.getLogger(__name__)

CONSUMER = "rules-deliver"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    sender: str = "cityhub@localhost"
    starttls: bool = False
    timeout: float = 10.0


def _rows(marks: dict[str, uuid.UUID]) -> Any:
    """Deleting the owed rows of ``marks`` (channel → row id)."""
    return delete(AlertDelivery).where(AlertDelivery.delivery_id.in_(list(marks.values())))


def payload(alert: Alert, notice: str) -> dict[str, Any]:
    """What a webhook and MQTT receive."""
    return {
        "notice": notice,
        "id": str(alert.alert_id),
        "entity": service.alert_entity_id(alert),
        "tenant": alert.tenant_code,
        "rule": str(alert.rule_id) if alert.rule_id else None,
        "source": alert.entity_id,
        "state": alert.state,
        "severity": alert.severity,
        "message_zh": alert.message_zh,
        "message_en": alert.message_en,
        "attribute": alert.attribute,
        "value": alert.reading.get("value"),
        "count": alert.count,
        "raisedAt": isoformat(alert.raised_at),
        "resolvedAt": isoformat(alert.resolved_at) if alert.resolved_at else None,
    }


Listener = Callable[[dict[str, Any]], None]


class Channels:
    """Sends notices to channels; also tells in-process listeners (the event stream) of each."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        default_tenant: str,
        mqtt_url: str | None = None,
        smtp: SmtpSettings | None = None,
        attempts: int = 3,
        timeout: float = 10.0,
        first_pause: float = 0.5,
    ) -> None:
        self.sessions = sessions
        self.default_tenant = default_tenant
        self.mqtt_url = mqtt_url
        self.smtp = smtp
        self.attempts = attempts
        self.timeout = timeout
        self.first_pause = first_pause
        self.listeners: list[Listener] = []
        self.sent = 0
        self.failed = 0
        self._http: httpx.AsyncClient | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        if self._sending:
            await asyncio.wait(self._sending, timeout=self.timeout * self.attempts)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def on_local(self, event: Event) -> Awaitable[None]:
        """Every process: hand notices to local listeners (the server-sent event stream)."""
        assert isinstance(event, service.AlertNotice)
        for listener in list(self.listeners):
            listener({"tenant": event.tenant, "alert": str(event.alert_id), "notice": event.notice})
        return asyncio.sleep(0)

    @property
    def grace(self) -> timedelta:
        """Longer than a live process can spend on one notice: its tries, pauses and a margin."""
        pauses = self.first_pause * (2 ** max(self.attempts - 1, 0))
        return timedelta(seconds=self.attempts * self.timeout + pauses + 30.0)

    async def on_notice(self, event: Event) -> None:
        assert isinstance(event, service.AlertNotice)
        tenant = event.tenant or self.default_tenant
        async with self.sessions() as session, session.begin():
            scope_to_tenant(session, tenant)
            if not await first_delivery(session, CONSUMER, event):
                return
            alert = await service.get_alert(session, str(event.alert_id))
            body = payload(alert, event.notice)
            owed = [
                AlertDelivery(
                    alert_id=alert.alert_id, channel=channel, notice=event.notice, attempt=OWED, ok=False
                )
                for channel in dict.fromkeys(alert.channels)
            ]
            session.add_all(owed)
            await session.flush()
            marks = {row.channel: row.delivery_id for row in owed}
        self._start(tenant, alert, event.notice, body, marks)

    def _start(
        self, tenant: str, alert: Alert, notice: str, body: dict[str, Any], marks: dict[str, uuid.UUID]
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._send_all(tenant, alert, notice, body, marks))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def resend_owed(self, now: datetime | None = None) -> int:
        """Claim the notices owed longer than :attr:`grace` (their process died while sending) and
        send them again; returns how many channels were claimed. A claim moves the row's time
        forward with a compare-and-set, so two processes never take the same one."""
        moment = now or utcnow()
        async with self.sessions() as session, session.begin():
            stale = (
                await session.execute(
                    select(
                        AlertDelivery.delivery_id,
                        AlertDelivery.at,
                        AlertDelivery.tenant_code,
                        AlertDelivery.alert_id,
                        AlertDelivery.notice,
                        AlertDelivery.channel,
                    )
                    .where(AlertDelivery.attempt == OWED, AlertDelivery.at < moment - self.grace)
                    .order_by(AlertDelivery.at)
                    .limit(500)
                    .execution_options(**{ALL_TENANTS: True})
                )
            ).all()
            claimed: dict[tuple[str, uuid.UUID, str], dict[str, uuid.UUID]] = {}
            for delivery_id, at, tenant, alert_id, notice, channel in stale:
                taken = await session.execute(
                    update(AlertDelivery)
                    .where(AlertDelivery.delivery_id == delivery_id, AlertDelivery.at == at)
                    .values(at=moment)
                    .execution_options(**{ALL_TENANTS: True})
                )
                if getattr(taken, "rowcount", 0) == 1:
                    claimed.setdefault((tenant, alert_id, notice), {})[channel] = delivery_id
        for (tenant, alert_id, notice), marks in claimed.items():
            async with self.sessions() as session:
                scope_to_tenant(session, tenant)
                alert = await session.get(Alert, alert_id)
                body = payload(alert, notice) if alert is not None else None
            if alert is None or body is None:  # the alert is gone: nothing to tell
                async with self.sessions() as session, session.begin():
                    await session.execute(_rows(marks))
                continue
            log.info("alert %s: sending the %s notice owed to %s again", alert_id, notice, ", ".join(marks))
            self._start(tenant, alert, notice, body, marks)
        return sum(len(marks) for marks in claimed.values())

    async def _send_all(
        self, tenant: str, alert: Alert, notice: str, body: dict[str, Any], marks: dict[str, uuid.UUID]
    ) -> None:
        channels = list(marks)
        results = await asyncio.gather(*(self._send(channel, alert, body) for channel in channels))
        async with self.sessions() as session, session.begin():
            scope_to_tenant(session, tenant)
            await session.execute(_rows(marks))
            for channel, tries in zip(channels, results, strict=True):
                for attempt, error in enumerate(tries, start=1):
                    session.add(
                        AlertDelivery(
                            alert_id=alert.alert_id,
                            channel=channel,
                            notice=notice,
                            attempt=attempt,
                            ok=error is None,
                            error=error,
                        )
                    )

    async def _send(self, channel: str, alert: Alert, body: dict[str, Any]) -> list[str | None]:
        """Try a channel until it takes the notice; the error of each try (None: delivered)."""
        kind, _, target = channel.partition(":")
        tries: list[str | None] = []
        pause = self.first_pause
        for attempt in range(1, self.attempts + 1):
            try:
                await self._deliver(kind, target, alert, body)
            except Exception as error:
                tries.append(f"{type(error).__name__}: {error}"[:1000])
                if attempt < self.attempts:
                    await asyncio.sleep(pause)
                    pause *= 2
                continue
            tries.append(None)
            self.sent += 1
            return tries
        self.failed += 1
        log.warning(
            "alert %s: channel %s failed %d times: %s", alert.alert_id, channel, len(tries), tries[-1]
        )
        return tries

    async def _deliver(self, kind: str, target: str, alert: Alert, body: dict[str, Any]) -> None:
        if kind == "in-app":
            return
        if kind == "webhook":
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=self.timeout)
            response = await self._http.post(
                target, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
            )
            response.raise_for_status()
            return
        if kind == "mqtt":
            await self._publish(target, body)
            return
        if kind == "email":
            await asyncio.to_thread(self._mail, target, alert, body)
            return
        raise ValueError(f"unknown channel kind {kind!r}")

    async def _publish(self, topic: str, body: dict[str, Any]) -> None:
        if not self.mqtt_url:
            raise RuntimeError("no MQTT broker configured (CITYHUB_RULES_MQTT_URL or CITYHUB_MQTT_URL)")
        url = urlsplit(self.mqtt_url)
        secure = url.scheme == "mqtts"
        async with asyncio.timeout(self.timeout):
            async with aiomqtt.Client(
                url.hostname or "127.0.0.1",
                url.port or (8883 if secure else 1883),
                username=url.username,
                password=url.password,
                tls_context=ssl.create_default_context() if secure else None,
            ) as client:
                await client.publish(topic, orjson.dumps(body), qos=1)

    def _mail(self, address: str, alert: Alert, body: dict[str, Any]) -> None:
        smtp = self.smtp
        if smtp is None:
            raise RuntimeError("no SMTP server configured (CITYHUB_SMTP_HOST)")
        message = EmailMessage()
        message["From"] = smtp.sender
        message["To"] = address
        message["Subject"] = f"[{alert.severity}] {body['notice']}: {alert.message_en}"[:200]
        message.set_content(
            f"{alert.message_zh}\n{alert.message_en}\n\n"
            f"{orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()}\n"
        )
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            client.send_message(message)
