"""``cityhub demo``: seed the demo city into a running hub and stream its sensors."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import httpx
import orjson
import typer
from rich.console import Console
from rich.markup import escape

from cityhub.sim.city import City, build_city, geojson, osm_xml
from cityhub.sim.runner import HttpSender, MqttSender, Sender, Simulator, Tally
from cityhub.sim.seed import SeedError, authenticate, seed, seed_catalog
from cityhub.sim.streams import CST, Conditions
from cityhub.sim.sumo import DEFAULT_ORIGIN, Period, SumoMissing, SumoReport, SumoRun

demo_app = typer.Typer(
    help="The demo city (Zhengzhou): seed it into a running hub and stream its sensors. "
    "Without a subcommand: seed, then run.",
    invoke_without_command=True,
    no_args_is_help=False,
)
console = Console(stderr=True)

Url = Annotated[str, typer.Option(help="The hub's base URL.")]
Seed = Annotated[
    int, typer.Option("--seed", help="Seed: the same seed gives the same city and the same streams.")
]
Speed = Annotated[
    float, typer.Option(min=0, help="Simulated seconds per real second (60: an hour a minute; 0: flat out).")
]
Mqtt = Annotated[
    str | None, typer.Option(help="Send through this MQTT broker (mqtt://host:1883) instead of HTTP.")
]
Duration = Annotated[
    str | None, typer.Option(help="Simulated time to run (90s, 30m, 6h, 2d); default: until stopped.")
]
Start = Annotated[
    str | None, typer.Option(help="Simulated start, ISO 8601 (default: now).", show_default=False)
]
Token = Annotated[str | None, typer.Option(help="Bearer token for provisioning (CITYHUB_AUTH_MODE=on).")]
ClientId = Annotated[str | None, typer.Option(help="OAuth2 client id, to get a token (auth on).")]
ClientSecret = Annotated[str | None, typer.Option(help="OAuth2 client secret.")]
Wait = Annotated[float, typer.Option(min=0, help="Seconds to wait for the hub's /readyz.")]
Faults = Annotated[float, typer.Option(min=0, max=1, help="Share of readings sent as an impossible value.")]
Roads = Annotated[
    bool,
    typer.Option(
        "--roads/--no-roads", help="Write RoadSegment entities (off: a traffic app imports the OSM file)."
    ),
]
Silences = Annotated[float, typer.Option(min=0, max=1, help="Daily chance a sensor falls silent for hours.")]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_duration(text: str | None) -> timedelta | None:
    if text is None:
        return None
    match = _DURATION.match(text.strip())
    if match is None:
        raise typer.BadParameter(f"{text!r}: a duration reads like 90s, 30m, 6h or 2d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})


def parse_start(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time") from None
    return moment.replace(tzinfo=moment.tzinfo or UTC)


async def _ready(client: httpx.AsyncClient, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            console.print(f"[bold red]the hub at {client.base_url} is not ready[/] (waited {wait:.0f}s)")
            raise typer.Exit(3)
        await asyncio.sleep(0.5)


async def _seed(client: httpx.AsyncClient, city: City, roads: bool, speed: float) -> None:
    try:
        report = await seed(client, city, roads=roads, speed=speed)
    except SeedError as error:
        console.print(f"[bold red]seeding failed:[/] {error}")
        raise typer.Exit(1) from None
    console.print(
        f"demo city {city.name} ({city.name_en}): {report.tenants} tenants, {report.groups} service groups, "
        f"{report.devices} devices, {report.entities} entities created"
        + (f", {report.segments} road segments imported by the traffic app" if report.segments else "")
        + (f", {report.grid_cells} grid cells for the case workflow" if report.grid_cells else "")
        + (f", {report.departments} departments" if report.departments else "")
        + (f", {report.categories} case categories" if report.categories else "")
        + ("" if report.changed() else " (all there already)")
    )
    if report.not_allowed:
        console.print(
            f"[yellow]not seeded:[/] {' and '.join(report.not_allowed)} (these credentials may not create "
            "them; an administrator can, and until then demo cases wait in the triage queue)"
        )
    try:
        datasets = await seed_catalog(client, city)
    except SeedError as error:
        console.print(f"[bold red]seeding the data catalog failed:[/] {error}")
        raise typer.Exit(1) from None
    if datasets:
        console.print(f"data catalog: {datasets} datasets registered")


def _progress(every: float) -> Callable[[datetime, Tally], None]:
    last = [time.monotonic()]

    def show(at: datetime, tally: Tally) -> None:
        if time.monotonic() - last[0] < every:
            return
        last[0] = time.monotonic()
        console.print(
            f"{at.astimezone(CST):%Y-%m-%d %H:%M} CST · {tally.messages} messages, "
            f"{tally.readings} readings, "
            f"{tally.faults} faults, {tally.refused} refused, {tally.failed} failed, "
            f"{tally.silences} silences"
        )

    return show


async def _run(
    client: httpx.AsyncClient,
    city: City,
    *,
    seed_value: int,
    speed: float,
    mqtt: str | None,
    duration: timedelta | None,
    start: datetime | None,
    conditions: Conditions,
) -> Tally:
    async def go(sender: Sender) -> Tally:
        simulator = Simulator(city, sender, seed=seed_value, start=start, speed=speed, conditions=conditions)
        console.print(
            f"streaming {len(simulator.sensors)} sensors "
            f"from {simulator.start.astimezone(CST):%Y-%m-%d %H:%M} "
            f"CST at {speed:g}× through {'MQTT ' + mqtt if mqtt else 'HTTP ' + str(client.base_url)}"
            " (Ctrl-C to stop)"
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # SIGTERM (./dev up stopping it) ends the run between two sends, so no request is cut short
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        return await simulator.run(duration, stop=stop, on_flush=_progress(10.0))

    if mqtt:
        try:
            async with MqttSender(mqtt) as sender:
                return await go(sender)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
    return await go(HttpSender(client))


def _client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=30.0)


@demo_app.callback()
def demo(
    ctx: typer.Context,
    url: Url = "http://127.0.0.1:8000",
    seed_value: Seed = 42,
    speed: Speed = 60.0,
    mqtt: Mqtt = None,
    duration: Duration = None,
    start: Start = None,
    token: Token = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    wait: Wait = 60.0,
    faults: Faults = 0.002,
    silences: Silences = 0.04,
    roads: Roads = True,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    span, begin = parse_duration(duration), parse_start(start)

    async def main() -> Tally:
        city = build_city(seed_value)
        async with _client(url) as client:
            await _ready(client, wait)
            await authenticate(client, token=token, client_id=client_id, client_secret=client_secret)
            await _seed(client, city, roads, speed)
            return await _run(
                client,
                city,
                seed_value=seed_value,
                speed=speed,
                mqtt=mqtt,
                duration=span,
                start=begin,
                conditions=Conditions(faults, silences),
            )

    _finish(asyncio.run(main()))


@demo_app.command("seed")
def demo_seed(
    url: Url = "http://127.0.0.1:8000",
    seed_value: Seed = 42,
    speed: Speed = 60.0,
    token: Token = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    wait: Wait = 60.0,
    roads: Roads = True,
) -> None:
    """Create the city's tenants, devices and static entities (idempotent)."""

    async def main() -> None:
        async with _client(url) as client:
            await _ready(client, wait)
            await authenticate(client, token=token, client_id=client_id, client_secret=client_secret)
            await _seed(client, build_city(seed_value), roads, speed)

    asyncio.run(main())


@demo_app.command("run")
def demo_run(
    url: Url = "http://127.0.0.1:8000",
    seed_value: Seed = 42,
    speed: Speed = 60.0,
    mqtt: Mqtt = None,
    duration: Duration = None,
    start: Start = None,
    wait: Wait = 60.0,
    faults: Faults = 0.002,
    silences: Silences = 0.04,
) -> None:
    """Stream the sensors of a seeded city (devices authenticate with their API keys)."""
    span, begin = parse_duration(duration), parse_start(start)

    async def main() -> Tally:
        async with _client(url) as client:
            await _ready(client, wait)
            return await _run(
                client,
                build_city(seed_value),
                seed_value=seed_value,
                speed=speed,
                mqtt=mqtt,
                duration=span,
                start=begin,
                conditions=Conditions(faults, silences),
            )

    _finish(asyncio.run(main()))


@demo_app.command("sumo")
def demo_sumo(
    url: Url = "http://127.0.0.1:8000",
    seed_value: Seed = 42,
    speed: Annotated[
        float, typer.Option(min=0, help="Simulated seconds per real second (0: flat out).")
    ] = 10.0,
    duration: Annotated[str, typer.Option(help="Simulated time to run (30m, 2h).")] = "30m",
    net: Annotated[
        Path | None,
        typer.Option(help="A SUMO .net.xml to drive (default: a 4 × 4 grid made with netgenerate)."),
    ] = None,
    origin: Annotated[
        str, typer.Option(help="lon,lat of x = y = 0 of a network without projection.")
    ] = f"{DEFAULT_ORIGIN[0]},{DEFAULT_ORIGIN[1]}",
    tenant: Annotated[str, typer.Option(help="The tenant the network and traffic go to.")] = "410100",
    district: Annotated[
        str | None, typer.Option(help="District code written on the imported segments (its own TTI).")
    ] = "410122",
    vehicles: Annotated[int, typer.Option(min=1, help="Trips, departing evenly over the run.")] = 1200,
    period: Annotated[
        float, typer.Option(min=1, help="Simulated seconds between two feeds of edge speeds.")
    ] = 300.0,
    reroute: Annotated[
        float, typer.Option(min=0, max=1, help="Share of vehicles that drive the hub's route.")
    ] = 0.2,
    workdir: Annotated[
        Path | None, typer.Option(help="Where SUMO's files go (default: a temporary directory).")
    ] = None,
    token: Token = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    wait: Wait = 60.0,
) -> None:
    """Drive the traffic app with SUMO (needs the sumo extra): import the network, feed SUMO's edge
    speeds as floating-car data, and have some vehicles drive the hub's routes."""
    span = parse_duration(duration)
    assert span is not None
    try:
        lon, lat = (float(v) for v in origin.split(","))
    except ValueError:
        raise typer.BadParameter(f"{origin!r}: the origin reads lon,lat") from None

    async def main(directory: Path) -> SumoReport:
        run = SumoRun(
            directory,
            tenant=tenant,
            district=district,
            net=net,
            origin=(lon, lat),
            seed=seed_value,
            vehicles=vehicles,
            duration=span.total_seconds(),
            period=period,
            reroute=reroute,
            speed=speed,
        )
        try:  # SUMO first: no need to wait for a hub when it is missing
            run.prepare()
        except (SumoMissing, subprocess.CalledProcessError) as error:
            console.print(f"[bold red]SUMO:[/] {escape(str(error))}")
            raise typer.Exit(1) from None
        async with _client(url) as client:
            await _ready(client, wait)
            await authenticate(client, token=token, client_id=client_id, client_secret=client_secret)
            try:
                imported = await run.setup(client)
            except (SumoMissing, SeedError, subprocess.CalledProcessError) as error:
                console.print(f"[bold red]SUMO setup failed:[/] {escape(str(error))}")
                raise typer.Exit(1) from None
            console.print(
                f"SUMO network {run.net_path}: {imported} segments imported into tenant {tenant}; "
                f"{vehicles} vehicles over {span} at {speed:g}×, edge speeds every {period:g} s"
            )
            stop = asyncio.Event()
            with contextlib.suppress(NotImplementedError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

            async def show(done: Period) -> None:
                console.print(
                    f"{done.end:6.0f} s · {len(done.speeds_kmh)} edges with traffic · "
                    f"{run.report.departed} departed, {run.report.arrived} arrived, "
                    f"{run.report.rerouted} on the hub's route"
                )

            try:
                return await run.run(client, on_period=show, stop=stop)
            except SumoMissing as error:
                console.print(f"[bold red]SUMO:[/] {escape(str(error))}")
                raise typer.Exit(1) from None

    if workdir is not None:
        report = asyncio.run(main(workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="cityhub-sumo-") as scratch:
            report = asyncio.run(main(Path(scratch)))
    console.print(
        f"done: {report.periods} periods, {report.tally.messages} edge readings "
        f"({report.tally.refused} refused, {report.tally.failed} failed), {report.rerouted} vehicles "
        f"on the hub's route, {report.route_refused} routes not driven"
    )
    if report.tally.failed:
        raise typer.Exit(1)


@demo_app.command("export")
def demo_export(
    directory: Annotated[Path, typer.Argument(help="Where to write the files.")],
    seed_value: Seed = 42,
) -> None:
    """Write the road network (OSM XML) and districts, grid cells and roads (GeoJSON)."""
    city = build_city(seed_value)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "zhengzhou.osm").write_text(osm_xml(city), encoding="utf-8")
    for name, collection in geojson(city).items():
        (directory / f"{name}.geojson").write_bytes(orjson.dumps(collection))
    console.print(f"wrote zhengzhou.osm, districts.geojson, grid.geojson, roads.geojson to {directory}")


def _finish(tally: Tally) -> None:
    console.print(
        f"done: {tally.messages} messages, {tally.readings} readings, {tally.faults} faults "
        f"({tally.refused} refused: {tally.refusals or 'none'}), {tally.failed} failed"
    )
    if tally.failed:
        raise typer.Exit(1)
