"""The referrals nameko worker: follows case events to keep referral status current."""
from __future__ import annotations

from mend_common.envelope import Envelope
from mend_common.nameko_ext import UnitOfWorkProvider, WorkerBase, event_batch_subscriber

from ..adapters.tables import platform
from ..service_layer import services
from ..service_layer.unit_of_work import ReferralsChainedUnitOfWork, ReferralsUnitOfWork


class ReferralsWorker(WorkerBase):
    name = "referrals"
    uow = UnitOfWorkProvider(ReferralsUnitOfWork, ReferralsChainedUnitOfWork, platform, "referrals")

    @event_batch_subscriber("cases", "case_opened")
    def on_case_opened(self, bodies):
        services.record_cases_opened(self.uow, [Envelope.from_dict(body) for body in bodies],
                                     "referrals.on_case_opened")

    @event_batch_subscriber("cases", "eligibility_decided")
    def on_eligibility_decided(self, bodies):
        services.record_case_events(self.uow, [Envelope.from_dict(body) for body in bodies],
                                    "referrals.on_eligibility_decided")

    @event_batch_subscriber("cases", "case_closed")
    def on_case_closed(self, bodies):
        services.record_case_events(self.uow, [Envelope.from_dict(body) for body in bodies],
                                    "referrals.on_case_closed")
