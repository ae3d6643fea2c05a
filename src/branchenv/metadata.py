"""Stack metadata: what every managed stack carries, as tags valid for AWS and Pulumi.

Two sets: :meth:`StackMetadata.identity_tags` go on every AWS resource (read by orphan sweeps
and cost allocation) and never change between updates of the stack; :meth:`StackMetadata.
to_tags` is the full set kept with the stack itself (stack tags, sidecar or state: read by
``ls`` and the reaper): the identity plus what changes (expiry, commit, reap-pending).

Tag keys are ``branchenv:<name>``, at most 40 characters of ``[A-Za-z0-9_.:-]`` (the stricter of
the AWS and Pulumi stack-tag key rules). Tag values are at most 256 characters from an ASCII
subset of the AWS tag value charset: letters, digits and ``_ . : / + - @``. Any other character
(``=``, spaces, ``#``, ``~``, non-ASCII, ...) is written as ``=XX`` per UTF-8 byte, ``=`` being
the escape (quoted-printable style), so ``feature/login`` stays ``feature/login`` and
``fix#12`` becomes ``fix=2312``. Staying ASCII keeps values valid for services that are stricter
than the general rule.

A value whose encoding exceeds 256 characters (a very long branch) is cut at a character
boundary and ends with :data:`TRUNCATION_MARK` (``=...``, never produced by a complete
encoding); decoding it yields the kept head followed by ``…``. Such a branch does not round
trip; the ``branchenv:stack`` tag, whose name carries a hash of the full branch, is the identity
of the stack. Dates are ISO-8601 UTC ending in ``Z``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from typing import Literal, cast, get_args

from branchenv.errors import UsageError

TAG_PREFIX = "branchenv:"
MANAGED_BY_KEY = "branchenv:managed-by"
MANAGED_BY_VALUE = "branchenv"

MAX_TAG_KEY_LEN = 40
MAX_TAG_VALUE_LEN = 256
TAG_KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,40}")
"""Valid tag keys: the intersection of the AWS tag and Pulumi stack-tag key rules."""

TRUNCATION_MARK = "=..."
"""Ends a tag value cut to fit 256 characters; a complete encoding never contains ``=.``."""

Target = Literal["local", "aws"]
TARGETS: tuple[str, ...] = get_args(Target)
ENGINE_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,39}")
"""What an engine name in metadata looks like. Which engines exist is the registry's business
(:mod:`branchenv.engines`), checked where a stack is acted on, not where its tags are read: a
stack made by an engine this installation lacks is still managed, never unmanaged."""

KEY_STACK = "branchenv:stack"
KEY_BRANCH = "branchenv:branch"
KEY_OWNER = "branchenv:owner"
KEY_COMMIT = "branchenv:commit"
KEY_CREATED_AT = "branchenv:created-at"
KEY_EXPIRES_AT = "branchenv:expires-at"
KEY_TARGET = "branchenv:target"
KEY_ENGINE = "branchenv:engine"
KEY_REAP_PENDING = "branchenv:reap-pending"
KEY_PROJECT = "branchenv:project"
KEY_POOL = "branchenv:pool"
KEY_CLAIMED_BY = "branchenv:claimed-by"
KEY_CLAIMED_OWNER = "branchenv:claimed-owner"
POOL_KEYS = (KEY_POOL, KEY_CLAIMED_BY, KEY_CLAIMED_OWNER)
"""Written only for a warm-pool stack (:mod:`branchenv.pool`): the pool it belongs to and, while
a branch holds it, the claiming branch and owner (the claim's expiry is ``expires-at``). Never
identity tags: a claim must not retag the stack's resources."""
KEY_REGION = "branchenv:region"
KEY_ACCOUNT = "branchenv:account"
TAG_KEYS = (
    MANAGED_BY_KEY,
    KEY_STACK,
    KEY_BRANCH,
    KEY_OWNER,
    KEY_COMMIT,
    KEY_CREATED_AT,
    KEY_EXPIRES_AT,
    KEY_TARGET,
    KEY_ENGINE,
    KEY_REAP_PENDING,
    KEY_PROJECT,
    KEY_REGION,
    KEY_ACCOUNT,
)
"""Every key :meth:`StackMetadata.to_tags` writes for a branch stack (region and account
when known; a pool stack adds :data:`POOL_KEYS`)."""


REGION_PATTERN = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
ACCOUNT_PATTERN = re.compile(r"[0-9]{12}")

IDENTITY_KEYS = (
    MANAGED_BY_KEY,
    KEY_STACK,
    KEY_BRANCH,
    KEY_PROJECT,
    KEY_OWNER,
    KEY_CREATED_AT,
    KEY_TARGET,
    KEY_ENGINE,
)
"""The keys of :meth:`StackMetadata.identity_tags`: what never changes between updates."""


class MetadataFormatError(ValueError):
    """Tags carry the managed marker but a required key is missing or malformed."""


# --- tag values -----------------------------------------------------------------------------

_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/+-@")
_ESCAPED = re.compile(r"=([0-9A-F]{2})")


def encode_tag_value(text: str) -> str:
    """Encode ``text`` as a valid tag value; reversible by :func:`decode_tag_value` if it fits.

    Values longer than 256 characters once encoded are cut and end with
    :data:`TRUNCATION_MARK`.
    """
    pieces = [
        ch if ch in _PLAIN else "".join(f"={b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        for ch in text
    ]
    encoded = "".join(pieces)
    if len(encoded) <= MAX_TAG_VALUE_LEN:
        return encoded
    budget = MAX_TAG_VALUE_LEN - len(TRUNCATION_MARK)
    kept: list[str] = []
    used = 0
    for piece in pieces:
        if used + len(piece) > budget:
            break
        kept.append(piece)
        used += len(piece)
    return "".join(kept) + TRUNCATION_MARK


def decode_tag_value(value: str) -> tuple[str, bool]:
    """Decode a tag value written by :func:`encode_tag_value`: ``(text, truncated)``.

    A truncated value decodes to its kept head followed by ``…``. Raises ValueError for a
    value that is not such an encoding (a stray ``=`` or bytes that are not UTF-8).
    """
    truncated = value.endswith(TRUNCATION_MARK)
    body = value[: -len(TRUNCATION_MARK)] if truncated else value
    out = bytearray()
    pos = 0
    while pos < len(body):
        ch = body[pos]
        if ch == "=":
            match = _ESCAPED.match(body, pos)
            if match is None:
                raise ValueError(f"bad escape at position {pos} in tag value {value!r}")
            out.append(int(match.group(1), 16))
            pos = match.end()
        else:
            out += ch.encode("utf-8")
            pos += 1
    text = out.decode("utf-8", "surrogatepass")
    return (text + "…", True) if truncated else (text, False)


def tag_key_problem(key: str) -> str | None:
    """None when ``key`` is valid for AWS tags and Pulumi stack tags, else the reason."""
    if TAG_KEY_PATTERN.fullmatch(key) is None:
        return f"tag key {key!r} must be 1-40 characters of letters, digits and _.:-"
    if key.lower().startswith("aws:"):
        return f"tag key {key!r} must not start with 'aws:' (reserved)"
    return None


def tag_value_problem(value: str) -> str | None:
    """None when ``value`` is a valid AWS tag value, else the reason.

    The AWS rule: at most 256 characters of ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``.
    """
    if len(value) > MAX_TAG_VALUE_LEN:
        return f"tag value is {len(value)} characters; the limit is {MAX_TAG_VALUE_LEN}"
    for ch in value:
        if not (ch.isalnum() or ch in "_.:/=+-@" or unicodedata.category(ch).startswith("Z")):
            return f"tag value {value[:40]!r} contains {ch!r}, outside the AWS tag value charset"
    return None


# --- durations ------------------------------------------------------------------------------

_TTL_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_TTL_PATTERN = re.compile(r"\s*(?:(\d+)\s*([wdhms])\s*)+", re.IGNORECASE)
_TTL_PART = re.compile(r"(\d+)\s*([wdhms])", re.IGNORECASE)
_TTL_FORMS = "a number with a unit s, m, h, d or w, e.g. 90m, 24h, 7d or 1h30m"


MAX_TTL = dt.timedelta(days=36500)
"""The longest duration accepted (100 years): any expiry computed from it stays a date."""


def is_duration(text: str) -> bool:
    """True when ``text`` is written as a duration (whatever its length)."""
    return _TTL_PATTERN.fullmatch(text) is not None


def parse_ttl(text: str, *, flag: str | None = "--ttl") -> dt.timedelta:
    """Parse a time-to-live such as ``90m``, ``24h``, ``7d``, ``2w``, ``30s`` or ``1h30m``.

    Raises :class:`~branchenv.errors.UsageError` naming ``flag`` (the flag or setting the value
    came from; None: name nothing) for anything else, zero and anything longer than
    :data:`MAX_TTL` (an expiry past year 9999 is no date) included.
    """
    said = f"{flag} {text!r}" if flag else repr(text)
    if _TTL_PATTERN.fullmatch(text) is None:
        raise UsageError(f"{said} is not a duration", hint=f"use {_TTL_FORMS}")
    seconds = sum(
        int(number) * _TTL_UNITS[unit.lower()] for number, unit in _TTL_PART.findall(text)
    )
    if seconds <= 0:
        raise UsageError(f"{said} must be longer than zero", hint=f"use {_TTL_FORMS}")
    if seconds > MAX_TTL.total_seconds():
        raise UsageError(
            f"{said} is too long: at most {MAX_TTL.days}d (100 years)", hint=f"use {_TTL_FORMS}"
        )
    return dt.timedelta(seconds=seconds)


def format_duration(delta: dt.timedelta) -> str:
    """A duration for people: its two largest units, e.g. ``3h 12m``, ``2d 4h``, ``45s``.

    Negative durations get a leading ``-``; anything under a second is ``0s``.
    """
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "-" + format_duration(dt.timedelta(seconds=-seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count or parts:
            parts.append(f"{count}{unit}")
    if not parts:
        return "0s"
    shown = parts[:2]
    if len(shown) == 2 and shown[1].startswith("0"):
        shown = shown[:1]
    return " ".join(shown)


# --- timestamps -----------------------------------------------------------------------------


def format_timestamp(moment: dt.datetime) -> str:
    """ISO-8601 in UTC ending in ``Z``; microseconds only when present."""
    utc = moment.astimezone(dt.UTC)
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def parse_timestamp(text: str) -> dt.datetime:
    """Parse an ISO-8601 timestamp with an offset or ``Z`` into an aware UTC datetime."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return moment.astimezone(dt.UTC)


# --- the metadata ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StackMetadata:
    """What branchenv records about one stack.

    ``managed`` false means the stack is not branchenv's: :meth:`to_tags` then omits the
    managed-by marker. ``reap_pending`` is set by the reaper before it destroys the stack, so an
    interrupted reap is finished by the next run. Datetimes are aware and normalized to UTC.
    """

    stack: str
    branch: str
    owner: str
    commit: str
    created_at: dt.datetime
    expires_at: dt.datetime
    target: Target
    engine: str
    managed: bool = True
    reap_pending: bool = False
    project: str = "branchenv"
    pool: str | None = None
    """The warm pool this stack belongs to (None: a branch's own stack)."""
    claimed_by: str | None = None
    """The branch holding this pool stack (None: free in its pool)."""
    claimed_owner: str | None = None
    """Who claimed it (the claim's owner; ``owner`` stays whoever filled the pool)."""
    region: str | None = None
    """The region the stack's resources live in; None for stacks made before it was kept."""
    account: str | None = None
    """The AWS account the stack lives in (the local cloud's default or assumed account);
    None when unknown (made before it was kept, or STS did not answer)."""

    def __post_init__(self) -> None:
        for field in ("created_at", "expires_at"):
            moment: dt.datetime = getattr(self, field)
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(f"{field} must be timezone-aware, got {moment!r}")
            object.__setattr__(self, field, moment.astimezone(dt.UTC))
        if self.target not in TARGETS:
            raise ValueError(f"target {self.target!r} is not one of {', '.join(TARGETS)}")
        if ENGINE_NAME_PATTERN.fullmatch(self.engine) is None:
            raise ValueError(f"engine {self.engine!r} is not an engine name")
        if not self.stack:
            raise ValueError("stack must not be empty")
        if self.region is not None and REGION_PATTERN.fullmatch(self.region) is None:
            raise ValueError(f"region {self.region!r} is not an AWS region name")
        if self.account is not None and ACCOUNT_PATTERN.fullmatch(self.account) is None:
            raise ValueError(f"account {self.account!r} is not a 12-digit AWS account id")

    @classmethod
    def create(
        cls,
        *,
        stack: str,
        branch: str,
        owner: str,
        commit: str,
        ttl: dt.timedelta,
        now: dt.datetime,
        target: Target,
        engine: str,
        project: str = "branchenv",
        region: str | None = None,
        account: str | None = None,
    ) -> StackMetadata:
        """Metadata of a stack created at ``now`` (cut to whole seconds) that lives ``ttl``."""
        if ttl <= dt.timedelta(0):
            raise UsageError(f"--ttl must be longer than zero, got {format_duration(ttl)}")
        created = now.replace(microsecond=0)
        return cls(
            stack=stack,
            branch=branch,
            owner=owner,
            commit=commit,
            created_at=created,
            expires_at=created + ttl,
            target=target,
            engine=engine,
            project=project,
            region=region,
            account=account,
        )

    def expired(self, now: dt.datetime) -> bool:
        """True once ``now`` has reached ``expires_at``."""
        return now >= self.expires_at

    def age(self, now: dt.datetime) -> dt.timedelta:
        """Time since creation."""
        return now - self.created_at

    def expires_in(self, now: dt.datetime) -> dt.timedelta:
        """Time left before expiry; negative once expired."""
        return self.expires_at - now

    def identity_tags(self) -> dict[str, str]:
        """The tags every AWS resource of the stack carries: who made it, for which branch,
        stack and project, when it was born, where and by which engine. None of them change
        between updates (``created_at`` is kept across them), so an update does not retag
        every resource."""
        tags = self.to_tags()
        return {key: tags[key] for key in IDENTITY_KEYS if key in tags}

    def to_tags(self) -> dict[str, str]:
        """The full tag set kept with the stack (stack tags, sidecar, state): the identity tags
        plus expiry, commit and reap-pending. All keys and values valid."""
        tags = {
            KEY_STACK: self.stack,
            KEY_BRANCH: self.branch,
            KEY_OWNER: self.owner,
            KEY_COMMIT: self.commit,
            KEY_CREATED_AT: format_timestamp(self.created_at),
            KEY_EXPIRES_AT: format_timestamp(self.expires_at),
            KEY_TARGET: self.target,
            KEY_ENGINE: self.engine,
            KEY_REAP_PENDING: "true" if self.reap_pending else "false",
            KEY_PROJECT: self.project,
        }
        if self.pool is not None:
            tags[KEY_POOL] = self.pool
            if self.claimed_by is not None:
                tags[KEY_CLAIMED_BY] = self.claimed_by
                tags[KEY_CLAIMED_OWNER] = self.claimed_owner or "unknown"
        if self.region is not None:
            tags[KEY_REGION] = self.region
        if self.account is not None:
            tags[KEY_ACCOUNT] = self.account
        encoded = {key: encode_tag_value(value) for key, value in tags.items()}
        if self.managed:
            encoded = {MANAGED_BY_KEY: MANAGED_BY_VALUE, **encoded}
        return encoded

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> StackMetadata | None:
        """Read metadata back from tags; None without the managed marker; extra keys ignored.

        Raises :class:`MetadataFormatError` when the marker is present but a required key is
        missing or malformed (such a stack must be looked at, not reaped).
        """
        if tags.get(MANAGED_BY_KEY) != MANAGED_BY_VALUE:
            return None

        def text(key: str, default: str | None = None) -> str:
            raw = tags.get(key)
            if raw is None:
                if default is not None:
                    return default
                raise MetadataFormatError(f"managed stack tags lack {key!r}")
            try:
                return decode_tag_value(raw)[0]
            except ValueError as exc:
                raise MetadataFormatError(f"tag {key!r}: {exc}") from exc

        def moment(key: str) -> dt.datetime:
            value = text(key)
            try:
                return parse_timestamp(value)
            except ValueError as exc:
                raise MetadataFormatError(f"tag {key!r} is not a UTC timestamp: {exc}") from exc

        target = text(KEY_TARGET)
        engine = text(KEY_ENGINE)
        reap_pending = text(KEY_REAP_PENDING, "false")
        if target not in TARGETS:
            raise MetadataFormatError(f"tag {KEY_TARGET!r} has unknown target {target!r}")
        if ENGINE_NAME_PATTERN.fullmatch(engine) is None:
            raise MetadataFormatError(f"tag {KEY_ENGINE!r} is not an engine name: {engine!r}")
        if reap_pending not in ("true", "false"):
            raise MetadataFormatError(f"tag {KEY_REAP_PENDING!r} is {reap_pending!r}")
        stack = text(KEY_STACK)
        if not stack:
            raise MetadataFormatError(f"tag {KEY_STACK!r} is empty")
        region = text(KEY_REGION) if KEY_REGION in tags else None
        account = text(KEY_ACCOUNT) if KEY_ACCOUNT in tags else None
        if region is not None and REGION_PATTERN.fullmatch(region) is None:
            raise MetadataFormatError(f"tag {KEY_REGION!r} is not a region name: {region!r}")
        if account is not None and ACCOUNT_PATTERN.fullmatch(account) is None:
            raise MetadataFormatError(f"tag {KEY_ACCOUNT!r} is not an account id: {account!r}")
        return cls(
            stack=stack,
            branch=text(KEY_BRANCH),
            owner=text(KEY_OWNER, "unknown"),
            commit=text(KEY_COMMIT, "unknown"),
            created_at=moment(KEY_CREATED_AT),
            expires_at=moment(KEY_EXPIRES_AT),
            target=cast(Target, target),
            engine=engine,
            managed=True,
            reap_pending=reap_pending == "true",
            project=text(KEY_PROJECT, "branchenv"),
            pool=text(KEY_POOL) if KEY_POOL in tags else None,
            claimed_by=text(KEY_CLAIMED_BY)
            if KEY_POOL in tags and KEY_CLAIMED_BY in tags
            else None,
            claimed_owner=text(KEY_CLAIMED_OWNER, "unknown")
            if KEY_POOL in tags and KEY_CLAIMED_BY in tags
            else None,
            region=region,
            account=account,
        )
