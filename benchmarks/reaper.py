"""The reaper's speed and memory, with figures printed against the goals.

Usage: python benchmarks/reaper.py [--stacks 1000] [--resources 20000] [--sweep 20000]
                                   [--concurrency 16] [--skip-c7n]

1. The plan (pure): the policy over ``--stacks`` stack summaries plus the orphan
   classification of ``--resources`` tagged resources (goal < 5 s, < 300 MB; measured with
   tracemalloc (peak Python allocations) and resource.getrusage (max RSS of the process)).
2. The orphan sweep on a local cloud (a real moto server over HTTP, started here in a temp
   dir): ``--sweep`` orphaned SNS topics (among the cheapest real resources to create on moto
   in bulk; seeding is timed separately), found by tag and deleted by branchenv's sweep; then
   the same number seeded again and deleted by a Cloud Custodian (c7n) policy
   (``resource: aws.sns``, a ``tag:branchenv:managed-by`` filter and the ``delete`` action),
   pointed at the same server with ``AWS_ENDPOINT_URL``. Not SQS: c7n's ``aws.sqs`` resource
   passes an explicit ``endpoint_url=https://sqs.<region>.amazonaws.com`` to boto3
   (c7n/resources/sqs.py, ``SQS.get_client``), which overrides ``AWS_ENDPOINT_URL``, so c7n
   cannot be pointed at the local cloud for SQS. The ratio is from this one
   run (goal: branchenv >= 2x faster). c7n is optional: ``pip install c7n`` into the venv (it
   is not a dependency of branchenv); without it the comparison is skipped and says so.
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


def _seed_topics(target: Any, prefix: str, count: int, workers: int) -> float:
    tags = [
        {"Key": "branchenv:managed-by", "Value": "branchenv"},
        {"Key": "branchenv:stack", "Value": f"{prefix}-ghost"},
    ]
    started = time.perf_counter()
    clients = [target.client("sns") for _ in range(workers)]

    def create(i: int) -> None:
        clients[i % workers].create_topic(Name=f"{prefix}-{i}", Tags=tags)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(create, range(count)))
    return time.perf_counter() - started


def _count_topics(target: Any, prefix: str) -> int:
    sns = target.client("sns")
    total = 0
    for page in sns.get_paginator("list_topics").paginate():
        total += sum(
            1 for t in page.get("Topics", []) if t["TopicArn"].rsplit(":", 1)[-1].startswith(prefix)
        )
    return total


def _ours(target: Any, concurrency: int) -> tuple[float, float, int]:
    from branchenv.reaper.orphans import SweepStatus, clients_for, find_orphans, sweep

    started = time.perf_counter()
    plan = find_orphans(target, known_stacks=set(), protected_patterns=(), project=None)
    found = time.perf_counter() - started
    outcomes = sweep(plan.orphans, clients=clients_for(target), concurrency=concurrency)
    elapsed = time.perf_counter() - started
    failed = sum(1 for o in outcomes if o.status is SweepStatus.FAILED)
    if failed:
        print(f"  WARNING: {failed} deletions failed")
    return found, elapsed, len(outcomes)


def _c7n_available() -> str | None:
    try:
        import c7n  # noqa: F401
    except ImportError:
        return (
            "c7n is not installed (`.venv/bin/pip install c7n`; it is not a branchenv dependency)"
        )
    return None


def _c7n(target: Any, out_dir: Path) -> tuple[float, int]:
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources

    env = target.aws_env()  # AWS_ENDPOINT_URL -> the local cloud; dummy keys
    os.environ.update(env)
    load_resources(("aws.sns",))
    data = {
        "name": "branchenv-orphans",
        "resource": "aws.sns",
        "filters": [{"tag:branchenv:managed-by": "branchenv"}],
        "actions": ["delete"],
    }
    config = Config.empty(region=target.region, output_dir=str(out_dir), account_id="123456789012")
    policy = Policy(data, config)
    policy.validate()
    started = time.perf_counter()
    resources = policy.run()
    return time.perf_counter() - started, len(resources or [])


def bench_sweep(count: int, concurrency: int, skip_c7n: bool) -> None:
    from branchenv.localcloud import LocalCloud

    with tempfile.TemporaryDirectory(prefix="branchenv-bench-") as tmp:
        for key in list(os.environ):
            if key.startswith("AWS_"):
                del os.environ[key]
        os.environ["AWS_CONFIG_FILE"] = os.devnull
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        cloud = LocalCloud(Path(tmp) / "state")
        target = cloud.ensure("us-east-1")
        try:
            print(f"orphan sweep: {count} orphaned SNS topics on a local moto server")
            seed_s = _seed_topics(target, "ours", count, workers=16)
            print(f"  seeding (boto3, 16 threads): {seed_s:.1f} s ({count / seed_s:.0f}/s)")
            found_s, ours_s, deleted = _ours(target, concurrency)
            left = _count_topics(target, "ours")
            print(
                f"  branchenv: found in {found_s:.1f} s, found+deleted {deleted} in {ours_s:.1f} s "
                f"(concurrency {concurrency}); {left} left"
            )
            problem = "skipped by --skip-c7n" if skip_c7n else _c7n_available()
            if problem:
                print(f"  c7n comparison skipped: {problem}")
                return
            seed_s = _seed_topics(target, "c7n", count, workers=16)
            print(f"  seeding again for c7n: {seed_s:.1f} s")
            c7n_s, matched = _c7n(target, Path(tmp) / "c7n-out")
            left = _count_topics(target, "c7n")
            print(f"  c7n: matched+deleted {matched} in {c7n_s:.1f} s; {left} left")
            if left:
                print("  NOTE: c7n left topics behind; the ratio compares unequal work")
            ratio = c7n_s / ours_s if ours_s else float("inf")
            verdict = "OK" if ratio >= GOAL_RATIO else "MISSED"
            print(
                f"  wall-time ratio c7n/branchenv: {ratio:.1f}x (goal >= {GOAL_RATIO:.0f}x) {verdict}"
            )
            if matched and deleted:
                ours_rate, c7n_rate = deleted / ours_s, matched / c7n_s
                per = ours_rate / c7n_rate
                print(
                    f"  per-resource: branchenv {ours_rate:.0f}/s, c7n {c7n_rate:.0f}/s -> "
                    f"{per:.1f}x (goal >= {GOAL_RATIO:.0f}x) {'OK' if per >= GOAL_RATIO else 'MISSED'}"
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
        help="orphans for the sweep part (moto creates ~200/s: 20000 takes ~7 min in all)",
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--skip-c7n", action="store_true")
    parser.add_argument("--plan-only", action="store_true")
    args = parser.parse_args(argv)
    bench_plan(args.stacks, args.resources)
    if not args.plan_only:
        bench_sweep(args.sweep, args.concurrency, args.skip_c7n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
