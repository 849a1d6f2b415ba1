"""What the scheduling service needs from outside itself."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True)
class CaseParties:
    case_id: str
    county: str
    stage: str
    participant_ids: tuple[str, ...]
    stopped_participant_ids: tuple[str, ...]     # withdrew consent or had their process stopped
    facilitator_ids: tuple[str, ...]


class CaseDirectory(Protocol):
    def parties(self, county: str, case_id: str) -> CaseParties | None:
        """The case's parties, None if it is not a case of that county; raises Unavailable."""


class SafetyGate(Protocol):
    def ask(self, *, county: str, case_id: str, participant_ids: Sequence[str], meeting_kind: str,
            plan_measures: Sequence[str]) -> tuple[bool, tuple[str, ...]]:
        """(allowed, reasons). Anything but a clear allow, including no answer, is a deny."""
