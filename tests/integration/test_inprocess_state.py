"""The inprocess engine's state files under concurrent writers: threads of one process (the
SDK registers resources from several threads) and separate processes. Every write is atomic;
a reader never sees a partial file; no writer trips over another's temp file."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from branchenv.engines.inprocess.state import (
    ResourceEntry,
    StackState,
    StateStore,
    StateUnreadable,
)


def _state(n: int) -> StackState:
    return StackState(
        project="p",
        stack="s",
        target={"name": "local"},
        tags={"branchenv:managed-by": "branchenv"},
        resources=[
            ResourceEntry(
                urn=f"urn:{i}",
                type="aws:s3/bucket:Bucket",
                name=f"b{i}",
                id=f"b{i}",
                outputs={"pad": "x" * 2000},
                dependencies=[],
            )
            for i in range(n)
        ],
        outputs={},
    )


def test_threads_of_one_process_write_one_state_safely(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(n: int) -> None:
        try:
            for _ in range(200):
                store.save(_state(n))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    def read() -> None:
        while not stop.is_set():
            try:
                got = store.load("p", "s")
            except BaseException as exc:
                errors.append(exc)
                return
            assert got is None or len(got.resources) in (1, 2, 3, 4)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(n,)) for n in (1, 2, 3, 4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    reader.join()
    assert errors == []
    assert not list(tmp_path.rglob("*.tmp")), "temp files left behind"


def _write_many(root: str, n: int) -> None:
    store = StateStore(Path(root))
    for _ in range(100):
        store.save(_state(n))


def test_processes_write_one_state_safely(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), n)) for n in (1, 2, 3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    data = json.loads((tmp_path / "p" / "s.json").read_text())
    assert len(data["resources"]) in (1, 2, 3)
    assert not list(tmp_path.rglob("*.tmp"))


def test_unknown_keys_are_kept_at_every_level(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(_state(1))
    path = tmp_path / "p" / "s.json"
    data = json.loads(path.read_text())
    data["from_the_future"] = {"a": 1}
    data["resources"][0]["also_new"] = [1]
    data["pending"] = [{"op": "creating", "urn": "u", "type": "t", "inputs": {}, "new": True}]
    path.write_text(json.dumps(data))
    state = store.load("p", "s")
    assert state is not None
    store.save(state)
    again = json.loads(path.read_text())
    assert again["from_the_future"] == {"a": 1}
    assert again["resources"][0]["also_new"] == [1]
    assert again["pending"][0]["new"] is True


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"project": "p", "stack": "s", "resources": [', "not valid JSON"),
        ("[1, 2]", "not an object"),
        ('{"version": 99, "project": "p", "stack": "s"}', "newer branchenv"),
        ('{"project": "p", "stack": "s", "resources": [{"urn": "u"}]}', "no 'type'"),
        ("\xff\xfe", "not"),
    ],
)
def test_an_unreadable_state_needs_attention_and_is_never_skipped(
    tmp_path: Path, text: str, reason: str
) -> None:
    store = StateStore(tmp_path)
    store.save(_state(1))  # a good state first, so a last good copy exists
    store.save(_state(2))
    path = tmp_path / "p" / "s.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(StateUnreadable) as err:
        store.load("p", "s")
    message = str(err.value)
    assert reason in message and str(path) in message and "\n" not in message
    assert f"cp {path}.bak {path}" in message  # the fix, with the last good copy
    [scanned] = store.scan("p")
    assert scanned.stack == "s" and scanned.state is None and scanned.problem is not None
    assert json.loads((tmp_path / "p" / "s.json.bak").read_text())["resources"]
