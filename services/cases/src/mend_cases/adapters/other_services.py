"""Clients of the risk and scheduling services over nameko RPC, each call with a timeout.

Contracts (the risk and scheduling services implement the other side):
  risk.case_clearance(county, case_id, stage, participant_ids)
      -> {"participants": {participant_id: {"cleared": bool, "reason": str}}}
  scheduling.facilitator_records(county, facilitator_ids)
      -> [{"facilitator_id", "county", "active", "vetting_expires_on" (YYYY-MM-DD or null),
           "training_level", "name"}]
A safety question that gets no usable answer is a refusal, never a pass.
"""
from __future__ import annotations

import logging
from datetime import date

from mend_common.errors import Unavailable
from mend_common.rpc import RpcError

from ..domain.allocation import FacilitatorRecord
from ..domain.case import Case
from ..domain.lifecycle import RiskClearance, taking_part

log = logging.getLogger(__name__)


class RpcRiskService:
    def __init__(self, rpc, timeout: float):
        self.rpc = rpc
        self.timeout = timeout

    def clearance(self, case: Case, to_stage: str) -> RiskClearance:
        ids = [p.participant_id for p in taking_part(case)]
        try:
            answer = self.rpc.call("risk", "case_clearance", county=case.county, case_id=case.case_id,
                                   stage=to_stage, participant_ids=ids, timeout=self.timeout)
            per_person = answer["participants"]
            return RiskClearance(
                cleared={pid: per_person.get(pid, {}).get("cleared") is True for pid in ids},
                reasons={pid: str(per_person.get(pid, {}).get("reason") or "") for pid in ids})
        except RpcError as exc:
            log.warning("risk clearance for case %s not available: %s", case.case_id, exc)
            return RiskClearance(unavailable=str(exc)[:200])
        except (KeyError, TypeError, AttributeError) as exc:
            log.warning("risk clearance for case %s malformed: %r", case.case_id, exc)
            return RiskClearance(unavailable="the risk service gave an answer this service cannot read")


class RpcFacilitatorRegister:
    def __init__(self, rpc, timeout: float):
        self.rpc = rpc
        self.timeout = timeout

    def records(self, county: str, facilitator_ids: list[str]) -> dict[str, FacilitatorRecord]:
        try:
            answer = self.rpc.call("scheduling", "facilitator_records", county=county,
                                   facilitator_ids=facilitator_ids, timeout=self.timeout)
            records = {}
            for r in answer:
                expires = r.get("vetting_expires_on")
                records[str(r["facilitator_id"])] = FacilitatorRecord(
                    facilitator_id=str(r["facilitator_id"]), county=str(r["county"]), active=r["active"] is True,
                    vetting_expires_on=date.fromisoformat(expires) if expires else None,
                    training_level=str(r.get("training_level") or ""), name=str(r.get("name") or ""))
            return records
        except RpcError as exc:
            raise Unavailable(f"the facilitator register (scheduling service) could not be asked: {exc}"[:300]) from None
        except (KeyError, TypeError, AttributeError, ValueError):
            raise Unavailable("the facilitator register (scheduling service) gave an answer this service "
                              "cannot read") from None
