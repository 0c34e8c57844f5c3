"""Alert channels against real receivers: an HTTP endpoint, the Mosquitto broker on 127.0.0.1:1883
and an SMTP server started here (aiosmtpd); a dead webhook is retried and logged as failed."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email import message_from_bytes
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from fastapi import FastAPI

from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.hub.rules.models import OWED, AlertDelivery
from cityhub.kit.db import scope_to_tenant
from cityhub.kit.time import utcnow
from tests.bus.support import wait_until
from tests.hub.ingest.support import DeviceEndpoint
from tests.hub.rules.support import ALERTS, add_rule, air, put_entity, wait_alerts

STATION = "urn:ngsi-ld:AirQualityObserved:410102-009"
MQTT = "mqtt://127.0.0.1:1883"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
async def hub(settings: Settings, mailbox: tuple[Mailbox, int]) -> AsyncIterator[FastAPI]:
    settings = settings.model_copy(
        update={
            "rules_mqtt_url": MQTT,
            "smtp_host": "127.0.0.1",
            "smtp_port": mailbox[1],
            "smtp_sender": "alerts@zz.gov.cn",
            "rules_delivery_attempts": 2,
        }
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_webhook_mqtt_and_email_are_told(hub: FastAPI, mailbox: tuple[Mailbox, int]) -> None:
    topic = f"cityhub-test/alerts/{uuid.uuid4().hex}"
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with DeviceEndpoint(b"ok") as webhook, aiomqtt.Client("127.0.0.1", 1883) as listener:
        await listener.subscribe(topic, qos=1)

        async def listen() -> None:
            async for message in listener.messages:
                await received.put(orjson.loads(message.payload))  # type: ignore[arg-type]

        listening = asyncio.create_task(listen())
        try:
            transport = httpx.ASGITransport(app=hub)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
                channels = ["in-app", f"webhook:{webhook.url}", f"mqtt:{topic}", "email:duty@zz.gov.cn"]
                definition = {
                    "entity_type": "AirQualityObserved",
                    "when": {"attr": "pm25", "op": ">", "value": 75},
                    "severity": "critical",
                    "message_en": "PM2.5 at {entity}: {value}",
                    "channels": channels,
                }
                await add_rule(client, definition)
                await put_entity(client, air(STATION, 180))
                [alert] = await wait_alerts(client, "an alert", lambda items: len(items) == 1)

                posted = orjson.loads(await asyncio.wait_for(webhook.received.get(), 20))
                assert posted["notice"] == "raised"
                assert posted["id"] == alert["id"]
                assert posted["source"] == STATION
                assert posted["value"] == 180
                published = await asyncio.wait_for(received.get(), 20)
                assert published["severity"] == "critical"
                assert published["message_en"] == f"PM2.5 at {STATION}: 180"

                box = mailbox[0]
                await wait_until(lambda: box.messages, what="the e-mail")
                mail = box.messages[0]
                assert mail.rcpt_tos == ["duty@zz.gov.cn"]
                assert mail.mail_from == "alerts@zz.gov.cn"
                content = message_from_bytes(mail.original_content or b"")
                assert "critical" in content["Subject"]

                async def logged() -> list[dict[str, Any]] | None:
                    body = (await client.get(f"{ALERTS}/{alert['id']}/history")).json()
                    found: list[dict[str, Any]] = body["deliveries"]
                    return found if len(found) == 4 else None

                deliveries = await wait_until(logged, what="four deliveries logged")
                assert sorted(d["channel"] for d in deliveries) == sorted(channels)
                assert all(d["ok"] and d["attempt"] == 1 for d in deliveries)
        finally:
            listening.cancel()


async def test_a_dead_webhook_is_retried_and_logged(hub: FastAPI) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/gone"
    transport = httpx.ASGITransport(app=hub)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        definition = {
            "entity_type": "AirQualityObserved",
            "when": {"attr": "pm25", "op": ">", "value": 75},
            "channels": [f"webhook:{dead}", "in-app"],
        }
        await add_rule(client, definition)
        await put_entity(client, air(STATION, 90))
        [alert] = await wait_alerts(client, "an alert", lambda items: len(items) == 1)

        async def logged() -> list[dict[str, Any]] | None:
            body = (await client.get(f"{ALERTS}/{alert['id']}/history")).json()
            found: list[dict[str, Any]] = body["deliveries"]
            return found if len(found) == 3 else None

        deliveries = await wait_until(logged, what="two tries and the in-app delivery")
        failed = [d for d in deliveries if not d["ok"]]
        assert [d["attempt"] for d in sorted(failed, key=lambda d: d["attempt"])] == [1, 2]
        assert all(d["channel"] == f"webhook:{dead}" and d["error"] for d in failed)


async def test_a_notice_a_dead_process_owed_is_sent_again(hub: FastAPI) -> None:
    """A process that died while sending left its owed rows: another claims and sends them, once."""
    async with DeviceEndpoint(b"ok") as webhook:
        transport = httpx.ASGITransport(app=hub)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            definition = {
                "entity_type": "AirQualityObserved",
                "when": {"attr": "pm25", "op": ">", "value": 75},
                "channels": ["in-app"],
            }
            await add_rule(client, definition)
            await put_entity(client, air(STATION, 99))
            [alert] = await wait_alerts(client, "an alert", lambda items: len(items) == 1)

            async def in_app_sent() -> bool:
                body = (await client.get(f"{ALERTS}/{alert['id']}/history")).json()
                return not body["owed"] and any(d["channel"] == "in-app" for d in body["deliveries"])

            await wait_until(in_app_sent, what="the live alert's own in-app notice sent")
            channels = hub.state.hub.channels
            # what the dead process had committed with its receipt of the notice, and not sent
            died_at = utcnow() - channels.grace - timedelta(seconds=1)
            async with hub.state.hub.sessions() as session, session.begin():
                scope_to_tenant(session, "410100")
                session.add(
                    AlertDelivery(
                        alert_id=uuid.UUID(alert["id"]),
                        channel=f"webhook:{webhook.url}",
                        notice="raised",
                        attempt=OWED,
                        ok=False,
                        at=died_at,
                    )
                )
            shown = (await client.get(f"{ALERTS}/{alert['id']}/history")).json()
            assert [o["channel"] for o in shown["owed"]] == [f"webhook:{webhook.url}"]

            assert await channels.resend_owed(utcnow() - channels.grace) == 0  # not stale yet then
            assert await channels.resend_owed() == 1
            assert await channels.resend_owed() == 0  # claimed: no second sending
            posted = orjson.loads(await asyncio.wait_for(webhook.received.get(), 20))
            assert (posted["id"], posted["notice"]) == (alert["id"], "raised")

            async def settled() -> dict[str, Any] | None:
                body: dict[str, Any] = (await client.get(f"{ALERTS}/{alert['id']}/history")).json()
                return body if not body["owed"] and len(body["deliveries"]) == 2 else None

            history = await wait_until(settled, what="the owed notice delivered and logged")
            sent = [d for d in history["deliveries"] if d["channel"].startswith("webhook:")]
            assert [(d["ok"], d["attempt"]) for d in sent] == [(True, 1)]
            assert webhook.received.empty()
