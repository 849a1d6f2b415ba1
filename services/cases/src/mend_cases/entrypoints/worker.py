"""The cases nameko worker: opens a case for every referral received."""
from __future__ import annotations

from mend_common.envelope import Envelope
from mend_common.nameko_ext import UnitOfWorkProvider, WorkerBase, event_batch_subscriber

from ..adapters.tables import platform
from ..service_layer import services
from ..service_layer.unit_of_work import CasesUnitOfWork


class CasesWorker(WorkerBase):
    name = "cases"
    uow = UnitOfWorkProvider(CasesUnitOfWork, None, platform, "cases")

    @event_batch_subscriber("referrals", "referral_received")
    def on_referral_received(self, bodies):
        services.open_cases_for_referrals(self.uow, [Envelope.from_dict(body) for body in bodies],
                                          "cases.on_referral_received")
