"""A user's own small Pulumi project (not the demo) in a temp git repo, run through the CLI.

The project knows nothing of branchenv beyond reading ``branchenv:prefix`` for its physical
names; it uses the default AWS provider, so whatever tags its resources carry come from the
stack config branchenv sets (``aws:defaultTags``). Every check of what exists goes to the local
cloud over HTTP, never to branchenv's own state.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import cli_result, subprocess_env
from tests.e2e.conftest import EXE

PULUMI_YAML = "name: acme-shop\nruntime: python\n"

BUCKET_AND_QUEUE = """
import pulumi
import pulumi_aws as aws

prefix = pulumi.Config("branchenv").require("prefix")
bucket = aws.s3.Bucket("data", bucket=f"{prefix}-data")
queue = aws.sqs.Queue("jobs")
pulumi.export("bucket", bucket.bucket)
pulumi.export("queue_url", queue.url)
"""


@dataclass
class UserProject:
    """A git repo holding ``Pulumi.yaml``, ``__main__.py`` and ``branchenv.toml``; its state
    (and so its local cloud) lives in ``state_dir``, which tests of one module may share."""

    root: Path
    state_dir: Path

    def write_program(self, body: str) -> None:
        (self.root / "__main__.py").write_text(textwrap.dedent(body).lstrip())

    def run(self, *args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(EXE), *args],
            cwd=self.root,
            env=subprocess_env(BRANCHENV_STATE_DIR=str(self.state_dir), **env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        proc = self.run(*args, **env)
        assert proc.returncode == 0, (
            f"branchenv {' '.join(args)} exited {proc.returncode}\n{proc.stderr}"
        )
        return proc

    def json(self, *args: str, **env: str) -> Any:
        return cli_result(self.ok(*args, "--json", **env).stdout)

    def target(self) -> Any:
        from branchenv.localcloud import LocalCloud

        return LocalCloud(self.state_dir).status().target("us-east-1")


def make_user_project(root: Path, state_dir: Path, body: str = BUCKET_AND_QUEUE) -> UserProject:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Pulumi.yaml").write_text(PULUMI_YAML)
    (root / "branchenv.toml").write_text('program = "."\ndefault_target = "local"\n')
    project = UserProject(root=root, state_dir=state_dir)
    project.write_program(body)
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "dev@example.com"],
        ["git", "config", "user.name", "Dev"],
        ["git", "add", "."],
        ["git", "commit", "-q", "-m", "a project of my own"],
    ):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    return project


def buckets(target: Any, prefix: str) -> set[str]:
    """The local cloud's buckets whose name starts with ``prefix``."""
    names = {b["Name"] for b in target.client("s3").list_buckets()["Buckets"]}
    return {n for n in names if n.startswith(prefix)}


def bucket_tags(target: Any, bucket: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    try:
        tagset = target.client("s3").get_bucket_tagging(Bucket=bucket)["TagSet"]
    except ClientError:
        return {}
    return {t["Key"]: t["Value"] for t in tagset}


def queue_tags(target: Any, url: str) -> dict[str, str]:
    return dict(target.client("sqs").list_queue_tags(QueueUrl=url).get("Tags", {}))


class MotoRecording:
    """The local cloud's own request log (moto's recorder): every request it served between
    :meth:`start` and :meth:`requests`."""

    def __init__(self, endpoint_url: str) -> None:
        self.base = endpoint_url.rstrip("/") + "/moto-api/recorder"

    def _post(self, action: str) -> bytes:
        req = urllib.request.Request(f"{self.base}/{action}", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            body: bytes = resp.read()
            return body

    def start(self) -> None:
        self._post("reset-recording")
        self._post("start-recording")

    def requests(self) -> list[dict[str, Any]]:
        self._post("stop-recording")
        with urllib.request.urlopen(f"{self.base}/download-recording", timeout=10) as resp:
            text = resp.read().decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def request_action(entry: dict[str, Any]) -> str:
    """The API action of one recorded request: the JSON protocols' X-Amz-Target, the query
    protocols' Action=..., or S3's sub-resource (``?tagging``) with the method."""
    import base64
    import urllib.parse

    headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
    if "x-amz-target" in headers:
        return str(headers["x-amz-target"]).split(".")[-1]
    body = entry.get("body") or ""
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    query = urllib.parse.urlsplit(entry.get("url", "")).query
    for source in (query, body):
        action = urllib.parse.parse_qs(source).get("Action")
        if action:
            return action[0]
    subresources = [q.split("=")[0] for q in query.split("&") if q]
    return f"{entry.get('method')} {' '.join(subresources) or urllib.parse.urlsplit(entry.get('url', '')).path}"
