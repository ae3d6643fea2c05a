"""The reaper's rails hold for a library caller too: run.plan and run.execute enforce them
themselves (issue 11 item 4), and a local-only engine is refused on AWS before the target is
ever contacted (issue 15 item 8). STS is the local cloud's (moto: account 123456789012)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from branchenv.config import Settings
from branchenv.engines import get_engine
from branchenv.errors import SafetyRefusal
from branchenv.reaper import run
from branchenv.targets import LOCAL_ACCOUNT_ID, Target


@dataclasses.dataclass
class AwsThroughLocalCloud:
    """A target named ``aws`` whose clients are the local cloud's (never a real account);
    counts every client it hands out."""

    local: Target
    region: str = "us-east-1"
    name: str = "aws"
    calls: list[str] = dataclasses.field(default_factory=list)

    def client(self, service: str) -> Any:
        self.calls.append(service)
        return self.local.client(service)


def project(tmp_path: Path, **settings: Any) -> Settings:
    (tmp_path / "prog").mkdir()
    (tmp_path / "prog" / "Pulumi.yaml").write_text("name: rails\nruntime: python\n")
    return Settings(project_dir=tmp_path, program="prog", **settings)


def test_plan_on_aws_checks_the_account_allowlist_itself(
    tmp_path: Path, local_cloud: Target
) -> None:
    settings = project(tmp_path)
    aws = AwsThroughLocalCloud(local_cloud)
    # An engine that may run on AWS and lists no stacks: the rail is what is under test.
    fake = type("ListsNothing", (), {"name": "pulumi", "list_stacks": lambda *_a, **_k: []})()
    with pytest.raises(SafetyRefusal, match="no allowed_account_ids"):
        run.plan(settings, engines=[fake], target_name="aws", target=aws)  # type: ignore[list-item]
    with pytest.raises(SafetyRefusal, match="not in allowed_account_ids"):
        run.plan(
            dataclasses.replace(settings, allowed_account_ids=("000000000000",)),
            engines=[fake],  # type: ignore[list-item]
            target_name="aws",
            target=aws,
        )
    allowed = dataclasses.replace(settings, allowed_account_ids=(LOCAL_ACCOUNT_ID,))
    plan = run.plan(allowed, engines=[fake], target_name="aws", target=aws)  # type: ignore[list-item]
    assert plan.account == LOCAL_ACCOUNT_ID


def test_execute_rechecks_the_account_and_the_target(tmp_path: Path, local_cloud: Target) -> None:
    settings = project(tmp_path, allowed_account_ids=("000000000000",))
    plan = run.ReapPlan(
        now=dt.datetime.now(dt.UTC),
        target="aws",
        engines=(),
        remote=None,
        decisions=(),
        orphans=None,
        max_reap=5,
        account="000000000000",
    )
    aws = AwsThroughLocalCloud(local_cloud)
    # The credentials now answer for another account than the allowlisted one planned in.
    with pytest.raises(SafetyRefusal, match="not in allowed_account_ids"):
        run.execute(plan, settings=settings, engines=[], target=aws)  # type: ignore[arg-type]
    with pytest.raises(SafetyRefusal, match="made for target 'aws'"):
        run.execute(plan, settings=settings, engines=[], target=local_cloud)


def test_a_local_only_engine_on_aws_is_refused_before_any_call(
    tmp_path: Path, local_cloud: Target
) -> None:
    settings = project(tmp_path, allowed_account_ids=(LOCAL_ACCOUNT_ID,))
    engine = get_engine("inprocess", settings=settings)
    aws = AwsThroughLocalCloud(local_cloud)
    with pytest.raises(SafetyRefusal, match="only runs on the local target"):
        run.plan(settings, engines=[engine], target_name="aws", target=aws)  # type: ignore[arg-type]
    assert aws.calls == []  # STS was never asked
