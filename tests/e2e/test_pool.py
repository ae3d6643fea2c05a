"""The warm pool through the CLI, as a user runs it, on the local cloud (issue 17 item 1).

Two real `branchenv up --pool` processes race for a pool of one: one gets the stack, the other
a one-line "pool empty" (exit 1), or a cold stack of its own with ``pool_fallback = "cold"``.
A released stack holds nothing of its previous claimant: objects (every version and delete
marker), items, messages (visible and in flight) and log streams written as branch A are gone
when branch B claims the same stack; every check reads the local cloud over HTTP.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_result, subprocess_env
from tests.e2e.conftest import EXE
from tests.e2e.own_project import UserProject, make_user_project

POOL_PROGRAM = """
import pulumi
import pulumi_aws as aws

prefix = pulumi.Config("branchenv").require("prefix")
bucket = aws.s3.Bucket("data", bucket=f"{prefix}-data")
aws.s3.BucketVersioning(
    "data-versioning",
    bucket=bucket.id,
    versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
)
table = aws.dynamodb.Table(
    "items",
    name=f"{prefix}-items",
    hash_key="pk",
    range_key="sk",
    billing_mode="PAY_PER_REQUEST",
    attributes=[
        aws.dynamodb.TableAttributeArgs(name="pk", type="S"),
        aws.dynamodb.TableAttributeArgs(name="sk", type="N"),
    ],
)
queue = aws.sqs.Queue("jobs", name=f"{prefix}-jobs")
logs = aws.cloudwatch.LogGroup("logs", name=f"/branchenv/{prefix}")
pulumi.export("bucket", bucket.bucket)
pulumi.export("table", table.name)
pulumi.export("queue_url", queue.url)
pulumi.export("log_group", logs.name)
"""


@pytest.fixture
def project(tmp_path: Path, own_state_dir: Path) -> Any:
    """A project of its own name (so its pool is its own) with a pool of one."""
    proj = make_user_project(tmp_path / "shop", own_state_dir, POOL_PROGRAM)
    name = f"pool{uuid.uuid4().hex[:6]}"
    (proj.root / "Pulumi.yaml").write_text(f"name: {name}\nruntime: python\n")
    with (proj.root / "branchenv.toml").open("a") as fh:
        fh.write("pool_size = 1\n")
    try:
        yield proj
    finally:
        proj.run("pool", "drain", "--yes")


def _race(
    project: UserProject, *branches: str, **env: str
) -> list[subprocess.CompletedProcess[str]]:
    """Start `up --pool` for each branch at once (real processes), wait for all."""
    procs = [
        subprocess.Popen(
            [str(EXE), "up", "--pool", "--branch", b, "--json"],
            cwd=project.root,
            env=subprocess_env(BRANCHENV_STATE_DIR=str(project.state_dir), **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for b in branches
    ]
    done = []
    for b, p in zip(branches, procs, strict=True):
        out, err = p.communicate(timeout=240)
        done.append(subprocess.CompletedProcess([b], p.returncode, out, err))
    return done


def test_two_concurrent_claims_on_a_pool_of_one(project: UserProject) -> None:
    fill = project.json("pool", "fill")
    assert len(fill["created"]) == 1
    pool_stack = fill["created"][0]
    # The cost report shows the pool's idle burn (what `pool status` calls it) as its own row.
    idle = project.json("cost", "--all")["idle_pool"]
    assert idle is not None and idle["stacks"] == 1
    assert idle["hourly"] == project.json("pool", "status")["idle_hourly"]
    a, b = f"feature/a-{uuid.uuid4().hex[:6]}", f"feature/b-{uuid.uuid4().hex[:6]}"
    try:
        results = _race(project, a, b)
        won = [r for r in results if r.returncode == 0]
        lost = [r for r in results if r.returncode != 0]
        assert len(won) == 1 and len(lost) == 1, [(r.returncode, r.stderr) for r in results]
        assert cli_result(won[0].stdout)["stack"] == pool_stack
        assert lost[0].returncode == 1
        error_lines = [line for line in lost[0].stderr.splitlines() if "error:" in line]
        assert len(error_lines) == 1, lost[0].stderr
        assert "pool" in error_lines[0] and "is empty" in error_lines[0]
        assert "Traceback" not in lost[0].stderr
        status = project.json("pool", "status")
        assert [s["claimed_by"] for s in status["stacks"]] == [won[0].args[0]]
        assert project.json("cost", "--all")["idle_pool"] is None  # claimed: not idle
        project.ok("down", "--branch", won[0].args[0])
        assert project.json("pool", "status")["stacks"][0]["state"] == "free"

        # With pool_fallback = cold, the loser gets a cold stack of its own instead.
        c, d = f"feature/c-{uuid.uuid4().hex[:6]}", f"feature/d-{uuid.uuid4().hex[:6]}"
        cold = _race(project, c, d, BRANCHENV_POOL_FALLBACK="cold")
        assert [r.returncode for r in cold] == [0, 0], [r.stderr for r in cold]
        stacks = sorted(cli_result(r.stdout)["stack"] for r in cold)
        assert pool_stack in stacks
        other = next(s for s in stacks if s != pool_stack)
        loser = next(r for r in cold if cli_result(r.stdout)["stack"] == other)
        assert "is empty" in loser.stderr and "cold" in loser.stderr
        for r in cold:
            project.ok("down", "--branch", r.args[0])
    finally:
        for br in (a, b):
            project.run("down", "--branch", br)


def test_a_released_stack_holds_nothing_of_its_previous_claimant(project: UserProject) -> None:
    project.ok("pool", "fill")
    a, b = f"feature/a-{uuid.uuid4().hex[:6]}", f"feature/b-{uuid.uuid4().hex[:6]}"
    try:
        first = project.json("up", "--pool", "--branch", a)
        out = first["outputs"]
        target = project.target()
        s3, ddb, sqs, logs = (target.client(n) for n in ("s3", "dynamodb", "sqs", "logs"))
        # Claimant A's data: object versions and a delete marker, items, messages (one left in
        # flight), a log stream with events.
        for body in (b"v1", b"v2"):
            s3.put_object(Bucket=out["bucket"], Key="a/secret.txt", Body=body)
        s3.put_object(Bucket=out["bucket"], Key="a/deleted.txt", Body=b"x")
        s3.delete_object(Bucket=out["bucket"], Key="a/deleted.txt")
        for i in range(30):
            ddb.put_item(TableName=out["table"], Item={"pk": {"S": f"a#{i}"}, "sk": {"N": str(i)}})
        for i in range(5):
            sqs.send_message(QueueUrl=out["queue_url"], MessageBody=f"a-{i}")
        sqs.receive_message(QueueUrl=out["queue_url"], VisibilityTimeout=600)
        logs.create_log_stream(logGroupName=out["log_group"], logStreamName="a-run")
        logs.put_log_events(
            logGroupName=out["log_group"],
            logStreamName="a-run",
            logEvents=[{"timestamp": int(time.time() * 1000), "message": "a was here"}],
        )
        versions = s3.list_object_versions(Bucket=out["bucket"])
        assert len(versions.get("Versions", [])) == 3 and versions.get("DeleteMarkers")

        down = project.ok("down", "--branch", a, "--json")
        assert cli_result(down.stdout)["released"] is True

        second = project.json("up", "--pool", "--branch", b)
        assert second["stack"] == first["stack"]  # the same stack, claimed again
        assert second["outputs"] == out
        versions = s3.list_object_versions(Bucket=out["bucket"])
        assert not versions.get("Versions") and not versions.get("DeleteMarkers")
        assert s3.list_objects_v2(Bucket=out["bucket"])["KeyCount"] == 0
        assert ddb.scan(TableName=out["table"], ConsistentRead=True)["Count"] == 0
        attrs = sqs.get_queue_attributes(QueueUrl=out["queue_url"], AttributeNames=["All"])
        for key in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ):
            assert attrs["Attributes"][key] == "0", attrs
        assert not sqs.receive_message(QueueUrl=out["queue_url"]).get("Messages")
        assert logs.describe_log_streams(logGroupName=out["log_group"])["logStreams"] == []
        project.ok("down", "--branch", b)

        # A claimant whose program changes the resource graph gets the stack destroyed on
        # release, never returned; with pool_refill = "off" the next fill replaces it (the
        # background refill: test_a_stack_destroyed_on_release_is_replaced_in_the_background).
        project.write_program(POOL_PROGRAM + EXTRA_QUEUE)
        project.json("up", "--pool", "--branch", a)
        gone = cli_result(
            project.ok("down", "--branch", a, "--json", BRANCHENV_POOL_REFILL="off").stdout
        )
        assert gone["released"] is False and gone["removed"] is True
        assert gone["refill"]["status"] == "off" and gone["refill"]["pid"] is None
        status = project.json("pool", "status")
        assert status["stacks"] == [] and status["refill"]["running"] is False
        names = {q.rsplit("/", 1)[-1] for q in sqs.list_queues().get("QueueUrls", [])}
        assert not any(n.startswith(first["stack"]) for n in names)
    finally:
        for br in (a, b):
            project.run("down", "--branch", br)


EXTRA_QUEUE = 'aws.sqs.Queue("extra", name=f"{prefix}-extra")\n'


def _pool_settled(project: UserProject, *, size: int, **env: str) -> dict[str, Any]:
    """`pool status` once the pool holds ``size`` free stacks and no refill runs (polled with a
    deadline; how fast it gets there is the benchmarks' business, not this test's)."""
    deadline = time.monotonic() + 300
    while True:
        status: dict[str, Any] = project.json("pool", "status", **env)
        free = [s for s in status["stacks"] if s["state"] == "free"]
        if len(free) == size and not status["refill"]["running"]:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(1)


def test_a_stack_destroyed_on_release_is_replaced_in_the_background(
    project: UserProject,
) -> None:
    """Two claimants whose program adds a resource release at once: both stacks are destroyed,
    one refill runs (the other release finds it running, or starts it if it already ended),
    and the pool comes back to its size, never more, without anyone running `pool fill`."""
    two = {"BRANCHENV_POOL_SIZE": "2"}
    made = project.json("pool", "fill", **two)["created"]
    assert len(made) == 2
    a, b = f"feature/a-{uuid.uuid4().hex[:6]}", f"feature/b-{uuid.uuid4().hex[:6]}"
    try:
        project.write_program(POOL_PROGRAM + EXTRA_QUEUE)
        held = {project.json("up", "--pool", "--branch", br, **two)["stack"] for br in (a, b)}
        assert held == set(made)
        downs = [
            subprocess.Popen(
                [str(EXE), "down", "--branch", br, *(["--json"] if br == a else [])],
                cwd=project.root,
                env=subprocess_env(BRANCHENV_STATE_DIR=str(project.state_dir), **two),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for br in (a, b)
        ]
        (out_a, err_a), (out_b, err_b) = (p.communicate(timeout=240) for p in downs)
        assert [p.returncode for p in downs] == [0, 0], (err_a, err_b)
        gone = cli_result(out_a)
        assert gone["removed"] is True and gone["released"] is False
        refill = gone["refill"]
        assert refill["status"] in ("started", "running"), refill
        log = Path(refill["log"])
        assert log.parent.parent == project.state_dir.resolve()  # under the state dir
        # The human `down` says what became of the replacement, pid and log included.
        said = [line for line in out_b.splitlines() if "background refill of pool" in line]
        assert len(said) == 1 and str(log) in said[0], out_b
        assert "started (pid " in said[0] or "running already (pid " in said[0]
        assert refill["status"] == "started" or "started (pid " in said[0]  # one started it

        status = _pool_settled(project, size=2, **two)
        assert sorted(s["stack"] for s in status["stacks"]) == sorted(made)
        text = log.read_text()
        assert "created" in text and all(stack in text for stack in made), text
        from branchenv.targets import LOCAL_SECRET_KEY

        assert LOCAL_SECRET_KEY not in text and "Traceback" not in text
    finally:
        for br in (a, b):
            project.run("down", "--branch", br, **two)
        project.write_program(POOL_PROGRAM)
        project.run("pool", "drain", "--yes", **two)


def test_a_fill_killed_mid_create_leaves_nothing_behind(project: UserProject) -> None:
    """A filler (the background refill is one) killed while it makes a stack, as a CI runner
    kills orphans at job end: the half-made stack stays held by the dead fill's claim (nobody
    claims it), `pool status` says it is unfinished, the next fill finishes it, and a drain
    leaves none of its resources."""
    import os
    import signal

    from branchenv.pool import member_names

    name = (project.root / "Pulumi.yaml").read_text().split()[1]
    stack = member_names(f"{name}-pool", 1)
    project.ok("cloud", "start")
    target = project.target()
    s3, sqs = target.client("s3"), target.client("sqs")
    for _attempt in range(3):
        filler = subprocess.Popen(
            [str(EXE), "pool", "fill"],
            cwd=project.root,
            env=subprocess_env(BRANCHENV_STATE_DIR=str(project.state_dir)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while filler.poll() is None and time.monotonic() < deadline:
            if any(b["Name"] == f"{stack}-data" for b in s3.list_buckets()["Buckets"]):
                os.killpg(filler.pid, signal.SIGKILL)  # its first resource exists: mid-create
                break
            time.sleep(0.05)
        filler.wait(timeout=60)
        [member] = project.json("pool", "status")["stacks"]
        if member["state"] == "unfinished":
            break
        project.ok("pool", "drain", "--yes")  # it finished before the kill: once more
    assert filler.returncode == -signal.SIGKILL and member["state"] == "unfinished", member
    br = f"feature/x-{uuid.uuid4().hex[:6]}"
    try:
        lost = project.run("up", "--pool", "--branch", br)
        assert lost.returncode == 1 and "is empty" in lost.stderr  # a half-made stack: never
        done = project.json("pool", "fill")
        assert done["created"] == [stack], done
        out = project.json("up", "--pool", "--branch", br)["outputs"]
        assert out["queue_url"] and sqs.get_queue_url(QueueName=f"{stack}-jobs")
        project.ok("down", "--branch", br)
    finally:
        project.run("down", "--branch", br)
    project.ok("pool", "drain", "--yes")
    assert not [b for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(stack)]
    queues = sqs.list_queues(QueueNamePrefix=stack).get("QueueUrls", [])
    assert not queues, queues


CI_SUITE = """
def test_writes_as_this_claimant(branchenv_outputs, branchenv_boto3_session):
    s3 = branchenv_boto3_session.client("s3")
    s3.put_object(Bucket=branchenv_outputs["bucket"], Key="ci/left.txt", Body=b"mine")
    sqs = branchenv_boto3_session.client("sqs")
    sqs.send_message(QueueUrl=branchenv_outputs["queue_url"], MessageBody="mine")
"""


def test_ci_with_the_pool_claims_and_releases_the_stack_wiped(project: UserProject) -> None:
    fill = project.json("pool", "fill")
    pool_stack = fill["created"][0]
    suite = project.root / "suite"
    suite.mkdir()
    (suite / "test_write.py").write_text(CI_SUITE)
    br = f"feature/ci-{uuid.uuid4().hex[:6]}"
    try:
        proc = project.run(
            "ci", "--pool", "--branch", br, "--suite", str(suite), "--json",
            BRANCHENV_LATENCY_P95_MS="2000",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        result = cli_result(proc.stdout)
        assert result["stack"] == pool_stack
        assert result["teardown"]["status"] == "released", result["teardown"]
        assert result["timings"]["provision_s"] > 0
        [member] = project.json("pool", "status")["stacks"]
        assert member["state"] == "free" and member["claimed_by"] is None
        target = project.target()
        bucket = f"{pool_stack}-data"
        assert not target.client("s3").list_object_versions(Bucket=bucket).get("Versions")
        url = target.client("sqs").get_queue_url(QueueName=f"{pool_stack}-jobs")["QueueUrl"]
        attrs = target.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"
    finally:
        project.run("down", "--branch", br)


def test_the_reaper_releases_an_expired_claim_back_to_the_pool(project: UserProject) -> None:
    pool_stack = project.json("pool", "fill")["created"][0]
    br = f"feature/gone-{uuid.uuid4().hex[:6]}"
    try:
        out = project.json("up", "--pool", "--branch", br, "--ttl", "1s")["outputs"]
        [listed] = [r for r in project.json("ls") if r["stack"] == pool_stack]
        assert listed["branch"] == br  # ls names the branch holding the pool stack
        s3 = project.target().client("s3")
        s3.put_object(Bucket=out["bucket"], Key="left-behind.txt", Body=b"x")
        time.sleep(1.5)
        reap = project.json("reap", "--yes")
        [row] = [r for r in reap["reaped"] if r["stack"] == pool_stack]
        assert row["status"] == "released", row
        [member] = project.json("pool", "status")["stacks"]
        assert member["state"] == "free"
        assert not s3.list_object_versions(Bucket=out["bucket"]).get("Versions")
    finally:
        project.run("down", "--branch", br)


def test_the_reaper_refills_a_pool_whose_expired_claim_it_had_to_destroy(
    project: UserProject,
) -> None:
    pool_stack = project.json("pool", "fill")["created"][0]
    br = f"feature/gone-{uuid.uuid4().hex[:6]}"
    try:
        project.write_program(POOL_PROGRAM + EXTRA_QUEUE)
        project.json("up", "--pool", "--branch", br, "--ttl", "1s")
        time.sleep(1.5)
        reap = project.json("reap", "--yes")
        [row] = [r for r in reap["reaped"] if r["stack"] == pool_stack]
        assert row["status"] == "destroyed", row
        [refill] = reap["refills"]
        assert refill["status"] == "started" and refill["pid"], refill
        [member] = _pool_settled(project, size=1)["stacks"]
        assert member["stack"] == pool_stack
    finally:
        project.run("down", "--branch", br)
        project.write_program(POOL_PROGRAM)
