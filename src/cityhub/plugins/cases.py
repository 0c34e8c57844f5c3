"""Cases for applications: open, read, find and act on cases of the hub's one case workflow, and
read the department evaluation, in the hub's own process. Each function names the tenant, joins
the caller's transaction and never commits. Cases come back as :class:`CaseRead` (plain data).
Consume :class:`CaseOpened`, :class:`CaseTransitioned` and :class:`CaseEscalated` with
``registry.subscribe``; register case types with ``registry.add_case_type``."""

from __future__ import annotations

from cityhub.hub.dispatch.events import CaseEscalated, CaseOpened, CaseTransitioned
from cityhub.hub.dispatch.local import (
    evaluate_departments,
    find_cases,
    list_categories,
    open_case,
    read_case_of,
    take_action,
)
from cityhub.hub.dispatch.schemas import CaseRead, CategoryRead, DepartmentScore

__all__ = [
    "CaseEscalated",
    "CaseOpened",
    "CaseRead",
    "CaseTransitioned",
    "CategoryRead",
    "DepartmentScore",
    "evaluate_departments",
    "find_cases",
    "list_categories",
    "open_case",
    "read_case_of",
    "take_action",
]
