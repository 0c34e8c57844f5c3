from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

CODE_PATTERN = r"^[0-9]{6}$"


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=CODE_PATTERN, description="GB/T 2260 division code, e.g. 410102.")
    name: str | None = Field(
        None, min_length=1, max_length=100, description="Chinese name; defaults from the code table."
    )
    name_en: str | None = Field(None, max_length=100)
    parent_code: str | None = Field(
        None, pattern=CODE_PATTERN, description="Defaults to the division above by the code."
    )


class TenantUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100)
    name_en: str | None = Field(None, max_length=100)
    active: bool | None = None


class TenantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    name_en: str | None
    level: str
    parent_code: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


class TenantPage(BaseModel):
    items: list[TenantRead]
    total: int
    limit: int
    offset: int
