"""Cases as the API and applications see them: plain data, with the labels of their state and the
actions open to them."""

from __future__ import annotations

from typing import Any

from cityhub.hub.dispatch import service, workflow
from cityhub.hub.dispatch.entity import entity_id
from cityhub.hub.dispatch.models import DispatchCase
from cityhub.hub.dispatch.schemas import CaseRead


def read_case(session: Any, case: DispatchCase) -> CaseRead:
    kind = workflow.case_types(session).get(case.case_type)
    titles = kind.state_titles.get(case.state) if kind else None
    return CaseRead(
        id=str(case.id),
        entity_id=entity_id(case),
        case_type=case.case_type,
        state=case.state,
        state_title_zh=titles[0] if titles else None,
        state_title_en=titles[1] if titles else None,
        title=case.title,
        description=case.description,
        category=case.category_code,
        urgency=case.urgency,
        source=case.source,
        source_ref=case.source_ref,
        reporter=case.reporter,
        location=(
            {"type": "Point", "coordinates": [case.lon, case.lat]}
            if case.lon is not None and case.lat is not None
            else None
        ),
        grid_cell=case.grid_code,
        district=case.district_code,
        department=case.department_code,
        department_tenant=case.department_tenant,
        triage=case.triage,
        triage_reason=case.triage_reason,
        duplicate_of=str(case.duplicate_of) if case.duplicate_of else None,
        duplicates=case.duplicates,
        stage=case.stage,
        due_at=case.due_at,
        overdue=case.overdue,
        escalated_at=case.escalated_at,
        dispatched_at=case.dispatched_at,
        handled_at=case.handled_at,
        closed_at=case.closed_at,
        reworks=case.reworks,
        extensions=case.extensions,
        allowed_actions=[a.name for a in service.allowed_actions(case, kind)] if kind else [],
        created_at=case.created_at,
        updated_at=case.updated_at,
    )
