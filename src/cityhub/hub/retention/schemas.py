"""Retention policies on the wire: durations as ISO 8601 text (``P30D``, ``PT1H``; a month counts
30 days, a year 365), entity types as a name in the core context's default ``@vocab`` or a full
IRI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from cityhub.hub.broker.history import AGGREGATES

Duration = Annotated[str, Field(min_length=2, max_length=64, examples=["P30D", "PT1H"])]
Method = Annotated[str, Field(description=f"One of {', '.join(AGGREGATES)}.")]


class PolicyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_type: str | None = Field(
        None, min_length=1, max_length=1024, description="Entity type; absent or null: every type."
    )
    keep_raw: Duration = Field(description="How long history is kept as it was written.")
    period: Duration = Field("PT1H", description="Older history becomes one instance per this period.")
    methods: list[Method] = Field(
        default_factory=lambda: ["avg"],
        min_length=1,
        description="Aggregates kept per period; the first is the instance's value.",
    )
    drop_after: Duration | None = Field(
        None, description="Downsampled history older than this is deleted; longer than keep_raw."
    )


class PolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_raw: Duration | None = None
    period: Duration | None = None
    methods: list[Method] | None = Field(None, min_length=1)
    drop_after: Duration | None = None


class PolicyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant: str
    entity_type: str | None
    keep_raw: str
    period: str
    methods: list[str]
    drop_after: str | None
    created_at: datetime
    modified_at: datetime
    last_applied_at: datetime | None
    last_outcome: dict[str, Any] | None


class PolicyPage(BaseModel):
    items: list[PolicyRead]
    total: int
