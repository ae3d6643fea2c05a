"""The organisation-wide run: one reaper for every (account, region) pair.

A :class:`Scope` names the accounts (``--accounts``), the regions (``--regions``, or ``all``:
the enabled regions each account reports) and the role to assume in each account
(``--assume-role`` with an ``{account}`` placeholder, a session name and an optional external
id). :func:`resolve` validates it before anything is contacted (bad input: exit 2; an account
not in ``allowed_account_ids``: exit 3, nothing contacted, nothing destroyed anywhere); then
each pair gets a :class:`~branchenv.targets.Target` acting in its account and region.

Stacks are listed once (the engines' state knows every stack, whichever account it lives in)
and each is attributed to the pair its metadata names (``region`` / ``account``, recorded by
``up``). The orphan sweep looks in every pair with that pair's credentials; a resource without
a region in its ARN (IAM, S3) is counted once per account, in the account's first region.

Failures are per pair: a role that cannot be assumed, a listing that fails, makes that pair
*failed* (named with its reason in the report, exit 1); the other pairs are still reaped.
Concurrency is bounded per account (its API rate limits), shared by its regions.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from branchenv.errors import SafetyRefusal, UsageError, one_line

if TYPE_CHECKING:
    from branchenv.metadata import StackMetadata
    from branchenv.reaper.orphans import OrphanPlan
    from branchenv.targets import Target

ACCOUNT_RE = re.compile(r"[0-9]{12}")
REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
ROLE_TEMPLATE_RE = re.compile(r"arn:aws[a-z-]*:iam::(\{account\}|[0-9]{12}):role/[\w+=,.@/-]+")
SESSION_NAME_RE = re.compile(r"[\w+=,.@-]{2,64}")
ALL = "all"


@dataclasses.dataclass(frozen=True)
class Pair:
    """One (account, region) the run reaps in."""

    account: str
    region: str

    def __str__(self) -> str:
        return f"{self.account}/{self.region}"


@dataclasses.dataclass(frozen=True)
class Scope:
    """Where one organisation-wide run reaps, validated (see :func:`parse_scope`)."""

    accounts: tuple[str, ...]
    """Empty: the caller's own account (no role assumed)."""
    regions: tuple[str, ...] | None
    """None: every enabled region each account reports (``--regions all``)."""
    role_template: str | None = None
    session_name: str = "branchenv-reaper"
    external_id: str | None = dataclasses.field(default=None, repr=False)
    account_concurrency: int = 4

    def role_for(self, account: str) -> str | None:
        """The role ARN to assume in ``account`` (None: act with the caller's credentials)."""
        if self.role_template is None:
            return None
        return self.role_template.replace("{account}", account)


def _items(text: str, flag: str) -> list[str]:
    items = [part.strip() for part in text.split(",")]
    if not all(items):
        raise UsageError(f"{flag} {text!r} has an empty item; give a comma-separated list")
    return list(dict.fromkeys(items))


def parse_scope(
    *,
    accounts: str | None,
    regions: str | None,
    assume_role: str | None,
    session_name: str | None = None,
    external_id: str | None = None,
    account_concurrency: int = 4,
) -> Scope | None:
    """The scope the flags name, validated before anything is contacted (exit 2 naming the
    flag and the fix); None when no flag of the organisation-wide run is given (the
    single-account, single-region run)."""
    if accounts is None and regions is None and assume_role is None:
        return None
    account_list: list[str] = []
    if accounts is not None:
        account_list = _items(accounts, "--accounts")
        for account in account_list:
            if ACCOUNT_RE.fullmatch(account) is None:
                raise UsageError(
                    f"--accounts: {account!r} is not a 12-digit AWS account id "
                    '(quote it in YAML so leading zeros stay: "012345678901")'
                )
    region_list: tuple[str, ...] | None = None
    if regions is not None and regions.strip().lower() != ALL:
        region_list = tuple(_items(regions, "--regions"))
        for region in region_list:
            if REGION_RE.fullmatch(region) is None:
                raise UsageError(
                    f"--regions: {region!r} is not an AWS region name; use a form like "
                    "us-east-1, or `--regions all` for every region the account has enabled"
                )
    if assume_role is not None:
        if ROLE_TEMPLATE_RE.fullmatch(assume_role) is None:
            raise UsageError(
                f"--assume-role {assume_role!r} is not a role ARN template; use the form "
                "arn:aws:iam::{account}:role/NAME ({account} is replaced by each account id)"
            )
        if "{account}" not in assume_role and len(account_list) > 1:
            raise UsageError(
                "--assume-role names one account's role but --accounts lists "
                f"{len(account_list)}; put the placeholder in it: arn:aws:iam::{{account}}:role/NAME"
            )
        if not account_list:
            raise UsageError(
                "--assume-role needs --accounts: name the accounts to assume it in "
                "(--accounts 111111111111,222222222222)"
            )
    elif len(account_list) > 1:
        raise UsageError(
            "--accounts lists several accounts but no --assume-role: one set of credentials "
            "acts in one account; pass --assume-role arn:aws:iam::{account}:role/NAME"
        )
    name = session_name or "branchenv-reaper"
    if SESSION_NAME_RE.fullmatch(name) is None:
        raise UsageError(
            f"--role-session-name {name!r} must be 2-64 characters of letters, digits and +=,.@_-"
        )
    if account_concurrency < 1:
        raise UsageError("--account-concurrency must be at least 1")
    return Scope(
        accounts=tuple(account_list),
        regions=region_list,
        role_template=assume_role,
        session_name=name,
        external_id=external_id or None,
        account_concurrency=account_concurrency,
    )


def check_allowlist(scope: Scope, allowed: Sequence[str]) -> None:
    """Refuse (exit 3) before any account is contacted when the run names an account that is
    not in ``allowed_account_ids``: nothing is destroyed anywhere then."""
    if not scope.accounts:
        return
    if not allowed:
        raise SafetyRefusal(
            f"refusing to reap in AWS accounts {', '.join(scope.accounts)}: no "
            "allowed_account_ids are configured; list the accounts meant for branch stacks in "
            "`allowed_account_ids` (BRANCHENV_ALLOWED_ACCOUNT_IDS). Nothing was destroyed"
        )
    outside = [a for a in scope.accounts if a not in allowed]
    if outside:
        raise SafetyRefusal(
            f"refusing to reap: {'account' if len(outside) == 1 else 'accounts'} {', '.join(outside)} "
            f"{'is' if len(outside) == 1 else 'are'} not in allowed_account_ids "
            f"({', '.join(allowed)}); remove them from --accounts or add them to "
            "allowed_account_ids. Nothing was destroyed in any account"
        )


@dataclasses.dataclass(frozen=True)
class PairPlan:
    """What the run found in one pair: its target, its orphans, or why it failed."""

    pair: Pair
    target: Target = dataclasses.field(repr=False, compare=False)
    error: str | None = None
    orphans: OrphanPlan | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclasses.dataclass(frozen=True)
class AccountPlan:
    """One account of the run: its base target (the role, in the first region), the regions
    it reaps in, or why it could not be reached at all."""

    account: str
    target: Target = dataclasses.field(repr=False, compare=False)
    regions: tuple[str, ...]
    error: str | None = None


def account_targets(
    scope: Scope, base: Target, *, default_region: str, base_account: str
) -> list[AccountPlan]:
    """Each account's target and regions. ``all`` regions: the enabled regions the account
    reports (EC2 DescribeRegions with its credentials); an account whose role cannot be
    assumed for that is returned with its error (its pairs fail, the others go on)."""
    from branchenv.targets import AssumeRole

    accounts = scope.accounts or (base_account,)
    plans: list[AccountPlan] = []
    for account in accounts:
        role_arn = scope.role_for(account)
        role = AssumeRole(role_arn, scope.session_name, scope.external_id) if role_arn else None
        first = scope.regions[0] if scope.regions else default_region
        target = base.with_role(role, region=first)
        if scope.regions is not None:
            plans.append(AccountPlan(account, target, scope.regions))
            continue
        try:
            # Without AllRegions, EC2 lists the regions enabled for the account. Only the
            # role's own partition is kept: AWS never lists another partition's regions (the
            # local cloud does), and a role exists in one partition only.
            found = target.client("ec2").describe_regions()["Regions"]
            session = target.session()
            home = session.get_partition_for_region(target.region)
            regions = tuple(
                sorted(
                    r["RegionName"]
                    for r in found
                    if session.get_partition_for_region(r["RegionName"]) == home
                )
            )
        except Exception as exc:
            plans.append(AccountPlan(account, target, (), error=one_line(exc)))
            continue
        plans.append(AccountPlan(account, target, regions))
    return plans


def verify_account(target: Target, account: str, allowed: Sequence[str], *, assumed: bool) -> None:
    """The credentials of a pair act in the account they were assumed for, and (for an
    assumed account, or any account on AWS) that account is allowed. Refuses (exit 3)."""
    from branchenv.safety import check_account

    sts = target.client("sts")
    if assumed or target.name == "aws":
        actual = check_account(sts, allowed)
    else:
        actual = str(sts.get_caller_identity()["Account"])
    if actual != account:
        raise SafetyRefusal(
            f"the credentials for account {account} act in account {actual}: check "
            "--assume-role (its {account} placeholder) or the credentials. Nothing was "
            "destroyed there"
        )


def stack_pair(
    metadata: StackMetadata | None, *, default_region: str, default_account: str | None
) -> Pair | None:
    """The pair a stack lives in, from its metadata: its region (default: the settings'),
    its account (default ``default_account``; None: unknown)."""
    if metadata is None:
        return None
    account = metadata.account or default_account
    if account is None:
        return None
    return Pair(account, metadata.region or default_region)


class AccountGates:
    """One semaphore per account: at most ``limit`` calls in flight in any one account."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._gates: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, account: str) -> Iterator[None]:
        with self._lock:
            gate = self._gates.setdefault(account, threading.BoundedSemaphore(self._limit))
        with gate:
            yield


def guarded(gates: AccountGates, account: str, func: Callable[[], object]) -> object:
    """``func()`` inside ``account``'s gate."""
    with gates.hold(account):
        return func()
