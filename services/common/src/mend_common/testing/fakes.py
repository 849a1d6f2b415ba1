"""Test doubles for the units of work, for service-layer unit tests without a database."""
from __future__ import annotations

from typing import Callable


class _Deferred:
    """Stands in for a repository: calls are queued, to run when the unit of work commits."""

    def __init__(self, queue: list, target, gates: set[str]):
        self._queue, self._target, self._gates = queue, target, gates

    def __getattr__(self, name: str):
        method = getattr(self._target, name)

        def deferred(*args, **kwargs):
            self._queue.append((name in self._gates, lambda: method(*args, **kwargs)))
        return deferred


class FakeChainedUnitOfWork:
    """Behaves like ChainedUnitOfWork over an immediate fake unit of work: writes are queued and
    run at exit; a gate that writes nothing (returns a falsy value) skips every later write."""

    def __init__(self, immediate_factory: Callable, repository_gates: dict[str, set[str]]):
        self._immediate_factory = immediate_factory
        self._repository_gates = repository_gates
        self.gates: list[bool] = []

    def __enter__(self):
        self._immediate = self._immediate_factory()
        self._immediate.__enter__()
        self._queue: list = []
        for name, gates in self._repository_gates.items():
            setattr(self, name, _Deferred(self._queue, getattr(self._immediate, name), gates))
        return self

    def claim_event(self, consumer, event_id):
        self._queue.append((True, lambda: self._immediate.claim_event(consumer, event_id)))

    def publish(self, envelope):
        self._queue.append((False, lambda: self._immediate.publish(envelope)))

    def audit(self, *args, **kwargs):
        self._queue.append((False, lambda: self._immediate.audit(*args, **kwargs)))

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return self._immediate.__exit__(exc_type, exc, tb)
        self.gates = []
        try:
            for is_gate, write in self._queue:
                if not all(self.gates):
                    if is_gate:
                        self.gates.append(False)
                    continue
                result = write()
                if is_gate:
                    self.gates.append(bool(result))
        except Exception as error:  # like the real chain: all or nothing
            self._immediate.__exit__(type(error), error, error.__traceback__)
            raise
        return self._immediate.__exit__(None, None, None)

    @property
    def completed(self) -> bool:
        return all(self.gates)


class FakeUnitsOfWork:
    """`uows()` gives the immediate fake; `uows.atomic()` the chained one over it."""

    def __init__(self, immediate_factory: Callable, repository_gates: dict[str, set[str]]):
        self._immediate_factory = immediate_factory
        self._repository_gates = repository_gates

    def __call__(self):
        return self._immediate_factory()

    def atomic(self):
        return FakeChainedUnitOfWork(self._immediate_factory, self._repository_gates)
