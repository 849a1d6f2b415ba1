"""The cases service (who takes part in a case) and the risk service's safety gate, asked over
nameko RPC with a timeout.

Contract: cases.case_participants(case_id, county) -> {"case_id", "county", "stage",
"facilitator_ids", "participants": [{"participant_id", "consent_status", "process_stopped", ...}]};
a case not in that county is a NotFound error. The gate's contract is in mend_common.safety.
"""
from __future__ import annotations

import logging
from typing import Sequence

from mend_common.errors import NotFound, Unavailable
from mend_common.rpc import RpcError
from mend_common.safety import ask_safety_gate

from ..service_layer.ports import CaseParties

log = logging.getLogger(__name__)


class RpcCaseDirectory:
    def __init__(self, rpc, timeout: float):
        self.rpc = rpc
        self.timeout = timeout

    def parties(self, county: str, case_id: str) -> CaseParties | None:
        try:
            answer = self.rpc.call("cases", "case_participants", case_id=case_id, county=county, timeout=self.timeout)
        except RpcError as exc:
            if exc.exc_type == NotFound.__name__:
                return None
            log.warning("case %s parties not available: %s", case_id, exc)
            raise Unavailable("the cases service could not be asked about this case; try again") from None
        except Exception as exc:  # noqa: BLE001 - a timeout or broker error: the caller may retry
            log.warning("case %s parties not available: %s", case_id, exc)
            raise Unavailable("the cases service did not answer in time; try again") from None
        try:
            people = answer["participants"]
            return CaseParties(
                case_id=str(answer["case_id"]), county=str(answer["county"]), stage=str(answer["stage"]),
                participant_ids=tuple(str(p["participant_id"]) for p in people),
                stopped_participant_ids=tuple(str(p["participant_id"]) for p in people
                                              if p.get("process_stopped") or p.get("consent_status") == "withdrawn"),
                facilitator_ids=tuple(str(f) for f in answer.get("facilitator_ids") or ()))
        except (KeyError, TypeError, AttributeError) as exc:
            log.warning("case %s parties malformed: %r", case_id, exc)
            raise Unavailable("the cases service gave an answer this service cannot read") from None


class RpcSafetyGate:
    def __init__(self, rpc, timeout: float):
        self.rpc = rpc
        self.timeout = timeout

    def ask(self, *, county: str, case_id: str, participant_ids: Sequence[str], meeting_kind: str,
            plan_measures: Sequence[str]) -> tuple[bool, tuple[str, ...]]:
        answer = ask_safety_gate(self.rpc, county=county, case_id=case_id, participant_ids=participant_ids,
                                 meeting_kind=meeting_kind, plan_measures=plan_measures, timeout=self.timeout)
        return answer.allowed, answer.reasons
