"""Where each stack's state lives, and the metadata sidecar beside it.

One state per stack at ``<prefix>/<project>/<stack>/terraform.tfstate``; terraform has no stack
tags, so the stack's metadata is a JSON sidecar at ``<prefix>/<project>/<stack>/branchenv.json``.
Listing a project's stacks is listing those keys, so any fresh checkout sees every stack.

- ``s3`` on the local cloud (target ``local``): bucket ``branchenv-tfstate`` created on demand,
  versioned, locking with ``use_lockfile`` (a ``.tflock`` object beside the state);
- ``s3`` on AWS: a configured bucket (which must exist, versioned), key prefix, region, locking
  with ``use_lockfile`` or a DynamoDB lock table;
- ``local``: files under the state dir, for one person's use only (named so in ``ls``).

Removing a stack deletes every version of every object under its key (state, sidecar, lock file)
and the lock table's digest item: nothing of a destroyed stack stays in the backend.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

from branchenv.errors import ConfigError, EngineError, one_line

BACKEND_KINDS = ("s3", "local")
LOCAL_STATE_BUCKET = "branchenv-tfstate"
"""The state bucket on the local cloud (created on first use)."""
DEFAULT_KEY_PREFIX = "branchenv"
STATE_FILE = "terraform.tfstate"
SIDECAR_FILE = "branchenv.json"
SIDECAR_VERSION = 1

ClientFactory = Callable[[str], Any]


@dataclasses.dataclass(frozen=True)
class BackendSpec:
    """The backend of every stack of a project on one target."""

    kind: Literal["s3", "local"]
    region: str
    bucket: str | None = None
    key_prefix: str = DEFAULT_KEY_PREFIX
    lock_table: str | None = None
    endpoint_url: str | None = None
    """The local cloud's URL (s3 on target local only)."""
    access_key: str | None = None
    secret_key: str | None = None
    local_root: Path | None = None
    """Where the ``local`` kind keeps its files."""

    def __post_init__(self) -> None:
        if self.kind not in BACKEND_KINDS:
            raise ConfigError(
                f"terraform_backend = {self.kind!r} is not supported. Valid values: "
                f"{', '.join(BACKEND_KINDS)} (set `terraform_backend` in branchenv.toml)"
            )
        if self.kind == "s3" and not self.bucket:
            raise ConfigError(
                "the terraform engine on target aws keeps state in S3 and needs a bucket: set "
                "`terraform_state_bucket` (a versioned bucket you own) in branchenv.toml or "
                'BRANCHENV_TERRAFORM_STATE_BUCKET, or `terraform_backend = "local"` for '
                "one person's use"
            )
        if self.kind == "local" and self.local_root is None:
            raise ValueError("a local backend needs local_root")
        prefix = self.key_prefix.strip("/")
        if not prefix or any(part in ("", ".", "..") for part in prefix.split("/")):
            raise ConfigError(
                f"terraform_state_prefix = {self.key_prefix!r} is not a usable key prefix; use "
                "a path such as `branchenv` or `teams/web/branchenv`"
            )

    def stack_key(self, project: str, stack: str) -> str:
        return f"{self.key_prefix.strip('/')}/{project}/{stack}"

    def state_key(self, project: str, stack: str) -> str:
        return f"{self.stack_key(project, stack)}/{STATE_FILE}"

    def sidecar_key(self, project: str, stack: str) -> str:
        return f"{self.stack_key(project, stack)}/{SIDECAR_FILE}"

    def local_path(self, project: str, stack: str) -> Path:
        assert self.local_root is not None
        return self.local_root / project / stack

    def describe(self) -> str:
        """How ``ls`` names the backend."""
        if self.kind == "local":
            return f"local file backend (one person's use) at {self.local_root}"
        return f"s3://{self.bucket}/{self.key_prefix.strip('/')}"

    def init_args(self, project: str, stack: str) -> list[str]:
        """``-backend-config`` arguments for ``terraform init`` of this stack."""
        if self.kind == "local":
            return [f"-backend-config=path={self.local_path(project, stack) / STATE_FILE}"]
        args = {
            "bucket": self.bucket,
            "key": self.state_key(project, stack),
            "region": self.region,
            "use_lockfile": "true" if self.lock_table is None else None,
            "dynamodb_table": self.lock_table,
        }
        if self.endpoint_url is not None:
            url = json.dumps(self.endpoint_url)
            args.update(
                {
                    "endpoints": f"{{s3={url},sts={url},dynamodb={url}}}",
                    "use_path_style": "true",
                    "skip_credentials_validation": "true",
                    "skip_requesting_account_id": "true",
                    "skip_metadata_api_check": "true",
                    "skip_region_validation": "true",
                    "access_key": self.access_key,
                    "secret_key": self.secret_key,
                }
            )
        return [f"-backend-config={k}={v}" for k, v in args.items() if v is not None]


class StateStore(Protocol):
    """The backend's objects as branchenv reads them (no terraform start needed)."""

    spec: BackendSpec

    def ensure(self) -> None:
        """Make the backend usable (the local cloud's bucket is created on first use)."""
        ...

    def stacks(self, project: str) -> list[str]:
        """Every stack of ``project`` that has a state or a sidecar."""
        ...

    def read_state(self, project: str, stack: str) -> dict[str, Any] | None:
        """The stack's state document, or None when there is none."""
        ...

    def read_sidecar(self, project: str, stack: str) -> dict[str, Any] | None:
        """The stack's sidecar document, or None when there is none."""
        ...

    def write_sidecar(
        self,
        project: str,
        stack: str,
        tags: dict[str, str],
        variables: dict[str, Any] | None = None,
    ) -> None:
        """Replace the stack's sidecar with one holding ``tags`` (and ``variables``)."""
        ...

    def read_lock(self, project: str, stack: str) -> dict[str, Any] | None:
        """The lock info terraform wrote for the stack's state (ID, Who, Created...), if held."""
        ...

    def remove(self, project: str, stack: str) -> int:
        """Delete every object (every version) of the stack; returns how many were deleted."""
        ...


def sidecar_document(
    project: str, stack: str, tags: dict[str, str], variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The sidecar's JSON: the stack's metadata tags, the variables it was applied with (its
    prefix, profile, ... never secrets: branchenv's inputs are not), and when it was written."""
    return {
        "version": SIDECAR_VERSION,
        "project": project,
        "stack": stack,
        "tags": dict(sorted(tags.items())),
        "vars": dict(sorted((variables or {}).items())),
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _json_object(raw: bytes, what: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


class S3StateStore:
    """The ``s3`` backend's bucket, through boto3 clients from ``clients`` (a target's)."""

    def __init__(self, spec: BackendSpec, clients: ClientFactory, *, create_bucket: bool) -> None:
        self.spec = spec
        self._clients = clients
        self._create_bucket = create_bucket
        self._s3: Any = None

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = self._clients("s3")
        return self._s3

    def ensure(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_bucket(Bucket=self.spec.bucket)
            return
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("404", "NoSuchBucket", "NotFound") or not self._create_bucket:
                raise EngineError(
                    f"the terraform state bucket {self.spec.bucket!r} cannot be used "
                    f"({one_line(exc)}); create it (versioned) or fix terraform_state_bucket"
                ) from None
        self.s3.create_bucket(Bucket=self.spec.bucket)
        self.s3.put_bucket_versioning(
            Bucket=self.spec.bucket, VersioningConfiguration={"Status": "Enabled"}
        )

    def stacks(self, project: str) -> list[str]:
        prefix = f"{self.spec.key_prefix.strip('/')}/{project}/"
        found: set[str] = set()
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.spec.bucket, Prefix=prefix):
                for obj in page.get("Contents", []) or []:
                    rest = obj["Key"][len(prefix) :]
                    stack, _, name = rest.partition("/")
                    if stack and name in (STATE_FILE, SIDECAR_FILE):
                        found.add(stack)
        except self.s3.exceptions.NoSuchBucket:
            return []
        return sorted(found)

    def _get(self, key: str) -> bytes | None:
        try:
            body: bytes = self.s3.get_object(Bucket=self.spec.bucket, Key=key)["Body"].read()
        except (self.s3.exceptions.NoSuchKey, self.s3.exceptions.NoSuchBucket):
            return None
        return body

    def read_state(self, project: str, stack: str) -> dict[str, Any] | None:
        raw = self._get(self.spec.state_key(project, stack))
        return None if raw is None else _json_object(raw, "state")

    def read_sidecar(self, project: str, stack: str) -> dict[str, Any] | None:
        raw = self._get(self.spec.sidecar_key(project, stack))
        return None if raw is None else _json_object(raw, "sidecar")

    def write_sidecar(
        self,
        project: str,
        stack: str,
        tags: dict[str, str],
        variables: dict[str, Any] | None = None,
    ) -> None:
        body = json.dumps(sidecar_document(project, stack, tags, variables), indent=1).encode()
        self.s3.put_object(
            Bucket=self.spec.bucket,
            Key=self.spec.sidecar_key(project, stack),
            Body=body,
            ContentType="application/json",
        )

    def read_lock(self, project: str, stack: str) -> dict[str, Any] | None:
        key = self.spec.state_key(project, stack)
        if self.spec.lock_table:
            item = (
                self._clients("dynamodb")
                .get_item(
                    TableName=self.spec.lock_table,
                    Key={"LockID": {"S": f"{self.spec.bucket}/{key}"}},
                )
                .get("Item")
            )
            raw = (item or {}).get("Info", {}).get("S")
            return None if raw is None else _json_object(raw.encode(), "lock")
        body = self._get(key + ".tflock")
        return None if body is None else _json_object(body, "lock")

    def remove(self, project: str, stack: str) -> int:
        prefix = self.spec.stack_key(project, stack) + "/"
        deleted = 0
        paginator = self.s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.spec.bucket, Prefix=prefix):
            doomed = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in (page.get("Versions") or []) + (page.get("DeleteMarkers") or [])
                if v["Key"].startswith(prefix)
            ]
            for start in range(0, len(doomed), 1000):
                batch = doomed[start : start + 1000]
                self.s3.delete_objects(
                    Bucket=self.spec.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                deleted += len(batch)
        if self.spec.lock_table:
            # The S3 backend's lock table keeps a digest of the state per key; drop it too.
            self._clients("dynamodb").delete_item(
                TableName=self.spec.lock_table,
                Key={
                    "LockID": {"S": f"{self.spec.bucket}/{self.spec.state_key(project, stack)}-md5"}
                },
            )
        return deleted


class FileStateStore:
    """The ``local`` backend: files under the state dir (one person's machine)."""

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        assert spec.local_root is not None
        self.root = spec.local_root

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def stacks(self, project: str) -> list[str]:
        base = self.root / project
        if not base.is_dir():
            return []
        return sorted(
            d.name
            for d in base.iterdir()
            if d.is_dir() and ((d / STATE_FILE).exists() or (d / SIDECAR_FILE).exists())
        )

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        return _json_object(raw, path.name)

    def read_state(self, project: str, stack: str) -> dict[str, Any] | None:
        return self._read(self.spec.local_path(project, stack) / STATE_FILE)

    def read_sidecar(self, project: str, stack: str) -> dict[str, Any] | None:
        return self._read(self.spec.local_path(project, stack) / SIDECAR_FILE)

    def write_sidecar(
        self,
        project: str,
        stack: str,
        tags: dict[str, str],
        variables: dict[str, Any] | None = None,
    ) -> None:
        path = self.spec.local_path(project, stack) / SIDECAR_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{SIDECAR_FILE}.tmp")
        tmp.write_text(json.dumps(sidecar_document(project, stack, tags, variables), indent=1))
        tmp.replace(path)

    def read_lock(self, project: str, stack: str) -> dict[str, Any] | None:
        # The local backend writes its lock info beside the state, as a dot file.
        return self._read(self.spec.local_path(project, stack) / f".{STATE_FILE}.lock.info")

    def remove(self, project: str, stack: str) -> int:
        path = self.spec.local_path(project, stack)
        if not path.is_dir():
            return 0
        count = sum(1 for p in path.rglob("*") if p.is_file())
        shutil.rmtree(path)
        return count


def state_store(
    spec: BackendSpec, clients: ClientFactory | None, *, local_target: bool
) -> StateStore:
    """The store for ``spec`` (the local cloud's bucket is created on demand, a real one never)."""
    if spec.kind == "local":
        return FileStateStore(spec)
    if clients is None:
        raise ValueError("an s3 state store needs a client factory")
    return S3StateStore(spec, clients, create_bucket=local_target)
