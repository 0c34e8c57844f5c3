"""A real hub with access control on, seeded through its APIs, and Debian's Chromium driving the
built console (Playwright for Python; the browser is the system's, never a downloaded one)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from cityhub.kit.time import isoformat, utcnow
from tests.conftest import BACKEND
from tests.processes import HubProcess, hub_env, running_hub

CHROMIUM = Path("/usr/bin/chromium")
CONSOLE_DIST = Path(__file__).resolve().parents[2] / "src" / "cityhub" / "console_dist"
USERNAME = "chief"
PASSWORD = "Correct-Horse-Battery-42"
SECRET_KEY = "console-test-signing-key-" + "k" * 32
CITY = "410100"
DISTRICT = "410102"


def _skip_reason() -> str | None:
    if BACKEND != "sqlite":
        return "the browser tests run once, in the SQLite pass"
    if not CHROMIUM.exists():
        return "Debian's chromium is not installed (scripts/chromium.sh installs it)"
    if not (CONSOLE_DIST / "index.html").exists():
        return "the console is not built (cd console && npm ci && npm run build)"
    return None


#: Why the browser tests cannot run here, if they cannot (test modules skip on it).
SKIP_REASON = _skip_reason()


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **extra}


def square(lon: float, lat: float, size: float) -> dict[str, Any]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": [ring]}}


#: Times of aq-1's two pm25 readings, relative to the run: the details panel charts the last 24 hours.
READ_BEFORE = isoformat(utcnow() - timedelta(hours=2))
READ_LAST = isoformat(utcnow() - timedelta(hours=1))

#: The city's base map and a few stations; the district has one station of its own.
CITY_ENTITIES = [
    {"id": "urn:ngsi-ld:AdministrativeArea:410102", "type": "AdministrativeArea", "name": prop("中原区"),
     "location": square(113.55, 34.70, 0.10)},
    {"id": "urn:ngsi-ld:AdministrativeArea:410105", "type": "AdministrativeArea", "name": prop("金水区"),
     "location": square(113.65, 34.70, 0.10)},
    {"id": "urn:ngsi-ld:Road:zhongyuan", "type": "Road", "name": prop("中原路"),
     "location": {"type": "GeoProperty", "value": {"type": "LineString",
                                                    "coordinates": [[113.56, 34.75], [113.74, 34.75]]}}},
    {"id": "urn:ngsi-ld:RoadSegment:zhongyuan-1", "type": "RoadSegment", "congestionIndex": prop(7.2),
     "location": {"type": "GeoProperty", "value": {"type": "LineString",
                                                    "coordinates": [[113.60, 34.72], [113.70, 34.72]]}}},
    {"id": "urn:ngsi-ld:AirQualityObserved:aq-1", "type": "AirQualityObserved", "airQualityIndex": prop(42),
     "pm25": prop(21, unitCode="GQ", observedAt=READ_BEFORE), "location": point(113.58, 34.78)},
    {"id": "urn:ngsi-ld:AirQualityObserved:aq-2", "type": "AirQualityObserved", "airQualityIndex": prop(135),
     "pm25": prop(102, unitCode="GQ"), "location": point(113.66, 34.74)},
    {"id": "urn:ngsi-ld:AirQualityObserved:aq-3", "type": "AirQualityObserved", "airQualityIndex": prop(80),
     "pm25": prop(55, unitCode="GQ"), "location": point(113.72, 34.77)},
    {"id": "urn:ngsi-ld:OffStreetParking:p-1", "type": "OffStreetParking", "availableSpotNumber": prop(3),
     "totalSpotNumber": prop(200), "location": point(113.62, 34.76)},
    {"id": "urn:ngsi-ld:Device:d-1", "type": "Device", "deviceState": prop("online"),
     "location": point(113.60, 34.79)},
    {"id": "urn:ngsi-ld:Device:d-2", "type": "Device", "deviceState": prop("offline"),
     "location": point(113.70, 34.71)},
]  # fmt: skip
DISTRICT_ENTITIES = [
    {"id": "urn:ngsi-ld:AirQualityObserved:zy-1", "type": "AirQualityObserved", "airQualityIndex": prop(260),
     "location": point(113.61, 34.75)},
]  # fmt: skip


class Hub:
    """The running hub, an API client signed in as its administrator, and the TOTP secret."""

    def __init__(self, process: HubProcess, secret: str) -> None:
        self.url = process.url
        self.process = process
        self.totp = pyotp.TOTP(secret)
        code = self.totp.now()
        token = self._token(code)
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def _token(self, code: str) -> str:
        form = {"grant_type": "password", "username": USERNAME, "password": PASSWORD, "totp": code}
        response = httpx.post(f"{self.url}/api/v1/auth/token", data=form, timeout=30)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def next_code(self) -> str:
        """A code the hub has not seen: each is usable once, so the one of the next 30-s step."""
        return self.totp.at(time.time() + 30)

    def create(self, tenant: str, entities: list[dict[str, Any]]) -> None:
        response = self.http.post(
            "/ngsi-ld/v1/entityOperations/create", json=entities, headers={"NGSILD-Tenant": tenant}
        )
        assert response.status_code == 201, response.text

    def patch(self, tenant: str, entity_id: str, attrs: dict[str, Any]) -> None:
        response = self.http.patch(
            f"/ngsi-ld/v1/entities/{entity_id}/attrs", json=attrs, headers={"NGSILD-Tenant": tenant}
        )
        assert response.status_code == 204, response.text


def _cli(env: dict[str, str], workdir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cityhub", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    workdir = tmp_path_factory.mktemp("console-hub")
    settings = {
        "CITYHUB_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'hub.db'}",
        "CITYHUB_AUTH_MODE": "on",
        "CITYHUB_SECRET_KEY": SECRET_KEY,
        "CITYHUB_RATE_LIMIT_PER_MINUTE": "0",
        "CITYHUB_CONSOLE_DIR": str(CONSOLE_DIST),
    }
    with running_hub(workdir, "hub", **settings) as process:
        env = hub_env(**settings)
        output = _cli(env, workdir, "users", "create-admin", "--username", USERNAME, "--password", PASSWORD)
        found = re.search(r"TOTP secret: (\S+)", output)
        assert found, output
        for code in (DISTRICT, "410105"):
            _cli(env, workdir, "tenants", "add", code)
        hub = Hub(process, found.group(1))
        hub.create(CITY, CITY_ENTITIES)
        hub.create(DISTRICT, DISTRICT_ENTITIES)
        # a second reading, so the station has a history to chart
        hub.patch(
            CITY,
            "urn:ngsi-ld:AirQualityObserved:aq-1",
            {"pm25": prop(28, unitCode="GQ", observedAt=READ_LAST)},
        )
        yield hub
        hub.http.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests leave their screenshots."""
    return tmp_path_factory.mktemp("console-screenshots")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


class Session:
    """One signed-in browser page and every request it made."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))


@pytest.fixture(scope="module")
def console(hub: Hub, browser: Any, shots: Path) -> Iterator[Session]:
    """The console in a 1920×1080 window, signed in through its login page with the second factor."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    page = context.new_page()
    session = Session(page)
    page.goto(f"{hub.url}/")
    page.wait_for_url("**/login**")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("input[name=totp]")
    page.screenshot(path=shots / "login-totp.png")
    page.fill("input[name=totp]", hub.next_code())
    page.click("button[type=submit]")
    page.wait_for_url("**/cockpit")
    yield session
    context.close()
