"""The pulumi engine's backend: what the URL says, and for DIY backends the bucket itself.

A DIY backend (``file://``, ``s3://``, ``gs://``, ``azblob://``, ``postgres://``; pkg/backend/diy)
keeps each stack's checkpoint, stack tags and locks as objects in one bucket, in the layout of
pkg/backend/diy/backend.go and lock.go:

- ``.pulumi/meta.yaml``: ``version: 1`` for project-scoped stacks (meta.go; absent or 0 is the
  legacy layout),
- ``.pulumi/stacks/<project>/<stack>.json``: the checkpoint,
- ``.pulumi/stacks/<project>/<stack>.pulumi-tags``: the stack tags (from CLI v3.211.0),
- ``.pulumi/locks/organization/<project>/<stack>/<lock id>.json`` (legacy: ``.pulumi/locks/<stack>/``):
  one file per lock holder, ``{"pid", "username", "hostname", "timestamp"}``.

The engine touches only lock files and the tags file here: it reads who holds a stack, and it
writes a stack's tags holding the stack's lock, in one write of the whole file (the CLI's
``stack tag set`` is an unlocked read-modify-write of that file, one process per tag, so two
writers lose each other's tags). ``file://`` and ``s3://`` buckets are supported; on other DIY
schemes the engine works through the CLI alone. Pulumi Cloud (``https://``) has no bucket.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import hashlib
import json
import os
import re
import socket
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from branchenv.errors import ConfigError, EngineError
from branchenv.text import plural

DIY_SCHEMES = ("file", "s3", "gs", "azblob", "postgres")
"""URL schemes of DIY backends (gocloud blob buckets, plus the postgres store)."""

_BOOKKEEPING = ".pulumi"


def scheme(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower()


def is_diy(url: str) -> bool:
    """True for a DIY backend URL (state in a bucket the user owns), False for Pulumi Cloud."""
    return scheme(url) in DIY_SCHEMES


def redact_url(url: str) -> str:
    """A backend URL safe to show: user info and query strings dropped."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def backend_key(url: str) -> str:
    """A short, stable, filesystem-safe name for a backend (for per-backend local files):
    a readable slug of the redacted URL plus 10 hex digits of the full URL's SHA-256."""
    shown = redact_url(url)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", shown.split("://", 1)[-1]).strip("-")[:40] or "backend"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:10]
    return f"{scheme(url) or 'backend'}-{slug}-{digest}"


def file_backend_root(url: str) -> Path | None:
    """The directory of a ``file://`` backend (``~`` expanded), else None."""
    if scheme(url) != "file":
        return None
    raw = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    if urllib.parse.urlsplit(url).netloc:  # file://~/x or file://relative
        raw = urllib.parse.unquote(url[len("file://") :].split("?", 1)[0])
    return Path(os.path.expanduser(raw))


# --- buckets ---------------------------------------------------------------------------------


class Bucket(Protocol):
    """Objects of a DIY backend by slash-separated key relative to the backend root."""

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Create or replace the object."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object (absent is fine)."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        ...

    def modified(self, key: str) -> dt.datetime | None:
        """When the object was last written (None when unknown or absent)."""
        ...


class FileBucket:
    """A ``file://`` backend's directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise EngineError(
                f"cannot read {self.root / key} of the pulumi backend ({exc.strerror})"
            ) from exc

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def modified(self, key: str) -> dt.datetime | None:
        try:
            return dt.datetime.fromtimestamp((self.root / key).stat().st_mtime, dt.UTC)
        except OSError:
            return None

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp")
        )


class S3Bucket:
    """An ``s3://bucket/prefix?region=..&endpoint=..`` backend, opened as gocloud's s3blob does:
    ``endpoint``, ``region``, ``s3ForcePathStyle``/``use_path_style`` and
    ``disableSSL``/``disable_https`` from the query, credentials from the standard AWS chain
    (never the target's: a local-cloud target must not redirect the team's backend)."""

    def __init__(self, url: str) -> None:
        import boto3
        from botocore.config import Config

        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        self.name = parts.netloc
        self.prefix = parts.path.strip("/") + "/" if parts.path.strip("/") else ""
        endpoint = query.get("endpoint")
        insecure = "true" in (query.get("disableSSL"), query.get("disable_https"))
        if endpoint and "://" not in endpoint:
            endpoint = ("http://" if insecure else "https://") + endpoint
        path_style = "true" in (query.get("s3ForcePathStyle"), query.get("use_path_style"))
        self._client: Any = boto3.client(
            "s3",
            region_name=query.get("region") or None,
            endpoint_url=endpoint or None,
            config=Config(
                s3={"addressing_style": "path" if path_style else "auto"},
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    def _fail(self, exc: Exception, key: str) -> EngineError:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        return EngineError(
            f"cannot reach s3://{self.name}/{self.prefix}{key} of the pulumi backend ({code}); "
            "check the backend URL and the AWS credentials for it"
        )

    def read(self, key: str) -> bytes | None:
        try:
            body = self._client.get_object(Bucket=self.name, Key=self.prefix + key)["Body"]
            return bytes(body.read())
        except self._client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            raise self._fail(exc, key) from exc

    def write(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.name, Key=self.prefix + key, Body=data)
        except Exception as exc:
            raise self._fail(exc, key) from exc

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.name, Key=self.prefix + key)
        except Exception as exc:
            raise self._fail(exc, key) from exc

    def modified(self, key: str) -> dt.datetime | None:
        try:
            head = self._client.head_object(Bucket=self.name, Key=self.prefix + key)
        except Exception:
            return None
        moment = head.get("LastModified")
        return moment if isinstance(moment, dt.datetime) else None

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=self.prefix + prefix
            )
            for page in pages:
                keys += [o["Key"][len(self.prefix) :] for o in page.get("Contents", [])]
        except Exception as exc:
            raise self._fail(exc, prefix) from exc
        return sorted(keys)


def open_bucket(url: str) -> Bucket | None:
    """The bucket of a ``file://`` or ``s3://`` backend; None for Pulumi Cloud and for DIY
    schemes the engine does not open itself."""
    kind = scheme(url)
    if kind == "file":
        root = file_backend_root(url)
        assert root is not None
        return FileBucket(root)
    if kind == "s3":
        if not urllib.parse.urlsplit(url).netloc:
            raise ConfigError(
                f"backend URL {redact_url(url)} names no bucket; use s3://BUCKET[/PREFIX] "
                "(set `backend_url` or BRANCHENV_BACKEND_URL)"
            )
        return S3Bucket(url)
    return None


# --- locks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockHolder:
    """One lock on a stack, as the DIY backend records it."""

    where: str
    user: str
    host: str
    pid: int
    created_at: dt.datetime | None

    def describe(self) -> str:
        at = self.created_at.isoformat() if self.created_at else "an unknown time"
        return f"{self.user}@{self.host} (pid {self.pid}) since {at}"


def parse_time(text: str) -> dt.datetime | None:
    """An RFC 3339 time as Go writes it (nanoseconds allowed); None when unreadable."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
        try:
            moment = dt.datetime.fromisoformat(trimmed)
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def project_mode(bucket: Bucket) -> bool:
    """True when the backend scopes stacks by project (meta.yaml version 1, meta.go)."""
    raw = bucket.read(f"{_BOOKKEEPING}/meta.yaml")
    if raw is None:
        return False
    match = re.search(r"^version:\s*(\d+)", raw.decode("utf-8", "replace"), re.M)
    return match is not None and int(match.group(1)) >= 1


def lock_prefix(project: str, stack: str, *, projects: bool) -> str:
    """Where a stack's lock files live (lock.go stackLockDir of the fully qualified name)."""
    if projects:
        return f"{_BOOKKEEPING}/locks/organization/{project}/{stack}/"
    return f"{_BOOKKEEPING}/locks/{stack}/"


def read_locks(bucket: Bucket, project: str, stack: str, where: str = "") -> list[LockHolder]:
    """Every lock file of a stack (both layouts), oldest reading first."""
    holders = []
    seen: set[str] = set()
    for projects in (True, False):
        for key in bucket.list(lock_prefix(project, stack, projects=projects)):
            if not key.endswith(".json") or key in seen:
                continue
            seen.add(key)
            try:
                content = json.loads(bucket.read(key) or b"{}")
            except ValueError:
                content = {}
            if not isinstance(content, dict):
                content = {}
            holders.append(
                LockHolder(
                    where=f"{where.rstrip('/')}/{key}" if where else key,
                    user=str(content.get("username", "?")),
                    host=str(content.get("hostname", "?")),
                    pid=_int(content.get("pid", -1)),
                    # A torn lock file still counts, timed by when it was written.
                    created_at=parse_time(str(content.get("timestamp", "")))
                    or bucket.modified(key),
                )
            )
    return holders


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


class Locked(Exception):
    """The stack is locked by someone else (holders attached)."""

    def __init__(self, holders: list[LockHolder]) -> None:
        super().__init__(f"locked by {plural(len(holders), 'lock')}")
        self.holders = holders


@contextlib.contextmanager
def hold_lock(bucket: Bucket, project: str, stack: str) -> Iterator[None]:
    """Hold the stack's DIY lock as the CLI does (lock.go Lock: look, write our own lock file,
    look again; someone else's lock either time means we lost: ours is removed and
    :class:`Locked` raised). While held, the CLI refuses updates of the stack
    ("the stack is currently locked") and other branchenv writers wait."""
    projects = project_mode(bucket)
    prefix = lock_prefix(project, stack, projects=projects)

    def others(own: str | None) -> list[LockHolder]:
        return [h for h in read_locks(bucket, project, stack) if own is None or h.where != own]

    found = others(None)
    if found:
        raise Locked(found)
    own = f"{prefix}{uuid.uuid4()}.json"
    bucket.write(
        own,
        json.dumps(
            {
                "pid": os.getpid(),
                "username": getpass.getuser(),
                "hostname": socket.gethostname(),
                "timestamp": dt.datetime.now(dt.UTC).isoformat(),
            }
        ).encode(),
    )
    try:
        found = others(own)
        if found:
            raise Locked(found)
        yield
    finally:
        bucket.delete(own)


def remove_locks(bucket: Bucket, project: str, stack: str) -> None:
    """Delete every lock file of the stack (the DIY backend's CancelCurrentUpdate)."""
    for holder in read_locks(bucket, project, stack):
        bucket.delete(holder.where)


# --- stack tags ------------------------------------------------------------------------------

TAGS_FILE_VERSION = 1
"""The tags file format this engine writes (stack_tags.go stackTagsVersion)."""


def tags_key(project: str, stack: str, *, projects: bool) -> str:
    """The stack's tags file: its checkpoint's base path plus ``.pulumi-tags`` (stack_tags.go)."""
    if projects:
        return f"{_BOOKKEEPING}/stacks/{project}/{stack}.pulumi-tags"
    return f"{_BOOKKEEPING}/stacks/{stack}.pulumi-tags"


class TagsFormatUnknown(Exception):
    """The tags file is of a version this engine does not write: leave it to the CLI."""


def write_tags(bucket: Bucket, project: str, stack: str, tags: Mapping[str, str]) -> None:
    """Replace the stack's tags file with ``tags`` (call holding the stack's lock). Refuses
    (TagsFormatUnknown) to replace a file of another format version; an unreadable file of
    ours is replaced."""
    key = tags_key(project, stack, projects=project_mode(bucket))
    raw = bucket.read(key)
    if raw is not None:
        try:
            existing = json.loads(raw)
        except ValueError:
            existing = None
        if isinstance(existing, dict) and existing.get("version") not in (None, TAGS_FILE_VERSION):
            raise TagsFormatUnknown(f"{key} has version {existing.get('version')}")
    body = json.dumps({"version": TAGS_FILE_VERSION, "tags": dict(tags)}, indent=4)
    bucket.write(key, body.encode())
