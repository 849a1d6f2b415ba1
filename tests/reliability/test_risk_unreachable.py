"""The safety gate fails closed. With the risk worker stopped, a case cannot move past risk and
safety and a meeting cannot be cleared, even with every assessment approved; once it is back,
the same questions are allowed."""
from __future__ import annotations

import grpc
import pytest

from mend.cases.v1 import cases_pb2 as pb
from mend_cli.pytest_stack import make_tenant
from mend_common.rpc import RpcClient
from mend_common.safety import ask_safety_gate
from tests.support.case_flow import Cases, assess_everyone, opened_case, parties, refused, to_risk_and_safety
from tests.support.stacks import private_stack

pytestmark = pytest.mark.slow

WORKER = "risk-worker"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def risk_stack(request, tmp_path_factory):
    with private_stack(tmp_path_factory, request, request.param) as stack:
        yield stack


def test_with_the_risk_worker_down_nothing_is_cleared_and_with_it_back_it_is(risk_stack):
    stack = risk_stack
    tenant = make_tenant(stack)
    cases = Cases(tenant)
    _, case_id = opened_case(tenant)
    case = to_risk_and_safety(cases, case_id)
    assess_everyone(tenant, case)     # approved assessments for everyone: only the worker is missing
    people = [parties(case)["victim"], parties(case)["responsible_person"]]
    plan = ["co_facilitation", "separate_arrival_and_waiting", "supporter_present", "prison_venue",
            "specialist_facilitator"]
    scheduling = RpcClient(stack.amqp_uri, timeout=10, token=stack.issuer.issue_service("scheduling"))
    try:
        def gate():
            return ask_safety_gate(scheduling, county=tenant.county, case_id=case_id, participant_ids=people,
                                   meeting_kind="indirect_session", plan_measures=plan, timeout=2)

        stack.process(WORKER).stop()
        answer = gate()
        assert not answer.allowed and "did not answer" in answer.reasons[0]
        code, _, details = refused(lambda: cases.MoveStage(case_id=case_id, to_stage=pb.STAGE_PREPARATION))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert details[0][0] == "risk_assessment_approved" and "could not confirm" in details[0][1]

        stack.restart(WORKER)
        assert gate().allowed
        assert cases.MoveStage(case_id=case_id, to_stage=pb.STAGE_PREPARATION).stage == pb.STAGE_PREPARATION
    finally:
        scheduling.close()
