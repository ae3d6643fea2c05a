"""The pulumi engine's own parts without a CLI: DIY bucket locks and tags, the engine-owned stack
settings files, planned physical names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from branchenv.engines.pulumi import backend as diy
from branchenv.engines.pulumi.plan import UNKNOWN, planned_name
from branchenv.engines.pulumi.settings import StackSettings

# --- planned physical names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "inputs", "expected"),
    [
        ("aws:s3/bucket:Bucket", {"bucket": "dev-artifacts"}, ("dev-artifacts", "bucket")),
        ("aws:sqs/queue:Queue", {"name": "dev-jobs"}, ("dev-jobs", "name")),
        # auto-named: the provider filled the name in and listed it in __defaults
        ("aws:sqs/queue:Queue", {"name": "jobs-1a2b3c4", "__defaults": ["name"]}, (None, "name")),
        ("aws:sqs/queue:Queue", {"name": f"x-{UNKNOWN}"}, (None, "name")),  # unknown until apply
        ("aws:sqs/queue:Queue", {}, (None, "name")),
        ("aws:rds/instance:Instance", {"identifier": "dev-db"}, ("dev-db", "identifier")),
        # names scoped to a parent cannot collide across stacks: not listed
        ("aws:apigatewayv2/stage:Stage", {"name": "$default"}, (None, None)),
        ("aws:iam/rolePolicy:RolePolicy", {"name": "inline"}, (None, None)),
    ],
)
def test_planned_name(
    type_: str, inputs: dict[str, object], expected: tuple[str | None, str | None]
) -> None:
    assert planned_name(type_, inputs) == expected


# --- DIY buckets: locks and tags ---------------------------------------------------------------


def bucket(tmp_path: Path, *, projects: bool = True) -> diy.FileBucket:
    b = diy.FileBucket(tmp_path)
    if projects:
        b.write(".pulumi/meta.yaml", b"version: 1\n")
    return b


def test_holding_a_lock_writes_one_lock_file_in_the_diy_layout_and_removes_it(
    tmp_path: Path,
) -> None:
    b = bucket(tmp_path)
    with diy.hold_lock(b, "proj", "stk"):
        (key,) = b.list(".pulumi/locks/organization/proj/stk/")
        content = json.loads(b.read(key) or b"")
        assert set(content) == {"pid", "username", "hostname", "timestamp"}
        assert diy.parse_time(content["timestamp"]) is not None
    assert b.list(".pulumi/locks/") == []


def test_a_lock_held_by_someone_else_refuses_and_leaves_theirs(tmp_path: Path) -> None:
    b = bucket(tmp_path)
    theirs = ".pulumi/locks/organization/proj/stk/theirs.json"
    b.write(theirs, json.dumps({"pid": 1, "username": "u", "hostname": "h"}).encode())
    with pytest.raises(diy.Locked) as caught, diy.hold_lock(b, "proj", "stk"):
        pass
    assert [h.where for h in caught.value.holders] == [theirs]
    assert caught.value.holders[0].created_at is not None  # no timestamp: the file's mtime
    assert b.list(".pulumi/locks/") == [theirs]


def test_legacy_backends_lock_by_stack_name_only(tmp_path: Path) -> None:
    b = bucket(tmp_path, projects=False)
    with diy.hold_lock(b, "proj", "stk"):
        assert len(b.list(".pulumi/locks/stk/")) == 1
    assert diy.lock_prefix("p", "s", projects=True) == ".pulumi/locks/organization/p/s/"


def test_tags_are_written_whole_in_the_tags_file_format(tmp_path: Path) -> None:
    b = bucket(tmp_path)
    diy.write_tags(b, "proj", "stk", {"branchenv:managed-by": "branchenv", "x": "1234"})
    data = json.loads(b.read(".pulumi/stacks/proj/stk.pulumi-tags") or b"")
    assert data == {"version": 1, "tags": {"branchenv:managed-by": "branchenv", "x": "1234"}}
    b.write(".pulumi/stacks/proj/stk.pulumi-tags", b"{ torn")
    diy.write_tags(b, "proj", "stk", {"a": "b"})  # an unreadable file of ours is replaced
    b.write(".pulumi/stacks/proj/stk.pulumi-tags", b'{"version": 2, "tags": {}}')
    with pytest.raises(diy.TagsFormatUnknown):
        diy.write_tags(b, "proj", "stk", {"a": "b"})


@pytest.mark.parametrize(
    ("url", "diy_", "shown"),
    [
        ("file:///tmp/state", True, "file:///tmp/state"),
        ("s3://team/branchenv?region=eu-west-1&endpoint=x", True, "s3://team/branchenv"),
        ("s3://user:secret@team/p", True, "s3://team/p"),
        ("https://api.pulumi.com", False, "https://api.pulumi.com"),
        ("gs://bucket", True, "gs://bucket"),
    ],
)
def test_backend_urls(url: str, diy_: bool, shown: str) -> None:
    assert diy.is_diy(url) is diy_
    assert diy.redact_url(url) == shown
    key = diy.backend_key(url)
    assert "secret" not in key and "/" not in key
    assert diy.backend_key(url) == key != diy.backend_key(url + "x")


def test_file_backend_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert diy.file_backend_root(f"file://{tmp_path}/x") == tmp_path / "x"
    assert diy.file_backend_root("file://~/state") == tmp_path / "state"
    assert diy.file_backend_root("s3://b") is None


# --- stack settings -----------------------------------------------------------------------------


def test_settings_live_per_backend_and_project_and_hold_exactly_the_desired_config(
    tmp_path: Path,
) -> None:
    one = StackSettings(tmp_path, "file:///a", "proj", {"name": "python"})
    two = StackSettings(tmp_path, "s3://team/x", "proj", {"name": "python"})
    assert one.root != two.root
    home = one.prepare()
    assert yaml.safe_load((home / "Pulumi.yaml").read_text()) == {
        "name": "proj",
        "runtime": {"name": "python"},
    }
    path = one.config_file("dev")
    path.write_text(
        yaml.safe_dump(
            {"encryptionsalt": "v1:salt", "config": {"aws:endpoints": "stale", "k": "v"}}
        )
    )
    one.write_config("dev", {"aws:region": "us-east-1", "branchenv:branch": "1234"})
    written = yaml.safe_load(path.read_text())
    assert written == {
        "encryptionsalt": "v1:salt",
        "config": {"aws:region": "us-east-1", "branchenv:branch": "1234"},
    }
    assert isinstance(written["config"]["branchenv:branch"], str)


def test_the_passphrase_source_is_recorded_per_stack(tmp_path: Path) -> None:
    settings = StackSettings(tmp_path, "file:///a", "proj", "python")
    assert settings.passphrase_source("dev") is None
    settings.record_passphrase_source("dev", "generated")
    assert settings.passphrase_source("dev") == "generated"
    assert settings.passphrase_source("other") is None
    settings.forget("dev")
    assert settings.passphrase_source("dev") is None
