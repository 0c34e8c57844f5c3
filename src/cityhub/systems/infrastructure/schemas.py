from __future__ import annotations

from pydantic import BaseModel


class CoveringResource(BaseModel):
    id: str
    type: str
    kind: str
    distance: float
    coverageRadius: float


class CoverageAt(BaseModel):
    point: list[float]
    covered: dict[str, bool]
    coveredBy: list[CoveringResource]


class KindCoverage(BaseModel):
    kind: str
    covered: int
    ratio: float | None
    uncovered: list[str]


class DeviceCoverageOut(BaseModel):
    located: int
    unlocated: int
    byKind: list[KindCoverage]
