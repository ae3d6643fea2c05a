"""The reaper's speed and memory, with figures printed against the goals.

Usage: python benchmarks/reaper.py [--stacks 1000] [--resources 20000] [--sweep 2000]
                                   [--sweep-types sns,dynamodb,logs,s3] [--concurrency 16]
                                   [--skip-c7n] [--plan-only]
       python benchmarks/reaper.py --org 5000 [--org-types sns,logs] [--concurrency 16]

1. The plan (pure): the policy over ``--stacks`` stack summaries plus the orphan
   classification of ``--resources`` tagged resources (goal < 5 s, < 300 MB; measured with
   tracemalloc (peak Python allocations) and resource.getrusage (max RSS of the process)).
2. The orphan sweep on a local cloud (a real moto server over HTTP, started here in a temp
   dir): ``--sweep`` orphans shared out over ``--sweep-types`` (SNS topics, DynamoDB tables,
   CloudWatch log groups, empty S3 buckets; each tagged ``branchenv:managed-by`` for a stack
   no engine knows; seeding is timed separately), found by tag and deleted by branchenv's
   sweep; then the same set seeded again and deleted by Cloud Custodian (c7n): one policy per
   type (``aws.sns``, ``aws.dynamodb-table``, ``aws.log-group``, ``aws.s3``), each a
   ``tag:branchenv:managed-by`` filter and the ``delete`` action, run one after another as
   ``custodian run`` does, against the same server through ``AWS_ENDPOINT_URL``. The ratio
   is from this one run (goal: branchenv >= 2x faster) and is flagged when the two did not
   delete the same set.

   Two things are needed for c7n on moto:
   * moto pages ``GetResources`` with a ``ResourceARNList`` (50 resources and under 100 tags
     a page) where AWS answers up to 100 ARNs in one page; c7n's tag augment
     (``c7n.tags.universal_augment``) makes one call per 100 ARNs and ignores the page
     token, so with two tags a resource it saw tags on 49 of every 100 and deleted 49 %
     (980 of 2,000 topics). A botocore handler on c7n's sessions asks for 100 resources /
     500 tags a page on those calls, so moto answers as AWS does, in the same one call.
   * every c7n request is checked to go to 127.0.0.1 (anything else raises).

   Not SQS: c7n's ``aws.sqs`` resource passes an explicit
   ``endpoint_url=https://sqs.<region>.amazonaws.com`` to boto3 (c7n/resources/sqs.py,
   ``SQS.get_client``), which overrides ``AWS_ENDPOINT_URL``, so c7n cannot be pointed at the
   local cloud for SQS. c7n is optional: ``pip install c7n`` into the venv (it is not a
   dependency of branchenv); without it the comparison is skipped and says so.
3. ``--org N`` (only this part): the organisation-wide run (issue 18). The reaper's role is
   made in two accounts of a private local cloud; N tagged orphans (``--org-types``) are
   seeded in one (account, region) pair and reaped by one real ``reap --yes --orphans``
   run (run.plan + run.execute: AssumeRole per pair, allowlist, sweep), then N in each of
   2 accounts x 2 regions, reaped by one run over all four pairs; the two wall times and
   their ratio are printed (``--concurrency`` is the per-account bound).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import resource
import sys
import tempfile
import time
import tracemalloc
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

GOAL_PLAN_S = 5.0
GOAL_PLAN_MB = 300.0
GOAL_RATIO = 2.0


def _rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_plan(n_stacks: int, n_resources: int) -> None:
    from branchenv.engines.base import StackSummary
    from branchenv.inventory import TaggedResource
    from branchenv.metadata import StackMetadata
    from branchenv.reaper.orphans import classify
    from branchenv.reaper.policy import ReapPolicy, decide

    now = dt.datetime.now(dt.UTC)
    stacks: list[StackSummary] = []
    for i in range(n_stacks):
        md = StackMetadata.create(
            stack=f"feature-{i:05d}-abcdef12",
            branch=f"feature/{i:05d}",
            owner=f"dev{i % 37}@example.com",
            commit="abc1234",
            ttl=dt.timedelta(hours=24),
            now=now - dt.timedelta(hours=i % 48),
            target="local",
            engine="inprocess",
        )
        md = dataclasses.replace(md, reap_pending=i % 97 == 0, managed=i % 50 != 0)
        tags = md.to_tags()
        stacks.append(
            StackSummary(
                stack=md.stack,
                metadata=StackMetadata.from_tags(tags),
                resource_count=18,
                last_update=tags["branchenv:created-at"],
                tags=tags,
            )
        )
    remote = {f"feature/{i:05d}" for i in range(0, n_stacks, 3)}
    resources: list[TaggedResource] = []
    for j in range(n_resources):
        # 90 % belong to listed stacks, the rest to stacks no engine knows
        stack = f"feature-{j % n_stacks:05d}-abcdef12" if j % 10 else f"ghost-{j}"
        resources.append(
            TaggedResource(
                arn=f"arn:aws:sqs:us-east-1:123456789012:q-{j}",
                type="sqs",
                tags={
                    "branchenv:managed-by": "branchenv",
                    "branchenv:stack": stack,
                    "branchenv:branch": f"feature/{j}",
                    "branchenv:project": "branchenv",
                },
            )
        )
    policy = ReapPolicy(idle_after=dt.timedelta(hours=30), max_age=dt.timedelta(days=7))
    known = {s.stack for s in stacks}

    tracemalloc.start()
    started = time.perf_counter()
    decisions = decide(stacks, now=now, remote_branches=remote, config=policy)
    orphans = classify(
        resources,
        known_stacks=known,
        protected_patterns=("prod*", "production*", "staging*", "main", "master"),
        project="branchenv",
    )
    elapsed = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    reap = sum(1 for d in decisions if d.reap)
    peak_mb = peak / 2**20
    print(f"plan: {n_stacks} stacks + {n_resources} tagged resources")
    print(f"  -> {reap} to reap, {n_stacks - reap} kept, {len(orphans.orphans)} orphans")
    print(
        f"  time {elapsed:.3f} s (goal < {GOAL_PLAN_S} s) {'OK' if elapsed < GOAL_PLAN_S else 'MISSED'}"
    )
    print(
        f"  peak traced allocations {peak_mb:.1f} MB, process max RSS {_rss_mb():.0f} MB "
        f"(goal < {GOAL_PLAN_MB:.0f} MB) {'OK' if max(peak_mb, _rss_mb()) < GOAL_PLAN_MB else 'MISSED'}"
    )


TAGS = {"branchenv:managed-by": "branchenv", "branchenv:stack": "bench-ghost"}
"""The tags on every seeded orphan: managed by branchenv, for a stack no engine knows."""

LOCAL_HOSTS = ("127.0.0.1", "localhost")


@dataclasses.dataclass(frozen=True)
class Kind:
    """One resource type of the sweep: its client, how to create one tagged orphan, how to
    list the ones left (names starting with a prefix), and the c7n resource and delete action
    that reach it."""

    name: str
    service: str
    swept_as: str  # the type branchenv's sweep reports (branchenv.inventory.resource_type)
    create: Callable[[Any, str], None]
    names: Callable[[Any, str], Iterator[str]]
    c7n_resource: str
    c7n_delete: dict[str, Any]


def _tag_list() -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in TAGS.items()]


def _create_topic(sns: Any, name: str) -> None:
    sns.create_topic(Name=name, Tags=_tag_list())


def _topics(sns: Any, prefix: str) -> Iterator[str]:
    for page in sns.get_paginator("list_topics").paginate():
        for topic in page.get("Topics", []):
            name: str = topic["TopicArn"].rsplit(":", 1)[-1]
            if name.startswith(prefix):
                yield name


def _create_table(ddb: Any, name: str) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        Tags=_tag_list(),
    )


def _tables(ddb: Any, prefix: str) -> Iterator[str]:
    for page in ddb.get_paginator("list_tables").paginate():
        yield from (n for n in page.get("TableNames", []) if n.startswith(prefix))


def _create_log_group(logs: Any, name: str) -> None:
    logs.create_log_group(logGroupName=name, tags=dict(TAGS))


def _log_groups(logs: Any, prefix: str) -> Iterator[str]:
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix):
        yield from (g["logGroupName"] for g in page.get("logGroups", []))


def _create_bucket(s3: Any, name: str) -> None:
    s3.create_bucket(Bucket=name)
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tag_list()})


def _buckets(s3: Any, prefix: str) -> Iterator[str]:
    buckets = s3.list_buckets().get("Buckets", [])
    yield from (b["Name"] for b in buckets if b["Name"].startswith(prefix))


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("sns", "sns", "sns", _create_topic, _topics, "aws.sns", {"type": "delete"}),
        Kind(
            "dynamodb",
            "dynamodb",
            "dynamodb:table",
            _create_table,
            _tables,
            "aws.dynamodb-table",
            {"type": "delete"},
        ),
        Kind(
            "logs",
            "logs",
            "logs:log-group",
            _create_log_group,
            _log_groups,
            "aws.log-group",
            {"type": "delete"},
        ),
        # remove-contents: c7n empties the bucket first, as branchenv's deleter does
        Kind(
            "s3",
            "s3",
            "s3",
            _create_bucket,
            _buckets,
            "aws.s3",
            {"type": "delete", "remove-contents": True},
        ),
    )
}
"""The types both tools reach on the local cloud. Not SQS: c7n's ``aws.sqs`` passes an
explicit ``endpoint_url=https://sqs.<region>.amazonaws.com`` (c7n/resources/sqs.py)."""


def _split(total: int, kinds: Sequence[Kind]) -> dict[str, int]:
    """``total`` orphans shared out over ``kinds`` as evenly as possible."""
    base, extra = divmod(total, len(kinds))
    return {k.name: base + (1 if i < extra else 0) for i, k in enumerate(kinds)}


def _prefix(owner: str, kind: Kind) -> str:
    return f"{owner}-{kind.name}-"


def _seed(target: Any, owner: str, counts: dict[str, int], workers: int) -> float:
    from botocore.config import Config

    jobs = [(KINDS[name], i) for name, n in counts.items() for i in range(n)]
    # one session, one (thread-safe) client per service, a connection per worker
    session, config = target.session(), Config(max_pool_connections=workers)
    clients = {
        svc: session.client(svc, endpoint_url=target.local_endpoint(), config=config)
        for svc in {KINDS[name].service for name in counts}
    }

    def create(job: tuple[Kind, int]) -> None:
        kind, i = job
        kind.create(clients[kind.service], f"{_prefix(owner, kind)}{i:05d}")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(create, jobs))
    return time.perf_counter() - started


def _left(target: Any, owner: str, kinds: Sequence[Kind]) -> dict[str, int]:
    return {
        k.name: sum(1 for _ in k.names(target.client(k.service), _prefix(owner, k))) for k in kinds
    }


def _ours(target: Any, concurrency: int) -> tuple[float, float, Counter[str], int]:
    from branchenv.reaper.orphans import SweepStatus, clients_for, find_orphans, sweep

    started = time.perf_counter()
    plan = find_orphans(target, known_stacks=set(), protected_patterns=(), project=None)
    found = time.perf_counter() - started
    outcomes = sweep(plan.orphans, clients=clients_for(target), concurrency=concurrency)
    elapsed = time.perf_counter() - started
    deleted = Counter(o.type for o in outcomes if o.status is SweepStatus.DELETED)
    failed = sum(1 for o in outcomes if o.status is SweepStatus.FAILED)
    return found, elapsed, deleted, failed


def _c7n_available() -> str | None:
    try:
        import c7n  # noqa: F401
    except ImportError:
        return (
            "c7n is not installed (`.venv/bin/pip install c7n`; it is not a branchenv dependency)"
        )
    return None


def _arn_list_in_one_page(params: dict[str, Any], **_: Any) -> None:
    """GetResources with a ResourceARNList: ask for every ARN in one page.

    AWS answers a ResourceARNList request (at most 100 ARNs) in one response and rejects the
    paging parameters with it; c7n relies on that (c7n.tags.universal_augment makes one call per
    100 ARNs and ignores PaginationToken). moto pages it like a tag-filter listing, 50
    resources and under 100 tags a page by default: with 2 tags a resource, 49 of every 100
    ARNs come back, c7n gives the other 51 no tags, its tag filter drops them, and it deletes
    49 %. Asking moto for 100 resources / 500 tags a page (which moto accepts with an ARN list)
    makes it answer as AWS does, in the same one call per 100 ARNs.
    """
    if params.get("ResourceARNList"):
        params.setdefault("ResourcesPerPage", 100)
        params.setdefault("TagsPerPage", 500)


def _local_only(request: Any, **_: Any) -> None:
    """Refuse any request that would leave this machine (c7n must only reach the local cloud)."""
    host = urllib.parse.urlsplit(request.url).hostname
    if host not in LOCAL_HOSTS:
        raise RuntimeError(f"benchmark refused a request to {host}: only the local cloud")


def _c7n(
    target: Any, kinds: Sequence[Kind], out_dir: Path
) -> tuple[float, dict[str, int], dict[str, float]]:
    from c7n.config import Config
    from c7n.credentials import SessionFactory
    from c7n.policy import Policy
    from c7n.resources import load_resources

    os.environ.update(target.aws_env())  # AWS_ENDPOINT_URL -> the local cloud; dummy keys
    load_resources(tuple(k.c7n_resource for k in kinds))
    # no resource cache (cache="" / cache_period 0 are c7n's defaults; explicit here)
    config = Config.empty(
        region=target.region,
        output_dir=str(out_dir),
        account_id="123456789012",
        cache="",
        cache_period=0,
    )

    class LocalSessionFactory(SessionFactory):  # type: ignore[misc]
        """c7n's own session factory, plus two handlers on every session it makes (c7n
        replaces a factory's subscribers while a policy runs, so they go in here)."""

        def update(self, session: Any) -> Any:
            session.events.register(
                "before-parameter-build.resource-groups-tagging-api.GetResources",
                _arn_list_in_one_page,
            )
            session.events.register("before-send", _local_only)
            return super().update(session)

    factory = LocalSessionFactory(target.region)
    policies = []
    for kind in kinds:
        data = {
            "name": f"branchenv-orphans-{kind.name}",
            "resource": kind.c7n_resource,
            "filters": [{"tag:branchenv:managed-by": TAGS["branchenv:managed-by"]}],
            "actions": [kind.c7n_delete],
        }
        policy = Policy(data, config, session_factory=factory)
        policy.validate()
        policies.append((kind, policy))
    matched: dict[str, int] = {}
    times: dict[str, float] = {}
    started = time.perf_counter()
    for kind, policy in policies:  # `custodian run` runs a file's policies one after another
        one = time.perf_counter()
        matched[kind.name] = len(policy.run() or [])
        times[kind.name] = time.perf_counter() - one
    return time.perf_counter() - started, matched, times


def _by_kind(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def bench_sweep(
    count: int, kinds: Sequence[Kind], concurrency: int, workers: int, skip_c7n: bool
) -> None:
    from branchenv.localcloud import LocalCloud

    seeded = _split(count, kinds)
    with tempfile.TemporaryDirectory(prefix="branchenv-bench-") as tmp:
        for key in list(os.environ):
            if key.startswith("AWS_"):
                del os.environ[key]
        os.environ["AWS_CONFIG_FILE"] = os.devnull
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        cloud = LocalCloud(Path(tmp) / "state")
        target = cloud.ensure("us-east-1")
        try:
            print(
                f"orphan sweep: {count} orphaned resources ({_by_kind(seeded)}) "
                "on a local moto server"
            )
            seed_s = _seed(target, "ours", seeded, workers)
            print(f"  seeding (boto3, {workers} threads): {seed_s:.1f} s ({count / seed_s:.0f}/s)")
            found_s, ours_s, by_type, failed = _ours(target, concurrency)
            ours = {k.name: by_type[k.swept_as] for k in kinds}
            left = _left(target, "ours", kinds)
            print(
                f"  branchenv: found in {found_s:.1f} s, found+deleted {sum(ours.values())} "
                f"in {ours_s:.1f} s (concurrency {concurrency}); deleted {_by_kind(ours)}; "
                f"{failed} failed; {sum(left.values())} left"
            )
            problem = "skipped by --skip-c7n" if skip_c7n else _c7n_available()
            if problem:
                print(f"  c7n comparison skipped: {problem}")
                return
            seed_s = _seed(target, "c7n", seeded, workers)
            print(f"  seeding again for c7n: {seed_s:.1f} s")
            c7n_s, matched, times = _c7n(target, kinds, Path(tmp) / "c7n-out")
            c7n_left = _left(target, "c7n", kinds)
            print(
                f"  c7n: {len(kinds)} policies (tag filter + delete), matched+deleted "
                f"{sum(matched.values())} in {c7n_s:.1f} s; matched {_by_kind(matched)}; "
                f"{sum(c7n_left.values())} left"
            )
            print("  c7n per policy: " + ", ".join(f"{k} {s:.1f} s" for k, s in times.items()))
            if "s3" in times and len(times) > 1:
                print(
                    f"  NOTE: c7n's S3 policy alone took {times['s3']:.1f} s (it makes an S3 client "
                    "per bucket); for the figure without it: --sweep-types sns,dynamodb,logs"
                )
            equal = (
                ours == seeded == matched and not any(left.values()) and not any(c7n_left.values())
            )
            ratio = c7n_s / ours_s if ours_s else float("inf")
            verdict = "OK" if ratio >= GOAL_RATIO else "MISSED"
            print(
                f"  wall-time ratio c7n/branchenv: {ratio:.1f}x (goal >= {GOAL_RATIO:.0f}x) "
                f"{verdict}" + ("" if equal else " -- NOT on equal work (see counts above)")
            )
        finally:
            cloud.stop()


# --- the organisation-wide sweep (issue 18) ------------------------------------------------

ORG_ACCOUNTS = ("111111111111", "222222222222")
ORG_REGIONS = ("us-east-1", "eu-west-1")
ORG_ROLE = "arn:aws:iam::{account}:role/branchenv-reaper"


def _org_setup(target: Any, root: Path) -> Any:
    """A project dir allowing both accounts, and the reaper's role in each account (made
    through moto's account header, as an organisation's bootstrap would)."""
    import json

    from branchenv.config import load_settings

    (root / "Pulumi.yaml").write_text("name: orgbench\nruntime: python\n")
    (root / "__main__.py").write_text("import pulumi\n")
    allowed = ", ".join(f'"{a}"' for a in ORG_ACCOUNTS)
    (root / "branchenv.toml").write_text(
        f'default_target = "local"\nallowed_account_ids = [{allowed}]\n'
    )
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    for account in ORG_ACCOUNTS:
        iam = target.client("iam")

        def header(request: Any, account: str = account, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account

        iam.meta.events.register("before-sign.*.*", header)
        iam.create_role(RoleName="branchenv-reaper", AssumeRolePolicyDocument=trust)
    return load_settings(cwd=root, env={})


def _org_target(target: Any, account: str, region: str) -> Any:
    from branchenv.targets import AssumeRole

    return target.with_role(
        AssumeRole(ORG_ROLE.format(account=account), "bench-seed"), region=region
    )


def _org_run(
    settings: Any, target: Any, pairs: Sequence[tuple[str, str]], concurrency: int
) -> tuple[float, float, int, int]:
    """One real `reap --yes --orphans --accounts ... --regions ...` through run.plan/execute:
    (plan seconds, total seconds, deleted, failed)."""
    from branchenv.engines import get_engine
    from branchenv.reaper import run
    from branchenv.reaper.org import parse_scope
    from branchenv.reaper.orphans import SweepStatus

    accounts = ",".join(dict.fromkeys(a for a, _ in pairs))
    regions = ",".join(dict.fromkeys(r for _, r in pairs))
    scope = parse_scope(
        accounts=accounts,
        regions=regions,
        assume_role=ORG_ROLE,
        session_name=f"bench-{len(pairs)}",
        account_concurrency=concurrency,
    )
    engine = get_engine("inprocess", settings=settings, target=target)
    started = time.perf_counter()
    plan = run.plan(
        settings,
        engines=[engine],
        target_name="local",
        target=target,
        scope=scope,
        orphans=True,
        max_orphans=10**7,
        orphan_grace=dt.timedelta(seconds=1),
    )
    planned = time.perf_counter() - started
    result = run.execute(plan, settings=settings, engines=[engine], target=target)
    elapsed = time.perf_counter() - started
    deleted = sum(1 for s in result.swept if s.status is SweepStatus.DELETED)
    failed = sum(1 for s in result.swept if s.status is SweepStatus.FAILED)
    return planned, elapsed, deleted, failed


def bench_org(per_pair: int, kinds: Sequence[Kind], concurrency: int, workers: int) -> None:
    """The org-wide sweep: ``per_pair`` tagged orphans in each of 2 accounts x 2 regions, reaped
    by one run, against the same count in one pair reaped by one run."""
    from branchenv.localcloud import LocalCloud

    seeded = _split(per_pair, kinds)
    all_pairs = [(a, r) for a in ORG_ACCOUNTS for r in ORG_REGIONS]
    with tempfile.TemporaryDirectory(prefix="branchenv-bench-org-") as tmp:
        for key in list(os.environ):
            if key.startswith("AWS_"):
                del os.environ[key]
        os.environ["AWS_CONFIG_FILE"] = os.devnull
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        root = Path(tmp) / "project"
        root.mkdir()
        cloud = LocalCloud(Path(tmp) / "state")
        target = cloud.ensure("us-east-1")
        try:
            settings = _org_setup(target, root)
            print(
                f"org-wide sweep: {per_pair} tagged orphans per pair ({_by_kind(seeded)}), "
                f"one run; per-account concurrency {concurrency}; local moto server"
            )
            seed_s = _seed(_org_target(target, *all_pairs[0]), "one", seeded, workers)
            one_plan, one_s, one_deleted, one_failed = _org_run(
                settings, target, all_pairs[:1], concurrency
            )
            print(
                f"  1 pair  ({all_pairs[0][0]}/{all_pairs[0][1]}): seeded in {seed_s:.1f} s; "
                f"planned in {one_plan:.1f} s, planned+reaped {one_deleted} in {one_s:.1f} s, "
                f"{one_failed} failed"
            )
            seed_s = 0.0
            for pair in all_pairs:
                seed_s += _seed(_org_target(target, *pair), "org", seeded, workers)
            org_plan, org_s, org_deleted, org_failed = _org_run(
                settings, target, all_pairs, concurrency
            )
            left = sum(
                sum(_left(_org_target(target, *p), "org", kinds).values()) for p in all_pairs
            )
            print(
                f"  4 pairs (2 accounts x 2 regions): seeded in {seed_s:.1f} s; planned in "
                f"{org_plan:.1f} s, planned+reaped {org_deleted} in {org_s:.1f} s, "
                f"{org_failed} failed, {left} left"
            )
            per = org_s / one_s if one_s else float("inf")
            print(
                f"  wall time 4 pairs / 1 pair: {per:.2f}x for 4x the resources "
                f"({org_deleted / org_s:.0f}/s vs {one_deleted / one_s:.0f}/s); pairs run in "
                "parallel, bounded per account, on one machine's moto server (one process: the "
                "server, not the accounts, is the shared limit here)"
            )
        finally:
            cloud.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stacks", type=int, default=1000)
    parser.add_argument("--resources", type=int, default=20000)
    parser.add_argument(
        "--sweep",
        type=int,
        default=2000,
        help="orphans for the sweep part, shared out evenly over --sweep-types",
    )
    parser.add_argument(
        "--sweep-types",
        default=",".join(KINDS),
        help=f"comma-separated resource types to seed and sweep (of {', '.join(KINDS)})",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="branchenv's sweep threads")
    parser.add_argument("--seed-workers", type=int, default=16, help="threads creating orphans")
    parser.add_argument("--skip-c7n", action="store_true")
    parser.add_argument("--plan-only", action="store_true")
    parser.add_argument(
        "--org",
        type=int,
        default=0,
        metavar="N",
        help="run only the org-wide sweep: N tagged orphans in each of 2 accounts x 2 regions, "
        "against N in one pair (issue 18's figure: --org 5000)",
    )
    parser.add_argument(
        "--org-types", default="sns,logs", help="resource types of the org-wide sweep"
    )
    args = parser.parse_args(argv)
    if args.org:
        org_kinds = [KINDS[n.strip()] for n in args.org_types.split(",") if n.strip() in KINDS]
        if not org_kinds:
            parser.error(f"--org-types: use some of {', '.join(KINDS)}")
        bench_org(args.org, org_kinds, args.concurrency, args.seed_workers)
        return 0
    names = [n.strip() for n in args.sweep_types.split(",") if n.strip()]
    unknown = [n for n in names if n not in KINDS]
    if unknown or not names:
        parser.error(
            f"--sweep-types: unknown {', '.join(unknown) or '(none given)'}; "
            f"use some of {', '.join(KINDS)}"
        )
    if args.sweep < len(names):
        parser.error(f"--sweep must be at least the number of --sweep-types ({len(names)})")
    bench_plan(args.stacks, args.resources)
    if not args.plan_only:
        kinds = [KINDS[n] for n in names]
        bench_sweep(args.sweep, kinds, args.concurrency, args.seed_workers, args.skip_c7n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
