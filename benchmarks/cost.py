"""How long a cost report over many stacks takes.

Usage: python benchmarks/cost.py [--stacks 1000] [--goal 2.0] [--runs 3]

Two measurements, each the best of --runs:

1. ``arithmetic``: estimate 1,000 inventories of the 18 demo resources, group them per stack,
   branch and owner, and render JSON, CSV and Markdown (pure functions only);
2. ``from state``: what ``branchenv cost --all`` does: the inprocess engine lists 1,000 stack
   state files from disk, the inventory of each is read and priced, and the report is rendered.

3. ``cli``: ``branchenv cost --all --json`` in a fresh process over the same state.

Prints each figure against the goal; exits 1 when ``from state`` or ``cli`` misses it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from branchenv.config import Settings
from branchenv.cost.estimate import (
    InventoryItem,
    StackInventory,
    collect_stack_costs,
    estimate_stacks,
)
from branchenv.cost.prices import load_prices
from branchenv.cost.report import build_report, render, table_rows
from branchenv.engines.inprocess.engine import InProcessEngine
from branchenv.engines.inprocess.state import ResourceEntry, StackState, StateStore
from branchenv.metadata import StackMetadata

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
DEMO = [
    "aws:dynamodb/table:Table",
    "aws:sqs/queue:Queue",
    "aws:sqs/queue:Queue",
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:iam/role:Role",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:lambda/function:Function",
    "aws:lambda/permission:Permission",
    "aws:apigatewayv2/api:Api",
    "aws:apigatewayv2/integration:Integration",
    "aws:apigatewayv2/route:Route",
    "aws:apigatewayv2/route:Route",
    "aws:apigatewayv2/route:Route",
    "aws:apigatewayv2/stage:Stage",
]


def metadata(i: int) -> StackMetadata:
    return StackMetadata.create(
        stack=f"bench-{i:05d}",
        branch=f"feature/b{i % 300}",
        owner=f"owner{i % 25}",
        commit="0" * 40,
        ttl=dt.timedelta(hours=24),
        now=NOW - dt.timedelta(minutes=7 * i % 1440),
        target="local",
        engine="inprocess",
    )


def region(i: int) -> str:
    return "eu-west-1" if i % 3 == 0 else "us-east-1"


def best(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def render_all(costs: list) -> int:  # type: ignore[type-arg]
    size = 0
    for by in ("stack", "branch", "owner"):
        report = build_report(costs, by=by, now=NOW)
        size += len(table_rows(report))
        for fmt in ("json", "csv", "markdown"):
            size += len(render(report, fmt))
    return size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=1000)
    parser.add_argument("--goal", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    prices = load_prices()

    inventories = []
    for i in range(args.stacks):
        md = metadata(i)
        items = tuple(
            InventoryItem(t, region(i), t, {"memorySize": 256} if "lambda/function" in t else {})
            for t in DEMO
        )
        inventories.append(
            StackInventory(md.stack, items, md.branch, md.owner, md.created_at, md.expires_at)
        )

    def arithmetic() -> None:
        render_all(estimate_stacks(inventories, prices=prices, now=NOW))

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "infra").mkdir()
        (project / "infra" / "Pulumi.yaml").write_text("name: bench\nruntime: python\n")
        settings = Settings(project_dir=project, program="infra")
        store = StateStore(settings.state_path / "inprocess")
        for i in range(args.stacks):
            md = metadata(i)
            store.save(
                StackState(
                    project="bench",
                    stack=md.stack,
                    target={"name": "local", "region": region(i)},
                    tags=md.to_tags(),
                    resources=[
                        ResourceEntry(
                            urn=f"urn:pulumi:{md.stack}::bench::{t}::r{j}",
                            type=t,
                            name=f"r{j}",
                            id=f"id-{j}",
                            outputs={"memorySize": 256} if "lambda/function" in t else {},
                            dependencies=[],
                            region=region(i),
                        )
                        for j, t in enumerate(DEMO)
                    ],
                    outputs={},
                )
            )
        engine = InProcessEngine(state_dir=settings.state_path)

        def from_state() -> None:
            costs = collect_stack_costs(settings, engines=[engine], now=NOW, prices=prices)
            assert len(costs) == args.stacks
            render_all(costs)

        t_arith = best(args.runs, arithmetic)
        t_state = best(args.runs, from_state)

        (project / "branchenv.toml").write_text('program = "infra"\nengine = "inprocess"\n')
        cli = [str(Path(sys.executable).parent / "branchenv"), "cost", "--all", "--json"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PULUMI_"))}

        def via_cli() -> None:
            out = subprocess.run(cli, cwd=project, env=env, capture_output=True, check=True)
            assert len(json.loads(out.stdout)["rows"]) == args.stacks

        t_cli = best(args.runs, via_cli)

    costs = estimate_stacks(inventories, prices=prices, now=NOW)
    total = build_report(costs, by="owner", now=NOW).totals
    print(f"cost report over {args.stacks} stacks x {len(DEMO)} resources (best of {args.runs})")
    print(f"  arithmetic + 3 groupings x 3 formats : {t_arith:6.3f} s  (goal < {args.goal} s)")
    print(f"  from 1 state file per stack (cost --all): {t_state:6.3f} s  (goal < {args.goal} s)")
    print(f"  `branchenv cost --all --json` (process): {t_cli:6.3f} s  (goal < {args.goal} s)")
    print(
        "  totals: "
        + json.dumps(
            {
                "hourly": f"{total.hourly:.4f}",
                "so_far": f"{total.so_far:.2f}",
                "projected_to_expiry": f"{total.projected_to_expiry:.2f}",
            }
        )
    )
    ok = max(t_state, t_cli) < args.goal
    print("  result:", "within goal" if ok else "MISSES the goal")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
