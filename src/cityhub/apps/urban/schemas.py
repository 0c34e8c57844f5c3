from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ComponentIn(BaseModel):
    """A component as written through the API; the code comes from the path on PUT."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["上水井盖"])
    location: dict[str, Any] = Field(examples=[{"type": "Point", "coordinates": [113.655, 34.775]}])
    department: str | None = Field(None, max_length=64, description="Owning department's code.")
    department_tenant: str | None = Field(None, description="The department's tenant (GB/T 2260).")
    state: str = Field("intact", description="intact, damaged, lost, occupied or removed.")
    address: str | None = Field(None, max_length=300)


class ComponentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    location: dict[str, Any] | None = None
    department: str | None = None
    department_tenant: str | None = None
    state: str | None = None
    address: str | None = None


class ComponentRead(BaseModel):
    code: str
    entity_id: str
    name: str
    category: str
    division: str
    serial: str
    location: dict[str, Any]
    department: str | None
    department_tenant: str | None
    state: str
    state_title_zh: str
    state_title_en: str
    address: str | None
    active_case: str | None


class ImportError_(BaseModel):
    row: int
    code: str | None
    error: str


class ImportReport(BaseModel):
    created: int
    updated: int
    rejected: int
    errors: list[ImportError_]


class ComponentCaseIn(BaseModel):
    """Report a problem with a component: a case of its category at its location."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=200)
    description: str = Field("", max_length=4000)
    urgency: str = "normal"
    source: str = Field("supervisor", max_length=32)
    reporter: str | None = Field(None, max_length=100)
