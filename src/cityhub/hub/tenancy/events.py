from __future__ import annotations

from cityhub.bus import Event


class TenantCreated(Event):
    event_type = "tenant.created"

    code: str
    name: str
    level: str
    parent_code: str | None


class TenantUpdated(Event):
    event_type = "tenant.updated"

    code: str
    changes: dict[str, object]
