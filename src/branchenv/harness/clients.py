"""Clients the fixtures hand to tests: an HTTP session with timeouts and a base URL, and a boto3
session bound to the stack's target (the local cloud's endpoint and dummy credentials, or the
standard credential chain on AWS)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3
    import requests

    from branchenv.harness.stackfile import TargetInfo
    from branchenv.targets import Target

DEFAULT_HTTP_TIMEOUT_S = 10.0


def to_target(info: TargetInfo) -> Target:
    """The :class:`branchenv.targets.Target` a stack file's target describes."""
    from branchenv.targets import Target

    return Target(
        name=info.name,
        region=info.region,
        endpoint_url=info.endpoint_url,
        functions_url=info.functions_url,
    )


def http_session(
    base_url: str | None = None, *, timeout: float = DEFAULT_HTTP_TIMEOUT_S
) -> requests.Session:
    """A ``requests.Session`` whose requests default to ``timeout`` seconds and whose relative
    URLs (``"/orders"``) are joined to ``base_url``. A test can still pass its own timeout."""
    import requests

    class _Session(requests.Session):
        def request(
            self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
        ) -> requests.Response:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            if isinstance(url, bytes):
                url = url.decode()
            if base_url and not url.startswith(("http://", "https://")):
                url = base_url.rstrip("/") + "/" + url.lstrip("/")
            return super().request(method, url, *args, **kwargs)

    session = _Session()
    session.headers["user-agent"] = "branchenv-harness"
    return session


def target_session(target: Target) -> boto3.Session:
    """A boto3 session bound to ``target``: on the local cloud its ``client()`` and
    ``resource()`` default to the local endpoint, with the target's dummy credentials."""
    import boto3

    if not target.is_local:
        return target.session()
    from branchenv.targets import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

    endpoint_url = target.endpoint_url

    class _LocalSession(boto3.Session):
        def client(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("endpoint_url", endpoint_url)
            return super().client(*args, **kwargs)

        def resource(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("endpoint_url", endpoint_url)
            return super().resource(*args, **kwargs)

    return _LocalSession(
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_SECRET_KEY,
        region_name=target.region,
    )
