"""``cityhub ingest``: dead letters and their counts, and the CSV import of historical observations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from typer.testing import CliRunner

from cityhub.app import create_app
from cityhub.cli import app as cli
from cityhub.config import Settings
from tests.hub.ingest.support import BASE, provision

runner = CliRunner()
AIR = "urn:ngsi-ld:AirQualityObserved:air-001"


async def _with_hub(settings: Settings, body) -> object:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            return await body(client)


def test_csv_import_and_dead_letters(settings: Settings, tmp_path: Path) -> None:
    async def setup(client: httpx.AsyncClient) -> None:
        await provision(client, devices=[{"device_id": "air-001"}, {"device_id": "air-002"}])

    asyncio.run(_with_hub(settings, setup))
    data = tmp_path / "history.csv"
    data.write_text(
        "device_id,TimeInstant,t,h\n"
        "air-001,2026-11-01T00:00:00Z,10.5,0.5\n"
        "air-001,2026-11-01T01:00:00Z,11.5,0.55\n"
        "air-002,2026-11-01T00:00:00Z,9,0.6\n"
        "air-002,2026-11-01T01:00:00Z,400,0.6\n"  # out of range
        "ghost,2026-11-01T00:00:00Z,9,0.6\n"
    )
    env = {"CITYHUB_DATABASE_URL": settings.database_url}
    result = runner.invoke(cli, ["ingest", "csv", str(data), "--apikey", "k-air"], env=env)
    assert result.exit_code == 1, result.output
    assert "3 row(s) stored, 2 refused" in result.stdout

    async def history(client: httpx.AsyncClient) -> list[tuple[float, str]]:
        response = await client.get(
            f"{BASE}/temporal/entities/{AIR}",
            params={"attrs": "temperature"},
            headers={"NGSILD-Tenant": "smartcity"},
        )
        return [(i["value"], i["observedAt"]) for i in response.json()["temperature"]]

    assert asyncio.run(_with_hub(settings, history)) == [
        (10.5, "2026-11-01T00:00:00Z"),
        (11.5, "2026-11-01T01:00:00Z"),
    ]
    letters = runner.invoke(cli, ["ingest", "dead-letters", "--tenant", "smartcity"], env=env)
    assert letters.exit_code == 0, letters.output
    assert "validation-failed" in letters.stdout
    assert "unknown-device" in letters.stdout
    assert "Dead letters (2 of 2)" in letters.stdout
    only = runner.invoke(
        cli, ["ingest", "dead-letters", "--tenant", "smartcity", "--reason", "unknown-device"], env=env
    )
    assert "Dead letters (1 of 1)" in only.stdout
    counts = runner.invoke(cli, ["ingest", "counts", "--tenant", "smartcity"], env=env)
    assert counts.exit_code == 0, counts.output
    assert "air-002" in counts.stdout
    assert "ghost" in counts.stdout
    bad = runner.invoke(cli, ["ingest", "dead-letters", "--reason", "nonsense"], env=env)
    assert bad.exit_code == 2
