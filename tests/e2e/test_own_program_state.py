"""Issue 15, item 5, as a user meets it: a state file written by a newer branchenv (unknown
keys) or cut short (a full disk, an editor) on the inprocess engine. Readers tolerate the first;
the second is a stack that needs attention: listed, never hidden, never reaped, never swept
around, and up/down/outputs say what to do in one line."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from branchenv.naming import names_for
from tests.e2e.own_project import UserProject, buckets


def branch() -> str:
    return f"feature/state-{uuid.uuid4().hex[:8]}"


def state_file(project: UserProject, b: str) -> Path:
    return project.state_dir / "inprocess" / "acme-shop" / f"{names_for(b).stack}.json"


def test_unknown_keys_in_a_state_file_are_tolerated(own_project: UserProject) -> None:
    project = own_project
    newer, expired = branch(), branch()
    try:
        project.ok("up", "--branch", newer)
        project.ok("up", "--branch", expired, "--ttl", "1s")
        path = state_file(project, newer)
        data = json.loads(path.read_text())
        data["resources"][0]["written_by_a_newer_branchenv"] = {"x": 1}
        data["a_new_top_level_key"] = [1, 2]
        path.write_text(json.dumps(data))

        rows = {r["stack"]: r for r in project.json("ls")}
        assert rows[names_for(newer).stack]["resource_count"] == 2
        time.sleep(1.5)
        reaped = project.json("reap", "--yes")
        assert [r["stack"] for r in reaped["reaped"]] == [names_for(expired).stack]
        assert reaped["failed"] == 0
        project.ok("cost", "--all")
        assert project.json("outputs", "--branch", newer)["bucket"].endswith("-data")
        again = project.json("up", "--branch", newer)
        assert again["changes"]["create"] == 0
        # What this version does not know is kept for the version that wrote it.
        kept = json.loads(path.read_text())
        assert kept["a_new_top_level_key"] == [1, 2]
    finally:
        project.run("down", "--branch", newer)
        project.run("down", "--branch", expired)


def test_a_truncated_state_file_is_listed_as_needing_attention(own_project: UserProject) -> None:
    project = own_project
    b = branch()
    stack = names_for(b).stack
    path = state_file(project, b)
    text = ""
    try:
        project.ok("up", "--branch", b, "--ttl", "1s")
        target = project.target()
        text = path.read_text()
        path.write_text(text[: len(text) // 2])
        time.sleep(1.5)  # expired too: still never reaped, since it cannot be read

        rows = {r["stack"]: r for r in project.json("ls")}
        assert stack in rows, "a stack whose state cannot be read is hidden from ls"
        assert rows[stack]["attention"], rows[stack]
        human = project.ok("ls")
        assert stack in human.stdout and "attention" in human.stdout

        reaped = project.json("reap", "--yes", "--orphans")
        assert stack not in [r["stack"] for r in reaped["reaped"]]
        assert not [o for o in reaped["orphans"] if o["stack"] == stack], reaped["orphans"]
        assert buckets(target, names_for(b).prefix) == {f"{names_for(b).prefix}-data"}

        for command in (["up"], ["down"], ["outputs"]):
            proc = project.run(*command, "--branch", b)
            assert proc.returncode == 1, (command, proc.stderr)
            assert "Traceback" not in proc.stderr
            lines = [line for line in proc.stderr.splitlines() if "error" in line]
            assert len(lines) == 1, proc.stderr
            assert str(path) in lines[0] and "restore" in lines[0], lines[0]
        assert buckets(target, names_for(b).prefix) == {f"{names_for(b).prefix}-data"}
    finally:
        # Put back what can be cleaned up from, then clean up.
        if text:
            path.write_text(text)
        project.run("down", "--branch", b)
