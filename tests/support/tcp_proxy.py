"""A small threaded TCP proxy on 127.0.0.1 that a test can cut and restore, to take a service's
connection to RabbitMQ (or anything else) away while the rest of the system keeps running.

    proxy = TcpProxy("127.0.0.1", 5672).start()
    uri = f"amqp://guest:guest@127.0.0.1:{proxy.port}/vhost"
    proxy.cut()      # every live connection is reset; new ones are closed at once
    proxy.restore()  # new connections are forwarded again
    proxy.close()
"""
from __future__ import annotations

import select
import socket
import struct
import threading


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0): the peer sees the connection die, as in a network fault."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((listen_host, 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._cut = False
        self._closed = False
        self.accepted = 0          # connections forwarded
        self.refused = 0           # connections closed because the proxy was cut
        self._thread: threading.Thread | None = None

    # -- control ----------------------------------------------------------------------
    def start(self) -> "TcpProxy":
        self._thread = threading.Thread(target=self._accept_loop, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    @property
    def is_cut(self) -> bool:
        return self._cut

    @property
    def live_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def cut(self) -> None:
        """Reset every live connection and refuse new ones until restore()."""
        with self._lock:
            self._cut = True
            pairs, self._pairs = self._pairs, set()
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        try:
            self._listener.close()
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- forwarding -------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.2)
                if not ready:
                    continue
                client, _ = self._listener.accept()
            except OSError:
                if self._closed:
                    return
                continue
            if self._cut:
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            pair = (client, upstream)
            with self._lock:
                if self._cut:  # cut while we were connecting upstream
                    self.refused += 1
                    _reset(client)
                    _reset(upstream)
                    continue
                self._pairs.add(pair)
                self.accepted += 1
            threading.Thread(target=self._pump, args=(pair,), name=f"tcp-proxy-{self.port}-pump",
                             daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, upstream = pair
        peer = {client: upstream, upstream: client}
        try:
            while True:
                with self._lock:
                    if pair not in self._pairs:
                        return  # cut() has reset both ends
                try:
                    readable, _, _ = select.select([client, upstream], [], [], 0.2)
                except (OSError, ValueError):
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                still_ours = pair in self._pairs
                self._pairs.discard(pair)
            if still_ours:
                for sock in pair:
                    try:
                        sock.close()
                    except OSError:
                        pass
