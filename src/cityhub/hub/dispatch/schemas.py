"""The case workflow on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Urgency = Literal["normal", "urgent"]


def has_nul(value: Any) -> bool:
    """Whether a NUL character hides anywhere in the value (PostgreSQL cannot store one)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(v) for v in value)
    return False


class Input(BaseModel):
    """A request body: unknown members refused, NUL characters refused anywhere in it."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if has_nul(data):
            raise ValueError("text cannot hold NUL characters")
        return data


Code = Annotated[str, Field(min_length=1, max_length=64)]
Division = Annotated[str, Field(pattern=r"^\d{6}$", description="A GB/T 2260 division code.")]


class CaseCreate(Input):
    case_type: str = Field("urban_management", max_length=64)
    category: str = Field(min_length=1, max_length=16, description="A category code, e.g. C0101 or E0502.")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=10_000)
    location: dict[str, Any] | None = Field(None, description="A GeoJSON Point (WGS-84).")
    urgency: Urgency = "normal"
    source: str = Field("citizen", min_length=1, max_length=32, examples=["citizen", "inspector", "alert"])
    source_ref: str | None = Field(None, max_length=256)
    reporter: str | None = Field(None, max_length=100)


class CaseUpdate(Input):
    """A correction of an open case (a person working the triage queue, or a mistake)."""

    category: str | None = Field(None, min_length=1, max_length=16)
    title: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    location: dict[str, Any] | None = Field(None, description="A GeoJSON Point; null removes it.")
    urgency: Urgency | None = None
    actor: str | None = Field(None, max_length=100, description="Who corrects, when access control is off.")


class CaseRead(BaseModel):
    id: str
    entity_id: str
    case_type: str
    state: str
    state_title_zh: str | None
    state_title_en: str | None
    title: str
    description: str
    category: str
    urgency: str
    source: str
    source_ref: str | None
    reporter: str | None
    location: dict[str, Any] | None
    grid_cell: str | None
    district: str | None
    department: str | None
    department_tenant: str | None
    triage: bool
    triage_reason: str | None
    duplicate_of: str | None
    duplicates: int
    stage: str | None
    due_at: datetime | None
    overdue: bool
    escalated_at: datetime | None
    dispatched_at: datetime | None
    handled_at: datetime | None
    closed_at: datetime | None
    reworks: int
    extensions: int
    allowed_actions: list[str]
    created_at: datetime
    updated_at: datetime


class CasePage(BaseModel):
    items: list[CaseRead]
    total: int
    limit: int
    offset: int


class TransitionIn(Input):
    action: str = Field(min_length=1, max_length=64, examples=["dispatch", "verify"])
    note: str | None = Field(None, max_length=10_000)
    department: str | None = Field(None, max_length=64, description="For dispatch: the department code.")
    department_tenant: Division | None = Field(
        None,
        description="For dispatch: the department's tenant (default: the case's district, then its tenant).",
    )
    extend_minutes: int | None = Field(
        None, gt=0, le=525_600, description="For an extension: working minutes."
    )
    actor: str | None = Field(None, max_length=100, description="Who acts, when access control is off.")


class HistoryRead(BaseModel):
    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    note: str | None
    data: dict[str, Any] | None


class CommentIn(Input):
    body: str = Field(min_length=1, max_length=10_000)
    author: str | None = Field(None, max_length=100, description="Who writes, when access control is off.")


class CommentRead(BaseModel):
    id: str
    author: str
    body: str
    created_at: datetime


class AttachmentRead(BaseModel):
    id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    taken_at: datetime | None
    uploader: str
    created_at: datetime
    url: str


class ActionRead(BaseModel):
    name: str
    sources: list[str]
    target: str
    title_zh: str
    title_en: str
    needs_reason: bool
    actors: list[str]
    effect: str | None


class CaseTypeRead(BaseModel):
    key: str
    app: str
    title_zh: str
    title_en: str
    initial: str
    states: list[str]
    terminal: list[str]
    stages: dict[str, str]
    state_titles: dict[str, list[str]]
    actions: list[ActionRead]


class CategoryIn(Input):
    code: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_-]+$")
    kind: Literal["component", "event"]
    major_code: str = Field(pattern=r"^\d{2}$")
    minor_code: str = Field(pattern=r"^\d{2}$")
    name_zh: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=100)
    major_name_zh: str = Field(min_length=1, max_length=100)
    major_name_en: str = Field(min_length=1, max_length=100)
    limits: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Working minutes per urgency (normal, urgent) and stage (filing, dispatch, handling, "
        "verification).",
    )
    default_department: str | None = Field(None, max_length=64)
    active: bool = True


class CategoryUpdate(Input):
    name_zh: str | None = Field(None, min_length=1, max_length=100)
    name_en: str | None = Field(None, min_length=1, max_length=100)
    limits: dict[str, dict[str, int]] | None = None
    default_department: str | None = Field(None, max_length=64)
    active: bool | None = None


class CategoryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    kind: str
    major_code: str
    minor_code: str
    name_zh: str
    name_en: str
    major_name_zh: str
    major_name_en: str
    limits: dict[str, dict[str, int]]
    default_department: str | None
    active: bool


class GridCellRead(BaseModel):
    code: str
    district: str
    name: str | None
    geometry: dict[str, Any]


class GridCellPage(BaseModel):
    items: list[GridCellRead]
    total: int


class GridImported(BaseModel):
    created: int
    updated: int


class RouteIn(Input):
    category: str | None = Field(None, max_length=16, description="None: any category (the district's own).")
    district: Division | None = None
    grid_cell: str | None = Field(None, max_length=32)
    department: Code
    department_tenant: Division | None = Field(None, description="Default: the request's tenant.")


class RouteRead(BaseModel):
    id: str
    category: str | None
    district: str | None
    grid_cell: str | None
    department: str
    department_tenant: str


class CalendarIn(Input):
    timezone: str = "Asia/Shanghai"
    weekdays: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])
    hours: list[list[str]] = Field(default_factory=lambda: [["09:00", "12:00"], ["13:00", "17:30"]])
    holidays: list[str] = Field(default_factory=list)
    workdays: list[str] = Field(default_factory=list)


class CalendarRead(BaseModel):
    timezone: str
    weekdays: list[int]
    hours: list[list[str]]
    holidays: list[str]
    workdays: list[str]


class DepartmentScore(BaseModel):
    department: str
    department_tenant: str
    dispatched: int
    handled: int
    on_time: int
    reworked: int
    overdue: int
    extended: int
    handling_rate: float | None
    on_time_rate: float | None
    rework_rate: float | None
    overdue_rate: float | None
    extension_rate: float | None
    score: float | None


class Evaluation(BaseModel):
    start: datetime
    end: datetime
    weights: dict[str, float]
    departments: list[DepartmentScore]
