"""The facts of a case the risk service needs (who takes part, who is allocated, the stage and
offence flags), asked of the cases service over nameko RPC with a timeout.

Contract: cases.case_participants(case_id, county) -> {"case_id", "county", "stage",
"seriousness", "offence_flags", "facilitator_ids", "participants": [{"participant_id", "role",
"is_youth", ...}]}; a case not in that county is a NotFound error.
"""
from __future__ import annotations

import logging

from mend_common.errors import NotFound, Unavailable
from mend_common.rpc import RpcError

from ..service_layer.ports import CaseFacts, ParticipantFacts

log = logging.getLogger(__name__)


class RpcCaseFacts:
    def __init__(self, rpc, timeout: float):
        self.rpc = rpc
        self.timeout = timeout

    def facts(self, county: str, case_id: str) -> CaseFacts | None:
        """None when the case is not in that county (or does not exist)."""
        try:
            answer = self.rpc.call("cases", "case_participants", case_id=case_id, county=county, timeout=self.timeout)
        except RpcError as exc:
            if exc.exc_type == NotFound.__name__:
                return None
            log.warning("case %s facts not available: %s", case_id, exc)
            raise Unavailable("the cases service could not be asked about this case; try again") from None
        try:
            return CaseFacts(
                case_id=str(answer["case_id"]), county=str(answer["county"]), stage=str(answer["stage"]),
                seriousness=str(answer.get("seriousness") or ""),
                offence_flags=tuple(str(f) for f in answer.get("offence_flags") or ()),
                facilitator_ids=tuple(str(f) for f in answer.get("facilitator_ids") or ()),
                participants={str(p["participant_id"]): ParticipantFacts(
                    participant_id=str(p["participant_id"]), role=str(p["role"]), is_youth=p.get("is_youth") is True,
                    vulnerabilities=tuple(str(v) for v in p.get("vulnerabilities") or ()))
                    for p in answer["participants"]})
        except (KeyError, TypeError, AttributeError) as exc:
            log.warning("case %s facts malformed: %r", case_id, exc)
            raise Unavailable("the cases service gave an answer this service cannot read") from None
