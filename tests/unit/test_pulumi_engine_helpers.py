"""Pure helpers of the pulumi engine, from tables of cases (no CLI, no automation)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from branchenv.engines.pulumi.backend import FileBucket, LockHolder, read_locks, redact_url
from branchenv.engines.pulumi.helpers import (
    REDACTED,
    newest_lock_age,
    parse_lock_holders,
    parse_version,
    plain_op,
    scrub,
    stderr_tail,
    structured_config,
)
from branchenv.errors import ConfigError

UTC = dt.UTC


def test_structured_config_parses_only_the_structured_keys() -> None:
    config = structured_config(
        {
            "aws:region": "us-east-1",
            "aws:endpoints": json.dumps([{"s3": "http://x"}]),
            "aws:defaultTags": json.dumps({"tags": {"branchenv:branch": "1234"}}),
            "branchenv:tags": "{}",
        }
    )
    assert config["aws:region"] == "us-east-1"
    assert config["aws:endpoints"] == [{"s3": "http://x"}]
    # A tag value stays the string it is (config set --path would make 1234 a number).
    assert config["aws:defaultTags"] == {"tags": {"branchenv:branch": "1234"}}
    assert config["branchenv:tags"] == "{}"
    with pytest.raises(ConfigError, match="aws:endpoints"):
        structured_config({"aws:endpoints": "not json"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("v3.211.0", (3, 211, 0)), ("3.272.1-dev.0\n", (3, 272, 1)), ("garbage", None)],
)
def test_parse_version(text: str, expected: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize(
    ("op", "plain"),
    [
        ("create-replacement", "replace"),
        ("delete-replaced", "replace"),
        ("replace", "replace"),
        ("read-replacement", "read"),
        ("import", "create"),
        ("refresh", "same"),
        ("update", "update"),
    ],
)
def test_plain_op_folds_a_replacements_steps_into_one(op: str, plain: str) -> None:
    assert plain_op(op) == plain


def test_scrub_and_redact() -> None:
    assert scrub("pass=hunter2 and hunter2", ("hunter2", "")) == f"pass={REDACTED} and {REDACTED}"
    assert redact_url("s3://user:pw@bucket/path?token=x") == "s3://bucket/path"
    assert redact_url("file:///tmp/state") == "file:///tmp/state"


def test_stderr_tail_keeps_diagnostics_and_the_end_of_stderr() -> None:
    text = (
        "code: 255\n stdout: Updating...\nerror: update failed\nmore\n"
        " stderr: line1\nline2\nerror: boom\n"
    )
    assert stderr_tail(text) == "error: update failed | line1 | line2 | error: boom"
    assert stderr_tail("code: 1\n stdout: \n stderr: ") == "(no error output)"


LOCKED = """error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with `pulumi cancel`.
  file:///tmp/b/.pulumi/locks/organization/p/s/abc.json: created by ci@runner-1 (pid 4242) at 2026-11-25T10:00:00.123456789Z
"""


def test_parse_lock_holders_reads_the_real_error_lines() -> None:
    [holder] = parse_lock_holders(LOCKED)
    assert holder.user == "ci" and holder.host == "runner-1" and holder.pid == 4242
    assert holder.created_at == dt.datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)
    assert parse_lock_holders("error: something else") == []


def test_lock_files_and_their_age(tmp_path: Path) -> None:
    folder = tmp_path / ".pulumi" / "locks" / "organization" / "proj" / "stk"
    folder.mkdir(parents=True)
    (folder / "1.json").write_text(
        json.dumps(
            {"pid": 7, "username": "u", "hostname": "h", "timestamp": "2026-11-25T09:00:00Z"}
        )
    )
    (folder / "2.json").write_text("not json")  # a torn file still counts, timed by mtime
    holders = read_locks(FileBucket(tmp_path), "proj", "stk")
    assert len(holders) == 2 and holders[0].pid == 7 and holders[1].user == "?"
    now = dt.datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
    only_first = [holders[0]]
    assert newest_lock_age(only_first, now) == 3600.0
    assert newest_lock_age([LockHolder("w", "u", "h", 1, None)], now) is None
    assert read_locks(FileBucket(tmp_path), "proj", "other") == []


def test_a_live_local_lock_holder_is_never_taken_for_stale() -> None:
    import os
    import socket
    import subprocess
    import sys

    from branchenv.engines.pulumi.engine import _holder_alive_here

    here = socket.gethostname()
    assert _holder_alive_here(LockHolder("w", "u", here, os.getpid(), None))
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert not _holder_alive_here(LockHolder("w", "u", here, done.pid, None))
    assert not _holder_alive_here(LockHolder("w", "u", "some-other-runner", os.getpid(), None))
