"""The rule engine's periodic work in each hub process: ``for`` windows that completed without a
further change, entities silent longer than an absence rule allows, escalation of alerts left
unacknowledged (see :meth:`cityhub.hub.rules.engine.RuleEngine.tick`)."""

from __future__ import annotations

from cityhub.hub.rules.engine import RuleEngine
from cityhub.kit.periodic import Periodic


class RulesTask(Periodic):
    def __init__(self, engine: RuleEngine, interval: float) -> None:
        super().__init__("rule engine checks", interval, engine.tick)
