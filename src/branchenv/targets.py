"""Targets: where a stack's resources live.

``aws`` is a real account reached through the standard credential chain. ``local`` is the local
cloud (a moto server on loopback plus the local function runner), started by branchenv.

A target may carry an :class:`AssumeRole`: its sessions then hold that role's credentials
(assumed through the region's STS endpoint with the base credentials, refreshed before they
expire), so every request is made in the role's account. That is how one reaper reaches every
account of an organisation; the local cloud attributes assumed-role requests to the role's
account the same way (moto's multi-account support).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any

from branchenv.errors import BranchenvError, UsageError

if TYPE_CHECKING:
    import boto3

TARGET_NAMES = ("local", "aws")

_SESSIONS: dict[Target, boto3.Session] = {}
_SESSIONS_LOCK = threading.RLock()

# Dummy credentials for the local cloud; moto accepts any. Never real keys.
LOCAL_ACCESS_KEY = "branchenv-local"
LOCAL_SECRET_KEY = "branchenv-local-secret"
LOCAL_ACCOUNT_ID = "123456789012"


@dataclasses.dataclass(frozen=True)
class AssumeRole:
    """A role to act as: its ARN, the session name (CloudTrail shows it) and an optional
    external id (some trust policies require one; it is never logged or reported)."""

    role_arn: str
    session_name: str = "branchenv-reaper"
    external_id: str | None = dataclasses.field(default=None, repr=False)

    @property
    def account(self) -> str:
        """The account the role lives in (the ARN's fifth field)."""
        return self.role_arn.split(":")[4]


class RoleNotAssumed(BranchenvError):
    """Assuming a target's role failed (denied, no such role, no base credentials). The
    message names the role and the region, never the credentials or the external id."""


@dataclasses.dataclass(frozen=True)
class Target:
    """Where resources live. For ``local``, ``endpoint_url`` is the moto server's base URL and
    ``functions_url`` the local function runner's; ``atomic_conditional_writes`` says that
    server checks and applies S3 conditional writes as one step, as AWS does (a local cloud
    started by an older branchenv does not)."""

    name: str
    region: str
    endpoint_url: str | None = None
    functions_url: str | None = None
    role: AssumeRole | None = None
    atomic_conditional_writes: bool = False

    @property
    def is_local(self) -> bool:
        return self.name == "local"

    def with_role(self, role: AssumeRole | None, *, region: str | None = None) -> Target:
        """This target in another account (``role``) and/or region."""
        return dataclasses.replace(self, role=role, region=region or self.region)

    def known_account(self) -> str | None:
        """The account this target acts in when known without a call: the role's, or the
        local cloud's default; None for ``aws`` with the caller's own credentials."""
        if self.role is not None:
            return self.role.account
        return LOCAL_ACCOUNT_ID if self.is_local else None

    def account_id(self) -> str:
        """The account these credentials act in, as STS reports it."""
        return str(self.client("sts").get_caller_identity()["Account"])

    def session(self) -> boto3.Session:
        """A boto3 session bound to this target (dummy credentials on the local cloud).

        One session per target is shared (creating one, and its first clients, costs tens of
        milliseconds: a sweep making a client per thread spent most of its time there)."""
        with _SESSIONS_LOCK:
            cached = _SESSIONS.get(self)
            if cached is None:
                cached = _SESSIONS[self] = self._new_session()
            return cached

    def _new_session(self) -> boto3.Session:
        import boto3

        if self.role is not None:
            return self._assumed_session(self.role)
        if self.is_local:
            return boto3.Session(
                aws_access_key_id=LOCAL_ACCESS_KEY,
                aws_secret_access_key=LOCAL_SECRET_KEY,
                region_name=self.region,
            )
        return boto3.Session(region_name=self.region)

    def _assumed_session(self, role: AssumeRole) -> boto3.Session:
        """A session holding ``role``'s credentials, assumed now (a denied role fails here,
        before anything is done in its account) and refreshed by botocore before expiry."""
        import boto3
        from botocore.credentials import RefreshableCredentials

        base = dataclasses.replace(self, role=None)

        def fetch() -> dict[str, str]:
            kwargs: dict[str, Any] = {
                "RoleArn": role.role_arn,
                "RoleSessionName": role.session_name,
            }
            if role.external_id:
                kwargs["ExternalId"] = role.external_id
            try:
                creds = base.client("sts").assume_role(**kwargs)["Credentials"]
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise RoleNotAssumed(
                    f"cannot assume role {role.role_arn} in {self.region}: "
                    f"{code or type(exc).__name__}: {text}"
                    + (
                        "; check the role exists, its trust policy lets these credentials "
                        "assume it (and the external id, if it requires one)"
                    )
                ) from None
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        credentials = RefreshableCredentials.create_from_metadata(
            metadata=fetch(), refresh_using=fetch, method="assume-role"
        )
        core: Any = boto3.Session(region_name=self.region)._session
        # botocore has no public setter for refreshable credentials; this is the usual way.
        core._credentials = credentials
        return boto3.Session(botocore_session=core, region_name=self.region)

    def client(self, service: str, *, config: Any = None) -> Any:
        """A boto3 client for ``service`` on this target (the local cloud over HTTP if local);
        ``config`` (a botocore ``Config``) overrides the defaults it sets (timeouts, retries).
        Made from the target's one shared session, whose loader has every service model it
        read already: a client from a new session reads its model's JSON again."""
        from botocore.config import Config

        cfg = Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            max_pool_connections=32,  # clients are thread-safe and shared by worker threads
        )
        if config is not None:
            cfg = cfg.merge(config)
        session: Any = self.session()
        endpoint = self.local_endpoint() if self.is_local else None
        # boto3 sessions are not thread-safe; clients are. Create under the lock, use freely.
        with _SESSIONS_LOCK:
            if endpoint:
                return session.client(service, endpoint_url=endpoint, config=cfg)
            return session.client(service, config=cfg)

    def local_endpoint(self) -> str:
        """The local cloud's URL, checked to be on loopback: a local target must never reach
        anything else (without an endpoint, boto3 would fall back to real AWS)."""
        import urllib.parse

        from branchenv.errors import LocalCloudError, SafetyRefusal

        if not self.endpoint_url:
            raise LocalCloudError(
                "the local target has no local cloud endpoint; start it with "
                "`branchenv cloud start`"
            )
        try:
            host = urllib.parse.urlsplit(self.endpoint_url).hostname or ""
        except ValueError:
            host = ""
        if not is_loopback_host(host):
            raise SafetyRefusal(
                f"the local target's endpoint {self.endpoint_url} is not on loopback; the local "
                "cloud only ever listens on 127.0.0.1"
            )
        return self.endpoint_url

    def aws_env(self) -> dict[str, str]:
        """Environment for a subprocess (pulumi CLI, a function worker) to reach this target."""
        env = {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        if self.is_local:
            assert self.endpoint_url is not None
            env.update(
                AWS_ACCESS_KEY_ID=LOCAL_ACCESS_KEY,
                AWS_SECRET_ACCESS_KEY=LOCAL_SECRET_KEY,
                AWS_ENDPOINT_URL=self.endpoint_url,
            )
        if self.role is not None:
            # The subprocess acts in the role's account: hand it the assumed credentials
            # (short-lived), never the base ones.
            credentials: Any = self.session().get_credentials()
            frozen = credentials.get_frozen_credentials()
            env.update(
                AWS_ACCESS_KEY_ID=str(frozen.access_key),
                AWS_SECRET_ACCESS_KEY=str(frozen.secret_key),
                AWS_SESSION_TOKEN=str(frozen.token or ""),
            )
        return env


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1) only; a name that
    merely starts with ``127.`` (``127.evil.example``) is not one."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target_name(name: str) -> str:
    """Validate a target name; a wrong one names the valid choices (exit 2)."""
    if name not in TARGET_NAMES:
        raise UsageError(
            f"unknown target {name!r}. Valid targets: {', '.join(TARGET_NAMES)} "
            "(pass `--target NAME` or set BRANCHENV_DEFAULT_TARGET)"
        )
    return name
