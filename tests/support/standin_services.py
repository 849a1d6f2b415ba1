"""A stand-in for the scheduling service's facilitator register, answering the cases service's
question over nameko RPC on the real broker, until that service exists. Each checks the caller's service
token exactly as a Mend worker does (RpcCaller), so the token's journey is tested too.

Run: python standin_services.py AMQP_URI PUBLIC_KEY_FILE COUNTY"""
import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402
from datetime import date, timedelta  # noqa: E402

from nameko.rpc import rpc  # noqa: E402

from mend_common.nameko_ext import RpcCaller  # noqa: E402

COUNTY = sys.argv[3] if len(sys.argv) > 3 else "test"
CALLERS: list[str] = []


class SchedulingStandIn:
    name = "scheduling"
    caller = RpcCaller()

    @rpc
    def facilitator_records(self, county, facilitator_ids):
        CALLERS.append(self.caller().label)
        current = (date.today() + timedelta(days=180)).isoformat()
        register = {
            "fac-advanced": {"county": COUNTY, "active": True, "vetting_expires_on": current,
                             "training_level": "advanced", "name": "Alex Advanced"},
            "fac-foundation": {"county": COUNTY, "active": True, "vetting_expires_on": current,
                               "training_level": "foundation", "name": "Fran Foundation"},
            "fac-inactive": {"county": COUNTY, "active": False, "vetting_expires_on": current,
                             "training_level": "advanced", "name": "Ina Inactive"},
        }
        return [dict(register[f], facilitator_id=f) for f in facilitator_ids if f in register]

    @rpc
    def callers(self):
        return list(CALLERS)


if __name__ == "__main__":
    from nameko.cli.run import run
    run([SchedulingStandIn], {"AMQP_URI": sys.argv[1], "MEND_TOKEN_PUBLIC_KEY_FILE": sys.argv[2],
                                           "max_workers": 10})
