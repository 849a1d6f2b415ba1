"""What the cases service needs from other services, as interfaces. Adapters in
adapters/other_services.py answer them over nameko RPC; unit tests pass fakes."""
from __future__ import annotations

from typing import Protocol

from ..domain.allocation import FacilitatorRecord
from ..domain.case import Case
from ..domain.lifecycle import RiskClearance


class RiskService(Protocol):
    def clearance(self, case: Case, to_stage: str) -> RiskClearance:
        """Never raises: a risk service that cannot answer gives RiskClearance(unavailable=why),
        which every stage rule treats as not cleared."""


class FacilitatorRegister(Protocol):
    def records(self, county: str, facilitator_ids: list[str]) -> dict[str, FacilitatorRecord]:
        """Raises mend_common.errors.Unavailable when the register cannot be asked."""
