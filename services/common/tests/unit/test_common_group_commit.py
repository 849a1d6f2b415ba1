"""GroupCommitter's hand-over between threads, without a database: every chain gets exactly its
own outcome, leadership passes on, and a failure inside the group write is never reported as a
successful write."""
from __future__ import annotations

import threading

import pytest

from mend_common.chain import GroupCommitter


class FakeChain:
    def __init__(self, name: str):
        self.name = name
        self.written_steps: list = []


def test_many_threads_each_get_their_own_outcome_and_the_committer_ends_idle(monkeypatch):
    committer = GroupCommitter(max_group=4)
    groups: list[list[str]] = []
    entered = threading.Event()
    release = threading.Event()

    def write(group):
        groups.append([w.chain.name for w in group])
        if len(groups) == 1:            # hold the first write so the others pile up behind it
            entered.set()
            release.wait(5)
        for waiting in group:
            if waiting.chain.name.startswith("bad"):
                waiting.error = ValueError(waiting.chain.name)
            else:
                waiting.result = [True]

    monkeypatch.setattr(GroupCommitter, "_write", staticmethod(write))
    outcomes: dict[str, object] = {}

    def commit(name):
        try:
            outcomes[name] = committer.run(FakeChain(name))
        except ValueError as error:
            outcomes[name] = f"error {error}"

    first = threading.Thread(target=commit, args=("first",))
    first.start()
    assert entered.wait(5)
    names = [f"good{i}" if i % 3 else f"bad{i}" for i in range(10)]
    threads = [threading.Thread(target=commit, args=(n,)) for n in names]
    for t in threads:
        t.start()
    while len(committer._waiting) < len(names):
        threading.Event().wait(0.01)
    release.set()
    for t in [first, *threads]:
        t.join(5)
    assert outcomes == {"first": [True], **{n: ([True] if n.startswith("good") else f"error {n}") for n in names}}
    assert groups[0] == ["first"] and all(len(g) <= 4 for g in groups)
    assert sorted(n for g in groups[1:] for n in g) == sorted(names)   # each chain written once
    assert not committer._busy and not committer._waiting


def test_a_failure_of_the_group_write_itself_is_an_error_for_every_chain_and_does_not_wedge(monkeypatch):
    committer = GroupCommitter()

    def broken(group):
        raise OSError("lost the database connection while merging")

    monkeypatch.setattr(GroupCommitter, "_write", staticmethod(broken))
    with pytest.raises(OSError):
        committer.run(FakeChain("a"))
    assert not committer._busy

    def fine(group):
        for waiting in group:
            waiting.result = []

    monkeypatch.setattr(GroupCommitter, "_write", staticmethod(fine))
    assert committer.run(FakeChain("b")) == []
