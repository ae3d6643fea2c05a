"""Pure parts of the warm pool: one canonical type per resource whatever the engine, which
resources a release wipes or refuses, the pool settings, and pool metadata round-tripping."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from branchenv.config import load_settings
from branchenv.engines.base import ResourceSummary
from branchenv.errors import ConfigError
from branchenv.metadata import IDENTITY_KEYS, KEY_CLAIMED_BY, KEY_POOL, StackMetadata
from branchenv.pool.wipe import WIPERS, canonical_type, plan_wipe


@pytest.mark.parametrize(
    ("token", "canonical"),
    [
        ("aws:s3/bucket:Bucket", "s3_bucket"),
        ("aws:s3/bucketV2:BucketV2", "s3_bucket"),
        ("aws_s3_bucket", "s3_bucket"),
        ("aws:s3/bucketVersioningV2:BucketVersioningV2", "s3_bucket_versioning"),
        ("aws_s3_bucket_versioning", "s3_bucket_versioning"),
        ("aws:dynamodb/table:Table", "dynamodb_table"),
        ("aws_dynamodb_table", "dynamodb_table"),
        ("aws:sqs/queue:Queue", "sqs_queue"),
        ("aws_sqs_queue", "sqs_queue"),
        ("aws:cloudwatch/logGroup:LogGroup", "cloudwatch_log_group"),
        ("aws_cloudwatch_log_group", "cloudwatch_log_group"),
        ("aws:apigatewayv2/stage:Stage", "apigatewayv2_stage"),
        ("aws_apigatewayv2_stage", "apigatewayv2_stage"),
        ("aws:iam/rolePolicy:RolePolicy", "iam_role_policy"),
        ("terraform_data", "terraform_data"),
        ("pulumi:providers:aws", "pulumi:providers:aws"),
    ],
)
def test_one_canonical_type_whatever_the_engine(token: str, canonical: str) -> None:
    assert canonical_type(token) == canonical


def _res(type_: str, name: str = "r") -> ResourceSummary:
    return ResourceSummary(address=f"urn:{name}", type=type_, name=name, id=name)


@pytest.mark.parametrize(
    ("types", "wiped", "unknown"),
    [
        (["aws:s3/bucket:Bucket", "aws:iam/role:Role"], 1, ()),
        (["aws_sqs_queue", "aws_dynamodb_table", "terraform_data"], 2, ()),
        (["aws:ssm/parameter:Parameter", "aws:sqs/queue:Queue"], 1, ("ssm_parameter",)),
        (["aws_secretsmanager_secret", "aws_sns_topic"], 0, ("secretsmanager_secret", "sns_topic")),
        (["pulumi:pulumi:Stack", "pulumi:providers:aws"], 0, ()),
    ],
)
def test_release_wipes_known_data_types_and_refuses_unknown_ones(
    types: list[str], wiped: int, unknown: tuple[str, ...]
) -> None:
    plan = plan_wipe([_res(t, f"r{i}") for i, t in enumerate(types)])
    assert len(plan.wipe) == wiped
    assert plan.unknown == unknown


def test_every_wiper_names_where_its_physical_name_is() -> None:
    for kind, (keys, wiper) in WIPERS.items():
        assert keys and callable(wiper), kind


@pytest.mark.parametrize(
    ("text", "local", "aws"),
    [
        ("pool_size = 2", 2, 2),
        ("pool_size = {local = 3}", 3, 0),
        ("pool_size = {local = 1, aws = 4}", 1, 4),
    ],
)
def test_pool_size_per_target(tmp_path: Path, text: str, local: int, aws: int) -> None:
    (tmp_path / "branchenv.toml").write_text(text + "\n")
    settings = load_settings(cwd=tmp_path, env={})
    assert (settings.pool_size_for("local"), settings.pool_size_for("aws")) == (local, aws)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("pool_size = -1", "pool_size"),
        ("pool_size = {staging = 1}", "staging"),
        ("pool_size = 99", "at most 20"),
        ('pool_fallback = "warm"', "pool_fallback"),
        ('pool = "maybe"', "pool"),
        ('pool_ttl = "forever"', "pool_ttl"),
        ('pool_refill = "sometimes"', "pool_refill"),
    ],
)
def test_bad_pool_settings_are_one_line_naming_the_key(
    tmp_path: Path, text: str, names: str
) -> None:
    (tmp_path / "branchenv.toml").write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cwd=tmp_path, env={})
    assert names in str(err.value) and "\n" not in str(err.value)


def test_pool_settings_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        cwd=tmp_path,
        env={
            "BRANCHENV_POOL_SIZE": "local=2,aws=1",
            "BRANCHENV_POOL": "true",
            "BRANCHENV_POOL_FALLBACK": "cold",
            "BRANCHENV_POOL_REFILL": "off",
        },
    )
    assert settings.pool_size_for("local") == 2 and settings.pool_size_for("aws") == 1
    assert settings.pool is True and settings.pool_fallback == "cold"
    assert settings.pool_refill == "off"
    assert load_settings(cwd=tmp_path, env={}).pool_refill == "background"


BASE = StackMetadata.create(
    stack="shop-pool-1",
    branch="pool/shop-pool",
    owner="filler@example.com",
    commit="abc",
    ttl=dt.timedelta(days=7),
    now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
    target="local",
    engine="inprocess",
    project="shop",
)


@given(
    claimed_by=st.one_of(st.none(), st.text(min_size=1, max_size=80)),
    owner=st.text(min_size=1, max_size=40),
)
def test_pool_metadata_round_trips_and_never_enters_identity(
    claimed_by: str | None, owner: str
) -> None:
    md = dataclasses.replace(
        BASE,
        pool="shop-pool",
        claimed_by=claimed_by,
        claimed_owner=owner if claimed_by else None,
    )
    tags = md.to_tags()
    assert tags[KEY_POOL] == "shop-pool"
    assert (KEY_CLAIMED_BY in tags) == (claimed_by is not None)
    back = StackMetadata.from_tags(tags)
    assert back is not None
    assert back.pool == "shop-pool"
    if claimed_by is not None and len(claimed_by.encode()) * 3 <= 250:
        assert back.claimed_by == claimed_by and back.claimed_owner == md.claimed_owner
    assert set(md.identity_tags()) <= set(IDENTITY_KEYS)
    assert md.identity_tags() == dataclasses.replace(md, claimed_by=None).identity_tags()


def test_a_branch_stack_carries_no_pool_keys() -> None:
    tags = BASE.to_tags()
    assert KEY_POOL not in tags and KEY_CLAIMED_BY not in tags
    back = StackMetadata.from_tags(tags)
    assert back is not None and back.pool is None and back.claimed_by is None


# --- the reaper and pool stacks ---------------------------------------------------------------


def _pool_summary(claimed_by: str | None, *, age: dt.timedelta, ttl: dt.timedelta) -> Any:
    from branchenv.engines.base import StackSummary

    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    md = dataclasses.replace(
        StackMetadata.create(
            stack="shop-pool-1",
            branch="pool/shop-pool",
            owner="filler@example.com",
            commit="abc",
            ttl=ttl,
            now=now - age,
            target="local",
            engine="inprocess",
            project="shop",
        ),
        pool="shop-pool",
        claimed_by=claimed_by,
        claimed_owner="jane" if claimed_by else None,
    )
    return StackSummary(stack=md.stack, metadata=md, resource_count=3, last_update=None)


@pytest.mark.parametrize(
    ("claimed_by", "remote", "age", "ttl", "codes"),
    [
        # free: no branch of its own, idle and old by design; only its TTL reaps it
        (None, frozenset({"main"}), dt.timedelta(days=3), dt.timedelta(days=7), ("fresh",)),
        (None, None, dt.timedelta(days=8), dt.timedelta(days=7), ("expired",)),
        # claimed: the claiming branch is what the remote is checked for
        (
            "feature/x",
            frozenset({"feature/x"}),
            dt.timedelta(days=3),
            dt.timedelta(days=7),
            ("fresh",),
        ),
        (
            "feature/x",
            frozenset({"main"}),
            dt.timedelta(days=3),
            dt.timedelta(days=7),
            ("branch-deleted",),
        ),
    ],
)
def test_the_reaper_judges_a_pool_stack_by_its_claim(
    claimed_by: str | None,
    remote: frozenset[str] | None,
    age: dt.timedelta,
    ttl: dt.timedelta,
    codes: tuple[str, ...],
) -> None:
    from branchenv.reaper.policy import ReapPolicy, decide

    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    # idle and max-age would reap any branch stack this old; a free pool stack is exempt
    strict = ReapPolicy(
        target="local", idle_after=dt.timedelta(hours=1), max_age=dt.timedelta(days=2)
    )
    policy = strict if claimed_by is None else ReapPolicy(target="local")
    [decision] = decide(
        [_pool_summary(claimed_by, age=age, ttl=ttl)],
        now=now,
        remote_branches=remote,
        config=policy,
    )
    assert tuple(str(c.value) for c in decision.codes) == codes, decision


def test_the_program_fingerprint_reads_linked_code_and_skips_caches(tmp_path: Path) -> None:
    from branchenv.pool import _program_files

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "handler.py").write_text("x = 1\n")
    module = tmp_path / "module"
    (module / ".terraform").mkdir(parents=True)
    (module / ".terraform" / "plugin").write_text("binary")
    (module / "__pycache__").mkdir()
    (module / "__pycache__" / "m.pyc").write_text("cache")
    (module / "main.tf").write_text("# a module\n")
    (module / "service").symlink_to(shared, target_is_directory=True)
    files = [p.relative_to(module).as_posix() for p in _program_files(module)]
    assert files == ["main.tf", "service/handler.py"]
