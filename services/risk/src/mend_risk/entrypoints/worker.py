"""The risk nameko worker: lets assessments lapse when the case moves on, closes or a
participant withdraws, sweeps for assessments past their validity, and answers the cases and
scheduling services' safety questions over RPC."""
from __future__ import annotations

import os

from nameko.rpc import rpc
from nameko.timer import timer

from mend_common.envelope import Envelope
from mend_common.nameko_ext import RpcCaller, TimedRpcProxy, UnitOfWorkProvider, WorkerBase, event_batch_subscriber

from ..adapters.cases_client import RpcCaseFacts
from ..adapters.tables import platform
from ..bootstrap import risk_settings
from ..service_layer import services
from ..service_layer.unit_of_work import RiskUnitOfWork

SETTINGS = risk_settings(os.environ)


class RiskWorker(WorkerBase):
    name = "risk"
    uow = UnitOfWorkProvider(RiskUnitOfWork, None, platform, "risk")
    caller = RpcCaller()
    cases_rpc = TimedRpcProxy("cases")

    def _lapse(self, bodies, consumer):
        services.on_case_events(self.uow, [Envelope.from_dict(body) for body in bodies], consumer)

    @event_batch_subscriber("cases", "stage_changed")
    def on_stage_changed(self, bodies):
        self._lapse(bodies, "risk.on_stage_changed")

    @event_batch_subscriber("cases", "consent_withdrawn")
    def on_consent_withdrawn(self, bodies):
        self._lapse(bodies, "risk.on_consent_withdrawn")

    @event_batch_subscriber("cases", "case_closed")
    def on_case_closed(self, bodies):
        self._lapse(bodies, "risk.on_case_closed")

    @timer(interval=SETTINGS.sweep_seconds)
    def sweep_expired(self):
        services.sweep_expired(self.uow)

    @rpc
    def case_clearance(self, county, case_id, stage, participant_ids):
        """For the cases service, before a move that needs risk cleared."""
        return services.case_clearance(self.uow, self.caller(), county=county, case_id=case_id, stage=stage,
                                       participant_ids=participant_ids)

    @rpc
    def check_meeting_safety(self, county, case_id, participant_ids, meeting_kind, plan_measures):
        """The safety gate for the scheduling service: {"allowed": bool, "reasons": [...]}."""
        decision = services.check_meeting_safety(
            self.uow, RpcCaseFacts(self.cases_rpc, SETTINGS.remote_timeout), self.caller(), case_id=case_id,
            participant_ids=participant_ids, meeting_kind=meeting_kind, plan_measures=plan_measures, county=county)
        return {"allowed": decision.allowed, "reasons": list(decision.reasons)}
