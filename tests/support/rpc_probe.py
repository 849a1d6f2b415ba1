"""A small nameko service for testing mend_common's RPC plumbing (RpcClient, TimedRpcProxy,
correlation ids) against the real broker. Run: python rpc_probe.py AMQP_URI RPC_TIMEOUT_SECONDS"""
import eventlet

eventlet.monkey_patch()

import sys  # noqa: E402

from nameko.rpc import rpc  # noqa: E402

from mend_common.logs import correlation_id_var  # noqa: E402
from mend_common.nameko_ext import EventContext, TimedRpcProxy  # noqa: E402
from mend_common.rpc import RpcError  # noqa: E402


class RpcProbe:
    name = "rpcprobe"
    context = EventContext()
    me = TimedRpcProxy("rpcprobe")
    nobody = TimedRpcProxy("nobody-runs-this")

    @rpc
    def add(self, a, b=0):
        return a + b

    @rpc
    def whoami(self):
        """The correlation id this worker runs under."""
        return correlation_id_var.get()

    @rpc
    def ask_whoami(self):
        """A second hop: the id must arrive there too."""
        return {"here": correlation_id_var.get(), "there": self.me.whoami()}

    @rpc
    def fail(self, message):
        raise ValueError(message)

    @rpc
    def slow(self, seconds):
        eventlet.sleep(seconds)
        return "done"

    @rpc
    def ask_slow(self, seconds):
        try:
            return self.me.slow(seconds)
        except RpcError as exc:
            return exc.exc_type

    @rpc
    def ask_nobody(self):
        try:
            return self.nobody.anything()
        except RpcError as exc:
            return exc.exc_type


if __name__ == "__main__":
    from nameko.cli.run import run
    run([RpcProbe], {"AMQP_URI": sys.argv[1], "MEND_RPC_TIMEOUT": float(sys.argv[2]), "max_workers": 20})
