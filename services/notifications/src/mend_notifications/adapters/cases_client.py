"""Participants' names and contact details, asked of the cases service over nameko RPC with a
timeout (cases.participant_contacts, for the notifications service's token only)."""
from __future__ import annotations

import logging

from mend_common.errors import NotFound, Unavailable
from mend_common.rpc import RpcError

log = logging.getLogger(__name__)


class RpcCaseContacts:
    def __init__(self, rpc, timeout: float):
        self.rpc = rpc
        self.timeout = timeout

    def contacts(self, county: str, case_id: str) -> dict | None:
        try:
            answer = self.rpc.call("cases", "participant_contacts", case_id=case_id, county=county,
                                   timeout=self.timeout)
        except RpcError as exc:
            if exc.exc_type in (NotFound.__name__, "ValidationFailed"):
                return None
            log.warning("contacts of case %s not available: %s", case_id, exc)
            raise Unavailable("the cases service could not be asked for contact details; try again") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("participants"), list):
            raise Unavailable("the cases service gave an answer this service cannot read")
        return answer
