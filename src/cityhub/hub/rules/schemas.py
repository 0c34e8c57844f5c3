"""Rules and alerts on the wire. A rule's definition is the JSON of docs/rules.md, kept as given;
it is checked by :func:`cityhub.hub.rules.conditions.check_definition`, which names the member at
fault."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: dict[str, Any] = Field(description="The rule definition (see docs/rules.md).")
    enabled: bool = Field(
        False, description="Switch it on at once (default: create it off, dry-run it first)."
    )


class RuleReplace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: dict[str, Any]


class FromTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict, description="Values of the template's parameters.")
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Members of the rule given instead of the template's: name, entity_ids, channels…",
    )
    enabled: bool = False


class RuleRead(BaseModel):
    id: str
    tenant: str
    name: str
    entity_type: str
    definition: dict[str, Any]
    template_key: str | None
    params: dict[str, Any] | None
    enabled: bool
    disabled_reason: str | None
    last_error: str | None
    last_error_at: datetime | None
    fire_count: int
    suppressed_count: int
    open_alerts: int
    last_fired_at: datetime | None
    created_at: datetime
    modified_at: datetime


class RulePage(BaseModel):
    items: list[RuleRead]
    total: int


class TemplateRead(BaseModel):
    key: str
    app: str
    title_zh: str
    title_en: str
    definition: dict[str, Any]


class DryRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: dict[str, Any] | None = Field(
        None, description="The rule to try (not for /rules/{id}/dry-run)."
    )
    start: datetime | None = Field(
        None, description="Start of the window replayed; default: 24 h before end."
    )
    end: datetime | None = Field(None, description="End of the window replayed; default: now.")


class Episode(BaseModel):
    fired_at: datetime
    cleared_at: datetime | None
    value: Any = None


class EntityRun(BaseModel):
    entity_id: str
    evaluations: int
    episodes: list[Episode]


class DryRunResult(BaseModel):
    start: datetime
    end: datetime
    entities: list[EntityRun]
    fired: int


class AlertRead(BaseModel):
    id: str
    tenant: str
    rule_id: str | None
    dedup_key: str
    entity_id: str
    entity_type: str
    alert_entity: str
    state: str
    next_states: list[str]
    severity: str
    raised_severity: str
    message_zh: str
    message_en: str
    attribute: str | None
    value: Any
    channels: list[str]
    count: int
    raised_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    escalated_at: datetime | None
    case_id: str | None
    open_case: dict[str, Any] | None


class AlertPage(BaseModel):
    items: list[AlertRead]
    total: int
    limit: int
    offset: int


class AlertQuery(BaseModel):
    state: list[str] | None = None
    severity: list[str] | None = None
    entity_id: str | None = None
    rule_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    offset: int = 0


class AlertAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=4000)


class AlertComment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=4000)


class AlertEventRead(BaseModel):
    at: datetime
    kind: str
    actor: str | None
    note: str | None
    data: dict[str, Any] | None


class DeliveryRead(BaseModel):
    at: datetime
    channel: str
    notice: str
    attempt: int
    ok: bool
    error: str | None


class OwedRead(BaseModel):
    """A notice not yet delivered to a channel nor given up on: being sent, or to be sent again."""

    since: datetime
    channel: str
    notice: str


class AlertHistory(BaseModel):
    events: list[AlertEventRead]
    deliveries: list[DeliveryRead]
    owed: list[OwedRead] = []
