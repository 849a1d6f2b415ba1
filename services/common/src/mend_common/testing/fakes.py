"""Test doubles for the units of work, for service-layer unit tests without a database."""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterator


class FakePlatformStore:
    """What a service's database would hold of the platform tables (outbox, processed events,
    audit), shared by every unit of work of one test. Services add their own tables."""

    def __init__(self):
        self.events: list = []
        self.audits: list[dict] = []
        self.claimed: set[tuple[str, str]] = set()
        self.commits = 0
        self.rollbacks = 0

    def snapshot(self) -> dict:
        return copy.deepcopy({k: v for k, v in vars(self).items() if k not in ("commits", "rollbacks")})

    def restore(self, snap: dict) -> None:
        vars(self).update(snap)


class FakePlatformUnitOfWork:
    """One transaction over a FakePlatformStore: everything done inside commits together, or is
    rolled back on an error. Services attach fake repositories in __init__."""

    def __init__(self, store: FakePlatformStore):
        self.store = store

    def __enter__(self):
        self._snapshot = self.store.snapshot()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.store.commits += 1
        else:
            self.store.restore(self._snapshot)
            self.store.rollbacks += 1
        return False

    def publish(self, envelope) -> None:
        self.store.events.append(envelope)

    def claim_events(self, consumer: str, event_ids: list[str]) -> set[str]:
        fresh = {e for e in event_ids if (consumer, e) not in self.store.claimed}
        self.store.claimed.update((consumer, e) for e in fresh)
        return fresh

    def audit(self, principal, action, resource_type, resource_id, county, reason=None, correlation_id=None) -> None:
        record = {"principal": principal, "action": action, "resource_type": resource_type,
                  "resource_id": resource_id, "county": county, "reason": reason}
        if correlation_id is not None:   # given explicitly (a batch of events); else the current one
            record["correlation_id"] = correlation_id
        self.store.audits.append(record)


def json_paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path into a JSON tree (dict keys and list indexes), for mutation tests."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from json_paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from json_paths(value, prefix + (index,))


def replace_at(tree: Any, path: tuple, value: Any) -> None:
    """Put value at a (non-empty) path given by json_paths, in place."""
    target = tree
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


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

    def __init__(self, immediate_factory: Callable, repository_gates: dict[str, set[str]] | None = None):
        self._immediate_factory = immediate_factory
        self._repository_gates = repository_gates or {}

    def __call__(self):
        return self._immediate_factory()

    def atomic(self):
        return FakeChainedUnitOfWork(self._immediate_factory, self._repository_gates)
