"""What the risk service needs from outside itself."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ParticipantFacts:
    participant_id: str
    role: str
    is_youth: bool = False
    vulnerabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaseFacts:
    case_id: str
    county: str
    stage: str
    seriousness: str = ""
    offence_flags: tuple[str, ...] = ()
    facilitator_ids: tuple[str, ...] = ()
    participants: dict[str, ParticipantFacts] = field(default_factory=dict)


class CaseFactsSource(Protocol):
    def facts(self, county: str, case_id: str) -> CaseFacts | None:
        """The case's facts, None if it is not a case of that county; raises Unavailable."""
