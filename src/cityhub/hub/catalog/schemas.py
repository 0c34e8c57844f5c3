"""The catalog on the wire. Entity types and field names are given as a name of the core @context
(``AirQualityObserved``, ``pm25``) or a full IRI, and shown as the broker stores them (IRIs).
Catalog metadata follows GB/T 21063: name, code, provider, abstract, data items, sharing class,
sharing conditions, update cycle."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Sharing = Literal["unconditional", "conditional", "not_shared"]
Frequency = Literal["realtime", "hourly", "daily", "weekly", "monthly", "quarterly", "yearly", "irregular"]
Name = Annotated[str, Field(min_length=1, max_length=1024)]


class FieldSpec(BaseModel):
    """A data item of the dataset: an attribute of its entities."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    title: str = Field(min_length=1, max_length=200)
    title_en: str | None = Field(None, max_length=200)
    data_type: str = Field("text", max_length=32, examples=["number", "text", "datetime", "geo"])


class FieldRead(FieldSpec):
    #: the privacy classification the data models give the attribute: personal | sensitive | None
    classification: str | None = None
    mask: str | None = None


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    title: str = Field(min_length=1, max_length=200, description="Title in Chinese.")
    title_en: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)
    department_id: uuid.UUID | None = Field(
        None, description="The owner department; absent: the caller's own department."
    )
    entity_types: list[Name] = Field(min_length=1, max_length=50)
    sharing: Sharing
    conditions: str | None = Field(
        None,
        max_length=4000,
        description="Conditional: what an applicant must meet. Not shared: the legal basis (required).",
    )
    update_frequency: Frequency = "irregular"
    fields: list[FieldSpec] = Field(default_factory=list, max_length=200)


class DatasetUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=200)
    title_en: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)
    department_id: uuid.UUID | None = None
    entity_types: list[Name] | None = Field(None, min_length=1, max_length=50)
    sharing: Sharing | None = None
    conditions: str | None = Field(None, max_length=4000)
    update_frequency: Frequency | None = None
    fields: list[FieldSpec] | None = Field(None, max_length=200)


class Statistics(BaseModel):
    """Live figures from the broker."""

    entity_count: int
    last_update: datetime | None


class DatasetRead(BaseModel):
    id: uuid.UUID
    tenant: str
    code: str
    title: str
    title_en: str | None
    description: str | None
    department_id: uuid.UUID
    department: str | None
    department_en: str | None
    entity_types: list[str]
    sharing: Sharing
    conditions: str | None
    update_frequency: str
    fields: list[FieldRead]
    #: whether the caller may read the dataset's data now, and change it
    readable: bool
    writable: bool
    statistics: Statistics | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime


class DatasetPage(BaseModel):
    items: list[DatasetRead]
    total: int


class SharingRequestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: uuid.UUID
    purpose: str = Field(min_length=1, max_length=4000)
    fields: list[Name] = Field(default_factory=list, max_length=200, description="Empty: the whole dataset.")
    starts_at: AwareDatetime | None = Field(None, description="Absent: now.")
    ends_at: AwareDatetime
    department_id: uuid.UUID | None = Field(
        None, description="The applicant department; absent: the caller's own (required when auth is off)."
    )


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    note: str | None = Field(None, max_length=4000)
    expires_at: AwareDatetime | None = Field(
        None, description="Approval only: end the approval before the period asked for ends."
    )


class Revocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=4000, description="Why the approval ends now")


class SharingRequestRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_code: str
    dataset_id: uuid.UUID
    applicant_department_id: uuid.UUID
    applicant: str
    purpose: str
    fields: list[str]
    starts_at: datetime
    ends_at: datetime
    status: str
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    expires_at: datetime | None


class SharingRequestPage(BaseModel):
    items: list[SharingRequestRead]
    total: int
