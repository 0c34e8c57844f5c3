"""What device ingestion tells the rest of the hub (through the outbox, after commit)."""

from __future__ import annotations

from cityhub.bus import Event


class DeviceWentSilent(Event):
    """A device with an expected reporting interval has not reported for twice that interval:
    the event an alert rule listens for. ``tenant`` is the device's (fiware-service)."""

    event_type = "ingest.device_silent"

    device_id: str
    entity_id: str
    entity_type: str
    service_path: str
    last_seen_at: str | None
    expected_interval: int


class DeviceBackOnline(Event):
    """A silent device reported again."""

    event_type = "ingest.device_online"

    device_id: str
    entity_id: str
    entity_type: str
    service_path: str
    last_seen_at: str


class ProvisioningChanged(Event):
    """Service groups or devices of ``tenant`` changed (``apikey``: those of one key, a key
    disabled or enabled again; None: any). Every hub process's gateway forgets what it cached of
    them (a broadcast consumer), so a disabled key is refused everywhere once the bus brings this,
    not when the cache would have run out."""

    event_type = "ingest.provisioning_changed"

    apikey: str | None = None
