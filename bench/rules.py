"""Rule engine: condition evaluations per second on one core, and change → alert latency.

    .venv/bin/python bench/rules.py [--rules 1000] [--changes 20000] [--alerts 300] [--postgres DSN]

**Evaluations.** ``--rules`` active rules on AirQualityObserved (a mix: comparisons, all/any of
two, between, a comparison held ``for`` 10 minutes, geo-fences around points of Zhengzhou), over
ten attributes, against a generated stream of ``--changes`` entity changes as the broker announces
them (two attributes updated, and the location moved in one change of four). Compiled: the
engine's own :func:`evaluate` (type and attribute index, compiled closures), timed with
``time.thread_time``. Baseline, same run: for the same (rule, change) pairs, the rule's JSON tree
walked per evaluation (:func:`interpret`: names expanded, geo-fences parsed each time).

**Latency.** A hub in this process (SQLite file, or PostgreSQL with ``--postgres``; in-process
bus) with the same rules plus one sentinel rule (``alarm > 0``) enabled. ``--alerts`` new entities
are written through the broker's API, 20 ms apart, each with the sentinel's attribute set; the
latency is from the start of the write request to the sentinel alert's notice on the bus (after
its transaction committed). Reported: p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import platform
import random
import statistics
import tempfile
import time
import uuid
from typing import Any

import asyncpg
import httpx

from cityhub import migrate
from cityhub.app import create_app
from cityhub.config import Settings
from cityhub.hub.rules import service
from cityhub.hub.rules.conditions import interpret
from cityhub.hub.rules.engine import RuleIndex, compile_rule, evaluate
from cityhub.kit.db import create_engine, scope_to_tenant
from cityhub.kit.time import isoformat, utcnow

VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
LOCATION = "https://uri.etsi.org/ngsi-ld/location"
TYPE = VOCAB + "AirQualityObserved"
ATTRS = ["pm25", "pm10", "no2", "o3", "so2", "co", "temperature", "humidity", "noise", "windSpeed"]


def expand(name: str) -> str:
    return LOCATION if name == "location" else VOCAB + name


def square(lon: float, lat: float, half: float) -> dict[str, Any]:
    ring = [
        [lon - half, lat - half],
        [lon + half, lat - half],
        [lon + half, lat + half],
        [lon - half, lat + half],
    ]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def make_rules(count: int, rng: random.Random) -> list[dict[str, Any]]:
    rules = []
    for i in range(count):
        a, b = ATTRS[i % len(ATTRS)], ATTRS[(i * 7 + 3) % len(ATTRS)]
        kind = i % 6
        if kind == 0:
            when: dict[str, Any] = {"attr": a, "op": ">", "value": rng.uniform(90, 1000)}
        elif kind == 1:
            when = {
                "all": [
                    {"attr": a, "op": ">=", "value": rng.uniform(50, 100)},
                    {"attr": b, "op": "<", "value": rng.uniform(0, 10)},
                ]
            }
        elif kind == 2:
            when = {
                "any": [
                    {"attr": a, "op": ">", "value": rng.uniform(95, 500)},
                    {"not": {"attr": b, "op": "between", "value": [-1000, 1000]}},
                ]
            }
        elif kind == 3:
            low = rng.uniform(100, 900)
            when = {"attr": a, "op": "between", "value": [low, low + 50]}
        elif kind == 4:
            when = {"attr": a, "op": ">", "value": rng.uniform(98, 1000)}
        else:
            centre = (113.6 + rng.uniform(-0.3, 0.3), 34.75 + rng.uniform(-0.2, 0.2))
            when = {"geofence": square(*centre, 0.002), "on": "inside"}
        definition = {"name": f"rule {i}", "entity_type": "AirQualityObserved", "when": when}
        if kind == 4:
            definition["for"] = "PT10M"
        rules.append(definition)
    return rules


def make_changes(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Changes as EntitiesChanged carries them: the entity after, the touched attributes before."""
    now = isoformat(utcnow())
    changes = []
    for n in range(count):
        entity_id = f"urn:ngsi-ld:AirQualityObserved:bench-{n % 500}"
        touched = rng.sample(ATTRS, 2)
        attrs: dict[str, list[dict[str, Any]]] = {
            expand(a): [{"type": "Property", "value": rng.uniform(0, 100), "observedAt": now}] for a in ATTRS
        }
        point = [113.6 + rng.uniform(-0.3, 0.3), 34.75 + rng.uniform(-0.2, 0.2)]
        attrs[LOCATION] = [{"type": "GeoProperty", "value": {"type": "Point", "coordinates": point}}]
        updated = [expand(a) for a in touched]
        if n % 4 == 0:
            updated.append(LOCATION)
        previous = {iri: attrs[iri] for iri in updated}
        entity = {"id": entity_id, "type": [TYPE], "attrs": attrs, "modifiedAt": now}
        changes.append(
            {
                "op": "update",
                "id": entity_id,
                "at": now,
                "types": [TYPE],
                "entity": entity,
                "created": [],
                "updated": updated,
                "deleted": [],
                "previous": previous,
            }
        )
    return changes


def evaluations(rules: list[dict[str, Any]], changes: list[dict[str, Any]]) -> dict[str, float]:
    compiled = [compile_rule(uuid.uuid4(), definition, expand) for definition in rules]
    index = RuleIndex(compiled)
    evaluate(index, changes[:200])  # warm-up
    start = time.thread_time()
    outcomes, failed = evaluate(index, changes)
    compiled_s = time.thread_time() - start
    assert not failed
    pairs = [(index.rules[o.rule.rule_id].definition["when"], o) for o in outcomes]
    by_change = {id(c["entity"]): c for c in changes}
    start = time.thread_time()
    agree = 0
    for when, outcome in pairs:
        change = by_change[id(outcome.entity)]
        truth = interpret(when, outcome.entity["attrs"], change["previous"], expand)
        agree += truth == outcome.truth
    baseline_s = time.thread_time() - start
    assert agree == len(pairs), "the compiled rules and the interpreter disagree"
    fired = sum(o.truth for o in outcomes)
    return {
        "evaluations": len(outcomes),
        "fired": fired,
        "compiled_s": compiled_s,
        "baseline_s": baseline_s,
        "compiled_rate": len(outcomes) / compiled_s,
        "baseline_rate": len(outcomes) / baseline_s,
    }


async def _database(postgres: str | None, folder: str) -> tuple[str, str | None]:
    if postgres is None:
        return f"sqlite+aiosqlite:///{folder}/bench.db", None
    name = f"cityhub_bench_rules_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(postgres)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    base = postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}", name


async def _drop(postgres: str, name: str) -> None:
    connection = await asyncpg.connect(postgres)
    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await connection.close()


async def latency(
    rules: list[dict[str, Any]], alerts: int, postgres: str | None, interval: float
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        url, dropped = await _database(postgres, folder)
        try:
            engine = create_engine(url)
            await migrate.upgrade(engine)
            await engine.dispose()
            settings = Settings(env="test", database_url=url, bus_url="memory://", rules_check_interval=0)
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                return await _measure(app, rules, alerts, interval)
        finally:
            if postgres is not None and dropped is not None:
                await _drop(postgres, dropped)


async def _measure(app: Any, rules: list[dict[str, Any]], alerts: int, interval: float) -> dict[str, float]:
    hub = app.state.hub
    tenant = app.state.default_tenant
    async with hub.sessions() as session, session.begin():
        scope_to_tenant(session, tenant)
        for definition in rules:
            await service.create_rule(session, definition, enabled=True)
        sentinel = await service.create_rule(
            session,
            {"entity_type": "AirQualityObserved", "when": {"attr": "alarm", "op": ">", "value": 0}},
            enabled=True,
        )
    started: dict[str, float] = {}
    arrived: dict[str, float] = {}
    entity_of: dict[str, str] = {}
    evaluated: dict[str, float] = {}
    answered: dict[str, float] = {}
    done = asyncio.Event()

    async def note(session: Any, alert: Any) -> None:
        if alert.rule_id == sentinel.rule_id:
            entity_of[str(alert.alert_id)] = alert.entity_id
            evaluated[alert.entity_id] = time.perf_counter()

    def listen(notice: dict[str, Any]) -> None:
        entity = entity_of.get(notice["alert"])
        if entity is not None and notice["notice"] == "raised" and entity not in arrived:
            arrived[entity] = time.perf_counter()
            if len(arrived) == alerts:
                done.set()

    service.on_alert_raised.append(note)
    hub.channels.listeners.append(listen)
    rng = random.Random(7)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:

        async def write(n: int) -> None:
            entity_id = f"urn:ngsi-ld:AirQualityObserved:latency-{n}"
            body: dict[str, Any] = {"id": entity_id, "type": "AirQualityObserved", "alarm": 1}
            for attr in ATTRS:  # ordinary values: only the sentinel fires
                body[attr] = rng.uniform(10, 50)
            started[entity_id] = time.perf_counter()
            response = await client.post(
                "/ngsi-ld/v1/entities", json=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 201, response.text
            answered[entity_id] = time.perf_counter()

        # warm-up: the rule index is compiled on the first change
        await write(-1)
        await asyncio.sleep(1.0)
        started.clear()
        arrived.clear()
        tasks = []
        for n in range(alerts):
            tasks.append(asyncio.create_task(write(n)))
            await asyncio.sleep(interval)
        await asyncio.gather(*tasks)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=120)
    service.on_alert_raised.remove(note)
    waits = sorted((arrived[e] - started[e]) * 1000 for e in arrived if e in started)
    raising = sorted((evaluated[e] - started[e]) * 1000 for e in arrived if e in started and e in evaluated)
    return {
        "alerts": len(waits),
        "p50_ms": statistics.median(waits),
        "p99_ms": waits[min(len(waits) - 1, int(len(waits) * 0.99))],
        "raising_p50_ms": statistics.median(raising),
        "write_p50_ms": statistics.median(
            sorted((answered[e] - started[e]) * 1000 for e in answered if e in started)
        ),
        "evaluations": hub.rules.evaluations,
        "raised": hub.rules.raised,
    }


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=20000)
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between writes")
    parser.add_argument("--postgres", default=None, help="admin DSN: measure latency on PostgreSQL")
    args = parser.parse_args()
    rng = random.Random(42)
    rules = make_rules(args.rules, rng)
    changes = make_changes(args.changes, rng)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, Python {platform.python_version()}")
    cpu = evaluations(rules, changes)
    print(
        f"{args.rules} rules, {args.changes} changes: {cpu['evaluations']:,} evaluations "
        f"({cpu['evaluations'] / args.changes:.0f} per change), {cpu['fired']:,} true"
    )
    print(
        f"compiled engine:      {cpu['compiled_rate']:>12,.0f} evaluations/s on one core "
        f"({cpu['compiled_s']:.3f} s)"
    )
    print(
        f"baseline (interpret): {cpu['baseline_rate']:>12,.0f} evaluations/s on one core "
        f"({cpu['baseline_s']:.3f} s)"
    )
    print(f"ratio: {cpu['compiled_rate'] / cpu['baseline_rate']:.1f}x")
    end = asyncio.run(latency(rules, args.alerts, args.postgres, args.interval))
    database = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"change → alert ({database}, {args.rules + 1} rules): {end['alerts']:.0f} alerts, "
        f"p50 {end['p50_ms']:.1f} ms, p99 {end['p99_ms']:.1f} ms "
        f"({end['raised']:.0f} alerts raised in all, {end['evaluations']:,.0f} evaluations); "
        f"the alert's row written after {end['raising_p50_ms']:.1f} ms (p50)"
    )
    print(
        "baseline: the write request alone (POST /ngsi-ld/v1/entities answered) "
        f"p50 {end['write_p50_ms']:.1f} ms; "
        f"ratio p50 {end['p50_ms'] / end['write_p50_ms']:.1f}x"
    )


if __name__ == "__main__":
    main()
