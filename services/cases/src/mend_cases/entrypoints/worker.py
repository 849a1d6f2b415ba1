"""The cases nameko worker: opens a case for every referral received."""
from __future__ import annotations

from mend_common.envelope import Envelope
from mend_common.nameko_ext import WorkerBase, event_subscriber
from mend_common.outbox import PlatformStore

from ..adapters.tables import platform
from ..service_layer import services
from ..service_layer.unit_of_work import CasesUnitOfWork


class CasesWorker(WorkerBase):
    name = "cases"

    @event_subscriber("referrals", "referral_received")
    def on_referral_received(self, body):
        store = PlatformStore(self.db, platform, "cases")
        services.open_case_for_referral(lambda: CasesUnitOfWork(self.db, store), Envelope.from_dict(body),
                                        "cases.on_referral_received")
