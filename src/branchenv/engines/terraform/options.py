"""One options value for every terraform command of a run (Terratest's ``Options``)."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from branchenv.errors import ConfigError, EngineUnavailable

BINARIES = ("terraform", "tofu")
"""What the ``terraform_binary`` setting may name: HashiCorp Terraform or OpenTofu."""

DEFAULT_LOCK_TIMEOUT_S = 30
"""How long a command waits for the state lock before failing as StackLocked."""

RETRYABLE_ERRORS: Mapping[str, str] = MappingProxyType(
    {
        # Registry / mirror hiccups while installing providers (init only ever reads).
        r"(?i)failed to install provider.*(timeout|connection reset|TLS handshake)": (
            "provider installation hit a network error"
        ),
        r"(?i)error: failed to query available provider packages.*(timeout|connection)": (
            "provider index query hit a network error"
        ),
        # The state backend answering 5xx or throttling: the S3 SDK gave up its own retries.
        r"(?i)(RequestError: send request failed|connection reset by peer|i/o timeout)": (
            "the backend connection dropped"
        ),
        r"(?i)(SlowDown|ThrottlingException|RequestLimitExceeded|TooManyRequestsException)": (
            "the target throttled a request"
        ),
    }
)
"""Known-transient failures: regex over the command's output -> why it is transient. Only these
are retried (Terratest's ``RetryableTerraformErrors``); everything else fails at once."""


@dataclasses.dataclass(frozen=True)
class TerraformOptions:
    """Everything one terraform command needs besides its arguments."""

    work_dir: Path
    binary: str = "terraform"
    vars: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    env_cleared: tuple[str, ...] = ()
    """Regexes (matched from the start) of the caller's environment variables terraform must
    not see, applied before ``env`` (the local cloud's endpoint variables: a user's own
    ``AWS_ENDPOINT_URL_S3`` would outrank the local cloud's ``AWS_ENDPOINT_URL``)."""
    lock_timeout_s: int = DEFAULT_LOCK_TIMEOUT_S
    retryable_errors: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: RETRYABLE_ERRORS
    )
    max_retries: int = 3
    retry_wait_s: float = 2.0
    secrets: tuple[str, ...] = ()
    """Values never to be shown in output lines or error messages (masked as ``***``)."""

    def __post_init__(self) -> None:
        for pattern in (*self.retryable_errors, *self.env_cleared):
            re.compile(pattern)  # a bad pattern is a bug here, never a user's input


def resolve_binary(name: str) -> str:
    """The executable for the ``terraform_binary`` setting: ``terraform`` or ``tofu`` on PATH.

    A name outside :data:`BINARIES` is a ConfigError (exit 2); a valid one that is not installed
    is EngineUnavailable (exit 2), each naming the setting and the fix."""
    if name not in BINARIES:
        raise ConfigError(
            f"terraform_binary = {name!r} is not supported. Valid values: {', '.join(BINARIES)} "
            "(set `terraform_binary` in branchenv.toml or BRANCHENV_TERRAFORM_BINARY)"
        )
    path = shutil.which(name)
    if path is None:
        raise EngineUnavailable(
            f"the terraform engine needs the `{name}` CLI on PATH and it is not installed; "
            "install it, or set terraform_binary to the other of terraform/tofu, or choose "
            "another engine with `--engine`"
        )
    return path
