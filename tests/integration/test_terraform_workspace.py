"""The terraform engine's internals against the real terraform CLI and the local cloud: the
command gateway, provider installation from the mirror, the work dir, the override file, the
S3 backend with its lock file, the sidecar, no drift after apply."""

from __future__ import annotations

import json
import stat
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from branchenv.engines.terraform import cmd, workspace
from branchenv.engines.terraform.backend import LOCAL_STATE_BUCKET, BackendSpec, state_store
from branchenv.engines.terraform.options import TerraformOptions
from branchenv.engines.terraform.override import LocalWiring, endpoint_services
from branchenv.errors import EngineError, StackLocked
from branchenv.targets import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, Target
from tests.tfsupport import PROGRAMS, terraform_bin, terraform_mirror

__all__ = ["terraform_bin", "terraform_mirror"]  # fixtures, used by name

pytestmark = pytest.mark.terraform

IDENTITY = {"branchenv:managed-by": "branchenv", "branchenv:stack": "placeholder"}


def _fake_terraform(tmp_path: Path, script: str) -> str:
    path = tmp_path / "terraform"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_gateway_retries_only_what_the_table_names(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    binary = _fake_terraform(
        tmp_path,
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}\n"
        'if [ $n -lt 3 ]; then echo "Error: RequestError: send request failed" >&2; exit 1; fi\n'
        'echo "applied with secret-value-123"\n',
    )
    opts = TerraformOptions(
        work_dir=tmp_path, binary=binary, retry_wait_s=0.0, secrets=("secret-value-123",)
    )
    lines: list[str] = []
    waits: list[float] = []
    result = cmd.run(opts, ["apply"], on_output=lines.append, sleep=waits.append)
    assert result.attempts == 3 and result.returncode == 0
    assert "applied with ***" in lines and not any("secret-value-123" in x for x in lines)
    assert len(waits) == 2


def test_gateway_never_retries_a_command_that_was_interrupted(tmp_path: Path) -> None:
    """A terraform stopped by SIGINT (a second Ctrl-C) whose interrupted calls printed a
    retryable error is not started again: the stop stands."""
    counter = tmp_path / "count"
    binary = _fake_terraform(
        tmp_path,
        f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}\n"
        'printf "\\nInterrupt received.\\nPlease wait for Terraform to exit or data loss may '
        'occur.\\nGracefully shutting down...\\n"\n'
        'echo "Error: RequestError: send request failed" >&2\nexit 1\n',
    )
    opts = TerraformOptions(work_dir=tmp_path, binary=binary, retry_wait_s=0.0)
    with pytest.raises(EngineError, match="send request failed"):
        cmd.run(opts, ["apply"], sleep=lambda _s: None)
    assert counter.read_text().strip() == "1"


def test_gateway_maps_failures_at_the_boundary(tmp_path: Path) -> None:
    binary = _fake_terraform(
        tmp_path,
        'echo "Error: Invalid reference" >&2\necho "  token=hunter2" >&2\n'
        'echo "Error: Unsupported argument hunter2" >&2\nexit 1\n',
    )
    opts = TerraformOptions(work_dir=tmp_path, binary=binary, secrets=("hunter2",))
    with pytest.raises(EngineError) as caught:
        cmd.run(opts, ["plan"], sleep=lambda _s: None)
    message = str(caught.value)
    assert message.startswith("terraform plan failed (exit 1): Invalid reference")
    assert "Unsupported argument ***" in message and "hunter2" not in message
    locked = _fake_terraform(
        tmp_path,
        'printf "Error: Error acquiring the state lock\\n\\nLock Info:\\n  ID:        abc\\n'
        '  Operation: OperationTypeApply\\n  Who:       me@host\\n  Created:   2026-01-01\\n" >&2\n'
        "exit 1\n",
    )
    with pytest.raises(StackLocked, match=r"who me@host.*id abc"):
        cmd.run(TerraformOptions(work_dir=tmp_path, binary=locked), ["apply"])


def test_gateway_reads_the_machine_readable_ui_as_terraform_prints_it(tmp_path: Path) -> None:
    """`-json` output (plan -json): each message reaches the sink as the line a person reads,
    the messages are kept, and an error diagnostic is mapped as the plain one is."""
    version = '{"@level":"info","@message":"Terraform 1.11.4","type":"version","ui":"1.2"}'
    change = (
        '{"@level":"info","@message":"aws_s3_bucket.b: Plan to update","type":"planned_change",'
        '"change":{"resource":{"addr":"aws_s3_bucket.b"},"action":"update"}}'
    )
    binary = _fake_terraform(
        tmp_path, f"echo '{version}'\necho '{change}'\necho 'not json: kept as it is'\n"
    )
    lines: list[str] = []
    result = cmd.run(
        TerraformOptions(work_dir=tmp_path, binary=binary),
        ["plan"],
        on_output=lines.append,
        json_ui=True,
    )
    assert lines == [
        "Terraform 1.11.4",
        "aws_s3_bucket.b: Plan to update",
        "not json: kept as it is",
    ]
    assert [m["type"] for m in result.messages] == ["version", "planned_change"]
    diagnostic = (
        '{"@level":"error","@message":"Error: Error acquiring the state lock","type":"diagnostic",'
        '"diagnostic":{"severity":"error","summary":"Error acquiring the state lock","detail":'
        '"Lock Info:\\n  ID:        abc\\n  Operation: OperationTypeApply\\n  Who:       me@host"}}'
    )
    locked = _fake_terraform(tmp_path, f"echo '{diagnostic}'\nexit 1\n")
    with pytest.raises(StackLocked, match=r"who me@host.*id abc"):
        cmd.run(TerraformOptions(work_dir=tmp_path, binary=locked), ["plan"], json_ui=True)
    failed = _fake_terraform(
        tmp_path,
        """echo '{"@message":"Error: Invalid reference","type":"diagnostic","diagnostic":'"""
        """'{"severity":"error","summary":"Invalid reference","detail":"x"}}'\nexit 1\n""",
    )
    with pytest.raises(EngineError, match=r"^terraform plan failed \(exit 1\): Invalid reference$"):
        cmd.run(TerraformOptions(work_dir=tmp_path, binary=failed), ["plan"], json_ui=True)


def _workspace(
    tmp_path: Path,
    target: Target,
    mirror: Path,
    module: Path,
    *,
    stack: str,
    binary: str,
    lock_timeout_s: int = 30,
    offered: dict[str, Any] | None = None,
) -> workspace.Workspace:
    assert target.endpoint_url is not None
    spec = BackendSpec(
        kind="s3",
        region=target.region,
        bucket=LOCAL_STATE_BUCKET,
        endpoint_url=target.endpoint_url,
        access_key=LOCAL_ACCESS_KEY,
        secret_key=LOCAL_SECRET_KEY,
    )
    state_store(spec, target.client, local_target=True).ensure()
    return workspace.prepare(
        binary=binary,
        module_dir=module,
        state_dir=tmp_path / ".branchenv",
        project="tfint",
        stack=stack,
        backend=spec,
        region=target.region,
        tags={**IDENTITY, "branchenv:stack": stack},
        offered_vars=offered or {"prefix": stack, "profile": "prodlike", "tags": {"x": "y"}},
        local=LocalWiring(
            endpoint_url=target.endpoint_url,
            access_key=LOCAL_ACCESS_KEY,
            secret_key=LOCAL_SECRET_KEY,
        ),
        mirror=mirror,
        lock_timeout_s=lock_timeout_s,
    )


def test_module_round_trip_on_the_local_cloud(
    tmp_path: Path, local_cloud: Target, terraform_mirror: Path, terraform_bin: str
) -> None:
    stack = f"int-{uuid.uuid4().hex[:8]}"
    module = PROGRAMS / "contract"
    before = sorted(p.name for p in module.iterdir())
    ws = _workspace(
        tmp_path, local_cloud, terraform_mirror, module, stack=stack, binary=terraform_bin
    )
    store = state_store(ws.backend, local_cloud.client, local_target=True)
    s3 = local_cloud.client("s3")
    try:
        assert ws.options.vars == {"prefix": stack, "profile": "prodlike"}  # declared ones only
        started = time.monotonic()
        assert workspace.init(ws) is True
        first_init_s = time.monotonic() - started
        assert workspace.init(ws) is False  # same files, same backend: nothing to do
        # Every service the installed provider knows is wired, under one name each.
        schema = json.loads(
            cmd.run(ws.options, ["providers", "schema", "-json"], stream_stdout=False).stdout
        )
        provider = schema["provider_schemas"]["registry.terraform.io/hashicorp/aws"]["provider"]
        known = set(provider["block"]["block_types"]["endpoints"]["block"]["attributes"])
        aliases = json.loads((Path(workspace.__file__).parent / "aws_endpoints.json").read_text())
        assert set(endpoint_services()) | set(aliases["aliases"]) == known
        workspace.apply(ws)
        assert workspace.plan_exit_code(ws) == 0  # no drift right after apply
        tags = {
            t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=f"{stack}-data")["TagSet"]
        }
        assert tags["branchenv:stack"] == stack and tags["branchenv:managed-by"] == "branchenv"
        assert tags["contract:owner"] == "tests" and tags["marker"] == "one"  # the module's own
        assert store.stacks("tfint") == [stack]
        state = store.read_state("tfint", stack)
        assert state is not None and state["outputs"]["token"]["sensitive"] is True
        assert state["outputs"]["profile"]["value"] == "prodlike"
        store.write_sidecar("tfint", stack, {"branchenv:stack": stack})
        sidecar = store.read_sidecar("tfint", stack)
        assert sidecar is not None and sidecar["tags"] == {"branchenv:stack": stack}
        # A second stack of the same project: init comes from the shared plugin cache.
        other = _workspace(
            tmp_path, local_cloud, terraform_mirror, module, stack=stack + "b", binary=terraform_bin
        )
        started = time.monotonic()
        workspace.init(other)
        second_init_s = time.monotonic() - started
        print(f"\ninit: first {first_init_s:.2f} s, second stack {second_init_s:.2f} s")
        workspace.destroy(ws)
    finally:
        store.remove("tfint", stack)
        store.remove("tfint", stack + "b")
    left = s3.list_object_versions(Bucket=LOCAL_STATE_BUCKET, Prefix=f"branchenv/tfint/{stack}/")
    assert not left.get("Versions") and not left.get("DeleteMarkers")
    assert sorted(p.name for p in module.iterdir()) == before  # the module was never touched


def test_a_module_that_knows_nothing_of_branchenv_is_wired_and_tagged(
    tmp_path: Path, local_cloud: Target, terraform_mirror: Path, terraform_bin: str
) -> None:
    stack = f"int-{uuid.uuid4().hex[:8]}"
    ws = _workspace(
        tmp_path,
        local_cloud,
        terraform_mirror,
        PROGRAMS / "untagged",
        stack=stack,
        binary=terraform_bin,
    )
    store = state_store(ws.backend, local_cloud.client, local_target=True)
    try:
        assert ws.options.vars == {}
        workspace.init(ws)
        workspace.apply(ws)
        state = store.read_state("tfint", stack)
        assert state is not None
        bucket = state["outputs"]["bucket"]["value"]
        tags = {
            t["Key"]: t["Value"]
            for t in local_cloud.client("s3").get_bucket_tagging(Bucket=bucket)["TagSet"]
        }
        assert tags["branchenv:stack"] == stack
        groups = next(r for r in state["resources"] if r["type"] == "aws_cloudwatch_log_group")[
            "instances"
        ][0]["attributes"]
        assert groups["tags_all"]["branchenv:stack"] == stack
        workspace.destroy(ws)
    finally:
        store.remove("tfint", stack)


def test_a_concurrent_apply_on_one_stack_is_stack_locked(
    tmp_path: Path, local_cloud: Target, terraform_mirror: Path, terraform_bin: str
) -> None:
    module = tmp_path / "slow"
    module.mkdir()
    (module / "main.tf").write_text(
        'resource "terraform_data" "slow" {\n'
        '  provisioner "local-exec" {\n    command = "sleep 6"\n  }\n}\n'
    )
    stack = f"int-{uuid.uuid4().hex[:8]}"
    first = _workspace(
        tmp_path, local_cloud, terraform_mirror, module, stack=stack, binary=terraform_bin
    )
    second = _workspace(
        tmp_path / "clone",
        local_cloud,
        terraform_mirror,
        module,
        stack=stack,
        binary=terraform_bin,
        lock_timeout_s=1,
    )
    store = state_store(first.backend, local_cloud.client, local_target=True)
    workspace.init(first)
    workspace.init(second)
    errors: list[BaseException] = []
    holder = threading.Thread(target=lambda: _catch(errors, lambda: workspace.apply(first)))
    try:
        holder.start()
        time.sleep(2.5)  # the first apply holds the lock while its provisioner sleeps
        with pytest.raises(StackLocked, match="locked by another run"):
            workspace.apply(second)
        holder.join(timeout=60)
        assert not errors
    finally:
        holder.join(timeout=60)
        workspace.destroy(first)
        store.remove("tfint", stack)


def _catch(errors: list[BaseException], fn: Any) -> None:
    try:
        fn()
    except BaseException as exc:
        errors.append(exc)
