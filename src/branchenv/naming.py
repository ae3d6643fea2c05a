"""Branch name → stack name and resource-name prefix, plus the naming rules of every target.

One branch gives one :class:`StackNames`. Its ``prefix`` starts every physical resource name a
program creates (programs append a suffix of at most :data:`MAX_SUFFIX_LEN` characters with
:func:`resource_name`); its ``stack`` is the Pulumi stack name (equal to the prefix).

The prefix is lowercase ``[a-z0-9-]``, starts with a letter, has no double or trailing hyphen,
is 3 to :data:`MAX_PREFIX_LEN` characters long and is itself valid under every rule in
:data:`RULES`, so ``prefix`` alone and ``prefix-suffix`` are both valid S3 bucket, IAM role,
Lambda function, SQS queue, DynamoDB table, log group, Kubernetes label and Pulumi stack names.

Names of resources that share one namespace across every AWS account (S3 buckets) also carry
the account id: :func:`global_resource_name` gives ``prefix-suffix-<account id>`` within the same
63 characters (a shorter suffix budget, :data:`MAX_GLOBAL_SUFFIX_LEN`).

Uniqueness. A branch that already is such a prefix is used *as is* (``feature-login``), except
when it ends like a hash (``-`` and 8 hex digits). Any other branch — case folded, characters
replaced or dropped, truncated, ``b-`` prepended — gets ``-`` and the first 8 hex digits of the
SHA-256 of the original branch appended. So:

* two exact names differ because the branches differ;
* an exact name never ends like a hash and a hashed name always does, so they never meet
  (``feature/x`` → ``feature-x-<hash>`` while ``feature-x`` stays ``feature-x``; and the branch
  literally named ``feature-x-<hash>`` is itself hashed again);
* two hashed names are equal only if their sanitized heads *and* 32 bits of SHA-256 agree,
  which for distinct branches is a hash collision (about 1 in 4·10⁹ per pair sharing a head).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from branchenv.errors import NamingError

MAX_SUFFIX_LEN = 24
"""Longest text a program may append to the prefix, counting the joining hyphen."""

MAX_PREFIX_LEN = 63 - MAX_SUFFIX_LEN
"""Longest prefix (39): prefix + suffix stays within 63, the tightest rule (S3, DNS labels)."""

ACCOUNT_ID_LEN = 12
"""Digits of an AWS account id."""

MAX_GLOBAL_SUFFIX_LEN = 63 - MAX_PREFIX_LEN - 1 - ACCOUNT_ID_LEN
"""Longest text (joining hyphen included) between the prefix and the account id in a
:func:`global_resource_name` (11): the longest prefix, the suffix and ``-<account id>`` stay
within S3's 63 characters."""

MIN_PREFIX_LEN = 3
"""Shortest prefix, so that the bare prefix is a valid S3 bucket and DynamoDB table name."""

HASH_LEN = 8
"""Hex digits of SHA-256 appended when a branch cannot be used as is."""

_HASH_TAIL = re.compile(rf"-[0-9a-f]{{{HASH_LEN}}}$")
_EXACT = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")

# S3 refuses bucket names starting with these; a prefix must not make ``prefix-…`` start so.
_S3_RESERVED_STARTS = ("xn--", "sthree-", "amzn-s3-demo-")
_S3_RESERVED_ENDS = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_SAFE_START = "b-"  # makes a head start with a letter and avoids reserved starts
_NO_ASCII_HEAD = "b"


@dataclass(frozen=True)
class StackNames:
    """The names derived from one branch.

    ``hashed`` is true when the branch could not be used as is and a hash of it was appended.
    """

    branch: str
    stack: str
    prefix: str
    hashed: bool


def branch_hash(branch: str) -> str:
    """The first :data:`HASH_LEN` hex digits of the SHA-256 of ``branch`` (UTF-8)."""
    return hashlib.sha256(branch.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LEN]


def names_for(branch: str) -> StackNames:
    """Derive the stack name and resource-name prefix for ``branch``; deterministic.

    Raises :class:`~branchenv.errors.NamingError` when the branch has no letter or digit at all
    (empty, whitespace, only punctuation).
    """
    if _is_exact(branch):
        return StackNames(branch=branch, stack=branch, prefix=branch, hashed=False)
    if not any(unicodedata.category(ch)[0] in "LN" for ch in branch):
        shown = branch if len(branch) <= 40 else branch[:40] + "…"
        raise NamingError(
            f"branch {shown!r} has no letters or digits to build a stack name from; "
            "pass `--branch NAME` with a name containing letters or digits"
        )
    head = _sanitize(branch)
    prefix = f"{head}-{branch_hash(branch)}"
    problems = violations(prefix)
    if problems or len(prefix) > MAX_PREFIX_LEN or not _HASH_TAIL.search(prefix):
        # Unreachable by construction; a bug here must not create badly named resources.
        raise RuntimeError(f"naming bug: {prefix!r} derived from {branch!r} breaks {problems}")
    return StackNames(branch=branch, stack=prefix, prefix=prefix, hashed=True)


def _is_exact(branch: str) -> bool:
    """True when ``branch`` can serve as prefix unchanged without meeting any hashed name."""
    return (
        MIN_PREFIX_LEN <= len(branch) <= MAX_PREFIX_LEN
        and _EXACT.fullmatch(branch) is not None
        and _HASH_TAIL.search(branch) is None
        and not _reserved_start(branch)
        and not violations(branch)
    )


def _reserved_start(head: str) -> bool:
    return (head + "-").startswith(_S3_RESERVED_STARTS)


def _sanitize(branch: str) -> str:
    """The readable head of a hashed prefix: transliterated, lowercase, ``[a-z0-9-]``."""
    words = [w for w in _NOT_ALNUM.split(_transliterate(branch).lower()) if w]
    head = "-".join(words)
    if not head:
        return _NO_ASCII_HEAD
    if head[0].isdigit() or _reserved_start(head):
        head = _SAFE_START + head
    return head[: MAX_PREFIX_LEN - 1 - HASH_LEN].rstrip("-")


def _transliterate(branch: str) -> str:
    """NFKD, combining marks dropped, every other non-ASCII character becomes ``-``.

    Characters with no ASCII form (CJK, emoji, ``ß``) still separate the words around them.
    """
    return "".join(
        ch if ch.isascii() else ("" if unicodedata.combining(ch) else _NO_NFKD_FORM.get(ch, "-"))
        for ch in unicodedata.normalize("NFKD", branch)
    )


# Common Latin letters that NFKD does not decompose into ASCII.
_NO_NFKD_FORM = {
    "ß": "ss",
    "ẞ": "SS",
    "æ": "ae",
    "Æ": "AE",
    "œ": "oe",
    "Œ": "OE",
    "ø": "o",
    "Ø": "O",
    "đ": "d",
    "Đ": "D",
    "ł": "l",
    "Ł": "L",
    "þ": "th",
    "Þ": "TH",
    "ð": "d",
    "Ð": "D",
}


def resource_name(prefix: str, suffix: str) -> str:
    """``prefix-suffix``: the physical name of one resource of a stack.

    ``suffix`` is lowercase ``[a-z0-9-]`` (a leading hyphen is tolerated), and the text appended
    to the prefix, hyphen included, is at most :data:`MAX_SUFFIX_LEN` characters. The result is
    then valid under every rule in :data:`RULES`. Raises ValueError otherwise.
    """
    if not (
        MIN_PREFIX_LEN <= len(prefix) <= MAX_PREFIX_LEN
        and _EXACT.fullmatch(prefix)
        and not _reserved_start(prefix)
    ):
        raise ValueError(f"{prefix!r} is not a branchenv prefix; derive it with names_for()")
    tail = suffix.removeprefix("-")
    if not _EXACT_SUFFIX.fullmatch(tail):
        raise ValueError(
            f"suffix {suffix!r} must be lowercase letters, digits and single inner hyphens"
        )
    if len(tail) + 1 > MAX_SUFFIX_LEN:
        raise ValueError(
            f"suffix {suffix!r} is {len(tail) + 1} characters with its hyphen; "
            f"the limit is {MAX_SUFFIX_LEN}"
        )
    name = f"{prefix}-{tail}"
    if name.endswith(_S3_RESERVED_ENDS):
        raise ValueError(f"suffix {suffix!r} makes {name!r} end like a reserved S3 name")
    return name


_EXACT_SUFFIX = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_ACCOUNT_ID = re.compile(rf"[0-9]{{{ACCOUNT_ID_LEN}}}")


def global_resource_name(prefix: str, suffix: str, account_id: str) -> str:
    """``prefix-suffix-<account id>``: the physical name of a resource whose names are one
    namespace across every AWS account (S3 general purpose buckets).

    ``prefix-suffix`` alone is unique among this project's branches but not in the world:
    ``dev-artifacts`` or ``feature-login-artifacts`` are likely taken in someone else's account,
    and the first real ``up`` would fail with BucketAlreadyExists. The account id makes the name
    ours. The suffix budget is :data:`MAX_GLOBAL_SUFFIX_LEN` (hyphen included), so the result is
    valid under every rule in :data:`RULES` for the longest prefix; it still starts with the
    prefix, as the branch-isolation check wants. Raises ValueError otherwise.
    """
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise ValueError(f"account id {account_id!r} must be the 12 digits of an AWS account id")
    tail = suffix.removeprefix("-")
    if len(tail) + 1 > MAX_GLOBAL_SUFFIX_LEN:
        raise ValueError(
            f"suffix {suffix!r} is {len(tail) + 1} characters with its hyphen; the limit is "
            f"{MAX_GLOBAL_SUFFIX_LEN} for account-scoped names"
        )
    base = resource_name(prefix, tail)
    return f"{base}-{account_id}"


# --- the naming rules of each target --------------------------------------------------------

Rule = Callable[[str], "str | None"]
"""A rule takes a name and returns None when it is valid, else the reason it is not."""


def _length(name: str, low: int, high: int) -> str | None:
    if not low <= len(name) <= high:
        return f"length {len(name)} is outside {low}..{high}"
    return None


def _charset(name: str, pattern: str, described: str) -> str | None:
    if re.fullmatch(pattern, name) is None:
        return f"may only contain {described}"
    return None


def _first(*checks: Callable[[], str | None]) -> str | None:
    for check in checks:
        reason = check()
        if reason is not None:
            return reason
    return None


_IP_LIKE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def s3_bucket(name: str) -> str | None:
    """S3 general purpose bucket: 3-63 of ``[a-z0-9.-]``, alphanumeric ends, no ``..``,
    not an IP address, no reserved prefix (``xn--``, ``sthree-``, ``amzn-s3-demo-``) or suffix
    (``-s3alias``, ``--ol-s3``, ``.mrap``, ``--x-s3``, ``--table-s3``)."""
    return _first(
        lambda: _length(name, 3, 63),
        lambda: _charset(name, r"[a-z0-9.-]+", "lowercase letters, digits, '.' and '-'"),
        lambda: (
            None
            if name[0].isalnum() and name[-1].isalnum()
            else "must start and end with a letter or digit"
        ),
        lambda: "must not contain '..'" if ".." in name else None,
        lambda: "must not look like an IP address" if _IP_LIKE.fullmatch(name) else None,
        lambda: (
            f"must not start with {_S3_RESERVED_STARTS}"
            if name.startswith(_S3_RESERVED_STARTS)
            else None
        ),
        lambda: (
            f"must not end with {_S3_RESERVED_ENDS}" if name.endswith(_S3_RESERVED_ENDS) else None
        ),
    )


def iam_role(name: str) -> str | None:
    """IAM role name: 1-64 of ``[A-Za-z0-9_+=,.@-]``."""
    return _first(
        lambda: _length(name, 1, 64),
        lambda: _charset(name, r"[A-Za-z0-9_+=,.@-]+", "letters, digits and _+=,.@-"),
    )


def lambda_function(name: str) -> str | None:
    """Lambda function name (not an ARN): 1-64 of ``[A-Za-z0-9_-]``."""
    return _first(
        lambda: _length(name, 1, 64),
        lambda: _charset(name, r"[A-Za-z0-9_-]+", "letters, digits, '_' and '-'"),
    )


def sqs_queue(name: str) -> str | None:
    """SQS queue name: 1-80 of ``[A-Za-z0-9_-]``, optionally ending in ``.fifo`` (counted)."""
    base = name.removesuffix(".fifo")
    return _first(
        lambda: _length(name, 1, 80),
        lambda: None if base else "must have a name before '.fifo'",
        lambda: _charset(base, r"[A-Za-z0-9_-]+", "letters, digits, '_' and '-' (plus '.fifo')"),
    )


def dynamodb_table(name: str) -> str | None:
    """DynamoDB table name: 3-255 of ``[A-Za-z0-9_.-]``."""
    return _first(
        lambda: _length(name, 3, 255),
        lambda: _charset(name, r"[A-Za-z0-9_.-]+", "letters, digits, '_', '.' and '-'"),
    )


def log_group(name: str) -> str | None:
    """CloudWatch Logs group name: 1-512 of ``[A-Za-z0-9_./#-]``, not starting with ``aws/``."""
    return _first(
        lambda: _length(name, 1, 512),
        lambda: _charset(name, r"[A-Za-z0-9_./#-]+", "letters, digits and _./#-"),
        lambda: "must not start with 'aws/' (reserved)" if name.startswith("aws/") else None,
    )


def k8s_label(name: str) -> str | None:
    """Kubernetes DNS-1123 label (namespace names): 1-63 of ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``."""
    return _first(
        lambda: _length(name, 1, 63),
        lambda: _charset(
            name,
            r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?",
            "lowercase letters, digits and '-', starting and ending alphanumeric",
        ),
    )


def pulumi_stack(name: str) -> str | None:
    """Pulumi stack name: 1-100 of ``[A-Za-z0-9_.-]``."""
    return _first(
        lambda: _length(name, 1, 100),
        lambda: _charset(name, r"[A-Za-z0-9_.-]+", "letters, digits, '_', '.' and '-'"),
    )


RULES: Mapping[str, Rule] = MappingProxyType(
    {
        "s3_bucket": s3_bucket,
        "iam_role": iam_role,
        "lambda_function": lambda_function,
        "sqs_queue": sqs_queue,
        "dynamodb_table": dynamodb_table,
        "log_group": log_group,
        "k8s_label": k8s_label,
        "pulumi_stack": pulumi_stack,
    }
)
"""Every target naming rule by kind; each returns None for a valid name, else the reason."""


def check_name(kind: str, name: str) -> None:
    """Raise ValueError naming the reason when ``name`` breaks the ``kind`` rule of :data:`RULES`.

    Program tests call this on every physical name a program generates.
    """
    rule = RULES.get(kind)
    if rule is None:
        raise ValueError(f"unknown name kind {kind!r}. Valid kinds: {', '.join(RULES)}")
    reason = rule(name)
    if reason is not None:
        raise ValueError(f"{name!r} is not a valid {kind} name: {reason}")


def violations(name: str, kinds: tuple[str, ...] | None = None) -> dict[str, str]:
    """Every rule (of ``kinds``, default all) that ``name`` breaks, with the reason."""
    found: dict[str, str] = {}
    for kind in kinds if kinds is not None else tuple(RULES):
        reason = RULES[kind](name)
        if reason is not None:
            found[kind] = reason
    return found
