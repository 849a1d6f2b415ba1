"""Asking the risk service's safety gate before a meeting is booked. Anything but a clear,
well-formed allow is a deny: no answer in time, no risk worker, an error, a malformed reply.

Contract: risk.check_meeting_safety(county, case_id, participant_ids, meeting_kind, plan_measures)
    -> {"allowed": bool, "reasons": [str, ...]}
`rpc` is anything with RpcClient's call(service, method, *, timeout, **kwargs): the api's
RpcClient or a worker's TimedRpcProxy("risk").
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from .rpc import RpcError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SafetyAnswer:
    allowed: bool
    reasons: tuple[str, ...]


def ask_safety_gate(rpc, *, county: str, case_id: str, participant_ids: Sequence[str], meeting_kind: str,
                    plan_measures: Sequence[str] = (), timeout: float = 5.0) -> SafetyAnswer:
    try:
        answer = rpc.call("risk", "check_meeting_safety", county=county, case_id=case_id,
                          participant_ids=list(participant_ids), meeting_kind=meeting_kind,
                          plan_measures=list(plan_measures), timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - a broker or socket error is as much a deny as a timeout
        kind = exc.exc_type if isinstance(exc, RpcError) else type(exc).__name__
        log.warning("safety gate for case %s not reachable: %s", case_id, exc)
        return SafetyAnswer(False, (f"the risk service's safety gate did not answer ({kind}): deny",))
    if not isinstance(answer, dict) or not isinstance(answer.get("reasons", []), list):
        return SafetyAnswer(False, ("the safety gate's answer could not be read: deny",))
    reasons = tuple(str(r) for r in answer.get("reasons", []))
    # Only the literal True allows: a missing or odd value is a deny.
    return SafetyAnswer(answer.get("allowed") is True, reasons)
