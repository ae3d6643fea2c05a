"""The claim store: who holds which pool stack, decided by one conditional write.

Every claimer of a pool (any process, any machine working on the same target) shares one S3
bucket in the target account, ``branchenv-pool-<account>-<region>``. A claim on a stack is the
object ``claims/<engine>/<project>/<stack>.json``, written with ``If-None-Match: *``: S3 creates
it only if it does not exist, so of two claimers exactly one gets ``200`` and the other ``412
Precondition Failed`` (S3 conditional writes, strongly consistent on AWS). The holder then
writes the claim into the stack's own metadata (what ``ls``, ``pool status`` and the reaper
read); releasing deletes the object last, once the stack is wiped and marked free again.

Each claim carries a random token and the claimer reads the object back: only the claimer
that finds its own token holds the stack (a GET on AWS). Plain moto checks the condition and
stores the object in two steps, so two requests arriving in the same instant could both pass
the check; the local cloud branchenv starts serialises S3 writes so they cannot
(:mod:`branchenv.localcloud.fidelity`, advertised as ``Target.atomic_conditional_writes``).
On a local cloud that does not say so (one started by an older branchenv and still running)
the claimer waits a short settle before the read-back: the last write is the one that stays,
so at most one claimer finds its own token and the others back off.

The same bucket keeps each pool stack's *baseline*, the set of resource addresses it had when
the pool made it (``baselines/...``): a release compares the stack's addresses against it to
know whether the claimant's program changed the resource graph.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from branchenv.errors import OperationFailed

if TYPE_CHECKING:
    from branchenv.targets import Target

SETTLE_S = 0.25
"""How long a claimer on a local cloud without atomic conditional writes waits before reading
its claim back (see module doc)."""


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim record: who holds the stack, since when, until when, and the claim's token."""

    stack: str
    branch: str
    owner: str
    claimed_at: str
    expires_at: str
    token: str
    maker: str = ""
    """Who holds it, for a claim branchenv holds itself while it makes a stack: ``<host> <pid>
    <start time>`` (so a fill on that host can tell the maker died); empty for a branch's."""

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Claim | None:
        try:
            data = json.loads(raw)
            return cls(
                **{
                    f.name: str(data[f.name])
                    for f in dataclasses.fields(cls)
                    if f.name in data or f.default is dataclasses.MISSING
                }
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


_BUCKETS: dict[Target, str] = {}
_S3: dict[Target, Any] = {}
"""The claim bucket per target, once made or found in this process (a claim asks several
times; each create_bucket and STS call costs a round trip)."""
_MAKING = threading.Lock()
"""Held while the S3 client or the bucket is made: `ci` makes them ahead of its claim on
another thread (:func:`branchenv.pool.prepare`), and a claim arriving meanwhile waits for them
rather than making its own."""


def new_token() -> str:
    return secrets.token_hex(16)


class ClaimStore:
    """Claims and baselines of one project's pool stacks for one engine on one target."""

    def __init__(
        self,
        target: Target,
        *,
        engine: str,
        project: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.engine = engine
        self.project = project
        self._sleep = sleep
        self._s3: Any = None
        self._bucket: str | None = None

    # --- the bucket -------------------------------------------------------------------------

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            with _MAKING:
                self._s3 = _S3.get(self.target) or self.target.client("s3")
                _S3[self.target] = self._s3
        return self._s3

    @property
    def bucket(self) -> str:
        """The shared bucket, created on first use (an existing one is reused)."""
        if self._bucket is None and self.target in _BUCKETS:
            self._bucket = _BUCKETS[self.target]
        if self._bucket is None:
            s3 = self.s3
            with _MAKING:
                self._bucket = _BUCKETS.get(self.target) or self._make_bucket(s3)
                _BUCKETS[self.target] = self._bucket
        return self._bucket

    def _make_bucket(self, s3: Any) -> str:
        """Create the shared bucket (one that exists already is reused); its name."""
        from botocore.exceptions import ClientError

        account = self.target.known_account() or self.target.account_id()
        name = f"branchenv-pool-{account}-{self.target.region}"
        try:
            if self.target.region == "us-east-1":
                s3.create_bucket(Bucket=name)
            else:
                s3.create_bucket(
                    Bucket=name,
                    CreateBucketConfiguration={"LocationConstraint": self.target.region},
                )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise OperationFailed(
                    f"the pool's claim bucket {name} could not be created: {code}; check "
                    "the target's credentials allow s3:CreateBucket"
                ) from None
        return name

    def _key(self, kind: str, stack: str) -> str:
        return f"{kind}/{self.engine}/{self.project}/{stack}.json"

    # --- claims -----------------------------------------------------------------------------

    def try_claim(self, claim: Claim) -> bool:
        """Create the stack's claim object unless one exists; True when this claim holds."""
        from botocore.exceptions import ClientError

        key = self._key("claims", claim.stack)
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=claim.to_json(),
                IfNoneMatch="*",
                ContentType="application/json",
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (
                409,
                412,
            ):
                return False
            raise
        if self.target.endpoint_url is not None and not self.target.atomic_conditional_writes:
            self._sleep(SETTLE_S)  # see the module doc: this local cloud's check is not atomic
        held = self.read_claim(claim.stack)
        return held is not None and held.token == claim.token

    def read_claim(self, stack: str) -> Claim | None:
        """The stack's claim record, None when nobody holds it."""
        from botocore.exceptions import ClientError

        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._key("claims", stack))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return Claim.from_json(body.read())

    def release(self, stack: str) -> None:
        """Delete the stack's claim object: from now on another claimer can get it."""
        self.s3.delete_object(Bucket=self.bucket, Key=self._key("claims", stack))

    def release_if(self, claim: Claim) -> None:
        """Delete the stack's claim object only while it is still ``claim`` (its token): a
        claim someone took over meanwhile stays."""
        held = self.read_claim(claim.stack)
        if held is not None and held.token == claim.token:
            self.release(claim.stack)

    def claims(self) -> dict[str, Claim | None]:
        """Every claim object of the project's pools, by stack (None: unreadable record)."""
        found: dict[str, Claim | None] = {}
        prefix = f"claims/{self.engine}/{self.project}/"
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                stack = item["Key"][len(prefix) :].removesuffix(".json")
                found[stack] = self.read_claim(stack)
        return found

    # --- baselines --------------------------------------------------------------------------

    def write_baseline(self, stack: str, addresses: Iterable[str]) -> None:
        """Record the stack's resource addresses as the pool made it."""
        body = json.dumps({"addresses": sorted(set(addresses))}).encode()
        self.s3.put_object(Bucket=self.bucket, Key=self._key("baselines", stack), Body=body)

    def baseline(self, stack: str) -> frozenset[str] | None:
        """The addresses recorded by :meth:`write_baseline`; None when none is recorded."""
        from botocore.exceptions import ClientError

        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._key("baselines", stack))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        try:
            return frozenset(str(a) for a in json.loads(body["Body"].read())["addresses"])
        except (ValueError, KeyError, TypeError):
            return None

    def write_applied(self, stack: str, fingerprint: str) -> None:
        """Record the fingerprint of the program and inputs last applied to the stack."""
        body = json.dumps({"fingerprint": fingerprint}).encode()
        self.s3.put_object(Bucket=self.bucket, Key=self._key("applied", stack), Body=body)

    def applied(self, stack: str) -> str | None:
        """What :meth:`write_applied` recorded; None when nothing is (or it is unreadable)."""
        from botocore.exceptions import ClientError

        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._key("applied", stack))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        try:
            return str(json.loads(body["Body"].read())["fingerprint"])
        except (ValueError, KeyError, TypeError):
            return None

    def forget(self, stack: str, *, claim: bool = True) -> None:
        """Drop everything kept for a stack that left the pool (destroyed); ``claim=False``
        keeps its claim object (a filler holding it drops what an older stack left)."""
        for kind in ("claims", "baselines", "applied") if claim else ("baselines", "applied"):
            self.s3.delete_object(Bucket=self.bucket, Key=self._key(kind, stack))
