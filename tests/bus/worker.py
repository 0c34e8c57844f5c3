"""A stand-in hub process for the cluster test.

``python -m tests.bus.worker --url nats://… --stream S --instance NAME [--seconds 60]`` subscribes a
shared and a broadcast consumer to :class:`ClusterPing`, prints ``{"ready": true}`` once started,
then one JSON line per handled event; it exits after ``--seconds`` or on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from cityhub.bus import Event
from cityhub.bus.nats import NatsBus


class ClusterPing(Event):
    event_type = "test.nats_cluster.ping"

    n: int


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)

    bus = NatsBus(args.url, stream=args.stream, instance_name=args.instance)
    for consumer, shared in (("shared", True), ("broadcast", False)):

        async def handle(event: Event, consumer: str = consumer) -> None:
            emit(consumer=consumer, instance=args.instance, event_id=str(event.id))

        bus.subscribe(consumer, [ClusterPing], handle, shared=shared)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await bus.start()
    try:
        await bus.ping()
        emit(ready=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=args.seconds)
    finally:
        await bus.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
