"""The cases nameko worker: opens a case for every referral received, sweeps for overdue outcome
items and breached Victims' Code clocks, and answers other services' questions over RPC."""
from __future__ import annotations

import os

from nameko.rpc import rpc
from nameko.timer import timer

from mend_common.envelope import Envelope
from mend_common.nameko_ext import RpcCaller, UnitOfWorkProvider, WorkerBase, event_batch_subscriber

from ..adapters.tables import platform
from ..bootstrap import case_settings
from ..service_layer import services
from ..service_layer.unit_of_work import CasesUnitOfWork

SETTINGS = case_settings(os.environ)
# How often each worker looks for overdue items and breached clocks. Every worker may sweep:
# each row is flagged (and its event published) once, whichever sweep gets it.
SWEEP_SECONDS = SETTINGS.sweep_seconds


class CasesWorker(WorkerBase):
    name = "cases"
    uow = UnitOfWorkProvider(CasesUnitOfWork, None, platform, "cases")
    caller = RpcCaller()

    @event_batch_subscriber("referrals", "referral_received")
    def on_referral_received(self, bodies):
        services.open_cases_for_referrals(self.uow, [Envelope.from_dict(body) for body in bodies],
                                          "cases.on_referral_received", SETTINGS.rules)

    @timer(interval=SWEEP_SECONDS)
    def sweep_due(self):
        services.sweep_due(self.uow, SETTINGS.rules)

    @rpc
    def case_participants(self, case_id, county):
        """Participants with consent state and contact preferences, for Mend services only."""
        return services.participants_for_service(self.uow, self.caller(), case_id, county)

    @rpc
    def participant_contacts(self, case_id, county):
        """Names and contact details, for the notifications service only."""
        return services.participant_contacts_for_service(self.uow, self.caller(), case_id, county)

