"""Device ingestion over MQTT into the hub on PostgreSQL, against Mosquitto's own throughput.

    .venv/bin/python bench/ingest.py [--devices 10000] [--messages 6] [--clients 8]
                                     [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
                                     [--with-apps] [--profile hub.prof] [--receive-maximum 1000]

The script starts a Mosquitto of its own (free port, no persistence, in-flight window 1000) and a
hub as a real process (``cityhub serve``) on a new PostgreSQL database, provisions ``--devices``
UltraLight devices (AirQualityObserved, 3 measures: t, h, p) through ``/iot/devices``, then:
(the apps that act on every entity change are off unless ``--with-apps``: see
:data:`CHANGE_CONSUMING_APPS`)

- baseline: ``devices × messages`` messages of the same size published with QoS 1 by the same
  publishers on topics the hub does not read, to one subscriber (QoS 1, acknowledging each):
  Mosquitto's throughput, first publish to last message received. Publishers and subscriber
  write MQTT packets on asyncio streams themselves (no MQTT library), so that neither run is
  bounded by the benchmark's own client code;
- the hub: the same number of messages on ``/<apikey>/<device_id>/attrs``, round-robin over the
  devices. Each carries its publish time as its UltraLight timestamp, so each history instance
  says when it was published (``observed_at``) and when the hub wrote it (``recorded_at``, taken
  just before the batch's commit). Sustained messages/s = messages stored / (last write − first
  publish); latency = recorded_at − observed_at per message (publish → entity updated); and the
  hub process's CPU time over that phase, per message stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from broker import _pg_database, _pg_drop

from cityhub import migrate
from cityhub.hub.ingest.wire import encode_string, varint
from cityhub.kit.db import create_engine

TEMPERATURE = "https://uri.etsi.org/ngsi-ld/default-context/temperature"
APIKEY = "bench-air"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_mosquitto(workdir: Path, inflight: int = 1000) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"max_inflight_messages {inflight}\nmax_queued_messages 10000000\n"
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    process = subprocess.Popen(
        ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(0.5)
    return process, port


#: Apps that consume every entity change: the environment app scores each AirQualityObserved
#: change (an hourly AQI from the station's history, written back to the entity), which is the
#: app's work, not ingestion's. Off unless ``--with-apps``.
CHANGE_CONSUMING_APPS = "environment,traffic"


def start_hub(
    workdir: Path,
    database_url: str,
    mqtt_port: int,
    profile: str | None = None,
    apps: bool = False,
    receive_maximum: int = 1000,
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("CITYHUB_")}
    env |= {
        "CITYHUB_DATABASE_URL": database_url,
        "CITYHUB_MQTT_URL": f"mqtt://127.0.0.1:{mqtt_port}",
        "CITYHUB_MQTT_CLIENT_ID": f"cityhub-bench-{uuid.uuid4().hex[:6]}",
        "CITYHUB_MQTT_RECEIVE_MAXIMUM": str(receive_maximum),
        "CITYHUB_INGEST_DEVICE_RATE": "1000",
        "CITYHUB_INGEST_DEVICE_BURST": "1000",
        "CITYHUB_LOG_LEVEL": "WARNING",
        "CITYHUB_ENV": "test",
    }
    if not apps:
        env["CITYHUB_APPS_DISABLED"] = CHANGE_CONSUMING_APPS
    log = (workdir / "hub.log").open("wb")
    profiler = ["-m", "cProfile", "-o", str(Path(profile).resolve())] if profile else []
    process = subprocess.Popen(
        [sys.executable, *profiler, "-m", "cityhub", "serve", "--port", str(port), "--no-migrate"],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"hub not ready: {(workdir / 'hub.log').read_text()[-2000:]}")


def device_ids(count: int) -> list[str]:
    return [f"air-{number:05d}" for number in range(count)]


async def provision(url: str, devices: list[str]) -> None:
    headers = {"fiware-service": "bench", "fiware-servicepath": "/"}
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        group = {
            "apikey": APIKEY,
            "entity_type": "AirQualityObserved",
            "protocol": "IoTA-UL",
            "attributes": [
                {"object_id": "t", "name": "temperature", "type": "Number", "unitCode": "CEL"},
                {"object_id": "h", "name": "relativeHumidity", "type": "Number"},
                {"object_id": "p", "name": "pm25", "type": "Number", "unitCode": "GQ"},
            ],
        }
        response = await client.post("/iot/services", json={"services": [group]}, headers=headers)
        response.raise_for_status()
        for start in range(0, len(devices), 1000):
            chunk = [{"device_id": device} for device in devices[start : start + 1000]]
            response = await client.post("/iot/devices", json={"devices": chunk}, headers=headers)
            response.raise_for_status()


def payload(number: int) -> bytes:
    stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return f"{stamp}|t|{15 + number % 20}.5|h|0.{40 + number % 50}|p|{20 + number % 60}".encode()


# -- MQTT 3.1.1 over asyncio streams: the publishers and the baseline's subscriber --------------------
#
# aiomqtt (paho underneath) costs about a millisecond of CPU per QoS 1 message on this kind of
# machine: as publishers sharing the hub's cores they took CPU from it, and bounded the baseline.
# These write packets straight onto the socket, so both runs measure the broker and the hub.


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first = (await reader.readexactly(1))[0]
    size, shift = 0, 0
    while True:
        digit = (await reader.readexactly(1))[0]
        size += (digit & 0x7F) << shift
        shift += 7
        if not digit & 0x80:
            break
    return first, await reader.readexactly(size) if size else b""


async def _connect(port: int, client_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    # protocol "MQTT" level 4, clean session, keep-alive 600 s
    header = encode_string("MQTT") + bytes([4, 0x02]) + (600).to_bytes(2, "big")
    writer.write(_packet(0x10, header + encode_string(client_id)))
    first, body = await _read_packet(reader)
    if first != 0x20 or body[1] != 0:
        raise SystemExit(f"MQTT connection refused: {body!r}")
    return reader, writer


async def _disconnect(writer: asyncio.StreamWriter) -> None:
    writer.write(b"\xe0\x00")
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def publish_all(port: int, topics: list[str], clients: int, window: int = 500) -> float:
    """Publish one message per topic with QoS 1 from ``clients`` connections, each keeping up to
    ``window`` messages unacknowledged; returns when every PUBACK is in, with the start time."""
    started = time.perf_counter()

    async def one_client(index: int, share: list[tuple[int, str]]) -> None:
        reader, writer = await _connect(port, f"bench-pub-{index}-{uuid.uuid4().hex[:6]}")
        room = asyncio.Semaphore(window)
        acked = 0

        async def acks() -> None:
            nonlocal acked
            while acked < len(share):
                first, _ = await _read_packet(reader)
                if first >> 4 == 4:  # PUBACK
                    acked += 1
                    room.release()

        reading = asyncio.create_task(acks())
        for sent, (number, topic) in enumerate(share):
            await room.acquire()
            packet_id = sent % 65535 + 1
            body = encode_string(topic) + packet_id.to_bytes(2, "big") + payload(number)
            writer.write(_packet(0x32, body))  # PUBLISH, QoS 1
            if writer.transport.get_write_buffer_size() > 1 << 16:
                await writer.drain()
        await writer.drain()
        await reading
        await _disconnect(writer)

    numbered = list(enumerate(topics))
    await asyncio.gather(*(one_client(i, numbered[i::clients]) for i in range(clients)))
    return started


async def baseline(port: int, devices: list[str], messages: int, clients: int) -> float:
    """Mosquitto alone: the same messages, published the same way, to one QoS 1 subscriber that
    acknowledges each; first publish to last message received."""
    total = len(devices) * messages
    reader, writer = await _connect(port, f"bench-raw-sub-{uuid.uuid4().hex[:6]}")
    writer.write(_packet(0x82, (1).to_bytes(2, "big") + encode_string("raw/+/attrs") + b"\x01"))
    first, _ = await _read_packet(reader)
    if first >> 4 != 9:
        raise SystemExit("MQTT subscription refused")

    async def consume() -> float:
        received = 0
        while received < total:
            first, body = await _read_packet(reader)
            if first >> 4 != 3:
                continue
            received += 1
            if (first >> 1) & 0x03:  # QoS 1: acknowledge, as the hub does after its write
                topic_end = 2 + int.from_bytes(body[:2], "big")
                writer.write(b"\x40\x02" + body[topic_end : topic_end + 2])
        return time.perf_counter()

    consumer = asyncio.create_task(consume())
    topics = [f"raw/{device}/attrs" for _ in range(messages) for device in devices]
    started = await publish_all(port, topics, clients)
    last = await asyncio.wait_for(consumer, timeout=600)
    await _disconnect(writer)
    return total / (last - started)


async def stored(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM broker_attribute_instance WHERE attribute = $1", TEMPERATURE
            )
        )
    finally:
        await connection.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; 0 elsewhere): on a machine
    shared with other work, CPU per message says more than wall-clock rates do."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def backends(dsn: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the benchmark's database, but the
    asking one (the hub's pooled connections: their work is the hub's writes and reads)."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return {row["pid"]: cpu_seconds(row["pid"]) for row in rows}


async def through_hub(
    port: int, dsn: str, devices: list[str], messages: int, clients: int
) -> tuple[float, float, float, int, int]:
    before = await stored(dsn)
    total = len(devices) * messages
    topics = [f"/{APIKEY}/{device}/attrs" for _ in range(messages) for device in devices]
    await publish_all(port, topics, clients)
    last_count, stalled = -1, time.monotonic()
    while True:
        count = await stored(dsn) - before
        if count >= total:
            break
        if count != last_count:
            last_count, stalled = count, time.monotonic()
        elif time.monotonic() - stalled > 60:
            print(f"stopped at {count} of {total} messages stored")
            break
        await asyncio.sleep(0.5)
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT observed_at, recorded_at FROM broker_attribute_instance WHERE attribute = $1",
            TEMPERATURE,
        )
        letters = int(await connection.fetchval("SELECT count(*) FROM ingest_dead_letter"))
    finally:
        await connection.close()
    if not rows:
        raise SystemExit("the hub stored none of the messages")
    latencies = sorted((row["recorded_at"] - row["observed_at"]).total_seconds() for row in rows)
    first = min(row["observed_at"] for row in rows)
    last = max(row["recorded_at"] for row in rows)
    rate = len(rows) / (last - first).total_seconds()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return rate, p50, p99, len(rows), letters


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=6, help="messages per device")
    parser.add_argument("--clients", type=int, default=8, help="MQTT connections the devices share")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--with-apps", action="store_true", help=f"keep the apps {CHANGE_CONSUMING_APPS} on")
    parser.add_argument("--profile", help="run the hub under cProfile, its statistics written here")
    parser.add_argument(
        "--receive-maximum",
        type=int,
        default=1000,
        help="the hub's CITYHUB_MQTT_RECEIVE_MAXIMUM, and Mosquitto's max_inflight_messages",
    )
    args = parser.parse_args()
    if shutil.which("mosquitto") is None:
        raise SystemExit("mosquitto is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="cityhub-bench-ingest-"))
    name, url, dsn = await _pg_database(args.postgres)
    mosquitto, port = start_mosquitto(workdir, args.receive_maximum)
    hub = None
    try:
        engine = create_engine(url)
        await migrate.upgrade(engine)
        await engine.dispose()
        hub, hub_url = start_hub(workdir, url, port, args.profile, args.with_apps, args.receive_maximum)
        devices = device_ids(args.devices)
        t0 = time.perf_counter()
        await provision(hub_url, devices)
        print(f"provisioned {len(devices)} devices in {time.perf_counter() - t0:.1f}s")
        raw = await baseline(port, devices, args.messages, args.clients)
        cpu = cpu_seconds(hub.pid)
        database_before = await backends(dsn)
        rate, p50, p99, count, letters = await through_hub(port, dsn, devices, args.messages, args.clients)
        cpu = cpu_seconds(hub.pid) - cpu
        database_cpu = sum(
            spent - database_before.get(pid, 0.0) for pid, spent in (await backends(dsn)).items()
        )
        async with httpx.AsyncClient(timeout=30) as client:
            metrics = (await client.get(f"{hub_url}/metrics")).text
        batches = sum(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("cityhub_ingest_batches")
        )
        total = len(devices) * args.messages
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores; PostgreSQL; Mosquitto (own process)")
        print(
            f"messages: {total} ({len(devices)} devices x {args.messages}, 3 measures each), QoS 1; "
            f"hub receive maximum {args.receive_maximum}"
        )
        print(f"hub: {count} stored, {letters} dead letters, {batches:.0f} writer transactions")
        print(
            f"hub sustained: {rate:,.0f} msg/s stored; latency publish -> entity updated "
            f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
        )
        print(f"hub process CPU: {cpu:.1f} s, {cpu / max(count, 1) * 1e6:,.0f} us per message stored")
        print(
            f"PostgreSQL CPU for the hub's connections: {database_cpu:.1f} s, "
            f"{database_cpu / max(count, 1) * 1e6:,.0f} us per message stored"
        )
        print(f"baseline Mosquitto alone (same publishers, one QoS 1 subscriber): {raw:,.0f} msg/s")
        print(f"ratio hub / Mosquitto: {rate / raw:.3f}")
    except BaseException:
        log = workdir / "hub.log"
        if log.exists():
            print(f"hub log (last 3000 characters):\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        if hub is not None:
            # SIGINT under cProfile: uvicorn raises the signal again once stopped, and only
            # KeyboardInterrupt lets cProfile write its statistics on the way out
            hub.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
            try:
                hub.wait(timeout=30)
            except subprocess.TimeoutExpired:
                hub.kill()
        mosquitto.terminate()
        mosquitto.wait(timeout=10)
        await _pg_drop(args.postgres, name)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
