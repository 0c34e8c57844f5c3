"""The hub's built-in case types and how a case type is found.

``urban_management`` follows the GB/T 30428 stages: collection 信息采集 → filing 案卷建立 → dispatch
任务派遣 → handling 任务处理 → feedback 处理反馈 → verification and closing 核查结案 → evaluation
综合评价, with cancellation, rework after a failed verification, extension requests, suspension.
``general`` is the small workflow for everything else. Applications add theirs through the
registry (:meth:`cityhub.plugins.AppRegistry.add_case_type`).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from cityhub.hub.dispatch.casetypes import CaseAction, CaseType, transitions_of
from cityhub.kit.errors import BadRequestData

HUB_APP = "hub"
#: ``session.info`` key: the registry's case types (the hub puts them there for every session).
CASE_TYPES_KEY = "cityhub.case_types"

#: Time-limit stages: a category's limits give working minutes per stage and urgency.
STAGES = ("filing", "dispatch", "handling", "verification")

_URBAN_ACTIONS = (
    CaseAction("file", ("collected",), "filed", "立案", "file", actors=("supervision",)),
    CaseAction(
        "cancel",
        ("collected", "filed"),
        "cancelled",
        "作废",
        "cancel",
        needs_reason=True,
        actors=("supervision",),
        effect="cancel",
    ),
    CaseAction(
        "dispatch", ("filed",), "dispatched", "派遣", "dispatch", actors=("command",), effect="dispatch"
    ),
    CaseAction("accept", ("dispatched",), "handling", "签收", "accept", actors=("department",)),
    CaseAction(
        "return",
        ("dispatched",),
        "filed",
        "退回",
        "return to the command centre",
        needs_reason=True,
        actors=("department",),
    ),
    CaseAction(
        "feedback",
        ("handling",),
        "feedback",
        "处理反馈",
        "report handled",
        actors=("department",),
        effect="handled",
    ),
    CaseAction(
        "request_extension",
        ("handling",),
        "extension_requested",
        "申请延期",
        "request an extension",
        needs_reason=True,
        actors=("department",),
    ),
    CaseAction(
        "approve_extension",
        ("extension_requested",),
        "handling",
        "批准延期",
        "approve the extension",
        actors=("command",),
        effect="extend",
    ),
    CaseAction(
        "reject_extension",
        ("extension_requested",),
        "handling",
        "驳回延期",
        "reject the extension",
        needs_reason=True,
        actors=("command",),
    ),
    CaseAction(
        "suspend",
        ("handling",),
        "suspended",
        "挂账",
        "suspend",
        needs_reason=True,
        actors=("command",),
        effect="suspend",
    ),
    CaseAction("resume", ("suspended",), "handling", "恢复", "resume", actors=("command",), effect="resume"),
    CaseAction(
        "verify",
        ("feedback",),
        "closed",
        "核查结案",
        "verify and close",
        actors=("supervision",),
        effect="close",
    ),
    CaseAction(
        "rework",
        ("feedback",),
        "handling",
        "返工",
        "rework (verification failed)",
        needs_reason=True,
        actors=("supervision",),
        effect="rework",
    ),
    CaseAction(
        "redispatch",
        ("feedback",),
        "filed",
        "重新派遣",
        "dispatch again (verification failed)",
        needs_reason=True,
        actors=("supervision",),
        effect="rework",
    ),
    CaseAction("evaluate", ("closed",), "evaluated", "综合评价", "evaluate", actors=("supervision",)),
)

URBAN_MANAGEMENT = CaseType(
    HUB_APP,
    "urban_management",
    "数字化城市管理案件",
    "Digital urban management case",
    "collected",
    transitions_of(_URBAN_ACTIONS),
    _URBAN_ACTIONS,
    terminal=("cancelled", "evaluated"),
    stages={
        "collected": "filing",
        "filed": "dispatch",
        "dispatched": "handling",
        "handling": "handling",
        "extension_requested": "handling",
        "feedback": "verification",
    },
    state_titles={
        "collected": ("信息采集", "collection"),
        "filed": ("案卷建立", "filing"),
        "dispatched": ("任务派遣", "dispatched"),
        "handling": ("任务处理", "handling"),
        "extension_requested": ("延期申请", "extension requested"),
        "suspended": ("挂账", "suspended"),
        "feedback": ("处理反馈", "feedback"),
        "closed": ("核查结案", "verified and closed"),
        "evaluated": ("综合评价", "evaluated"),
        "cancelled": ("作废", "cancelled"),
    },
)

_GENERAL_ACTIONS = (
    CaseAction("dispatch", ("open",), "dispatched", "派遣", "dispatch", effect="dispatch"),
    CaseAction("accept", ("dispatched",), "handling", "受理", "accept"),
    CaseAction("resolve", ("handling",), "resolved", "办结", "resolve", effect="handled"),
    CaseAction("close", ("resolved",), "closed", "关闭", "close", effect="close"),
    CaseAction("reopen", ("resolved",), "handling", "重办", "reopen", needs_reason=True, effect="rework"),
    CaseAction(
        "cancel", ("open", "dispatched"), "cancelled", "撤销", "cancel", needs_reason=True, effect="cancel"
    ),
)

GENERAL = CaseType(
    HUB_APP,
    "general",
    "一般事项",
    "General case",
    "open",
    transitions_of(_GENERAL_ACTIONS),
    _GENERAL_ACTIONS,
    terminal=("closed", "cancelled"),
    stages={"open": "dispatch", "dispatched": "handling", "handling": "handling", "resolved": "verification"},
    state_titles={
        "open": ("待派遣", "open"),
        "dispatched": ("已派遣", "dispatched"),
        "handling": ("办理中", "handling"),
        "resolved": ("已办结", "resolved"),
        "closed": ("已关闭", "closed"),
        "cancelled": ("已撤销", "cancelled"),
    },
)

BUILTIN: dict[str, CaseType] = {URBAN_MANAGEMENT.key: URBAN_MANAGEMENT, GENERAL.key: GENERAL}

#: A report linked to an earlier open case of the same thing: outside every type's machine, final.
MERGED = "merged"


def register_builtin(registry_types: dict[str, CaseType]) -> None:
    """Put the hub's own case types into the registry's table, before the applications register
    theirs."""
    for case_type in BUILTIN.values():
        registry_types.setdefault(case_type.key, case_type)


def case_types(session: AsyncSession) -> Mapping[str, CaseType]:
    found = session.info.get(CASE_TYPES_KEY)
    return found if isinstance(found, Mapping) else BUILTIN


def case_type(session: AsyncSession, key: str) -> CaseType:
    found = case_types(session).get(key)
    if found is None:
        known = ", ".join(sorted(case_types(session)))
        raise BadRequestData(f"unknown case type {key!r}; known: {known}")
    return found


def is_open(case_type: CaseType, state: str) -> bool:
    return state != MERGED and state not in case_type.terminal
