"""The web console's speed: first load of the cockpit, and the map with 10,000 features.

    .venv/bin/python bench/console.py [--features 10000] [--loads 5] [--frames 30] [--against DIST] [--demo]

Starts ``cityhub serve`` on a free loopback port with a temporary SQLite database (access control
off, so the figures are the console's and the broker's, not the login's), seeds it through the
broker's API, and drives Debian's Chromium (``/usr/bin/chromium``) headless with Playwright:

- **first load**: a new browser context (cold cache) opens ``/cockpit``; the time is the console's
  ``cityhub:map-idle`` performance mark, i.e. from navigation start until every layer is loaded,
  drawn and the map idle. For an empty tenant (the baseline), a district with a small base map and
  30 stations, and a tenant with ``--features`` air-quality stations; with ``--demo`` also the demo
  city as ``cityhub demo seed`` makes it (tenant 410100: 12 districts, grid cells, the OSM road
  network through the traffic app, stations, parking, lights and devices), what a newcomer opens.
  The same loads are also timed until the KPI cards are shown as well (the later of the map's idle
  and the console's ``cityhub:kpis-shown`` mark; builds without that mark: the map's idle alone);
  KPI cards not shown ``KPI_WAIT`` seconds after the map count as never shown;
- **responsiveness**: on the loaded map, a pan by 120 px and a zoom step, each timed from the call
  to the map's next ``idle``; one station changed the way a live update applies it (``updateData``
  with one feature) until ``idle``; and ``setData`` of the whole layer again until ``idle``. The
  same on the empty tenant's map is the baseline.

Prints each figure (median of the repetitions), its baseline and the ratio.

``--against DIST`` also serves another build of the console (a folder holding its ``index.html``,
e.g. one built from an earlier commit) from a second hub with the same data, and times its first
loads in the same rounds, taking turns with this build's: the earlier console as a same-run
baseline, since on a shared machine figures from another hour do not compare. The page's
``cityhub:layers-fetched`` and ``cityhub:map-load`` marks, where the build sets them, are printed
too (medians), to show where a first load's time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM = "/usr/bin/chromium"
DIST = Path(__file__).resolve().parents[1] / "src" / "cityhub" / "console_dist"
EMPTY, SMALL, LARGE, DEMO = "410105", "410102", "410181", "410100"
#: Zhengzhou's built-up area
WEST, SOUTH, EAST, NORTH = 113.50, 34.65, 113.85, 34.90


@contextlib.contextmanager
def hub(workdir: Path, dist: Path = DIST) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYHUB_")} | {
        "CITYHUB_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'hub.db'}",
        "CITYHUB_CONSOLE_DIR": str(dist),
        "CITYHUB_LOG_LEVEL": "WARNING",
    }
    log = (workdir / "hub.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "cityhub", "serve", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the hub did not start: {(workdir / 'hub.log').read_text()}")
            time.sleep(0.2)
        for code in (SMALL, EMPTY, LARGE):
            subprocess.run(
                [sys.executable, "-m", "cityhub", "tenants", "add", code],
                cwd=workdir,
                env=env,
                check=True,
                capture_output=True,
            )
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def station(n: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:bench-{n:05d}",
        "type": "AirQualityObserved",
        "airQualityIndex": {"type": "Property", "value": rng.randint(10, 320)},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [rng.uniform(WEST, EAST), rng.uniform(SOUTH, NORTH)]},
        },
    }


def districts() -> list[dict[str, Any]]:
    step = (EAST - WEST) / 4
    out = []
    for i in range(4):
        west = WEST + i * step
        ring = [[west, SOUTH], [west + step, SOUTH], [west + step, NORTH], [west, NORTH], [west, SOUTH]]
        out.append(
            {
                "id": f"urn:ngsi-ld:AdministrativeArea:bench-{i}",
                "type": "AdministrativeArea",
                "location": {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": [ring]}},
            }
        )
    return out


def seed(url: str, features: int) -> None:
    rng = random.Random(7)
    with httpx.Client(base_url=url, timeout=120) as http:

        def create(tenant: str, entities: list[dict[str, Any]]) -> None:
            for start in range(0, len(entities), 1000):
                response = http.post(
                    "/ngsi-ld/v1/entityOperations/create",
                    json=entities[start : start + 1000],
                    headers={"NGSILD-Tenant": tenant},
                )
                response.raise_for_status()

        create(SMALL, districts() + [station(n, rng) for n in range(30)])
        create(LARGE, districts() + [station(n, rng) for n in range(features)])


#: seconds a first load waits for the cockpit's KPI cards after its map is ready
KPI_WAIT = 20
KPIS_SHOWN = (
    "() => !document.querySelector('[data-test=kpis]')"
    " || performance.getEntriesByName('cityhub:kpis-shown').length > 0"
)
MARKS = "() => Object.fromEntries(performance.getEntriesByType('mark').map((m) => [m.name, m.startTime]))"


def open_cockpit(
    browser: Browser, url: str, tenant: str, marks: dict[str, list[float]] | None = None
) -> tuple[Page, float]:
    """A cold first load; returns the page and navigation start → map idle in ms (and adds the
    page's other performance marks to ``marks``)."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.add_init_script(f"sessionStorage.setItem('cityhub.tenant', '{tenant}')")
    page = context.new_page()
    page.goto(f"{url}/cockpit")
    page.wait_for_selector("[data-test=map][data-ready=true]", timeout=180_000)
    # the KPI cards too, where the build says when they are shown (earlier builds do not); a
    # tenant whose KPIs take longer than KPI_WAIT is counted as never shown (infinite)
    try:
        page.wait_for_function(KPIS_SHOWN, timeout=KPI_WAIT * 1000)
        late = False
    except PlaywrightTimeout:
        late = True
    found = page.evaluate(MARKS)
    if late:
        found["cityhub:kpis-shown"] = math.inf
    if marks is not None:
        for name, at in found.items():
            marks.setdefault(name, []).append(float(at))
    return page, float(found["cityhub:map-idle"])


def shown_at(found: dict[str, list[float]]) -> list[float]:
    """Per load, the later of the map's idle and the KPI cards' being shown (the map's alone for
    builds that do not mark the KPIs)."""
    idle = found["cityhub:map-idle"]
    return [max(pair) for pair in zip(idle, found.get("cityhub:kpis-shown", idle), strict=True)]


TIMED = """async ([what, repeats]) => {
  const map = window.cityhubMap;
  const idle = () => new Promise((resolve) => map.once('idle', resolve));
  const times = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    const done = idle();
    if (what === 'pan') map.panBy([i % 2 ? -120 : 120, 0], {duration: 0});
    else if (what === 'zoom') map.zoomTo(map.getZoom() + (i % 2 ? -1 : 1), {duration: 0});
    else if (what === 'live') {
      // one station changes, as a live update applies it (a diff, not the whole layer again)
      const color = i % 2 ? '#d73027' : '#1a9850';
      map.getSource('air-quality').updateData({add: [{type: 'Feature', id: 'bench-live',
        geometry: {type: 'Point', coordinates: [113.7, 34.8]},
        properties: {id: 'bench-live', _color: color}}]});
    } else {
      const source = map.getSource('air-quality');
      source.setData(await source.getData());
    }
    map.triggerRepaint();
    await done;
    times.push(performance.now() - start);
  }
  return times;
}"""


def measure(page: Page, what: str, repeats: int) -> float:
    return float(statistics.median(page.evaluate(TIMED, [what, repeats])))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--features", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=5, help="cold first loads per tenant")
    parser.add_argument("--frames", type=int, default=30, help="timed pans, zooms and setData calls")
    parser.add_argument("--against", type=Path, help="another console build to time first loads against")
    parser.add_argument("--demo", action="store_true", help="also time the demo city's cockpit (410100)")
    args = parser.parse_args()
    if not (DIST / "index.html").exists():
        raise SystemExit("build the console first: cd console && npm ci && npm run build")
    if args.against is not None and not (args.against / "index.html").exists():
        raise SystemExit(f"{args.against} holds no console build (index.html)")
    with contextlib.ExitStack() as stack:
        urls = {"this": stack.enter_context(hub(Path(stack.enter_context(tempfile.TemporaryDirectory()))))}
        if args.against is not None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            urls["against"] = stack.enter_context(hub(folder, args.against))
        started = time.perf_counter()
        for url in urls.values():
            seed(url, args.features)
            if args.demo:
                subprocess.run(
                    [sys.executable, "-m", "cityhub", "demo", "seed", "--url", url, "--wait", "60"],
                    check=True,
                    capture_output=True,
                )
        print(f"seeded {args.features} stations in {time.perf_counter() - started:.1f} s")
        tenants = (EMPTY, SMALL, LARGE, DEMO) if args.demo else (EMPTY, SMALL, LARGE)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            loads: dict[tuple[str, str], list[float]] = {}
            marks: dict[tuple[str, str], dict[str, list[float]]] = {}
            for _ in range(args.loads):
                for tenant in tenants:  # taking turns, so drift of the machine hits all alike
                    for build, url in urls.items():
                        page, ms = open_cockpit(browser, url, tenant, marks.setdefault((build, tenant), {}))
                        loads.setdefault((build, tenant), []).append(ms)
                        page.context.close()
            empty_page, _ = open_cockpit(browser, urls["this"], EMPTY)
            large_page, _ = open_cockpit(browser, urls["this"], LARGE)
            rendered = large_page.evaluate(
                "() => window.cityhubMap.querySourceFeatures('air-quality').length"
            )
            rows = []
            base = statistics.median(loads[("this", EMPTY)])
            rows.append(("first load, empty tenant (baseline)", base, base))
            rows.append(
                ("first load, base map + 30 stations", statistics.median(loads[("this", SMALL)]), base)
            )
            rows.append(
                (f"first load, {args.features} stations", statistics.median(loads[("this", LARGE)]), base)
            )
            if args.demo:
                rows.append(("first load, the demo city", statistics.median(loads[("this", DEMO)]), base))
            # the same loads, the clock stopped when the KPI cards are shown as well as the map
            base_shown = statistics.median(shown_at(marks[("this", EMPTY)]))
            rows.append(("map and KPIs shown, empty tenant (baseline)", base_shown, base_shown))
            titles = {SMALL: "30 stations", LARGE: f"{args.features} stations", DEMO: "the demo city"}
            for tenant in tenants[1:]:
                rows.append(
                    (
                        f"map and KPIs shown, {titles[tenant]}",
                        statistics.median(shown_at(marks[("this", tenant)])),
                        base_shown,
                    )
                )
            if "against" in urls:
                for tenant, what in (
                    (EMPTY, "empty tenant"),
                    (SMALL, "30 stations"),
                    (LARGE, f"{args.features}"),
                    *([(DEMO, "the demo city")] if args.demo else []),
                ):
                    rows.append(
                        (
                            f"first load, {what}: this build / the other",
                            statistics.median(loads[("this", tenant)]),
                            statistics.median(loads[("against", tenant)]),
                        )
                    )
                    rows.append(
                        (
                            f"map and KPIs shown, {what}: this / the other",
                            statistics.median(shown_at(marks[("this", tenant)])),
                            statistics.median(shown_at(marks[("against", tenant)])),
                        )
                    )
            for what in ("pan", "zoom", "live", "setData"):
                baseline = measure(empty_page, what, args.frames)
                value = measure(large_page, what, args.frames)
                rows.append((f"{what} → idle, {args.features} stations", value, baseline))
            browser.close()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"features in the large map's source: {rendered}")
    print(f"{'figure':<52} {'value ms':>10} {'baseline ms':>12} {'ratio':>7}")
    for name, value, baseline in rows:
        if math.isinf(value):
            print(f"{name:<52} {f'> {KPI_WAIT} s':>10} {baseline:>12.1f} {'—':>7}")
        else:
            print(f"{name:<52} {value:>10.1f} {baseline:>12.1f} {value / baseline:>7.2f}")
    print("first-load marks (median ms from navigation start):")
    for (build, tenant), found in sorted(marks.items()):
        shown = ", ".join(
            f"{name.removeprefix('cityhub:')} {statistics.median(at):.0f}" for name, at in found.items()
        )
        print(f"  {build:<8} {tenant}: {shown}")


if __name__ == "__main__":
    main()
