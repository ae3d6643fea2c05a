"""Orphan classification (pure), the deleter registry's shape, and the report's renderings."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from branchenv.cli.render import to_jsonable
from branchenv.inventory import TaggedResource, resource_type
from branchenv.reaper.orphans import DELETERS, Arn, SkipReason, classify
from branchenv.reaper.policy import Action, Because, Decision
from branchenv.reaper.report import build_report, to_markdown
from branchenv.reaper.run import ReapPlan, ReapResult

PROTECTED = ("prod*", "main")
MANAGED = {"branchenv:managed-by": "branchenv"}


def res(arn: str, **tags: str) -> TaggedResource:
    return TaggedResource(arn=arn, type=resource_type(arn), tags=dict(tags))


def tagged(arn: str, stack: str, *, managed: bool = True, **extra: str) -> TaggedResource:
    tags = {"branchenv:stack": stack}
    if managed:
        tags.update(MANAGED)
    tags.update(extra)
    return TaggedResource(arn=arn, type=resource_type(arn), tags=tags)


Q = "arn:aws:sqs:us-east-1:123456789012:"

CASES = [
    ("orphan", tagged(Q + "q1", "ghost-1"), "orphan", None),
    ("known-stack", tagged(Q + "q2", "alive-1"), "owned", None),
    ("no-managed-by", tagged(Q + "q3", "ghost-1", managed=False), "skipped", SkipReason.UNMANAGED),
    (
        "wrong-managed-by",
        tagged(Q + "q4", "ghost-1", **{"branchenv:managed-by": "terraform"}),
        "skipped",
        SkipReason.UNMANAGED,
    ),
    ("protected-stack", tagged(Q + "q5", "prod-eu"), "skipped", SkipReason.PROTECTED),
    (
        "protected-branch",
        tagged(Q + "q6", "x-1", **{"branchenv:branch": "main"}),
        "skipped",
        SkipReason.PROTECTED,
    ),
    (
        "other-project",
        tagged(Q + "q7", "ghost-1", **{"branchenv:project": "other"}),
        "skipped",
        SkipReason.OTHER_PROJECT,
    ),
    ("same-project", tagged(Q + "q8", "ghost-1", **{"branchenv:project": "demo"}), "orphan", None),
    (
        "no-deleter",
        tagged("arn:aws:kinesis:us-east-1:123456789012:stream/s", "ghost-1"),
        "skipped",
        SkipReason.NO_DELETER,
    ),
    ("encoded-stack-tag", tagged(Q + "q9", "alive=2D2"), "owned", None),
]


@pytest.mark.parametrize(
    ("resource", "kind", "reason"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_classify(resource: TaggedResource, kind: str, reason: SkipReason | None) -> None:
    plan = classify(
        [resource, res("arn:aws:s3:::untagged")],
        known_stacks={"alive-1", "alive-2"},
        protected_patterns=PROTECTED,
        project="demo",
    )
    got = {
        "orphan": [o.arn for o in plan.orphans],
        "skipped": [(s.arn, s.reason) for s in plan.skipped],
    }
    if kind == "orphan":
        assert got == {"orphan": [resource.arn], "skipped": []}
    elif kind == "owned":
        assert got == {"orphan": [], "skipped": []} and plan.owned == 1
    else:
        assert got == {"orphan": [], "skipped": [(resource.arn, reason)]}


@pytest.mark.parametrize(
    ("arn", "service", "region", "resource"),
    [
        ("arn:aws:s3:::bucket-1", "s3", "", "bucket-1"),
        ("arn:aws:logs:eu-west-1:1:log-group:/aws/x:*", "logs", "eu-west-1", "log-group:/aws/x:*"),
        ("arn:aws:apigateway:us-east-1::/apis/abc", "apigateway", "us-east-1", "/apis/abc"),
    ],
)
def test_arn_parse(arn: str, service: str, region: str, resource: str) -> None:
    parsed = Arn.parse(arn)
    assert (parsed.service, parsed.region, parsed.resource) == (service, region, resource)


def test_arn_parse_rejects_junk() -> None:
    with pytest.raises(ValueError, match="not an ARN"):
        Arn.parse("bucket-1")


def test_every_deleter_has_a_one_line_summary() -> None:
    assert {
        "s3",
        "sqs",
        "sns",
        "dynamodb:table",
        "lambda:function",
        "iam:role",
        "logs:log-group",
        "apigateway:apis",
    } <= set(DELETERS)
    for name, func in DELETERS.items():
        assert (func.__doc__ or "").strip(), name


NOW = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def decision(stack: str, action: Action, code: str, detail: str) -> Decision:
    return Decision(
        stack,
        action,
        (Because(code, detail),),
        f"b/{stack}",
        "jane",
        NOW,
        7200.0,
        18,
        engine="inprocess",
    )


def plan(max_reap: int = 5) -> ReapPlan:
    return ReapPlan(
        now=NOW,
        target="local",
        engines=("inprocess",),
        remote="origin",
        decisions=(
            decision("old-1", Action.REAP, "expired", "TTL expired 3h ago"),
            decision("new-1", Action.KEEP, "fresh", "expires in 4h"),
            decision("prod", Action.KEEP, "protected", "matches protected pattern 'prod*'"),
        ),
        orphans=None,
        max_reap=max_reap,
    )


def test_dry_run_report() -> None:
    report = build_report(ReapResult(plan=plan(), acted=False))
    assert report.dry_run and report.refusal is None
    assert [(r.stack, r.reasons, r.status, r.age) for r in report.reaped] == [
        ("old-1", ("expired",), "planned", "2h")
    ]
    assert report.reaped[0].hourly_cost is None
    assert [(k.stack, k.reasons) for k in report.kept] == [
        ("new-1", ("fresh",)),
        ("prod", ("protected",)),
    ]
    assert report.next_step is not None and "--yes" in report.next_step
    data = json.loads(json.dumps(to_jsonable(report)))
    assert data["reaped"][0]["hourly_cost"] is None
    assert data["kept"][1]["why"] == "matches protected pattern 'prod*'"


def test_report_names_the_refusal() -> None:
    report = build_report(ReapResult(plan=plan(max_reap=0), acted=False))
    assert report.refusal is not None
    assert "1 stacks are due" in report.refusal and "--max 1" in report.refusal


def test_markdown() -> None:
    text = to_markdown(build_report(ReapResult(plan=plan(), acted=False)))
    assert text.startswith("## branchenv reap (dry run)")
    assert "| old-1 | b/old-1 | jane | 2h | 18 | n/a | TTL expired 3h ago | planned |" in text
    assert "| prod | b/prod | jane | matches protected pattern 'prod*' |" in text
    assert "remote `origin`" in text


class _Raising:
    """A client whose every call raises a botocore-shaped error with ``code``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __getattr__(self, name: str) -> object:
        def call(*_args: object, **_kwargs: object) -> None:
            exc = Exception(f"{name}: {self.code}")
            exc.response = {"Error": {"Code": self.code}}  # type: ignore[attr-defined]
            raise exc

        return call


@pytest.mark.parametrize(
    ("kind", "arn", "gone"),
    [
        (
            "dynamodb:table",
            "arn:aws:dynamodb:us-east-1:123456789012:table/t",
            "ResourceNotFoundException",
        ),
        ("sqs", Q + "q", "AWS.SimpleQueueService.NonExistentQueue"),
        (
            "ec2:subnet",
            "arn:aws:ec2:us-east-1:123456789012:subnet/subnet-1",
            "InvalidSubnetID.NotFound",
        ),
    ],
)
def test_a_deleter_treats_gone_as_done_and_raises_anything_else(
    kind: str, arn: str, gone: str
) -> None:
    deleter = DELETERS[kind]
    deleter(lambda _service, _region: _Raising(gone), Arn.parse(arn))  # already gone: done
    with pytest.raises(Exception, match="AccessDenied"):
        deleter(lambda _service, _region: _Raising("AccessDenied"), Arn.parse(arn))
