"""Issue 17 item 3: the terraform commands (each one that loads the aws provider is a provider
start, the loop's cost) the engine runs for up, an update and destroy, with the real terraform
CLI on the local cloud: the plan reads resources back only when the state is not one this
engine just wrote; destroy needs no plan of its own; a plan that changes nothing is not applied.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from branchenv.engines.base import PlannedStep
from branchenv.engines.terraform import cmd
from branchenv.errors import StackNotFound
from branchenv.targets import Target
from tests.conftest import inputs_for, program_at
from tests.integration.test_terraform_engine import _engine
from tests.tfsupport import PROGRAMS, terraform_bin, terraform_mirror, tf_metadata

__all__ = ["terraform_bin", "terraform_mirror"]

pytestmark = pytest.mark.terraform


def _shape(args: Sequence[str]) -> str:
    """``plan``, ``plan -refresh=false``, ``show``, ``apply <plan>``, ``destroy ...``."""
    verb = args[0]
    flags = [a for a in args[1:] if a in ("-refresh=false", "-destroy")]
    if verb == "apply" and not any(a.startswith("-") for a in args[-1:]):
        flags.append("<plan>")
    return " ".join([verb, *flags])


def test_provider_starts_of_up_update_and_destroy(
    tmp_path: Path,
    local_cloud: Target,
    terraform_mirror: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = _engine(tmp_path, local_cloud, terraform_mirror)
    program = program_at(PROGRAMS / "contract")
    stack = f"int-{uuid.uuid4().hex[:8]}"
    md = tf_metadata(stack)
    ran: list[str] = []
    real_run = cmd.run

    def recording(options: Any, args: Sequence[str], **kwargs: Any) -> cmd.CommandResult:
        ran.append(_shape(args))
        return real_run(options, args, **kwargs)

    monkeypatch.setattr(cmd, "run", recording)

    checked: list[PlannedStep] = []

    def up(marker: str) -> dict[str, int]:
        ran.clear()
        checked.clear()
        return engine.up(
            stack=stack,
            program=program,
            target=local_cloud,
            metadata=md,
            inputs=inputs_for(md, {"marker": marker}, target=local_cloud),
            plan_check=checked.extend,
        ).changes

    real_now = engine._now
    try:
        # A new stack: nothing to read back; one plan, its JSON for the check (a named bucket
        # is created: its planned name is in the plan's values only), its apply.
        assert up("one")["create"] == 2
        assert ran == ["init", "plan -refresh=false", "show", "apply <plan>"]
        named = {(s.type, s.op, s.physical_name) for s in checked if s.physical_name}
        assert ("aws_s3_bucket", "create", f"{stack}-data") in named

        # An update right after: the state is ours and fresh, so no refresh; init is not rerun.
        # The bucket is updated in place and its name cannot change so: the check gets it from
        # the planned actions and the state, without the plan's JSON (no `show`).
        assert up("two")["update"] == 1
        assert ran == ["plan -refresh=false", "apply <plan>"]
        named_now = {(s.type, s.op, s.physical_name) for s in checked if s.physical_name}
        assert named_now == {
            (rtype, "update" if rtype == "aws_s3_bucket" else "same", name)
            for rtype, _op, name in named
        }
        tags = local_cloud.client("s3").get_bucket_tagging(Bucket=f"{stack}-data")["TagSet"]
        assert {"Key": "marker", "Value": "two"} in tags

        # Two hours on, the state is no longer trusted: the plan refreshes. Nothing changes
        # (the planned actions say so, outputs included), so nothing is applied or shown.
        engine._now = lambda: real_now() + dt.timedelta(hours=2)  # type: ignore[method-assign]
        changes = up("two")
        assert changes["update"] == 0 and changes["same"] == 2
        assert ran == ["plan"]
        engine._now = real_now  # type: ignore[method-assign]

        # Teardown of a fresh state: destroy alone (it plans for itself), no refresh.
        ran.clear()
        result = engine.destroy(stack=stack, program=program, target=local_cloud)
        assert result.removed and result.deleted == 2
        assert ran == ["destroy -refresh=false"]
    finally:
        engine._now = real_now  # type: ignore[method-assign]
        with contextlib.suppress(StackNotFound):
            engine.destroy(stack=stack, program=program, target=local_cloud)
