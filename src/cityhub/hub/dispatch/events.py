"""What the case workflow announces on the bus (after the transaction commits)."""

from __future__ import annotations

from datetime import datetime

from cityhub.bus import Event


class CaseOpened(Event):
    event_type = "dispatch.case_opened"

    case_id: str
    case_type: str
    category: str
    state: str
    department: str | None
    triage: bool
    duplicate_of: str | None
    source: str
    source_ref: str | None


class CaseTransitioned(Event):
    event_type = "dispatch.case_transitioned"

    case_id: str
    action: str
    from_state: str
    to_state: str
    department: str | None
    actor: str


class CaseEscalated(Event):
    """A case passed its stage's due time: sent once per stage."""

    event_type = "dispatch.case_escalated"

    case_id: str
    stage: str
    due_at: datetime
    department: str | None
    district: str | None
