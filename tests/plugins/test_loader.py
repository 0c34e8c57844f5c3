"""Discovery, ordering and the lifecycle of applications, with small real apps defined here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncEngine

from cityhub.apps.system import SystemApp
from cityhub.bus import Event
from cityhub.kit.db import create_engine, session_factory
from cityhub.plugins import (
    AppContext,
    AppRunner,
    AppSettings,
    Discovered,
    DuplicateRegistration,
    HubApp,
    Indicator,
    Manifest,
    Registry,
    RegistryClosed,
    discover,
)
from cityhub.plugins.loader import order

calls: list[str] = []


class ParkingSettings(AppSettings):
    lots_file: str = "lots.geojson"
    refresh_seconds: int = 60


class Traffic(HubApp):
    manifest = Manifest(
        name="traffic",
        version="1.0.0",
        title_zh="智慧交通",
        title_en="Smart traffic",
        indicators=(Indicator.SMART_TRAFFIC,),
    )

    async def setup(self, ctx: AppContext) -> None:
        calls.append("setup traffic")
        ctx.registry.add_router(APIRouter(), prefix="/api/v1/traffic")
        ctx.registry.add_entity_type("RoadSegment", title_zh="路段", title_en="Road segment")

    async def teardown(self) -> None:
        calls.append("teardown traffic")


class Parking(HubApp):
    manifest = Manifest(
        name="parking",
        version="0.3",
        title_zh="停车诱导",
        title_en="Parking guidance",
        requires=("traffic",),
        settings_model=ParkingSettings,
    )
    seen_settings: AppSettings | None = None

    async def setup(self, ctx: AppContext) -> None:
        calls.append("setup parking")
        Parking.seen_settings = ctx.settings

    async def teardown(self) -> None:
        calls.append("teardown parking")


class Broken(HubApp):
    manifest = Manifest(name="broken", version="1.0", title_zh="坏", title_en="Broken")

    async def setup(self, ctx: AppContext) -> None:
        ctx.registry.add_router(APIRouter(), prefix="/api/v1/broken")
        ctx.registry.add_entity_type("BrokenThing", title_zh="坏", title_en="Broken")
        raise RuntimeError("cannot reach its data")


class NeedsBroken(HubApp):
    manifest = Manifest(
        name="needs_broken", version="1.0", title_zh="依赖", title_en="Dependent", requires=("broken",)
    )


def found(*classes: type[HubApp], disabled: tuple[str, ...] = ()) -> list[Discovered]:
    return order(
        [Discovered(c.manifest.name, c, c.manifest, disabled=c.manifest.name in disabled) for c in classes]
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def runner(engine: AsyncEngine) -> AppRunner:
    return AppRunner(Registry(), session_factory(engine), platform=None)  # type: ignore[arg-type]


def test_system_app_is_found_through_its_entry_point() -> None:
    apps = {d.name: d for d in discover()}
    assert apps["system"].app_class is SystemApp
    assert apps["system"].error is None
    assert apps["system"].manifest.indicators == (Indicator.CITY_HUB_PLATFORM,)


def test_disabled_apps_are_marked() -> None:
    assert {d.name: d.disabled for d in discover(["system"])}["system"] is True


def test_dependencies_come_first() -> None:
    assert [d.name for d in found(Parking, Traffic)] == ["traffic", "parking"]


def test_missing_or_disabled_requirement_is_an_error() -> None:
    [parking] = found(Parking)
    assert parking.error == "requires 'traffic', which is not installed or not valid"
    items = {d.name: d for d in found(Parking, Traffic, disabled=("traffic",))}
    assert items["parking"].error == "requires 'traffic', which is disabled"


def test_cycles_are_reported() -> None:
    class A(HubApp):
        manifest = Manifest(name="app_a", version="1.0", title_zh="甲", title_en="A", requires=("app_b",))

    class B(HubApp):
        manifest = Manifest(name="app_b", version="1.0", title_zh="乙", title_en="B", requires=("app_a",))

    errors = {d.name: d.error for d in found(A, B)}
    assert "dependency cycle" in (errors["app_a"] or "") + (errors["app_b"] or "")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "Traffic"}, "lower-case"),
        ({"name": "t"}, "lower-case"),
        ({"version": "latest"}, "1.2.3"),
        ({"indicators": ("smart_weather",)}, "indicators"),
    ],
)
def test_manifest_validation(fields: dict, message: str) -> None:
    base = {"name": "traffic", "version": "1.0", "title_zh": "交通", "title_en": "Traffic"}
    with pytest.raises(ValueError, match=message):
        Manifest(**(base | fields))


async def test_lifecycle_order_settings_and_closed_registry(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls.clear()
    monkeypatch.setenv("CITYHUB_APP_PARKING_REFRESH_SECONDS", "15")
    run = runner(engine)
    await run.setup(found(Parking, Traffic))
    assert calls == ["setup traffic", "setup parking"]
    assert {s.manifest.name: s.state for s in run.statuses} == {"traffic": "running", "parking": "running"}
    assert isinstance(Parking.seen_settings, ParkingSettings)
    assert Parking.seen_settings.refresh_seconds == 15
    assert run.registry.contributions("traffic")["entity_types"] == ["RoadSegment"]
    with pytest.raises(RegistryClosed):
        run.registry.for_app("traffic").add_entity_type("Late", title_zh="迟", title_en="Late")
    await run.teardown()
    assert calls[-2:] == ["teardown parking", "teardown traffic"]


async def test_failed_app_does_not_stop_the_others(engine: AsyncEngine) -> None:
    run = runner(engine)
    await run.setup(found(Broken, NeedsBroken, Traffic))
    states = {s.manifest.name: (s.state, s.error) for s in run.statuses}
    assert states["traffic"] == ("running", None)
    assert states["broken"][0] == "failed"
    assert "cannot reach its data" in states["broken"][1]
    assert states["needs_broken"] == ("invalid", "requires 'broken', which failed")
    # what it registered before failing is gone: no half-set-up app serves requests
    assert [entry.prefix for entry in run.registry.routers] == ["/api/v1/traffic"]
    assert "BrokenThing" not in run.registry.entity_types
    await run.teardown()


def test_registry_refuses_duplicates() -> None:
    class Reading(Event):
        event_type = "test.plugins.reading"

    registry = Registry()
    one, two = registry.for_app("one"), registry.for_app("two")
    one.add_router(APIRouter(), prefix="/api/v1/one")
    with pytest.raises(DuplicateRegistration):
        two.add_router(APIRouter(), prefix="/api/v1/one")
    with pytest.raises(ValueError, match="prefix"):
        two.add_router(APIRouter(), prefix="api/v1/two/")
    aqi_high = {"entity_type": "AirQualityObserved", "when": {"attr": "aqi", "op": ">", "value": 200}}
    one.add_rule_template("aqi_high", title_zh="高", title_en="High", definition=aqi_high)
    with pytest.raises(DuplicateRegistration):
        two.add_rule_template("aqi_high", title_zh="高", title_en="High", definition={})
    one.add_case_type(
        "urban", title_zh="城管", title_en="Urban", initial="collected", transitions={"collected": ["filed"]}
    )
    with pytest.raises(ValueError, match="initial state"):
        two.add_case_type("bad", title_zh="坏", title_en="Bad", initial="nowhere", transitions={"a": ["b"]})

    async def handle(event: Event) -> None:
        return None

    one.subscribe("readings", [Reading], handle)
    with pytest.raises(DuplicateRegistration):
        one.subscribe("readings", [Reading], handle)
    assert registry.contributions("one")["consumers"] == ["one-readings"]


def test_app_settings_come_from_dotenv_too(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("CITYHUB_APP_PARKING_REFRESH_SECONDS=20\nPGPASSWORD=x\n")
    settings = ParkingSettings(_env_prefix=Parking.manifest.settings_prefix())
    assert (settings.refresh_seconds, settings.lots_file) == (20, "lots.geojson")
