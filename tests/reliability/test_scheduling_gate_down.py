"""The scheduling service's safety gate fails closed. With the risk worker stopped, a conference
cannot be booked, by hand or from an accepted proposal, even for a case whose participants all
have approved assessments: the booking is refused saying the gate did not answer, and nothing is
stored. Once the worker is back, the same booking goes through."""
from __future__ import annotations

import grpc
import pytest

from mend.scheduling.v1 import scheduling_pb2 as pb
from mend_cli.pytest_stack import make_tenant
from tests.support.case_flow import refused
from tests.support.scheduling import (Scheduling, book, cleared_case, instant, local, next_monday,
                                      register_facilitator, request_meeting, save_venue)
from tests.support.stacks import private_stack

pytestmark = pytest.mark.slow

WORKER = "risk-worker"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gate_stack(request, tmp_path_factory):
    with private_stack(tmp_path_factory, request, request.param) as stack:
        yield stack


def test_with_the_risk_worker_down_no_meeting_is_booked_and_with_it_back_it_is(gate_stack):
    stack = gate_stack
    tenant = make_tenant(stack)
    sched = Scheduling(tenant)
    first, second = register_facilitator(tenant, "Max First"), register_facilitator(tenant, "Ned Second")
    venue = save_venue(tenant)
    case_id, people = cleared_case(tenant)     # approved assessments for everyone: only the worker is missing
    wanted = request_meeting(tenant, case_id, [people["victim"], people["responsible_person"]],
                             separate_waiting=True, supporter_present=True)
    starts = local(1, "10:00")

    def stored() -> tuple[list, str]:
        meetings = sched.ListMeetings(pb.ListMeetingsRequest(county=tenant.county, case_id=case_id,
                                                             include_cancelled=True)).meetings
        [request] = [r for r in sched.ListMeetingRequests(pb.ListMeetingRequestsRequest(
            county=tenant.county)).requests if r.request_id == wanted.request_id]
        return list(meetings), request.status

    stack.process(WORKER).stop()
    try:
        code, message, _ = refused(lambda: book(tenant, wanted.request_id, starts, [first, second], venue))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert "safety gate" in message and "did not answer" in message, message
        # An accepted proposal is refused the same way, booking by booking.
        proposal = sched.ProposeAllocation(pb.ProposeAllocationRequest(
            county=tenant.county, request_ids=[wanted.request_id], horizon_start=next_monday().isoformat(), weeks=1,
            time_limit_seconds=2))
        assert proposal.report.placed == 1, proposal
        [outcome] = sched.AcceptAllocationProposal(pb.AcceptAllocationProposalRequest(
            proposal_id=proposal.proposal_id)).outcomes
        assert not outcome.booked and any("did not answer" in r for r in outcome.reasons), outcome
        assert stored() == ([], "open")
    finally:
        stack.restart(WORKER)

    booked = book(tenant, wanted.request_id, starts, [first, second], venue)
    assert booked.status == "scheduled" and instant(booked.starts_at) == starts
    meetings, status = stored()
    assert [m.meeting_id for m in meetings] == [booked.meeting_id] and status == "booked"
