"""Case types: a case workflow as an explicit state machine, with named actions.

Defined here, in the platform, because the case workflow runs them; applications reach them
through :mod:`cityhub.plugins` (``CaseType``, ``CaseAction``, ``AppRegistry.add_case_type``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

#: What taking an action does besides changing the state, as the case workflow understands it:
#: ``dispatch`` (assigns the department), ``handled`` (the department reports the work done),
#: ``rework`` (verification failed: the work goes back), ``extend`` (an extension is granted: the
#: stage's due time moves), ``close`` (verified and closed), ``suspend``/``resume`` (the clock
#: stops and starts again), ``cancel``.
ACTION_EFFECTS = frozenset(
    {"dispatch", "handled", "rework", "extend", "close", "suspend", "resume", "cancel"}
)


@dataclass(frozen=True)
class CaseAction:
    """One named transition of a case type: from any of ``sources`` to ``target``.

    ``actors`` says who takes it (``supervision``: the supervision centre, ``command``: the command
    centre, ``department``: the responsible department; empty: anyone who may write cases);
    ``needs_reason`` refuses it without a note."""

    name: str
    sources: tuple[str, ...]
    target: str
    title_zh: str = ""
    title_en: str = ""
    needs_reason: bool = False
    actors: tuple[str, ...] = ()
    effect: str | None = None

    def __post_init__(self) -> None:
        if self.effect is not None and self.effect not in ACTION_EFFECTS:
            raise ValueError(f"action {self.name}: unknown effect {self.effect!r}")


@dataclass(frozen=True)
class CaseType:
    """A case workflow: states and the allowed transitions between them.

    A type may name its transitions as :class:`CaseAction` s (``actions``); without them each
    transition is an action named after its target state. ``terminal`` states end a case;
    ``stages`` maps a state to the time-limit stage its clock counts against (states of the same
    stage share one due time); ``state_titles`` gives each state its (zh, en) label."""

    app: str
    key: str
    title_zh: str
    title_en: str
    initial: str
    transitions: dict[str, tuple[str, ...]]
    actions: tuple[CaseAction, ...] = ()
    terminal: tuple[str, ...] = ()
    stages: dict[str, str] = field(default_factory=dict)
    state_titles: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        states = set(self.transitions) | {s for targets in self.transitions.values() for s in targets}
        if self.initial not in states:
            raise ValueError(f"case type {self.key}: initial state {self.initial!r} has no transitions")
        for action in self.actions:
            for source in action.sources:
                if action.target not in self.transitions.get(source, ()):
                    raise ValueError(
                        f"case type {self.key}: action {action.name} ({source} → {action.target}) "
                        "is not among the transitions"
                    )

    @property
    def states(self) -> list[str]:
        seen = dict.fromkeys([self.initial, *self.transitions])
        for targets in self.transitions.values():
            seen.update(dict.fromkeys(targets))
        return list(seen)

    def all_actions(self) -> tuple[CaseAction, ...]:
        """The declared actions, or one per transition target when none are declared."""
        if self.actions:
            return self.actions
        targets: dict[str, list[str]] = {}
        for source, nexts in self.transitions.items():
            for target in nexts:
                targets.setdefault(target, []).append(source)
        return tuple(CaseAction(target, tuple(sources), target) for target, sources in targets.items())

    def allowed(self, state: str) -> list[CaseAction]:
        """The actions that may be taken in ``state``."""
        return [action for action in self.all_actions() if state in action.sources]


def transitions_of(actions: Sequence[CaseAction]) -> dict[str, tuple[str, ...]]:
    """The transition table the actions make up."""
    table: dict[str, list[str]] = {}
    for action in actions:
        for source in action.sources:
            targets = table.setdefault(source, [])
            if action.target not in targets:
                targets.append(action.target)
    return {state: tuple(targets) for state, targets in table.items()}
