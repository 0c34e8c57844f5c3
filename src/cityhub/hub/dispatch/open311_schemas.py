"""Open311 GeoReport v2 documents, and the hub's own API for the service list.

The GeoReport answers are plain dicts (they leave as JSON or XML with the element names of the
specification); what is checked here is the body of the service settings a tenant's staff write.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")


class AttributeValue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)


class ServiceAttribute(BaseModel):
    """A question a citizen answers when reporting (GeoReport v2 service definition attribute)."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    description: str = Field(min_length=1, max_length=500)
    datatype: Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
    required: bool = False
    variable: bool = True
    datatype_description: str | None = None
    order: int = Field(1, ge=1)
    values: list[AttributeValue] = Field(default_factory=list)

    @model_validator(mode="after")
    def _lists_have_values(self) -> ServiceAttribute:
        if self.datatype.endswith("valuelist") and not self.values:
            raise ValueError(f"attribute {self.code}: a {self.datatype} needs its values")
        return self


class ServiceSettingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public: bool = Field(True, description="Offered to citizens through Open311.")
    description: str | None = Field(None, max_length=2000)
    keywords: str | None = Field(None, max_length=300)
    attributes: list[ServiceAttribute] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_codes(self) -> ServiceSettingIn:
        codes = [a.code for a in self.attributes]
        if len(codes) != len(set(codes)):
            raise ValueError("attribute codes must be unique")
        return self


class ServiceSettingRead(ServiceSettingIn):
    service_code: str
